//! TLS between tablegate and the databases behind it, against the local PostgreSQL, which (as
//! Debian sets it up) serves TLS with a self-signed certificate for `localhost`.

mod support;

use std::time::Duration;

use support::database::TempDatabase;
use support::proxy::{
    Proxy, SHOP, SHOP_PASSWORDS, SHOP_POLICY, SHOP_USERS, assert_cancel_stops_a_sleep, shop,
};
use tablegate::config::Config;
use tablegate::directory::DirectoryStore;
use tablegate::directory::postgres::PostgresStore;
use tablegate::upstream::{Connection, Database, Target};
use tokio_postgres::NoTls;

/// The local server's certificate file: it is its own root.
async fn server_certificate(db: &TempDatabase) -> String {
    let admin = db.connect().await;
    let ssl: String = admin.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    assert_eq!(
        ssl, "on",
        "these tests need the local PostgreSQL to serve TLS (ssl = on, as Debian's package sets it up)"
    );
    admin
        .query_one("SHOW ssl_cert_file", &[])
        .await
        .unwrap()
        .get(0)
}

/// How many of the connections to `db` named `application` use TLS, and how many do not.
async fn connections_by_tls(db: &TempDatabase, application: &str) -> (i64, i64) {
    let row = db
        .connect()
        .await
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl)
             FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
             WHERE a.datname = current_database() AND a.application_name = $1",
            &[&application],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

async fn open_shop(url: &str, settings: &str) -> Result<Proxy, String> {
    Proxy::open(
        &Proxy::shop_datasource(url, settings),
        SHOP_POLICY,
        SHOP_USERS,
        SHOP_PASSWORDS,
        "",
    )
    .await
}

