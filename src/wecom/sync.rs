//! Directory sync: make the directory match what WeCom says, as one diff applied at once.
//!
//! Everything is fetched first; only then is the diff applied, in one transaction. A failing
//! WeCom call or database error therefore leaves the directory exactly as it was. The diff:
//! - users new to the directory are created, with the initial password's verifier if one is
//!   configured (users created by the same sync share that verifier: one PBKDF2 run instead of
//!   50,000; a user who sets a password gets a salt of their own);
//! - users whose profile or WeCom status changed are updated; their passwords are never touched;
//! - users who left (status 5), were disabled in WeCom (status 2) or fell out of the app's
//!   visible range are disabled, never deleted;
//! - `local` users (from the users file) are left alone even if WeCom has the same userid;
//! - users WeCom's answers contradict each other about are left out, as if not visible, and an
//!   email several users hold is withheld from them ([`super::shared_email`]): both reported,
//!   never fatal, so that no answer can make every later sync fail.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use indicatif::ProgressBar;

use super::client::WeComClient;
use super::error::WeComError;
use super::organisation::{FetchedUser, LeftOut, Organisation, fetch_organisation};
use super::shared_email::{SharedEmail, withhold_shared_emails};
use crate::control_chars::escape_control;
use crate::directory::record::userid_key;
use crate::directory::{
    DirectoryChanges, DirectoryStore, ScramVerifier, StoreError, StoredUser, Timestamp, UserSource,
};
use crate::metrics::runs::RunStats;

/// How a sync treats the users it finds.
#[derive(Clone)]
pub struct SyncSettings {
    /// `<userid>@<email_suffix>` for users WeCom gives no email.
    pub email_suffix: String,
    /// The password new users get; `None`: new users have no password.
    pub initial_password: Option<String>,
    /// user/list calls in flight at once.
    pub concurrency: usize,
    /// The users file's userids: local people, left alone (and reported) when WeCom has a
    /// member of the same id, who is someone else.
    pub local_userids: Vec<String>,
    /// The users file's emails: a WeCom user holding one of them gets no email.
    pub local_emails: Vec<String>,
}

impl fmt::Debug for SyncSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncSettings")
            .field("email_suffix", &self.email_suffix)
            .field(
                "initial_password",
                &self.initial_password.as_ref().map(|_| "<redacted>"),
            )
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncSummary {
    pub departments: usize,
    pub created: usize,
    pub updated: usize,
    pub disabled: usize,
    pub unchanged: usize,
    /// Local users WeCom also has; left as they are.
    pub skipped_local: Vec<String>,
    /// Users named individually in the visible range that WeCom no longer has.
    pub not_found: Vec<String>,
    /// Users left out because WeCom's answers about them disagree.
    pub left_out: Vec<LeftOut>,
    /// Emails withheld because several users hold them.
    pub shared_emails: Vec<SharedEmail>,
    pub duration: Duration,
}

impl fmt::Display for SyncSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} departments: {} created, {} updated, {} disabled, {} unchanged in {:.1}s",
            self.departments,
            self.created,
            self.updated,
            self.disabled,
            self.unchanged,
            self.duration.as_secs_f64()
        )?;
        if !self.skipped_local.is_empty() {
            write!(
                f,
                "; left alone because they are local users: {}",
                escape_control(&self.skipped_local.join(", "))
            )?;
        }
        if !self.not_found.is_empty() {
            write!(
                f,
                "; named in the app's visible range but gone from WeCom: {}",
                escape_control(&self.not_found.join(", "))
            )?;
        }
        if !self.left_out.is_empty() {
            write!(
                f,
                "; left out as not visible, since WeCom's answers disagree (check these users in the WeCom admin console): {}",
                join(&self.left_out)
            )?;
        }
        if !self.shared_emails.is_empty() {
            write!(
                f,
                "; emails given to nobody, since several users hold them (give each user their own in WeCom): {}",
                join(&self.shared_emails)
            )?;
        }
        Ok(())
    }
}

