//! Audit records: one JSON line per statement, with what ran or why it was refused, and never a
//! password. (Its own test binary: logging is set up once per process.)

mod support;

use support::proxy::{Proxy, SERVICE_ACCOUNT, shop_with};
use support::raw::{self, tags};
use tablegate::config::AuditConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_statement_leaves_one_json_line_and_no_password() {
    let dir = tempfile::tempdir().unwrap();
    let config = AuditConfig {
        output: "audit.jsonl".into(),
    };
    let writer = tablegate::audit::init(&config, dir.path())
        .unwrap()
        .expect("a file writer");
    let (_db, proxy) = shop_with(SERVICE_ACCOUNT).await;
    let (engine, connection) =
        tokio_postgres::connect(&proxy.acting_url("sam"), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    engine
        .simple_query("SELECT count(*) AS for_sam FROM orders")
        .await
        .unwrap();
    let alice = proxy.client("alice", "alice-secret").await.unwrap();
    alice
        .simple_query("SELECT count(*) FROM orders")
        .await
        .unwrap();
    alice
        .simple_query("SELECT * FROM secret")
        .await
        .unwrap_err();
    alice.simple_query("SELECT 1/0").await.unwrap_err();
    let statement = alice
        .prepare("SELECT region FROM orders WHERE id = $1")
        .await
        .unwrap();
    alice.query(&statement, &[&2i32]).await.unwrap(); // order 2 is in North
    portal_kept_after_a_failed_rebind(&proxy).await;
    long_refused_statements(&proxy).await;
    writer.flush();

    use std::os::unix::fs::PermissionsExt;
    let path = dir.path().join("audit.jsonl");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "every user's SQL: private to tablegate"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains("alice-secret"),
        "no password in the audit trail"
    );
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let of = |sql: &str| {
        records
            .iter()
            .find(|r| r["sql"] == sql)
            .unwrap_or_else(|| panic!("no record for {sql}:\n{text}"))
    };

    let ok = of("SELECT count(*) FROM orders");
    assert_eq!(ok["user"], "alice");
    assert_eq!(ok["datasource"], "shop");
    assert_eq!(ok["outcome"], "ok");
    assert_eq!(ok["rows"], 1);
    assert!(
        ok["forwarded"]
            .as_str()
            .unwrap()
            .contains("WHERE (region IN ('East', 'North'))")
    );
    assert!(ok["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(ok["duration_us"].as_u64().is_some());
    assert!(ok["timestamp"].as_str().is_some());
    assert!(ok.get("via").is_none(), "alice logged in herself");
    let acted = of("SELECT count(*) AS for_sam FROM orders");
    assert_eq!(
        (&acted["user"], &acted["via"]),
        (&"sam".into(), &"asktable".into())
    );

    let refused = of("SELECT * FROM secret");
    assert_eq!(refused["outcome"], "refused");
    assert_eq!(refused["refusal"], "relation");
    assert!(
        refused.get("forwarded").is_none(),
        "a refused statement is never forwarded"
    );

    assert_eq!(of("SELECT 1/0")["outcome"], "error");
    assert_eq!(
        of("SELECT region FROM orders WHERE id = $1")["rows"],
        1,
        "an Execute of a prepared statement"
    );
    assert_eq!(
        of("SELECT 'first' AS bound_first")["outcome"],
        "ok",
        "the statement upstream ran is the one recorded"
    );
    assert!(
        records
            .iter()
            .all(|r| r["sql"] != "SELECT 'second' AS bound_second")
    );

    // Found by red-team review: a refused statement's text was written whole (a 157 MB line).
    for start in [
        "SELECT 'cut by the reader",
        "SELECT * FROM secret WHERE x = 'cut",
    ] {
        let record = records
            .iter()
            .find(|r| r["sql"].as_str().unwrap().starts_with(start))
            .unwrap_or_else(|| panic!("no record for {start}"));
        assert_eq!(record["outcome"], "refused");
        let sql = record["sql"].as_str().unwrap();
        assert!(sql.len() <= 65 * 1024, "{} bytes audited", sql.len());
        assert!(sql.ends_with(" bytes in all)"), "marked as cut");
    }
    assert!(text.lines().all(|l| l.len() < 70 * 1024));
}

/// A Query too long for tablegate to check, refused from its header, and one within the limit
/// refused by its policy: each audited with the start of its text only.
async fn long_refused_statements(proxy: &Proxy) {
    let mut client = proxy.raw_client("alice", "alice-secret").await;
    for start in [
        "SELECT 'cut by the reader",
        "SELECT * FROM secret WHERE x = 'cut",
    ] {
        let length = if start.contains("secret") {
            900_000
        } else {
            5 << 20
        };
        let sql = format!("{start}{}'", "x".repeat(length - start.len() - 1));
        client.send(&raw::query(&sql)).await;
        assert_eq!(tags(&client.until_ready().await), "EZ");
    }
}

/// Portal "p" is bound to one statement; rebinding it to another fails upstream (42P03), which
/// keeps the first; after a rollback to a savepoint "p" runs — the first statement.
async fn portal_kept_after_a_failed_rebind(proxy: &Proxy) {
    let mut client = proxy.raw_client("alice", "alice-secret").await;
    let steps = [
        (
            raw::pipeline(&[
                raw::parse("first", "SELECT 'first' AS bound_first"),
                raw::parse("second", "SELECT 'second' AS bound_second"),
                raw::sync(),
            ]),
            "11Z",
        ),
        (raw::query("BEGIN"), "CZ"),
        (raw::pipeline(&[raw::bind("p", "first"), raw::sync()]), "2Z"),
        (raw::query("SAVEPOINT a"), "CZ"),
        (
            raw::pipeline(&[raw::bind("p", "second"), raw::sync()]),
            "EZ",
        ),
        (raw::query("ROLLBACK TO SAVEPOINT a"), "CZ"),
        (raw::pipeline(&[raw::execute("p"), raw::sync()]), "DCZ"),
        (raw::query("COMMIT"), "CZ"),
    ];
    for (messages, expected) in steps {
        client.send(&messages).await;
        assert_eq!(tags(&client.until_ready().await), expected);
    }
}