async fn east_and_north_orders(proxy: &Proxy) -> i64 {
    let alice = proxy.client("alice", "alice-secret").await.unwrap();
    alice
        .query_one("SELECT count(*) FROM orders", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_encrypts_every_upstream_connection_and_cancel() {
    let db = TempDatabase::with(SHOP).await;
    let proxy = open_shop(&db.url(), "tls = \"require\"").await.unwrap();
    assert_eq!(east_and_north_orders(&proxy).await, 20);
    let (encrypted, plain) = connections_by_tls(&db, "tablegate").await;
    assert!(encrypted >= 1, "no upstream connection uses TLS");
    assert_eq!(plain, 0, "an upstream connection is in plaintext");

    // The cancel key travels over TLS too, and still reaches the right backend.
    assert_cancel_stops_a_sleep(proxy.client("alice", "alice-secret").await.unwrap(), NoTls).await;

    // Pooled TLS connections move between sessions (and threads) and are reused, not replaced:
    // neither the rebind nor the idle probe may break them.
    let backends = upstream_backends(&proxy, &db).await;
    assert!(!backends.is_empty());
    for _ in 0..4 {
        assert_eq!(east_and_north_orders(&proxy).await, 20);
        assert_eq!(upstream_backends(&proxy, &db).await, backends);
    }
}

/// The backend pids of tablegate's upstream connections to `db`, once every session has given
/// its connection back.
async fn upstream_backends(proxy: &Proxy, db: &TempDatabase) -> Vec<i32> {
    let pool = &proxy.gate.datasources["shop"].pool;
    for _ in 0..100 {
        if pool.in_use() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pool.in_use(), 0, "sessions gave their connections back");
    db.connect()
        .await
        .query(
            "SELECT pid FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'tablegate' ORDER BY pid",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_trusts_the_server_only_under_the_name_its_certificate_bears() {
    let db = TempDatabase::with(SHOP).await;
    let certificate = server_certificate(&db).await;
    let settings = |mode: &str| format!("tls = \"{mode}\"\ntls_root_cert = \"{certificate}\"");
    let by_name = db.url().replace("127.0.0.1", "localhost");

    let proxy = open_shop(&by_name, &settings("verify-full")).await.unwrap();
    assert_eq!(east_and_north_orders(&proxy).await, 20);
    let (encrypted, plain) = connections_by_tls(&db, "tablegate").await;
    assert!(
        encrypted >= 1 && plain == 0,
        "{encrypted} with TLS, {plain} without"
    );
    drop(proxy);

    let error = open_shop(&db.url(), &settings("verify-full"))
        .await
        .err()
        .expect("127.0.0.1 is not the name in the certificate");
    assert!(error.contains("not valid for name"), "{error}");

    // verify-ca checks the chain, not the name.
    let proxy = open_shop(&db.url(), &settings("verify-ca")).await.unwrap();
    assert_eq!(east_and_north_orders(&proxy).await, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_authority_is_refused() {
    let db = TempDatabase::with(SHOP).await;
    let stranger = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("other-ca.pem");
    std::fs::write(&root, stranger.cert.pem()).unwrap();
    for mode in ["verify-full", "verify-ca"] {
        let error = open_shop(
            &db.url().replace("127.0.0.1", "localhost"),
            &format!("tls = \"{mode}\"\ntls_root_cert = \"{}\"", root.display()),
        )
        .await
        .err()
        .expect("a server whose certificate the root did not sign");
        assert!(
            error.contains("invalid peer certificate"),
            "{mode}: {error}"
        );
    }

    // The proxy's own connections (the pool's, not the driver's that read the catalog) verify
    // the same way.
    let error = raw_connection_error(
        &db.url().replace("127.0.0.1", "localhost"),
        &format!(
            "tls = \"verify-full\"\ntls_root_cert = \"{}\"",
            root.display()
        ),
    )
    .await;
    assert!(error.contains("invalid peer certificate"), "{error}");
}

/// The datasource `shop` at `url` with `settings`, as tablegate would reach it.
fn shop_database(url: &str, settings: &str) -> Result<Database, String> {
    let config = Config::parse(&Proxy::shop_datasource(url, settings), std::env::temp_dir())?;
    config.datasource("shop")?.database("shop", &config.base)
}

/// Why the proxy's own connection (not the driver's) to `shop` at `url` fails.
async fn raw_connection_error(url: &str, settings: &str) -> String {
    let database = shop_database(url, settings).unwrap();
    Connection::open(&Target::from_database(&database).unwrap())
        .await
        .err()
        .expect("the connection fails")
        .to_string()
}

/// tablegate's own listener without TLS answers SSLRequest with "no": a datasource that asks for
/// TLS must then fail, not carry on in plaintext.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_declines_tls_is_not_spoken_to_in_plaintext() {
    let (_db, plain) = shop().await;
    let behind_plain = format!(
        "postgres://alice:alice-secret@127.0.0.1:{}/shop",
        plain.addr.port()
    );
    let error = open_shop(&behind_plain, "tls = \"require\"")
        .await
        .err()
        .expect("the upstream declines TLS");
    assert!(error.contains("TLS"), "{error}");

    // The proxy's own connections refuse too (the driver's, above, read the catalog first).
    let error = raw_connection_error(&behind_plain, "tls = \"require\"").await;
    assert!(error.contains("the server does not accept TLS"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_database_can_be_reached_over_tls() {
    let db = TempDatabase::create().await;
    let config = Config::parse(
        &format!(
            "[directory]\npostgres_url = \"{}\"\npostgres_tls = \"require\"\n",
            db.url()
        ),
        std::env::temp_dir(),
    )
    .unwrap();
    let database = config.directory_database().unwrap().expect("a database");
    let store = PostgresStore::connect(database).await.unwrap();
    assert!(store.users().await.unwrap().is_empty());
    let (encrypted, plain) = connections_by_tls(&db, "tablegate directory").await;
    assert_eq!((encrypted, plain), (1, 0));
}

/// A connection's TLS is decided by its host: a second host or a hostaddr, which the driver
/// would try, could be reached in plaintext under the first host's `disable`.
#[test]
fn a_url_with_several_hosts_or_a_hostaddr_is_refused() {
    for url in [
        "postgres://u@localhost/shop?hostaddr=10.1.2.3",
        "postgres://u@localhost,db.internal/shop",
    ] {
        let error = shop_database(url, "").unwrap_err();
        assert!(error.contains("give exactly one host"), "{url}: {error}");
    }
}

#[test]
fn a_url_that_sets_sslmode_is_refused_for_the_tls_key() {
    let error = shop_database("postgres://u@db.internal/shop?sslmode=prefer", "").unwrap_err();
    assert!(
        error.contains(
            "datasource `shop`: the url sets sslmode; set TLS with the section's tls key"
        ),
        "{error}"
    );
}
