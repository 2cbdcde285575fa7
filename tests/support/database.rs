//! A throwaway PostgreSQL database per test run, and running SQL in it.
//!
//! Each run creates `tg_diff_<pid>_<nanos>_<n>`, so parallel runs (and the tests of one run)
//! never share state, and drops it when the guard goes out of scope — also when the test
//! panics, with `WITH (FORCE)` so leftover sessions do not keep it alive.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// The server the test needs (CI and the dev machine run PostgreSQL there, trust auth).
const SERVER: &str = "host=127.0.0.1 port=5432 user=postgres";

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub struct TempDatabase {
    pub name: String,
}

impl TempDatabase {
    pub async fn create() -> TempDatabase {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .subsec_nanos();
        let name = format!(
            "tg_diff_{}_{nanos}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let admin = connect("postgres").await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        TempDatabase { name }
    }

    /// A database set up by `setup` (SQL run as the superuser).
    pub async fn with(setup: &str) -> TempDatabase {
        let db = TempDatabase::create().await;
        db.connect()
            .await
            .batch_execute(setup)
            .await
            .expect("test database setup");
        db
    }

    /// A direct connection, as the superuser, bypassing tablegate.
    pub async fn connect(&self) -> Client {
        connect(&self.name).await
    }

    /// Connection settings for this database (for stores and clients built from a config).
    pub fn config(&self) -> tokio_postgres::Config {
        format!("{SERVER} dbname={}", self.name)
            .parse()
            .expect("a valid configuration")
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        // Drop may run inside the test's runtime, which cannot be blocked on: use a thread
        // with a runtime of its own.
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let admin = connect("postgres").await;
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop the test database {}", self.name);
        }
    }
}

async fn connect(dbname: &str) -> Client {
    let config = format!("{SERVER} dbname={dbname}");
    let (client, connection) = tokio_postgres::connect(&config, NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the differential test needs PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth): {e}"
            )
        });
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A query's result: column names and rows, every value in PostgreSQL's text form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultSet {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl ResultSet {
    /// The rows as a multiset (sorted), for comparisons that ignore order.
    pub fn sorted_rows(&self) -> Vec<Vec<Option<String>>> {
        let mut rows = self.rows.clone();
        rows.sort();
        rows
    }
}

/// An error PostgreSQL returned: SQLSTATE code and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbError {
    pub code: String,
    pub message: String,
}

impl DbError {
    /// Undefined column: what the copy answers when a query names a column it lacks.
    pub fn is_undefined_column(&self) -> bool {
        self.code == "42703"
    }

    /// Rejected before running (syntax error or access rule violation, class 42; or a feature
    /// PostgreSQL does not support, 0A): the text is not a PostgreSQL query for this schema.
    pub fn is_static(&self) -> bool {
        self.code.starts_with("42") || self.code.starts_with("0A")
    }
}

/// Runs one statement (simple protocol, as psql would) and collects its result.
pub async fn run(client: &Client, sql: &str) -> Result<ResultSet, DbError> {
    let messages = client.simple_query(sql).await.map_err(|e| DbError {
        code: e.code().map_or("?????", |c| c.code()).to_owned(),
        message: e
            .as_db_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_owned()),
    })?;
    let mut result = ResultSet {
        columns: Vec::new(),
        rows: Vec::new(),
    };
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(columns) => {
                result.columns = columns.iter().map(|c| c.name().to_owned()).collect();
            }
            SimpleQueryMessage::Row(row) => {
                result.rows.push(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_owned))
                        .collect(),
                );
            }
            _ => {}
        }
    }
    Ok(result)
}
