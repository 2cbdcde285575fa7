//! The default directory store: one SQLite file in the data directory, no server needed.
//!
//! The schema is versioned with `PRAGMA user_version` and migrated forward when the file is
//! opened. rusqlite is synchronous, so every call runs on tokio's blocking pool.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::record::{StoredUser, Timestamp, userid_key};
use super::row::{COLUMNS, UserRow};
use super::scram::ScramVerifier;
use super::store::{DirectoryChanges, DirectoryStore, StoreError};

/// Schema versions in order; the file's `user_version` is how many have been applied.
const MIGRATIONS: &[&str] = &["CREATE TABLE directory_users (
        userid_key TEXT PRIMARY KEY NOT NULL,
        userid TEXT NOT NULL,
        name TEXT NOT NULL,
        email TEXT,
        departments TEXT NOT NULL,
        position TEXT,
        attributes TEXT NOT NULL,
        wecom_status INTEGER,
        source TEXT NOT NULL CHECK (source IN ('wecom', 'local')),
        enabled INTEGER NOT NULL,
        disabled_by_admin INTEGER NOT NULL DEFAULT 0,
        password_verifier TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        last_synced_at INTEGER
    ) STRICT"];

pub struct SqliteStore {
    path: PathBuf,
    connection: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the directory file and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let path = path.to_path_buf();
        let opened_path = path.clone();
        let connection = tokio::task::spawn_blocking(move || open_and_migrate(&opened_path))
            .await
            .map_err(|e| StoreError::Backend(format!("directory open task failed: {e}")))??;
        Ok(SqliteStore {
            path,
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Runs `work` on the connection in the blocking pool; database errors name the file.
    async fn with_connection<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let connection = Arc::clone(&self.connection);
        tokio::task::spawn_blocking(move || {
            let mut guard = connection
                .lock()
                .map_err(|_| StoreError::Backend("the directory connection was poisoned".into()))?;
            work(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("directory task failed: {e}")))?
        .map_err(|e| match e {
            StoreError::Backend(message) => StoreError::Backend(format!(
                "directory database {}: {message}",
                self.path.display()
            )),
            other => other,
        })
    }
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn open_and_migrate(path: &Path) -> Result<Connection, StoreError> {
    let describe = |e: String| {
        StoreError::Backend(format!(
            "cannot open the directory database {}: {e}",
            path.display()
        ))
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| describe(e.to_string()))?;
    }
    let mut connection = Connection::open(path).map_err(|e| describe(e.to_string()))?;
    restrict_to_owner(path).map_err(|e| describe(e.to_string()))?;
    connection
        .pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| describe(e.to_string()))?;
    connection
        .busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| describe(e.to_string()))?;
    let tx = connection
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| describe(e.to_string()))?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|e| describe(e.to_string()))?;
    let version = usize::try_from(version).unwrap_or(0);
    if version > MIGRATIONS.len() {
        return Err(describe(format!(
            "its schema version {version} is newer than this tablegate knows ({}); upgrade tablegate",
            MIGRATIONS.len()
        )));
    }
    for migration in &MIGRATIONS[version..] {
        tx.execute_batch(migration)
            .map_err(|e| describe(e.to_string()))?;
    }
    tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)
        .map_err(|e| describe(e.to_string()))?;
    tx.commit().map_err(|e| describe(e.to_string()))?;
    Ok(connection)
}

/// The file holds password verifiers: only its owner may read it.
#[cfg(unix)]
fn restrict_to_owner(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict_to_owner(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

fn read_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        userid_key: row.get(0)?,
        userid: row.get(1)?,
        name: row.get(2)?,
        email: row.get(3)?,
        departments: row.get(4)?,
        position: row.get(5)?,
        attributes: row.get(6)?,
        wecom_status: row.get(7)?,
        source: row.get(8)?,
        enabled: row.get(9)?,
        disabled_by_admin: row.get(10)?,
        password_verifier: row.get(11)?,
        created_at: row.get(12)?,
        updated_at: row.get(13)?,
        last_synced_at: row.get(14)?,
    })
}

fn insert(tx: &Transaction<'_>, stored: &StoredUser) -> Result<(), StoreError> {
    let r = UserRow::from_stored(stored);
    let inserted = tx
        .prepare_cached(&format!(
            "INSERT INTO directory_users ({COLUMNS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) \
             ON CONFLICT (userid_key) DO NOTHING"
        ))
        .and_then(|mut statement| {
            statement.execute(params![
                r.userid_key,
                r.userid,
                r.name,
                r.email,
                r.departments,
                r.position,
                r.attributes,
                r.wecom_status,
                r.source,
                r.enabled,
                r.disabled_by_admin,
                r.password_verifier,
                r.created_at,
                r.updated_at,
                r.last_synced_at,
            ])
        })
        .map_err(backend)?;
    if inserted == 0 {
        return Err(StoreError::DuplicateUser(r.userid));
    }
    Ok(())
}

