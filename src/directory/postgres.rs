//! The shared directory store: a PostgreSQL database that several proxy replicas point at.
//!
//! Same table and same bytes as the SQLite store. The schema version lives in
//! `directory_schema`; replicas starting together migrate one at a time under an advisory lock.
//! Bulk changes go through `UNNEST` so a 50,000-user sync is a handful of statements.

use async_trait::async_trait;
use tokio::sync::Mutex;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Transaction};

use super::record::{StoredUser, Timestamp, userid_key};
use super::row::{COLUMNS, UserRow};
use super::scram::ScramVerifier;
use super::store::{DirectoryChanges, DirectoryStore, StoreError};
use crate::upstream::Database;

const MIGRATIONS: &[&str] = &["CREATE TABLE directory_users (
        userid_key TEXT PRIMARY KEY,
        userid TEXT NOT NULL,
        name TEXT NOT NULL,
        email TEXT,
        departments TEXT NOT NULL,
        position TEXT,
        attributes TEXT NOT NULL,
        wecom_status BIGINT,
        source TEXT NOT NULL CHECK (source IN ('wecom', 'local')),
        enabled BOOLEAN NOT NULL,
        disabled_by_admin BOOLEAN NOT NULL DEFAULT false,
        password_verifier TEXT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        last_synced_at BIGINT
    )"];

/// Rows per bulk statement.
const BATCH: usize = 5_000;

pub struct PostgresStore {
    database: Database,
    client: Mutex<Option<Client>>,
}

impl PostgresStore {
    /// Connects and brings the schema up to date.
    pub async fn connect(database: Database) -> Result<PostgresStore, StoreError> {
        let store = PostgresStore {
            database,
            client: Mutex::new(None),
        };
        let mut guard = store.client().await?;
        let client = guard.as_mut().expect("client() connects");
        let tx = client.transaction().await.map_err(backend)?;
        tx.batch_execute(
            "SELECT pg_advisory_xact_lock(hashtext('tablegate directory schema'));
             CREATE TABLE IF NOT EXISTS directory_schema (version INTEGER NOT NULL);",
        )
        .await
        .map_err(backend)?;
        let version: i32 = match tx
            .query_opt("SELECT version FROM directory_schema", &[])
            .await
            .map_err(backend)?
        {
            Some(row) => row.get(0),
            None => {
                tx.execute("INSERT INTO directory_schema VALUES (0)", &[])
                    .await
                    .map_err(backend)?;
                0
            }
        };
        let version = usize::try_from(version).unwrap_or(0);
        if version > MIGRATIONS.len() {
            return Err(StoreError::Backend(format!(
                "the directory database's schema version {version} is newer than this tablegate knows ({}); upgrade tablegate",
                MIGRATIONS.len()
            )));
        }
        for migration in &MIGRATIONS[version..] {
            tx.batch_execute(migration).await.map_err(backend)?;
        }
        let latest = i32::try_from(MIGRATIONS.len()).expect("few migrations");
        tx.execute("UPDATE directory_schema SET version = $1", &[&latest])
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        drop(guard);
        Ok(store)
    }

    /// The connection, reconnecting if the previous one was closed.
    async fn client(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Client>>, StoreError> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(Client::is_closed) {
            let (client, _connection) = self.database.connect().await.map_err(|e| {
                StoreError::Backend(format!("cannot connect to the directory database: {e}"))
            })?;
            *guard = Some(client);
        }
        Ok(guard)
    }
}

fn backend(e: tokio_postgres::Error) -> StoreError {
    StoreError::Backend(format!("directory database: {e}"))
}

fn read_row(row: &Row) -> UserRow {
    UserRow {
        userid_key: row.get(0),
        userid: row.get(1),
        name: row.get(2),
        email: row.get(3),
        departments: row.get(4),
        position: row.get(5),
        attributes: row.get(6),
        wecom_status: row.get(7),
        source: row.get(8),
        enabled: row.get(9),
        disabled_by_admin: row.get(10),
        password_verifier: row.get(11),
        created_at: row.get(12),
        updated_at: row.get(13),
        last_synced_at: row.get(14),
    }
}

