//! Masked columns through the proxy, against real PostgreSQL: values come back masked, raw
//! values never, and every way of computing on a masked column is refused.

mod support;

use support::database::TempDatabase;
use support::proxy::{Proxy, values};
use tokio_postgres::Client;

const SCHEMA: &str = "
CREATE TABLE customers (
    id int PRIMARY KEY,
    name text,
    phone varchar(20),
    email text,
    born date,
    signed_up timestamp with time zone,
    region text
);
INSERT INTO customers VALUES
    (1, 'Ann Lee', '555-0101', 'ann@example.com', '1990-05-17', '2021-03-04 10:00+00', 'East'),
    (2, 'Bo Chen', '555-0202', 'bo@example.com', '1985-11-30', '2022-12-31 23:30+00', 'West'),
    (3, 'Cy Diaz', '12', 'cy@example.com', NULL, '2023-07-01 00:00+00', 'West'),
    (4, 'Di Ezra', NULL, NULL, '2001-01-01', NULL, 'East');
";

const POLICY: &str = r#"
[datasource.shop]
mask."customers.email" = "hash"

[role.support.datasource.shop]
tables = ["public.customers"]
mask."customers.name" = "null"
mask."customers.phone" = "last4"
mask."customers.born" = "year"
mask."customers.signed_up" = "year"

[role.east_manager.datasource.shop]
tables = ["public.customers"]
rows."public.customers" = "region = 'East'"

[[assign]]
user = "sue"
roles = ["support"]

[[assign]]
user = "mia"
roles = ["support", "east_manager"]
"#;

const USERS: &str = "[[user]]\nuserid = \"sue\"\n[[user]]\nuserid = \"mia\"\n";
const PASSWORDS: &[(&str, &str)] = &[("sue", "sue-secret"), ("mia", "mia-secret")];

const EVERYTHING: &str =
    "SELECT id, name, phone, email, born, signed_up, region FROM customers ORDER BY id";

async fn shop() -> (TempDatabase, Proxy) {
    let db = TempDatabase::with(SCHEMA).await;
    db.connect()
        .await
        .batch_execute(&format!("ALTER DATABASE {} SET TimeZone = 'UTC'", db.name))
        .await
        .unwrap();
    let proxy = Proxy::start(&db, POLICY, USERS, PASSWORDS, "").await;
    (db, proxy)
}

async fn query(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    values(&client.simple_query(sql).await.unwrap())
}

fn text(values: &[&str]) -> Vec<Option<String>> {
    values
        .iter()
        .map(|v| (*v != "NULL").then(|| v.to_string()))
        .collect()
}

/// The SHA-256 hex of each email, computed by PostgreSQL directly.
async fn email_hashes(db: &TempDatabase) -> Vec<Option<String>> {
    query(
        &db.connect().await,
        "SELECT encode(sha256(convert_to(email, 'UTF8')), 'hex') FROM customers ORDER BY id",
    )
    .await
    .into_iter()
    .map(|mut r| r.remove(0))
    .collect()
}

/// Every raw value of the masked columns (id and region are not masked).
async fn raw_values(db: &TempDatabase) -> Vec<String> {
    query(&db.connect().await, EVERYTHING)
        .await
        .into_iter()
        .flat_map(|r| r.into_iter().skip(1).take(5).flatten())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masked_values_come_back_masked_and_raw_values_never() {
    let (db, proxy) = shop().await;
    let sue = proxy.client("sue", "sue-secret").await.unwrap();
    let hashes = email_hashes(&db).await;
    let seen = query(&sue, EVERYTHING).await;
    let hash = |i: usize| hashes[i].as_deref().unwrap_or("NULL");
    assert_eq!(
        seen,
        [
            text(&[
                "1",
                "NULL",
                "****0101",
                hash(0),
                "1990-01-01",
                "2021-01-01 00:00:00+00",
                "East"
            ]),
            text(&[
                "2",
                "NULL",
                "****0202",
                hash(1),
                "1985-01-01",
                "2022-01-01 00:00:00+00",
                "West"
            ]),
            text(&[
                "3",
                "NULL",
                "****",
                hash(2),
                "NULL",
                "2023-01-01 00:00:00+00",
                "West"
            ]),
            text(&["4", "NULL", "NULL", "NULL", "2001-01-01", "NULL", "East"]),
        ]
    );
    // `*` and a pass-through subquery show the same masked values.
    let star = query(&sue, "SELECT * FROM customers ORDER BY id").await;
    assert_eq!(star, seen);
    let passed_up = query(
        &sue,
        "SELECT s.* FROM (SELECT id, name, phone, email, born, signed_up, region FROM customers) s WHERE s.id > 0 ORDER BY s.id",
    )
    .await;
    assert_eq!(passed_up, seen);

    let raw = raw_values(&db).await;
    for (row, cells) in seen.iter().chain(&star).enumerate() {
        for cell in cells.iter().flatten() {
            assert!(
                !raw.iter().any(|r| r == cell && r != "2001-01-01"),
                "row {row}: the raw value {cell} came back"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_granting_the_column_plainly_shows_it_on_the_rows_it_admits() {
    let (db, proxy) = shop().await;
    let mia = proxy.client("mia", "mia-secret").await.unwrap();
    let hashes = email_hashes(&db).await;
    let seen = query(
        &mia,
        "SELECT id, name, phone, email, born FROM customers ORDER BY id",
    )
    .await;
    let hash = |i: usize| hashes[i].as_deref().unwrap_or("NULL");
    assert_eq!(
        seen,
        [
            // East: east_manager shows it plainly (but the datasource masks email for everyone).
            text(&["1", "Ann Lee", "555-0101", hash(0), "1990-05-17"]),
            text(&["2", "NULL", "****0202", hash(1), "1985-01-01"]),
            text(&["3", "NULL", "****", hash(2), "NULL"]),
            text(&["4", "Di Ezra", "NULL", "NULL", "2001-01-01"]),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn computing_on_a_masked_column_is_refused_over_the_wire() {
    let (_db, proxy) = shop().await;
    let sue = proxy.client("sue", "sue-secret").await.unwrap();
    for sql in [
        "SELECT id FROM customers WHERE phone = '555-0101'",
        "SELECT id FROM customers WHERE right(phone, 4) = '0101'",
        "SELECT id, phone FROM customers ORDER BY 2",
        "SELECT phone AS p FROM customers ORDER BY p",
        "SELECT count(DISTINCT email) FROM customers",
        "SELECT born, count(*) FROM customers GROUP BY 1",
        "SELECT length(phone) FROM customers",
        "SELECT a.id FROM customers a JOIN customers b ON a.email = b.email",
        "SELECT extract(month FROM born) FROM customers",
    ] {
        let error = sue.simple_query(sql).await.unwrap_err();
        let db_error = error.as_db_error().expect("an error response");
        assert_eq!(db_error.code().code(), "42501", "{sql}");
        assert!(
            db_error.message().contains("masked by policy"),
            "{sql}: {db_error}"
        );
    }
    // The extended protocol describes the masked columns as the masks' types.
    let statement = sue
        .prepare("SELECT phone, born, signed_up FROM customers WHERE id = $1")
        .await
        .unwrap();
    let types: Vec<String> = statement
        .columns()
        .iter()
        .map(|c| c.type_().name().to_owned())
        .collect();
    assert_eq!(types, ["text", "date", "timestamptz"]);
    let row = sue.query_one(&statement, &[&1i32]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "****0101");
}
