//! A local users file: the directory for development, tests and installations without WeCom.
//!
//! ```toml
//! [[user]]
//! userid = "alice"
//! name = "Alice Chen"
//! departments = ["Sales/East"]     # paths from the root, by name
//! position = "Sales Representative"
//! attributes = { region = "East" }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::record::email_key;
use super::{Department, DepartmentNode, User};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    user: Vec<UserEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    userid: String,
    name: Option<String>,
    email: Option<String>,
    #[serde(default)]
    departments: Vec<String>,
    position: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(default = "enabled_by_default")]
    enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

/// Parses a users file's text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Vec<User>, String> {
    let file: UsersFile = toml::from_str(text).map_err(|e| format!("{origin}: {e}"))?;
    let mut users: Vec<User> = Vec::with_capacity(file.user.len());
    for entry in file.user {
        if users.iter().any(|u| u.is(&entry.userid)) {
            return Err(format!("{origin}: user `{}` is listed twice", entry.userid));
        }
        // A shared email would hand each user the rows a filter on `{{user.email}}` gives the other.
        if let Some(email) = &entry.email
            && let Some(other) = users.iter().find(|u| {
                u.email
                    .as_deref()
                    .is_some_and(|e| email_key(e) == email_key(email))
            })
        {
            return Err(format!(
                "{origin}: users `{}` and `{}` have the same email `{email}`; give each their own",
                other.userid, entry.userid
            ));
        }
        users.push(User {
            name: entry.name.unwrap_or_else(|| entry.userid.clone()),
            userid: entry.userid,
            email: entry.email,
            departments: entry
                .departments
                .iter()
                .map(|path| Department {
                    path: path
                        .split('/')
                        .map(|name| DepartmentNode {
                            id: None,
                            name: name.trim().to_owned(),
                        })
                        .collect(),
                    from_root: true,
                })
                .collect(),
            position: entry.position,
            attributes: entry.attributes,
            enabled: entry.enabled,
        });
    }
    Ok(users)
}

pub fn load(path: &Path) -> Result<Vec<User>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read users file {}: {e}", path.display()))?;
    parse(&text, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_users_with_one_email_are_refused() {
        let error = parse(
            "[[user]]\nuserid = \"a\"\nemail = \"X@example.com\"\n[[user]]\nuserid = \"b\"\nemail = \"x@example.com\"\n",
            "users.toml",
        )
        .unwrap_err();
        assert!(error.contains("`a` and `b` have the same email"), "{error}");
    }

    #[test]
    fn parses_departments_as_paths() {
        let users = parse(
            "[[user]]\nuserid = \"alice\"\ndepartments = [\"Sales/East\"]\nattributes = { region = \"East\" }\n",
            "users.toml",
        )
        .unwrap();
        assert_eq!(users[0].departments[0].path_string(), "Sales/East");
        assert_eq!(users[0].name, "alice");
        assert!(users[0].enabled);
    }

    #[test]
    fn duplicate_userids_are_an_error_case_insensitively() {
        let err = parse(
            "[[user]]\nuserid = \"Bob\"\n[[user]]\nuserid = \"bob\"\n",
            "u.toml",
        )
        .unwrap_err();
        assert!(err.contains("listed twice"), "{err}");
    }
}
