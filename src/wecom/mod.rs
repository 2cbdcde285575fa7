//! WeCom (Enterprise WeChat): where tablegate's users come from and how they log in.
//!
//! [`client`] calls WeCom's server API (tokens, retries, rate budget) and [`error`] turns its
//! error codes into what the admin should fix; [`organisation`] reads the visible organisation,
//! with [`department_paths`] from the root, and [`sync`] applies it to the directory as one diff,
//! withholding [`shared_email`]s. [`fake`] is a local WeCom server that follows the same API,
//! for tests, benchmarks and the quickstart.

pub mod api;
pub mod client;
pub mod department_paths;
pub mod error;
pub mod fake;
pub mod organisation;
pub mod rate_limit;
pub mod shared_email;
pub mod sync;

use std::sync::Arc;

pub use client::{ClientOptions, LoginIdentity, WeComClient, WeComCredentials};
pub use error::{WeComError, WeComErrorKind};
pub use sync::{DirectorySync, SyncError, SyncSettings, SyncSummary, sync_periodically};

use crate::config::Config;
use crate::directory::Directory;

/// The WeCom client for the configured app.
pub fn client_from_config(config: &Config) -> Result<Arc<WeComClient>, String> {
    let wecom = config.wecom()?;
    let credentials = WeComCredentials {
        base_url: wecom.base_url.clone(),
        corp_id: wecom.corp_id.clone(),
        agent_id: wecom.agent_id,
        secret: wecom.secret.resolve("[wecom] secret", &config.base)?,
    };
    let options = ClientOptions {
        requests_per_minute: wecom.requests_per_minute,
        ..ClientOptions::default()
    };
    WeComClient::new(credentials, options).map(Arc::new)
}

/// The sync of `directory` from the configured app, sharing `client`'s token cache.
pub fn sync_from_config(
    config: &Config,
    client: Arc<WeComClient>,
    directory: &Directory,
) -> Result<DirectorySync, String> {
    let wecom = config.wecom()?;
    let initial_password = if wecom.initial_password.is_set() {
        Some(
            wecom
                .initial_password
                .resolve("[wecom] initial_password", &config.base)?,
        )
    } else {
        None
    };
    let settings = SyncSettings {
        email_suffix: wecom.email_suffix.trim_start_matches('@').to_owned(),
        initial_password,
        concurrency: wecom.concurrency,
        local_userids: directory.file_userids().map(str::to_owned).collect(),
        local_emails: directory.file_emails().map(str::to_owned).collect(),
    };
    Ok(DirectorySync::new(
        client,
        directory.store().clone(),
        settings,
    ))
}
