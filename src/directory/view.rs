//! The directory as the rest of tablegate sees it: the store (WeCom users and local users the
//! admin gave a password) and the read-only users file, as one list of users.
//!
//! A userid in the store comes from the store, except a `local` record, which only adds the
//! admin's password and "disabled" flag to the users file's profile (and is disabled once the
//! users file no longer names it). The users file supplies the users the store does not have.
//! Only users synced from WeCom may log in through WeCom: a local user is another person, whatever
//! WeCom userid happens to equal theirs. The users file wins also over a WeCom record stored
//! before it named that userid (found by red-team review): the WeCom member is hidden, their
//! password unused, and neither person gets a password until the admin resolves it. Likewise a
//! WeCom user never holds a users-file user's email, also before the next sync withholds it
//! ([`crate::wecom::shared_email`]).

use std::collections::HashSet;
use std::sync::Arc;

use super::User;
use super::record::{StoredUser, Timestamp, UserSource, email_key};
use super::scram::ScramVerifier;
use super::store::{DirectoryChanges, DirectoryStore, StoreError};

#[derive(Clone)]
pub struct Directory {
    store: Arc<dyn DirectoryStore>,
    file_users: Vec<User>,
    /// The users file's emails, by [`email_key`].
    file_emails: HashSet<String>,
}

impl Directory {
    pub fn new(store: Arc<dyn DirectoryStore>, file_users: Vec<User>) -> Directory {
        let file_emails = file_users
            .iter()
            .filter_map(|u| u.email.as_deref())
            .map(email_key)
            .collect();
        Directory {
            store,
            file_users,
            file_emails,
        }
    }

    pub fn store(&self) -> &Arc<dyn DirectoryStore> {
        &self.store
    }

    fn file_user(&self, userid: &str) -> Option<&User> {
        self.file_users.iter().find(|u| u.is(userid))
    }

    fn combine(&self, stored: Option<StoredUser>, userid: &str) -> Option<User> {
        match (stored, self.file_user(userid)) {
            (Some(stored), Some(file)) if stored.source == UserSource::Local => {
                let mut user = file.clone();
                user.enabled = file.enabled && !stored.disabled_by_admin;
                Some(user)
            }
            // Removed from the users file: gone, though its password stays stored.
            (Some(stored), None) if stored.source == UserSource::Local => {
                let mut user = stored.effective();
                user.enabled = false;
                Some(user)
            }
            (Some(_), Some(file)) => Some(file.clone()),
            (Some(stored), None) => {
                let mut user = stored.effective();
                if user
                    .email
                    .as_deref()
                    .is_some_and(|email| self.file_emails.contains(&email_key(email)))
                {
                    user.email = None;
                }
                Some(user)
            }
            (None, file) => file.cloned(),
        }
    }

    /// The user policies see for `userid` (case-insensitive), disabled ones included.
    pub async fn user(&self, userid: &str) -> Result<Option<User>, StoreError> {
        let stored = self.store.user(userid).await?;
        Ok(self.combine(stored, userid))
    }

    /// The user a WeCom login for `userid` stands for: only a user synced from WeCom (disabled
    /// ones included, for the caller to refuse with the right words).
    pub async fn wecom_user(&self, userid: &str) -> Result<Option<User>, StoreError> {
        match self.store.user(userid).await? {
            Some(stored)
                if stored.source == UserSource::Wecom && self.file_user(userid).is_none() =>
            {
                Ok(self.combine(Some(stored), userid))
            }
            _ => Ok(None),
        }
    }

    /// The users-file users: local people, whom a WeCom sync leaves alone.
    pub fn file_userids(&self) -> impl Iterator<Item = &str> {
        self.file_users.iter().map(|u| u.userid.as_str())
    }

    /// The users-file users' emails, which no WeCom user may hold.
    pub fn file_emails(&self) -> impl Iterator<Item = &str> {
        self.file_users.iter().filter_map(|u| u.email.as_deref())
    }

    /// Every user, stored ones first, then users-file users the store does not have.
    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        let stored = self.store.users().await?;
        let mut users: Vec<User> = Vec::with_capacity(stored.len() + self.file_users.len());
        for record in stored {
            let userid = record.user.userid.clone();
            users.extend(self.combine(Some(record), &userid));
        }
        for file in &self.file_users {
            if !users.iter().any(|u| u.is(&file.userid)) {
                users.push(file.clone());
            }
        }
        Ok(users)
    }

    /// The SCRAM verifier the proxy checks a password against; `None` when the user is unknown,
    /// disabled, or has no password.
    pub async fn password_verifier(
        &self,
        userid: &str,
    ) -> Result<Option<ScramVerifier>, StoreError> {
        let Some(stored) = self.store.user(userid).await? else {
            return Ok(None);
        };
        if stored.source == UserSource::Wecom && self.file_user(userid).is_some() {
            return Ok(None);
        }
        let verifier = stored.password_verifier.clone();
        let enabled = self
            .combine(Some(stored), userid)
            .is_some_and(|user| user.enabled);
        Ok(verifier.filter(|_| enabled))
    }

    /// Sets a user's password (only its verifier is stored). A users-file user is first copied
    /// into the store as a `local` user so the password has a home.
    pub async fn set_password(&self, userid: &str, password: &str) -> Result<(), StoreError> {
        self.ensure_stored(userid).await?;
        self.store
            .set_password(userid, &ScramVerifier::new(password), Timestamp::now())
            .await
    }

    /// Disables or re-enables a user on the admin's behalf; a sync never undoes this.
    pub async fn set_disabled_by_admin(
        &self,
        userid: &str,
        disabled: bool,
    ) -> Result<(), StoreError> {
        self.ensure_stored(userid).await?;
        self.store
            .set_disabled_by_admin(userid, disabled, Timestamp::now())
            .await
    }

    async fn ensure_stored(&self, userid: &str) -> Result<(), StoreError> {
        if let Some(stored) = self.store.user(userid).await? {
            if stored.source == UserSource::Wecom && self.file_user(userid).is_some() {
                return Err(StoreError::Contested(stored.user.userid));
            }
            return Ok(());
        }
        let file = self
            .file_user(userid)
            .ok_or_else(|| StoreError::UnknownUser(userid.to_owned()))?;
        let now = Timestamp::now();
        let record = StoredUser {
            user: file.clone(),
            source: UserSource::Local,
            wecom_status: None,
            disabled_by_admin: false,
            password_verifier: None,
            created_at: now,
            updated_at: now,
            last_synced_at: None,
        };
        self.store
            .apply(&DirectoryChanges {
                create: vec![record],
                ..DirectoryChanges::default()
            })
            .await
    }
}