fn join(items: &[impl fmt::Display]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncError {
    WeCom(WeComError),
    Store(StoreError),
    /// Another sync of this directory is running.
    AlreadyRunning,
}

impl SyncError {
    /// How long to wait before trying again, when WeCom said so (rate limits).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SyncError::WeCom(e) => e.retry_after(),
            _ => None,
        }
    }
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncError::WeCom(e) => write!(f, "sync failed, the directory is unchanged: {e}"),
            SyncError::Store(e) => write!(f, "sync failed, the directory is unchanged: {e}"),
            SyncError::AlreadyRunning => {
                f.write_str("a sync is already running; wait for it to finish")
            }
        }
    }
}

impl std::error::Error for SyncError {}

/// The diff between the directory and WeCom, and its counts.
pub fn plan(
    existing: Vec<StoredUser>,
    organisation: Organisation,
    local_userids: &[String],
    local_emails: &[String],
    initial_verifier: Option<&ScramVerifier>,
    now: Timestamp,
) -> (DirectoryChanges, SyncSummary) {
    let mut fetched: HashMap<String, FetchedUser> = organisation.users;
    let local: HashSet<String> = local_userids.iter().map(|u| userid_key(u)).collect();
    let outside_sync: Vec<&str> = existing
        .iter()
        .filter(|s| !fetched.contains_key(&userid_key(&s.user.userid)))
        .filter_map(|s| s.user.email.as_deref())
        .collect();
    let shared_emails = withhold_shared_emails(
        fetched
            .iter_mut()
            .filter(|(key, _)| !local.contains(*key))
            .map(|(_, found)| found),
        local_emails
            .iter()
            .map(String::as_str)
            .chain(outside_sync.iter().copied()),
    );
    let mut changes = DirectoryChanges {
        synced_at: Some(now),
        ..DirectoryChanges::default()
    };
    let mut summary = SyncSummary {
        departments: organisation.departments,
        not_found: organisation.not_found,
        left_out: organisation.left_out,
        shared_emails,
        ..SyncSummary::default()
    };
    for stored in existing {
        let key = userid_key(&stored.user.userid);
        let current = fetched.remove(&key);
        if stored.source == UserSource::Local {
            if let Some(found) = current {
                summary.skipped_local.push(found.user.userid);
            }
            continue;
        }
        // A users-file user is another person than the WeCom member of that userid, also when
        // WeCom synced first (found by red-team review): the member's record goes disabled.
        let current = match current {
            Some(found) if local.contains(&key) => {
                summary.skipped_local.push(found.user.userid);
                None
            }
            other => other,
        };
        // A userid that leaves WeCom may come back as someone else: its password goes.
        let has_password = stored.password_verifier.is_some();
        match current {
            Some(found)
                if found.user == stored.user && found.wecom_status == stored.wecom_status =>
            {
                summary.unchanged += 1;
                changes.seen.push(stored.user.userid);
            }
            Some(found) => {
                let leaving = stored.user.enabled && !found.user.enabled;
                let returning = !stored.user.enabled && found.user.enabled;
                if leaving {
                    summary.disabled += 1;
                } else {
                    summary.updated += 1;
                }
                if (leaving || returning) && has_password {
                    changes.forget_passwords.push(stored.user.userid.clone());
                }
                changes.update.push(StoredUser {
                    user: found.user,
                    wecom_status: found.wecom_status,
                    updated_at: now,
                    last_synced_at: Some(now),
                    ..stored
                });
            }
            None if stored.user.enabled => {
                summary.disabled += 1;
                if has_password {
                    changes.forget_passwords.push(stored.user.userid.clone());
                }
                let mut gone = stored;
                gone.user.enabled = false;
                gone.updated_at = now;
                changes.update.push(gone);
            }
            None => {}
        }
    }
    for userid in local_userids {
        if let Some(found) = fetched.remove(&userid_key(userid)) {
            summary.skipped_local.push(found.user.userid);
        }
    }
    let mut new_users: Vec<FetchedUser> = fetched.into_values().collect();
    new_users.sort_by(|a, b| a.user.userid.cmp(&b.user.userid));
    summary.created = new_users.len();
    changes.create = new_users
        .into_iter()
        .map(|found| StoredUser {
            user: found.user,
            source: UserSource::Wecom,
            wecom_status: found.wecom_status,
            disabled_by_admin: false,
            password_verifier: initial_verifier.cloned(),
            created_at: now,
            updated_at: now,
            last_synced_at: Some(now),
        })
        .collect();
    summary.skipped_local.sort();
    (changes, summary)
}

