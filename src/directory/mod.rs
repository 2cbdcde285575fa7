//! The user directory: who the people behind database sessions are.
//!
//! A [`User`] carries what policies match on and read as `{{user.…}}` variables: the userid,
//! name, email, departments (with their ancestry, so a department assignment covers its
//! sub-departments), position and custom attributes. Users come from a local users file
//! ([`users_file`]) or, in production, from WeCom.

pub mod password;
pub mod users_file;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

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
}

impl Department {
    pub fn node(&self) -> &DepartmentNode {
        self.path.last().expect("a department path is never empty")
    }

    /// The path as `Root/Child/Grandchild`.
    pub fn path_string(&self) -> String {
        self.path
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join("/")
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

/// What the directory knows about someone logging in.
#[derive(Clone, Debug)]
pub struct Login {
    pub user: User,
    /// SCRAM-SHA-256 verifier of the user's password, if they have one.
    pub verifier: Option<String>,
}

pub type Lookup<'a> = Pin<Box<dyn Future<Output = Result<Option<Login>, String>> + Send + 'a>>;

/// The directory as the proxy uses it: find a user by userid (case-insensitively).
pub trait Directory: Send + Sync + 'static {
    fn lookup<'a>(&'a self, userid: &'a str) -> Lookup<'a>;
}

/// A directory held in memory (a users file).
pub struct StaticDirectory {
    logins: Vec<Login>,
}

impl StaticDirectory {
    pub fn new(logins: Vec<Login>) -> StaticDirectory {
        StaticDirectory { logins }
    }
}

impl Directory for StaticDirectory {
    fn lookup<'a>(&'a self, userid: &'a str) -> Lookup<'a> {
        let found = self.logins.iter().find(|l| l.user.is(userid)).cloned();
        Box::pin(async move { Ok(found) })
    }
}
