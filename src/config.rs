//! The operator's configuration file (`tablegate.toml`): where tablegate listens, where policies
//! and users live, and how to reach each datasource's real database.
//!
//! Policies say *who may see what*; this file says *how to run*. Upstream credentials live
//! here (or in the environment or files it points to), never in policies and never in logs.
//! Relative paths are relative to the configuration file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A secret given inline, by environment variable, or by file. Never printed.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    pub value: Option<String>,
    pub env: Option<String>,
    pub file: Option<PathBuf>,
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretSource(<redacted>)")
    }
}

impl SecretSource {
    pub fn is_set(&self) -> bool {
        self.value.is_some() || self.env.is_some() || self.file.is_some()
    }

    /// The secret's value; `what` names it in errors (which never include the value).
    pub fn resolve(&self, what: &str, base: &Path) -> Result<String, String> {
        match (&self.value, &self.env, &self.file) {
            (Some(v), None, None) => Ok(v.clone()),
            (None, Some(var), None) => std::env::var(var)
                .map_err(|_| format!("{what}: environment variable {var} is not set")),
            (None, None, Some(file)) => {
                let path = base.join(file);
                std::fs::read_to_string(&path)
                    .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
                    .map_err(|e| format!("{what}: cannot read {}: {e}", path.display()))
            }
            (None, None, None) => Err(format!("{what} is not configured")),
            _ => Err(format!("{what}: give exactly one of value, env, file")),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasourceConfig {
    /// The upstream database, e.g. `postgres://tablegate@db.internal:5432/sales`. A password
    /// in the URL works, but `password` keeps it out of the URL.
    pub url: String,
    #[serde(default)]
    pub password: SecretSource,
    /// Upstream connections kept per datasource; each client session holds one.
    #[serde(default = "defaults::pool_size")]
    pub pool_size: usize,
    #[serde(default = "defaults::connect_timeout_secs")]
    pub connect_timeout_secs: u64,
    /// How long a new client session waits for a free upstream connection.
    #[serde(default = "defaults::pool_wait_secs")]
    pub pool_wait_secs: u64,
    /// How often the live catalog is re-read (0: only at start and on demand).
    #[serde(default = "defaults::catalog_refresh_secs")]
    pub catalog_refresh_secs: u64,
}

impl DatasourceConfig {
    /// Connection settings for the upstream database, with the password resolved.
    pub fn postgres_config(&self, base: &Path) -> Result<tokio_postgres::Config, String> {
        let mut config: tokio_postgres::Config = self
            .url
            .parse()
            .map_err(|e| format!("datasource url does not parse: {e}"))?;
        if self.password.is_set() {
            config.password(self.password.resolve("datasource password", base)?);
        }
        config.connect_timeout(Duration::from_secs(self.connect_timeout_secs));
        config.application_name("tablegate");
        Ok(config)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// Refuse clients that do not use TLS.
    #[serde(default)]
    pub required: bool,
}

/// A trusted service (AskTable's query engine) that logs in with its own secret and names, per
/// connection, the end user it acts for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccount {
    pub name: String,
    pub secret: SecretSource,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// `stdout`, `off`, or a file path (JSON lines, appended).
    #[serde(default = "defaults::audit_output")]
    pub output: String,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            output: defaults::audit_output(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    /// A static users file (development, tests).
    pub users_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where PostgreSQL clients connect.
    #[serde(default = "defaults::listen")]
    pub listen: String,
    /// The policies folder.
    #[serde(default = "defaults::policies")]
    pub policies: PathBuf,
    #[serde(default)]
    pub directory: DirectoryConfig,
    #[serde(default)]
    pub datasource: BTreeMap<String, DatasourceConfig>,
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub service_account: Vec<ServiceAccount>,
    #[serde(default)]
    pub audit: AuditConfig,
    /// Statement rewrites kept in the cache (shared by all sessions).
    #[serde(default = "defaults::rewrite_cache_entries")]
    pub rewrite_cache_entries: usize,
    /// The folder holding this file: relative paths start here.
    #[serde(skip)]
    pub base: PathBuf,
}

mod defaults {
    pub fn listen() -> String {
        "127.0.0.1:6432".into()
    }
    pub fn policies() -> std::path::PathBuf {
        "policies".into()
    }
    pub fn pool_size() -> usize {
        20
    }
    pub fn connect_timeout_secs() -> u64 {
        5
    }
    pub fn pool_wait_secs() -> u64 {
        30
    }
    pub fn catalog_refresh_secs() -> u64 {
        300
    }
    pub fn audit_output() -> String {
        "stdout".into()
    }
    pub fn rewrite_cache_entries() -> usize {
        10_000
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read configuration {}: {e}", path.display()))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Config::parse(&text, base).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// A configuration from text; relative paths in it start at `base`.
    pub fn parse(text: &str, base: PathBuf) -> Result<Config, String> {
        let mut config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        config.base = base;
        Ok(config)
    }

    pub fn path(&self, relative: &Path) -> PathBuf {
        self.base.join(relative)
    }

    pub fn datasource(&self, name: &str) -> Result<&DatasourceConfig, String> {
        self.datasource.get(name).ok_or_else(|| {
            format!("datasource `{name}` has no [datasource.{name}] section in the configuration")
        })
    }
}
