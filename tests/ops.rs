//! The operations endpoints against real PostgreSQL: `/metrics` counts what clients did,
//! `/healthz` follows whether the datasource can serve a new session.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::database::TempDatabase;
use support::metrics::sample;
use support::proxy::{Proxy, shop};
use tablegate::http_listener::{self, HttpLimits};
use tablegate::ops::{self, Ops};
use tablegate::reload::PolicyReloader;

/// The shop scenario with its operations endpoints served on an ephemeral port.
async fn serve() -> (TempDatabase, Proxy, SocketAddr) {
    let (db, proxy) = shop().await;
    let reloader = Arc::new(PolicyReloader::new(proxy.gate.clone()));
    let router = ops::router(Arc::new(Ops::new(proxy.gate.clone(), reloader, None)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(http_listener::serve(
        listener,
        router,
        HttpLimits::default(),
    ));
    (db, proxy, addr)
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let response = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_outcomes_refusals_latencies_sessions_and_pools() {
    let (_db, proxy, addr) = serve().await;
    let alice = proxy.client("alice", "alice-secret").await.unwrap();
    alice
        .simple_query("SELECT count(*) FROM orders")
        .await
        .unwrap();
    alice
        .simple_query("SELECT count(*) FROM orders")
        .await
        .unwrap();
    alice
        .query("SELECT id FROM orders WHERE id = $1", &[&4i32])
        .await
        .unwrap();
    let error = alice.simple_query("SELECT 1/0").await.unwrap_err();
    assert_eq!(error.code().unwrap().code(), "22012", "{error}");
    for refused in ["SELECT * FROM secret", "DELETE FROM orders"] {
        let e = alice.simple_query(refused).await.unwrap_err();
        assert_eq!(e.code().unwrap().code(), "42501", "{refused}: {e}");
    }
    for (user, password) in [("alice", "wrong"), ("nobody", "alice-secret")] {
        assert!(proxy.client(user, password).await.is_err(), "{user}");
    }

    let (status, content_type, metrics) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let statements = |outcome: &str| {
        sample(
            &metrics,
            &format!("tablegate_statements_total{{outcome=\"{outcome}\"}}"),
        )
    };
    assert_eq!(statements("ok"), 3.0);
    assert_eq!(statements("error"), 1.0);
    assert_eq!(statements("refused"), 2.0);
    let refused = |kind: &str| {
        sample(
            &metrics,
            &format!("tablegate_statements_refused_total{{kind=\"{kind}\"}}"),
        )
    };
    assert_eq!(refused("relation"), 1.0);
    assert_eq!(refused("statement"), 1.0);
    assert_eq!(refused("syntax"), 0.0);
    // Six statements were rewritten (or refused); the repeated one came from the cache.
    assert_eq!(
        sample(&metrics, "tablegate_rewrite_duration_seconds_count"),
        6.0
    );
    assert_eq!(
        sample(
            &metrics,
            "tablegate_rewrite_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        6.0
    );
    assert!(sample(&metrics, "tablegate_rewrite_duration_seconds_sum") > 0.0);
    assert_eq!(
        sample(
            &metrics,
            "tablegate_rewrite_cache_lookups_total{result=\"hit\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &metrics,
            "tablegate_rewrite_cache_lookups_total{result=\"miss\"}"
        ),
        5.0
    );
    // Upstream answered the four statements tablegate sent it.
    assert_eq!(
        sample(&metrics, "tablegate_upstream_duration_seconds_count"),
        4.0
    );
    assert_eq!(sample(&metrics, "tablegate_sessions_open"), 1.0);
    assert_eq!(
        sample(
            &metrics,
            "tablegate_logins_failed_total{reason=\"credentials\"}"
        ),
        2.0
    );
    assert_eq!(
        sample(
            &metrics,
            "tablegate_pool_connections{datasource=\"shop\",state=\"in_use\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(&metrics, "tablegate_pool_size{datasource=\"shop\"}"),
        8.0
    );
    assert_eq!(sample(&metrics, "tablegate_policy_generation"), 1.0);
    assert_eq!(
        sample(
            &metrics,
            "tablegate_policy_reloads_total{result=\"success\"}"
        ),
        0.0
    );
    assert!(
        !metrics.contains("tablegate_wecom_syncs_total"),
        "no WeCom sync is configured"
    );

    // A session that ends is no longer open, and its connection goes back to the pool.
    drop(alice);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, _, metrics) = get(addr, "/metrics").await;
        if sample(&metrics, "tablegate_sessions_open") == 0.0
            && sample(
                &metrics,
                "tablegate_pool_connections{datasource=\"shop\",state=\"idle\"}",
            ) == 1.0
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the session stays open:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_whether_the_datasource_accepts_connections() {
    let (db, _proxy, addr) = serve().await;
    let (status, _, body) = get(addr, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "datasource shop: ok\n"));

    let (admin, connection) = tokio_postgres::connect(
        "host=127.0.0.1 port=5432 user=postgres dbname=postgres",
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let name = &db.name;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ))
        .await
        .unwrap();
    // Past the time a probe's result is reused.
    tokio::time::sleep(tablegate::ops::health::REUSE_FOR).await;
    let (status, _, body) = get(addr, "/healthz").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.starts_with("datasource shop: unavailable: cannot connect upstream"),
        "{body}"
    );

    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true"
        ))
        .await
        .unwrap();
    tokio::time::sleep(tablegate::ops::health::REUSE_FOR).await;
    let (status, _, body) = get(addr, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "datasource shop: ok\n"));
}

/// Slow or idle HTTP clients cannot hold the listener (or the file descriptors the PostgreSQL
/// listener shares): a connection that sends no request head is closed, connections past the
/// limit are closed on accept, and the listener serves again once they are gone.
#[tokio::test]
async fn the_http_listener_closes_idle_connections_and_caps_open_ones() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    let app = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = HttpLimits {
        connections: 3,
        per_address: 2,
        header_timeout: Duration::from_secs(2),
    };
    tokio::spawn(http_listener::serve(listener, app, limits));
    let closed_within = |mut socket: TcpStream, limit: Duration| async move {
        let mut rest = Vec::new();
        tokio::time::timeout(limit, socket.read_to_end(&mut rest))
            .await
            .is_ok()
    };
    // Loopback has a whole /8 of addresses to connect from.
    let connect_from = |from: [u8; 4]| async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind((from, 0).into()).unwrap();
        socket.connect(addr).await.unwrap()
    };
    let healthz = |from: [u8; 4]| async move {
        let mut socket = connect_from(from).await;
        socket
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        socket.read_to_string(&mut answer).await.unwrap();
        answer
    };

    let silent = [
        connect_from([127, 0, 0, 1]).await,
        connect_from([127, 0, 0, 1]).await,
    ];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let third = connect_from([127, 0, 0, 1]).await;
    assert!(
        closed_within(third, Duration::from_secs(1)).await,
        "a connection past its address's share is closed at once"
    );
    let answer = healthz([127, 0, 0, 2]).await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "another address is served meanwhile: {answer}"
    );
    let [first, second] = silent;
    let silent = [first, second, connect_from([127, 0, 0, 2]).await];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let fourth = connect_from([127, 0, 0, 3]).await;
    assert!(
        closed_within(fourth, Duration::from_secs(1)).await,
        "a connection past the limit is closed at once"
    );
    for socket in silent {
        assert!(
            closed_within(socket, Duration::from_secs(5)).await,
            "a connection that sends no request head is closed"
        );
    }
    let answer = healthz([127, 0, 0, 1]).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok"), "one request, then closed: {answer}");
}
