//! Test helpers: directory stores of both kinds, each in a place of its own.

#![allow(dead_code)] // each test binary uses a part

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tablegate::directory::DirectoryStore;
use tablegate::directory::postgres::PostgresStore;
use tablegate::directory::sqlite::SqliteStore;

/// A PostgreSQL database created for one test and dropped with it.
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

    pub async fn drop_now(self) {
        admin_client()
            .await
            .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .await
            .unwrap();
    }
}

/// The two store kinds, so each scenario runs against both.
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

    pub async fn cleanup(self) {
        if let StoreKind::Postgres(db) = self {
            db.drop_now().await;
        }
    }
}
