//! One stored user as plain column values, shared by the SQLite and PostgreSQL backends so
//! both keep exactly the same bytes: departments and attributes as JSON text, times as Unix
//! seconds, the verifier in PostgreSQL's text format.

use std::collections::BTreeMap;

use super::record::{StoredUser, Timestamp, UserSource, userid_key};
use super::scram::ScramVerifier;
use super::{Department, User};

/// The columns of the `directory_users` table, in order.
pub const COLUMNS: &str = "userid_key, userid, name, email, departments, position, attributes, \
     wecom_status, source, enabled, disabled_by_admin, password_verifier, created_at, updated_at, \
     last_synced_at";

/// Holds a verifier, so it has no `Debug`.
pub struct UserRow {
    pub userid_key: String,
    pub userid: String,
    pub name: String,
    pub email: Option<String>,
    pub departments: String,
    pub position: Option<String>,
    pub attributes: String,
    pub wecom_status: Option<i64>,
    pub source: String,
    pub enabled: bool,
    pub disabled_by_admin: bool,
    pub password_verifier: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_synced_at: Option<i64>,
}

impl UserRow {
    pub fn from_stored(stored: &StoredUser) -> UserRow {
        let user = &stored.user;
        UserRow {
            userid_key: userid_key(&user.userid),
            userid: user.userid.clone(),
            name: user.name.clone(),
            email: user.email.clone(),
            departments: serde_json::to_string(&user.departments)
                .expect("departments serialise to JSON"),
            position: user.position.clone(),
            attributes: serde_json::to_string(&user.attributes)
                .expect("attributes serialise to JSON"),
            wecom_status: stored.wecom_status,
            source: stored.source.as_str().to_owned(),
            enabled: user.enabled,
            disabled_by_admin: stored.disabled_by_admin,
            password_verifier: stored.password_verifier.as_ref().map(ToString::to_string),
            created_at: stored.created_at.0,
            updated_at: stored.updated_at.0,
            last_synced_at: stored.last_synced_at.map(|t| t.0),
        }
    }

    /// Every column as one JSON array: the canonical form of a stored user.
    pub fn canonical(&self) -> String {
        serde_json::json!([
            self.userid_key,
            self.userid,
            self.name,
            self.email,
            self.departments,
            self.position,
            self.attributes,
            self.wecom_status,
            self.source,
            self.enabled,
            self.disabled_by_admin,
            self.password_verifier,
            self.created_at,
            self.updated_at,
            self.last_synced_at,
        ])
        .to_string()
    }

    pub fn into_stored(self) -> Result<StoredUser, String> {
        let corrupt = |what: &str, e: String| {
            format!(
                "user `{}` has an unreadable {what} in the directory: {e}",
                self.userid
            )
        };
        let departments: Vec<Department> = serde_json::from_str(&self.departments)
            .map_err(|e| corrupt("department list", e.to_string()))?;
        let attributes: BTreeMap<String, String> = serde_json::from_str(&self.attributes)
            .map_err(|e| corrupt("attribute list", e.to_string()))?;
        let password_verifier = self
            .password_verifier
            .as_deref()
            .map(ScramVerifier::parse)
            .transpose()
            .map_err(|e| corrupt("password verifier", e))?;
        Ok(StoredUser {
            user: User {
                userid: self.userid.clone(),
                name: self.name,
                email: self.email,
                departments,
                position: self.position,
                attributes,
                enabled: self.enabled,
            },
            source: UserSource::parse(&self.source)?,
            wecom_status: self.wecom_status,
            disabled_by_admin: self.disabled_by_admin,
            password_verifier,
            created_at: Timestamp(self.created_at),
            updated_at: Timestamp(self.updated_at),
            last_synced_at: self.last_synced_at.map(Timestamp),
        })
    }
}
