//! Directory stores of both kinds for tests, each in a place of its own.

use std::sync::Arc;

use tablegate::directory::DirectoryStore;
use tablegate::directory::postgres::PostgresStore;
use tablegate::directory::sqlite::SqliteStore;
use tablegate::upstream::Database;

use super::database::TempDatabase;

/// What keeps a test's store alive: its temporary folder or its database. Dropping it removes
/// the store.
pub enum StoreKind {
    Sqlite(tempfile::TempDir),
    Postgres(TempDatabase),
}

impl StoreKind {
    pub async fn open_sqlite() -> (StoreKind, Arc<dyn DirectoryStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("data/directory.db"))
            .await
            .unwrap();
        (StoreKind::Sqlite(dir), Arc::new(store))
    }

    pub async fn open_postgres() -> (StoreKind, Arc<dyn DirectoryStore>) {
        let db = TempDatabase::create().await;
        let store = PostgresStore::connect(Database::new(db.config(), None))
            .await
            .unwrap();
        (StoreKind::Postgres(db), Arc::new(store))
    }
}
