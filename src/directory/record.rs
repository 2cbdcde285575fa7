//! What the directory store keeps about a user: the [`User`] that policies read, plus where it
//! came from, its WeCom status, its password verifier and its history.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::User;
use super::scram::ScramVerifier;

/// Where a stored user came from. Sync only ever changes `Wecom` users.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserSource {
    Wecom,
    /// Added by the admin (a users-file user given a password).
    Local,
}

impl UserSource {
    pub fn as_str(self) -> &'static str {
        match self {
            UserSource::Wecom => "wecom",
            UserSource::Local => "local",
        }
    }

    pub fn parse(text: &str) -> Result<UserSource, String> {
        match text {
            "wecom" => Ok(UserSource::Wecom),
            "local" => Ok(UserSource::Local),
            other => Err(format!("unknown user source `{other}` in the directory")),
        }
    }
}

/// Seconds since the Unix epoch: the directory's clock, stored as an integer in both backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Timestamp {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Timestamp(i64::try_from(secs).unwrap_or(i64::MAX))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let time = UNIX_EPOCH + Duration::from_secs(u64::try_from(self.0).unwrap_or(0));
        write!(f, "{}", humantime::format_rfc3339_seconds(time))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct StoredUser {
    /// The profile as WeCom (or the users file) gives it. `user.enabled` is the source's verdict:
    /// false once the user left, was disabled in WeCom or fell out of the app's visible range.
    pub user: User,
    pub source: UserSource,
    /// WeCom's `status`: 1 active, 2 disabled, 4 not activated, 5 left.
    pub wecom_status: Option<i64>,
    /// Set by `tablegate users disable`; sync never clears it.
    pub disabled_by_admin: bool,
    pub password_verifier: Option<ScramVerifier>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_synced_at: Option<Timestamp>,
}

impl StoredUser {
    /// The user as policies and authentication see it: enabled only if both the source and the
    /// admin allow it.
    pub fn effective(&self) -> User {
        let mut user = self.user.clone();
        user.enabled = self.is_enabled();
        user
    }

    pub fn is_enabled(&self) -> bool {
        self.user.enabled && !self.disabled_by_admin
    }
}

/// The key users are stored and looked up by: WeCom userids compare case-insensitively.
pub fn userid_key(userid: &str) -> String {
    userid.to_ascii_lowercase()
}

/// How emails compare when telling whether two users share one: case-insensitively.
pub fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}
