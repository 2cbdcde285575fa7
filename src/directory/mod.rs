//! The user directory: who the people behind database sessions are.
//!
//! A [`User`] carries what policies match on and read as `{{user.…}}` variables: the userid,
//! name, email, departments (with their ancestry, so a department assignment covers its
//! sub-departments), position and custom attributes. Users come from a local users file
//! ([`users_file`]) or, in production, from WeCom.

pub mod users_file;

use std::collections::BTreeMap;

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