/// The rows of a batch, column by column, for `UNNEST`.
#[derive(Default)]
struct Columns {
    userid_key: Vec<String>,
    userid: Vec<String>,
    name: Vec<String>,
    email: Vec<Option<String>>,
    departments: Vec<String>,
    position: Vec<Option<String>>,
    attributes: Vec<String>,
    wecom_status: Vec<Option<i64>>,
    source: Vec<String>,
    enabled: Vec<bool>,
    disabled_by_admin: Vec<bool>,
    password_verifier: Vec<Option<String>>,
    created_at: Vec<i64>,
    updated_at: Vec<i64>,
    last_synced_at: Vec<Option<i64>>,
}

impl Columns {
    fn of(users: &[StoredUser]) -> Columns {
        let mut c = Columns::default();
        for stored in users {
            let r = UserRow::from_stored(stored);
            c.userid_key.push(r.userid_key);
            c.userid.push(r.userid);
            c.name.push(r.name);
            c.email.push(r.email);
            c.departments.push(r.departments);
            c.position.push(r.position);
            c.attributes.push(r.attributes);
            c.wecom_status.push(r.wecom_status);
            c.source.push(r.source);
            c.enabled.push(r.enabled);
            c.disabled_by_admin.push(r.disabled_by_admin);
            c.password_verifier.push(r.password_verifier);
            c.created_at.push(r.created_at);
            c.updated_at.push(r.updated_at);
            c.last_synced_at.push(r.last_synced_at);
        }
        c
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 15] {
        [
            &self.userid_key,
            &self.userid,
            &self.name,
            &self.email,
            &self.departments,
            &self.position,
            &self.attributes,
            &self.wecom_status,
            &self.source,
            &self.enabled,
            &self.disabled_by_admin,
            &self.password_verifier,
            &self.created_at,
            &self.updated_at,
            &self.last_synced_at,
        ]
    }
}

const UNNEST: &str = "UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
     $6::text[], $7::text[], $8::bigint[], $9::text[], $10::boolean[], $11::boolean[], \
     $12::text[], $13::bigint[], $14::bigint[], $15::bigint[])";

async fn insert_batch(tx: &Transaction<'_>, users: &[StoredUser]) -> Result<(), StoreError> {
    let columns = Columns::of(users);
    let inserted = tx
        .query(
            &format!(
                "INSERT INTO directory_users ({COLUMNS}) SELECT * FROM {UNNEST} \
                 ON CONFLICT (userid_key) DO NOTHING RETURNING userid_key"
            ),
            &columns.params(),
        )
        .await
        .map_err(backend)?;
    if inserted.len() != users.len() {
        let inserted: Vec<String> = inserted.iter().map(|r| r.get(0)).collect();
        let duplicate = users
            .iter()
            .find(|u| !inserted.contains(&userid_key(&u.user.userid)))
            .map(|u| u.user.userid.clone())
            .unwrap_or_default();
        return Err(StoreError::DuplicateUser(duplicate));
    }
    Ok(())
}

async fn update_batch(tx: &Transaction<'_>, users: &[StoredUser]) -> Result<(), StoreError> {
    let columns = Columns::of(users);
    let updated = tx
        .query(
            &format!(
                "UPDATE directory_users AS u SET userid = v.userid, name = v.name, \
                 email = v.email, departments = v.departments, position = v.position, \
                 attributes = v.attributes, wecom_status = v.wecom_status, enabled = v.enabled, \
                 updated_at = v.updated_at, last_synced_at = v.last_synced_at \
                 FROM {UNNEST} AS v({COLUMNS}) WHERE u.userid_key = v.userid_key \
                 RETURNING u.userid_key"
            ),
            &columns.params(),
        )
        .await
        .map_err(backend)?;
    if updated.len() != users.len() {
        let updated: Vec<String> = updated.iter().map(|r| r.get(0)).collect();
        let missing = users
            .iter()
            .find(|u| !updated.contains(&userid_key(&u.user.userid)))
            .map(|u| u.user.userid.clone())
            .unwrap_or_default();
        return Err(StoreError::UnknownUser(missing));
    }
    Ok(())
}