fn update(tx: &Transaction<'_>, stored: &StoredUser) -> Result<(), StoreError> {
    let r = UserRow::from_stored(stored);
    let updated = tx
        .prepare_cached(
            "UPDATE directory_users SET userid = ?2, name = ?3, email = ?4, departments = ?5, \
             position = ?6, attributes = ?7, wecom_status = ?8, enabled = ?9, updated_at = ?10, \
             last_synced_at = ?11 WHERE userid_key = ?1",
        )
        .and_then(|mut statement| {
            statement.execute(params![
                r.userid_key,
                r.userid,
                r.name,
                r.email,
                r.departments,
                r.position,
                r.attributes,
                r.wecom_status,
                r.enabled,
                r.updated_at,
                r.last_synced_at,
            ])
        })
        .map_err(backend)?;
    if updated == 0 {
        return Err(StoreError::UnknownUser(r.userid));
    }
    Ok(())
}

fn update_one(
    connection: &Connection,
    sql: &str,
    userid: &str,
    values: impl rusqlite::Params,
) -> Result<(), StoreError> {
    let changed = connection.execute(sql, values).map_err(backend)?;
    if changed == 0 {
        return Err(StoreError::UnknownUser(userid.to_owned()));
    }
    Ok(())
}

#[async_trait]
impl DirectoryStore for SqliteStore {
    async fn users(&self) -> Result<Vec<StoredUser>, StoreError> {
        self.with_connection(|c| {
            let mut statement = c
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM directory_users ORDER BY userid_key"
                ))
                .map_err(backend)?;
            let rows = statement
                .query_map([], read_row)
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(backend)?;
            rows.into_iter()
                .map(|r| r.into_stored().map_err(StoreError::Backend))
                .collect()
        })
        .await
    }

    async fn user(&self, userid: &str) -> Result<Option<StoredUser>, StoreError> {
        let key = userid_key(userid);
        self.with_connection(move |c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM directory_users WHERE userid_key = ?1"),
                [key],
                read_row,
            )
            .optional()
            .map_err(backend)?
            .map(|r| r.into_stored().map_err(StoreError::Backend))
            .transpose()
        })
        .await
    }

    async fn apply(&self, changes: &DirectoryChanges) -> Result<(), StoreError> {
        let create = changes.create.clone();
        let update_users = changes.update.clone();
        let seen: Vec<String> = changes.seen.iter().map(|u| userid_key(u)).collect();
        let forget: Vec<String> = changes
            .forget_passwords
            .iter()
            .map(|u| userid_key(u))
            .collect();
        let synced_at = changes.synced_at.map(|t| t.0);
        self.with_connection(move |c| {
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(backend)?;
            for stored in &create {
                insert(&tx, stored)?;
            }
            for stored in &update_users {
                update(&tx, stored)?;
            }
            {
                let mut touch = tx
                    .prepare_cached(
                        "UPDATE directory_users SET last_synced_at = ?2 WHERE userid_key = ?1",
                    )
                    .map_err(backend)?;
                for key in &seen {
                    if touch.execute(params![key, synced_at]).map_err(backend)? == 0 {
                        return Err(StoreError::UnknownUser(key.clone()));
                    }
                }
                let mut forget_password = tx
                    .prepare_cached(
                        "UPDATE directory_users SET password_verifier = NULL WHERE userid_key = ?1",
                    )
                    .map_err(backend)?;
                for key in &forget {
                    if forget_password.execute(params![key]).map_err(backend)? == 0 {
                        return Err(StoreError::UnknownUser(key.clone()));
                    }
                }
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn set_password(
        &self,
        userid: &str,
        verifier: &ScramVerifier,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let userid = userid.to_owned();
        let verifier = verifier.to_string();
        self.with_connection(move |c| {
            update_one(
                c,
                "UPDATE directory_users SET password_verifier = ?2, updated_at = ?3 WHERE userid_key = ?1",
                &userid,
                params![userid_key(&userid), verifier, now.0],
            )
        })
        .await
    }

    async fn set_disabled_by_admin(
        &self,
        userid: &str,
        disabled: bool,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let userid = userid.to_owned();
        self.with_connection(move |c| {
            update_one(
                c,
                "UPDATE directory_users SET disabled_by_admin = ?2, updated_at = ?3 WHERE userid_key = ?1",
                &userid,
                params![userid_key(&userid), disabled, now.0],
            )
        })
        .await
    }
}
