//! The user directory: who the people behind database sessions are.
//!
//! A [`User`] carries what policies match on and read as `{{user.…}}` variables: the userid,
//! name, email, departments (with their ancestry, so a department assignment covers its
//! sub-departments), position and custom attributes. Users come from a local users file
//! ([`users_file`]) or, in production, from WeCom, synced into a [`store`] (SQLite by default,
//! PostgreSQL for several replicas); [`Directory`] shows both as one.

pub mod postgres;
pub mod record;
pub mod row;
pub mod scram;
pub mod sqlite;
pub mod store;
pub mod users_file;
pub mod view;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use record::{StoredUser, Timestamp, UserSource};
pub use scram::ScramVerifier;
pub use store::{DirectoryChanges, DirectoryStore, StoreError};
pub use view::Directory;

use crate::config::Config;

use serde::{Deserialize, Serialize};

/// One node on a department path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepartmentNode {
    /// WeCom's department id; absent for departments declared by name in a local users file.
    pub id: Option<u64>,
    pub name: String,
}

/// A department a user belongs to, with the path from the organisation's root down to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Department {
    /// Root first, the department itself last; never empty.
    pub path: Vec<DepartmentNode>,
    /// False when the WeCom app cannot see every ancestor: `path` then starts at the highest
    /// visible one, so it never matches a path assignment (names and ids on it still do).
    /// A record stored before this existed reads false until the next sync stores it again:
    /// its path may be one that started below the root (found in review).
    #[serde(default)]
    pub from_root: bool,
}

impl Department {
    pub fn node(&self) -> &DepartmentNode {
        self.path.last().expect("a department path is never empty")
    }

    /// The path as `Root/Child/Grandchild`; a path not from the root as `…/Child/Grandchild`,
    /// which nobody takes for a path from the root.
    pub fn path_string(&self) -> String {
        let names = self
            .path
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join("/");
        if self.from_root {
            names
        } else {
            format!("…/{names}")
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// WeCom's userid (case-insensitive); the login name on database connections.
    pub userid: String,
    pub name: String,
    pub email: Option<String>,
    pub departments: Vec<Department>,
    pub position: Option<String>,
    /// Custom attributes (WeCom's extattr text attributes), by attribute name.
    pub attributes: BTreeMap<String, String>,
    pub enabled: bool,
}

impl User {
    /// Whether `userid` names this user (WeCom userids compare case-insensitively).
    pub fn is(&self, userid: &str) -> bool {
        self.userid.eq_ignore_ascii_case(userid)
    }
}

/// Opens the configured store (PostgreSQL if `postgres_url` is set, else the SQLite file) and
/// loads the users file, if any.
pub async fn open(config: &Config) -> Result<Directory, String> {
    let settings = &config.directory;
    let store: Arc<dyn DirectoryStore> = match config.directory_database()? {
        Some(database) => Arc::new(
            postgres::PostgresStore::connect(database)
                .await
                .map_err(|e| e.to_string())?,
        ),
        None => Arc::new(
            sqlite::SqliteStore::open(&config.path(&settings.sqlite))
                .await
                .map_err(|e| e.to_string())?,
        ),
    };
    let file_users = match &settings.users_file {
        Some(file) => users_file::load(&config.path(file))?,
        None => Vec::new(),
    };
    Ok(Directory::new(store, file_users))
}
