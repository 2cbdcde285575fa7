//! The directory store: where synced users, their verifiers and their history are kept.
//!
//! One small trait with two backends: [`super::sqlite::SqliteStore`], a single file in the data
//! directory that needs no server (the default), and [`super::postgres::PostgresStore`], a shared
//! PostgreSQL database for several proxy replicas. Every method that writes does so in one
//! transaction, so a reader never sees half a sync.

use std::fmt;

use async_trait::async_trait;

use crate::control_chars::escape_control;

use super::record::{StoredUser, Timestamp};
use super::row::UserRow;
use super::scram::ScramVerifier;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// No stored user has this userid.
    UnknownUser(String),
    /// A user to be created already exists.
    DuplicateUser(String),
    /// The users file names a userid that a WeCom sync stored for another person.
    Contested(String),
    /// The database failed; the text says which database and why.
    Backend(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::UnknownUser(userid) => write!(
                f,
                "user `{}` is not in the directory (run `tablegate wecom sync`, or check the userid with `tablegate users list`)",
                escape_control(userid)
            ),
            StoreError::DuplicateUser(userid) => {
                write!(
                    f,
                    "user `{}` is already in the directory",
                    escape_control(userid)
                )
            }
            StoreError::Contested(userid) => write!(
                f,
                "user `{userid}` is in the users file, and WeCom, where it was synced first, has a member of that userid: two people, so neither logs in by password. Rename the local user in the users file, or take `{userid}` out of it to keep the WeCom member"
            ),
            StoreError::Backend(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for StoreError {}

/// Changes applied together, in one transaction.
#[derive(Debug, Default)]
pub struct DirectoryChanges {
    /// New users, stored as given.
    pub create: Vec<StoredUser>,
    /// Existing users whose profile, WeCom status, enabled flag, `updated_at` and
    /// `last_synced_at` are replaced by these. Their source, verifier, creation time and admin
    /// flag are kept.
    pub update: Vec<StoredUser>,
    /// Users seen unchanged by a sync: only their `last_synced_at` moves to `synced_at`.
    pub seen: Vec<String>,
    /// Users whose password verifier is removed: they left WeCom (or were disabled there), and
    /// a userid WeCom gives again may be another person's.
    pub forget_passwords: Vec<String>,
    pub synced_at: Option<Timestamp>,
}

#[async_trait]
pub trait DirectoryStore: Send + Sync {
    /// Every stored user, ordered by userid (case-insensitively).
    async fn users(&self) -> Result<Vec<StoredUser>, StoreError>;

    /// The user with this userid (case-insensitively).
    async fn user(&self, userid: &str) -> Result<Option<StoredUser>, StoreError>;

    /// Applies all of `changes` or, on any error, none of them.
    async fn apply(&self, changes: &DirectoryChanges) -> Result<(), StoreError>;

    /// Replaces a user's password verifier.
    async fn set_password(
        &self,
        userid: &str,
        verifier: &ScramVerifier,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Sets or clears the admin's "disabled" flag.
    async fn set_disabled_by_admin(
        &self,
        userid: &str,
        disabled: bool,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Every stored byte in a canonical text form, one user a line: two dumps are equal exactly
    /// when the directories are.
    async fn dump(&self) -> Result<String, StoreError> {
        let mut out = String::new();
        for user in self.users().await? {
            out.push_str(&UserRow::from_stored(&user).canonical());
            out.push('\n');
        }
        Ok(out)
    }
}
