//! The PostgreSQL listener's limits through real clients against real PostgreSQL: the cap on
//! client connections (`max_client_connections`).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::database::TempDatabase;
use support::proxy::{Proxy, SHOP, SHOP_PASSWORDS, SHOP_POLICY, SHOP_USERS};
use tablegate::ops::{Ops, scrape};
use tablegate::reload::PolicyReloader;
use tokio::process::Command;
use tokio_postgres::NoTls;

async fn shop_with(config: &str) -> (TempDatabase, Proxy) {
    let db = TempDatabase::with(SHOP).await;
    let proxy = Proxy::start(&db, SHOP_POLICY, SHOP_USERS, SHOP_PASSWORDS, config).await;
    (db, proxy)
}

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_owned()).unwrap_or_default()
}

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
    let text = scrape::render(&Ops::new(proxy.gate.clone(), reloader, None));
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample `{series}` in:\n{text}"))
        .parse()
        .unwrap()
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