impl PostgresStore {
    async fn update_one(
        &self,
        sql: &str,
        userid: &str,
        value: &(dyn ToSql + Sync),
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let guard = self.client().await?;
        let client = guard.as_ref().expect("client() connects");
        let changed = client
            .execute(sql, &[&userid_key(userid), value, &now.0])
            .await
            .map_err(backend)?;
        if changed == 0 {
            return Err(StoreError::UnknownUser(userid.to_owned()));
        }
        Ok(())
    }
}

#[async_trait]
impl DirectoryStore for PostgresStore {
    async fn users(&self) -> Result<Vec<StoredUser>, StoreError> {
        let guard = self.client().await?;
        let client = guard.as_ref().expect("client() connects");
        let rows = client
            .query(
                &format!("SELECT {COLUMNS} FROM directory_users ORDER BY userid_key COLLATE \"C\""),
                &[],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| read_row(row).into_stored().map_err(StoreError::Backend))
            .collect()
    }

    async fn user(&self, userid: &str) -> Result<Option<StoredUser>, StoreError> {
        let guard = self.client().await?;
        let client = guard.as_ref().expect("client() connects");
        client
            .query_opt(
                &format!("SELECT {COLUMNS} FROM directory_users WHERE userid_key = $1"),
                &[&userid_key(userid)],
            )
            .await
            .map_err(backend)?
            .map(|row| read_row(&row).into_stored().map_err(StoreError::Backend))
            .transpose()
    }

    async fn apply(&self, changes: &DirectoryChanges) -> Result<(), StoreError> {
        let mut guard = self.client().await?;
        let client = guard.as_mut().expect("client() connects");
        let tx = client.transaction().await.map_err(backend)?;
        for batch in changes.create.chunks(BATCH) {
            insert_batch(&tx, batch).await?;
        }
        for batch in changes.update.chunks(BATCH) {
            update_batch(&tx, batch).await?;
        }
        let seen: Vec<String> = changes.seen.iter().map(|u| userid_key(u)).collect();
        let synced_at = changes.synced_at.map(|t| t.0);
        for batch in seen.chunks(BATCH) {
            let touched = tx
                .execute(
                    "UPDATE directory_users SET last_synced_at = $2 WHERE userid_key = ANY($1)",
                    &[&batch, &synced_at],
                )
                .await
                .map_err(backend)?;
            if touched != batch.len() as u64 {
                return Err(StoreError::Backend(
                    "a user seen by the sync vanished from the directory meanwhile; run the sync again".into(),
                ));
            }
        }
        let forget: Vec<String> = changes
            .forget_passwords
            .iter()
            .map(|u| userid_key(u))
            .collect();
        for batch in forget.chunks(BATCH) {
            tx.execute(
                "UPDATE directory_users SET password_verifier = NULL WHERE userid_key = ANY($1)",
                &[&batch],
            )
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn set_password(
        &self,
        userid: &str,
        verifier: &ScramVerifier,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.update_one(
            "UPDATE directory_users SET password_verifier = $2, updated_at = $3 WHERE userid_key = $1",
            userid,
            &verifier.to_string(),
            now,
        )
        .await
    }

    async fn set_disabled_by_admin(
        &self,
        userid: &str,
        disabled: bool,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.update_one(
            "UPDATE directory_users SET disabled_by_admin = $2, updated_at = $3 WHERE userid_key = $1",
            userid,
            &disabled,
            now,
        )
        .await
    }
}
