//! Test helpers: directory stores of both kinds, each in a place of its own.

#![allow(dead_code)] // each test binary uses a part

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tablegate::directory::DirectoryStore;
use tablegate::directory::postgres::PostgresStore;
use tablegate::directory::sqlite::SqliteStore;

/// A PostgreSQL database created for one test and dropped when it goes out of scope, even when
/// the test panics.
pub struct TestDatabase {
    pub name: String,
}

fn admin_config() -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    config
        .host(std::env::var("PGHOST").unwrap_or_else(|_| "127.0.0.1".into()))
        .port(5432)
        .user(std::env::var("PGUSER").unwrap_or_else(|_| "postgres".into()))
        .dbname("postgres");
    config
}

async fn admin_client() -> tokio_postgres::Client {
    let (client, connection) = admin_config()
        .connect(tokio_postgres::NoTls)
        .await
        .expect("tests need PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth)");
    tokio::spawn(connection);
    client
}

impl TestDatabase {
    pub async fn create(purpose: &str) -> TestDatabase {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "tablegate_test_{purpose}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        admin_client()
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        TestDatabase { name }
    }

    pub fn config(&self) -> tokio_postgres::Config {
        let mut config = admin_config();
        config.dbname(&self.name);
        config
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop cannot await: a thread with its own runtime does it, and is waited for.
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async { admin_client().await.batch_execute(&statement).await })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

/// What keeps a test's store alive: its temporary folder or its database. Dropping it removes
/// the store.
pub enum StoreKind {
    Sqlite(tempfile::TempDir),
    Postgres(TestDatabase),
}

impl StoreKind {
    pub async fn open_sqlite() -> (StoreKind, Arc<dyn DirectoryStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("data/directory.db"))
            .await
            .unwrap();
        (StoreKind::Sqlite(dir), Arc::new(store))
    }

    pub async fn open_postgres(purpose: &str) -> (StoreKind, Arc<dyn DirectoryStore>) {
        let db = TestDatabase::create(purpose).await;
        let store = PostgresStore::connect(db.config()).await.unwrap();
        (StoreKind::Postgres(db), Arc::new(store))
    }
}
