//! The PostgreSQL listener's limits through real clients against real PostgreSQL: the cap on
//! client connections (`max_client_connections`) and the per-address throttle of failed logins
//! (`login_failures_per_address`, `login_failure_window_secs`).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::metrics::sample;
use support::proxy::{Proxy, SERVICE_ACCOUNT, shop_with, sqlstate, tls_config};
use tablegate::ops::{Ops, scrape};
use tablegate::reload::PolicyReloader;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio_postgres::NoTls;

fn message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|db| db.message().to_owned())
        .unwrap_or_else(|| e.to_string())
}

/// Waits until `open` client connections hold a slot: a session gives its slot back just after
/// its client saw it end.
async fn until_open(proxy: &Proxy, open: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.gate.connections.open() != open {
        assert!(
            Instant::now() < deadline,
            "slots held: {}",
            proxy.gate.connections.open()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of the sample written exactly as `series` in what `/metrics` would answer.
fn metric(proxy: &Proxy, series: &str) -> f64 {
    let reloader = Arc::new(PolicyReloader::new(proxy.gate.clone()));
    sample(
        &scrape::render(&Ops::new(proxy.gate.clone(), reloader, None)),
        series,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_clients_are_refused_as_postgres_refuses_them() {
    let (_db, proxy) = shop_with("max_client_connections = 2").await;
    let alice = proxy.client("alice", "alice-secret").await.unwrap();
    let sam = proxy.client("sam", "sam-secret").await.unwrap();
    assert_eq!(metric(&proxy, "tablegate_client_connections"), 2.0);

    let refused = proxy.client("bob", "bob-secret").await.err().unwrap();
    assert_eq!(sqlstate(&refused), "53300", "{refused}");
    assert_eq!(message(&refused), "sorry, too many clients already");
    let hint = refused.as_db_error().unwrap().hint().unwrap().to_owned();
    assert!(hint.contains("max_client_connections"), "{hint}");

    // psql opens with SSLRequest (sslmode=prefer, libpq's default) and still shows the message.
    let psql = Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={} user=bob dbname=shop sslmode=prefer",
            proxy.addr.port()
        ))
        .args(["-X", "-c", "SELECT 1"])
        .env("PGPASSWORD", "bob-secret")
        .output()
        .await
        .expect("psql is installed (see .ci/run)");
    assert!(!psql.status.success());
    let stderr = String::from_utf8_lossy(&psql.stderr);
    assert!(
        stderr.contains("sorry, too many clients already"),
        "{stderr}"
    );

    // At the cap, a cancel request is still served, as PostgreSQL serves it.
    let token = alice.cancel_token();
    let sleeping = tokio::spawn(async move {
        let outcome = alice.simple_query("SELECT pg_sleep(30)").await;
        (alice, outcome)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    token.cancel_query(NoTls).await.unwrap();
    let (alice, outcome) = tokio::time::timeout(Duration::from_secs(10), sleeping)
        .await
        .expect("cancelled in time")
        .unwrap();
    assert_eq!(sqlstate(&outcome.unwrap_err()), "57014", "query_canceled");

    assert_eq!(
        metric(
            &proxy,
            "tablegate_connections_refused_total{reason=\"too_many_clients\"}"
        ),
        2.0,
        "tokio-postgres and psql; not the cancel request"
    );

    // A client that leaves gives its slot back, and the next one gets in.
    drop(sam);
    until_open(&proxy, 1).await;
    let bob = proxy.client("bob", "bob-secret").await.unwrap();
    bob.simple_query("SELECT count(*) FROM employees")
        .await
        .unwrap();
    alice.simple_query("SELECT 1").await.unwrap();
    // A connection that fails to log in gives its slot back too.
    drop(bob);
    until_open(&proxy, 1).await;
    let wrong = proxy.client("sam", "not-sams").await.err().unwrap();
    assert_eq!(sqlstate(&wrong), "28P01");
    until_open(&proxy, 1).await;
    let sam = proxy.client("sam", "sam-secret").await.unwrap();
    sam.simple_query("SELECT 1").await.unwrap();
}

/// Connections from another loopback address (an attacker's) that send nothing.
async fn silent_connections_from(
    source: &str,
    proxy: &Proxy,
    count: usize,
) -> Vec<tokio::net::TcpStream> {
    let mut held = Vec::new();
    for _ in 0..count {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        held.push(socket.connect(proxy.addr).await.unwrap());
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_host_cannot_fill_the_cap_with_logins_it_never_finishes() {
    let share = tablegate::proxy::connection_limit::LOGINS_PER_ADDRESS;
    let (_db, proxy) = shop_with(&format!("max_client_connections = {}", share + 1)).await;
    let _silent = silent_connections_from("127.0.0.2", &proxy, share).await;
    until_open(&proxy, share).await;
    // One more from that host asks for a session and is told why not.
    let mut past_share = silent_connections_from("127.0.0.2", &proxy, 1)
        .await
        .remove(0);
    let mut startup = Vec::new();
    let parameters = b"user\0alice\0database\0shop\0\0";
    startup.extend_from_slice(&(8 + parameters.len() as i32).to_be_bytes());
    startup.extend_from_slice(&196608i32.to_be_bytes());
    startup.extend_from_slice(parameters);
    past_share.write_all(&startup).await.unwrap();
    let mut answer = Vec::new();
    past_share.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.contains("53300") && answer.contains("127.0.0.2 are logging in at once"),
        "{answer}"
    );
    // Others still get in.
    let alice = proxy.client("alice", "alice-secret").await.unwrap();
    alice.simple_query("SELECT 1").await.unwrap();
    assert_eq!(
        metric(
            &proxy,
            "tablegate_connections_refused_total{reason=\"too_many_logins\"}"
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_host_cannot_take_every_refusal_from_cancel_requests() {
    let (_db, proxy) = shop_with("max_client_connections = 1").await;
    let alice = proxy.client("alice", "alice-secret").await.unwrap();
    let token = alice.cancel_token();
    let sleeping = tokio::spawn(async move { alice.simple_query("SELECT pg_sleep(30)").await });
    // Past the cap, each would be answered after its startup packet, which never comes.
    let _silent = silent_connections_from(
        "127.0.0.2",
        &proxy,
        tablegate::proxy::connection_limit::REFUSALS_AT_ONCE,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    token.cancel_query(NoTls).await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), sleeping)
        .await
        .expect("cancelled in time")
        .unwrap();
    assert_eq!(sqlstate(&outcome.unwrap_err()), "57014", "query_canceled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_too_many_failed_logins_an_address_is_refused_until_its_window_ends() {
    let config =
        format!("login_failures_per_address = 3\nlogin_failure_window_secs = 5\n{SERVICE_ACCOUNT}");
    let (_db, proxy) = shop_with(&config).await;
    // Two wrong guesses at once: a wrong password, and a user who does not exist.
    let (wrong, unknown) = tokio::join!(
        proxy.client("alice", "guess-1"),
        proxy.client("nobody", "guess-2")
    );
    assert_eq!(sqlstate(&wrong.err().unwrap()), "28P01");
    assert_eq!(sqlstate(&unknown.err().unwrap()), "28P01");

    // Under the limit, the right password still logs in.
    let alice = proxy.client("alice", "alice-secret").await.unwrap();
    alice.simple_query("SELECT 1").await.unwrap();

    // A service account's wrong secret is the third failure from 127.0.0.1.
    let url = proxy.acting_url("alice").replace(
        "password=engine-secret-0123",
        "password=not-the-engine-secret",
    );
    let e = tokio_postgres::connect(&url, NoTls).await.err().unwrap();
    assert_eq!(sqlstate(&e), "28P01", "{e}");

    // Now even the right password is refused without being checked, at once.
    let asked = Instant::now();
    let throttled = proxy.client("alice", "alice-secret").await.err().unwrap();
    assert!(asked.elapsed() < Duration::from_secs(1), "no failure delay");
    assert_eq!(sqlstate(&throttled), "53300", "{throttled}");
    let text = message(&throttled);
    let seconds: u64 = text
        .strip_prefix("too many failed logins from 127.0.0.1: try again in ")
        .and_then(|rest| rest.strip_suffix(" s"))
        .unwrap_or_else(|| panic!("{text}"))
        .parse()
        .unwrap();
    assert!((1..=5).contains(&seconds), "{text}");
    let service = tokio_postgres::connect(&proxy.acting_url("alice"), NoTls)
        .await
        .err()
        .unwrap();
    assert_eq!(sqlstate(&service), "53300", "{service}");
    // Open sessions are not touched.
    alice.simple_query("SELECT 1").await.unwrap();
    assert_eq!(
        metric(
            &proxy,
            "tablegate_connections_refused_total{reason=\"login_throttled\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            &proxy,
            "tablegate_logins_failed_total{reason=\"credentials\"}"
        ),
        3.0
    );

    // As the message said: after that long, the right password logs in again.
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let again = proxy.client("alice", "alice-secret").await.unwrap();
    again.simple_query("SELECT 1").await.unwrap();
    let (engine, connection) = tokio_postgres::connect(&proxy.acting_url("sam"), NoTls)
        .await
        .expect("the service account logs in again");
    tokio::spawn(connection);
    engine.simple_query("SELECT 1").await.unwrap();
}

/// An outage is not the client's fault: it answers 58000 (as PostgreSQL answers an
/// unreadable catalog), at once, and costs the address none of its failures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_during_a_directory_outage_are_answered_58000_and_not_counted_as_failures() {
    let (_db, proxy) = shop_with("login_failures_per_address = 2").await;
    proxy.break_directory();
    for _ in 0..4 {
        let asked = Instant::now();
        let e = proxy.client("alice", "alice-secret").await.err().unwrap();
        assert_eq!(sqlstate(&e), "58000", "{e}");
        assert!(
            message(&e).starts_with("the user directory is unavailable"),
            "{e}"
        );
        assert!(asked.elapsed() < Duration::from_secs(1), "no failure delay");
    }
    let failed = |reason: &str| {
        metric(
            &proxy,
            &format!("tablegate_logins_failed_total{{reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(failed("directory_unavailable"), 4.0);
    assert_eq!(failed("credentials"), 0.0);

    proxy.repair_directory();
    let alice = proxy.client("alice", "alice-secret").await.unwrap();
    alice.simple_query("SELECT 1").await.unwrap();
}

/// The attack the per-connection delay does not slow: many connections guessing at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guesses_from_one_address_get_no_more_checks_than_the_limit() {
    let (_db, proxy) = shop_with("login_failures_per_address = 3").await;
    let guesses = (0..8).map(|i| {
        let url = proxy.url("alice", &format!("guess-{i}"));
        async move { tokio_postgres::connect(&url, NoTls).await.err().unwrap() }
    });
    let mut codes: Vec<String> = futures_util::future::join_all(guesses)
        .await
        .iter()
        .map(sqlstate)
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        [
            "28P01", "28P01", "28P01", "53300", "53300", "53300", "53300", "53300"
        ],
        "three guesses checked, the rest refused unchecked"
    );
    let e = proxy.client("alice", "alice-secret").await.err().unwrap();
    assert_eq!(sqlstate(&e), "53300");
}

/// Over TLS a password arrives in clear text rather than as a SCRAM proof: that path claims its
/// guesses from the throttle too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleartext_guesses_over_tls_are_throttled_too() {
    let (_dir, tls) = tls_config();
    let (_db, proxy) = shop_with(&format!(
        "login_failures_per_address = 2\nlogin_failure_window_secs = 60\n{tls}"
    ))
    .await;
    let psql = |password: &'static str| {
        Command::new("psql")
            .arg(format!(
                "host=127.0.0.1 port={} user=alice dbname=shop sslmode=require",
                proxy.addr.port()
            ))
            .args(["-X", "-A", "-t", "-c", "SELECT 1"])
            .env("PGPASSWORD", password)
            .output()
    };
    for _ in 0..2 {
        let out = psql("guess").await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("password authentication failed"),
            "{stderr}"
        );
    }
    let out = psql("alice-secret").await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("too many failed logins from 127.0.0.1"),
        "{stderr}"
    );
}