/// Syncs one directory from one WeCom app; at most one run at a time.
pub struct DirectorySync {
    client: Arc<WeComClient>,
    store: Arc<dyn DirectoryStore>,
    settings: SyncSettings,
    running: tokio::sync::Mutex<()>,
    /// Outcomes of every run, periodic or requested, for metrics.
    stats: RunStats,
}

impl DirectorySync {
    pub fn new(
        client: Arc<WeComClient>,
        store: Arc<dyn DirectoryStore>,
        settings: SyncSettings,
    ) -> DirectorySync {
        DirectorySync {
            client,
            store,
            settings,
            running: tokio::sync::Mutex::new(()),
            stats: RunStats::default(),
        }
    }

    pub fn stats(&self) -> &RunStats {
        &self.stats
    }

    /// One full sync. `progress` counts departments (use `ProgressBar::hidden()` when no one
    /// watches).
    /// A run refused because another is under way is not counted in [`Self::stats`].
    pub async fn run(&self, progress: &ProgressBar) -> Result<SyncSummary, SyncError> {
        let _only_one = self
            .running
            .try_lock()
            .map_err(|_| SyncError::AlreadyRunning)?;
        let started = std::time::Instant::now();
        let result = self.run_now(progress, started).await;
        match &result {
            Ok(summary) => self.stats.succeeded(summary.duration),
            Err(_) => self.stats.failed(started.elapsed()),
        }
        result
    }

    async fn run_now(
        &self,
        progress: &ProgressBar,
        started: std::time::Instant,
    ) -> Result<SyncSummary, SyncError> {
        let organisation = fetch_organisation(
            &self.client,
            &self.settings.email_suffix,
            self.settings.concurrency,
            progress,
        )
        .await
        .map_err(SyncError::WeCom)?;
        let existing = self.store.users().await.map_err(SyncError::Store)?;
        let initial_verifier = match &self.settings.initial_password {
            Some(password) => {
                let password = password.clone();
                Some(
                    tokio::task::spawn_blocking(move || ScramVerifier::new(&password))
                        .await
                        .map_err(|e| {
                            SyncError::Store(StoreError::Backend(format!(
                                "computing the initial password's verifier failed: {e}"
                            )))
                        })?,
                )
            }
            None => None,
        };
        let (changes, mut summary) = plan(
            existing,
            organisation,
            &self.settings.local_userids,
            &self.settings.local_emails,
            initial_verifier.as_ref(),
            Timestamp::now(),
        );
        self.store.apply(&changes).await.map_err(SyncError::Store)?;
        summary.duration = started.elapsed();
        Ok(summary)
    }
}

/// Syncs now and then every `interval`, for `serve` to spawn as a task; never returns. A failed
/// sync is logged and, after a rate limit, the next one waits at least as long as WeCom asks.
pub async fn sync_periodically(sync: Arc<DirectorySync>, interval: Duration) {
    loop {
        let wait = match sync.run(&ProgressBar::hidden()).await {
            Ok(summary) => {
                tracing::info!("WeCom sync: {summary}");
                interval
            }
            Err(error) => {
                tracing::warn!("WeCom sync: {error}");
                error
                    .retry_after()
                    .map_or(interval, |after| after.max(interval))
            }
        };
        tokio::time::sleep(wait).await;
    }
}
