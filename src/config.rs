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

use crate::upstream::{Database, TlsMode, UpstreamTls};

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
    /// How many of the pool's connections one user's sessions may hold at once; unset: half of
    /// `pool_size`, rounded up.
    pub connections_per_user: Option<usize>,
    /// How long a new client session waits for a free upstream connection.
    #[serde(default = "defaults::pool_wait_secs")]
    pub pool_wait_secs: u64,
    /// How often the live catalog is re-read (0: only at start).
    #[serde(default = "defaults::catalog_refresh_secs")]
    pub catalog_refresh_secs: u64,
    /// `disable`, `require`, `verify-ca` or `verify-full`; unset: `disable` for a database on
    /// this machine, `verify-full` for any other.
    pub tls: Option<TlsMode>,
    /// The CA certificate (PEM) that `verify-ca` and `verify-full` check the server against.
    pub tls_root_cert: Option<PathBuf>,
    /// Statements running longer are cancelled upstream (SQLSTATE 57014); clients cannot
    /// change it. Unset: the server's or the service role's own `statement_timeout`.
    pub statement_timeout_secs: Option<u64>,
    /// Sessions idle this long outside a transaction are ended upstream (FATAL 57P05), as
    /// PostgreSQL's `idle_session_timeout` ends them, and their connection leaves the pool.
    /// Unset: the server's or the service role's own.
    pub idle_session_timeout_secs: Option<u64>,
    /// Likewise for sessions idle inside a transaction (`idle_in_transaction_session_timeout`,
    /// FATAL 25P03).
    pub idle_in_transaction_timeout_secs: Option<u64>,
}

/// PostgreSQL's largest timeout setting: INT_MAX milliseconds.
const MAX_TIMEOUT_SECS: u64 = i32::MAX as u64 / 1000;

impl DatasourceConfig {
    /// The timeouts pinned on every upstream session, by PostgreSQL setting.
    pub fn pinned_timeouts(&self) -> Vec<(&'static str, Duration)> {
        self.timeouts()
            .into_iter()
            .filter_map(|(_, setting, secs)| Some((setting, Duration::from_secs(secs?))))
            .collect()
    }

    /// Each timeout key of this section, the PostgreSQL setting it pins, and its value.
    fn timeouts(&self) -> [(&'static str, &'static str, Option<u64>); 3] {
        [
            (
                "statement_timeout_secs",
                "statement_timeout",
                self.statement_timeout_secs,
            ),
            (
                "idle_session_timeout_secs",
                "idle_session_timeout",
                self.idle_session_timeout_secs,
            ),
            (
                "idle_in_transaction_timeout_secs",
                "idle_in_transaction_session_timeout",
                self.idle_in_transaction_timeout_secs,
            ),
        ]
    }

    /// `connections_per_user`, or its default.
    pub fn connections_per_user(&self) -> usize {
        self.connections_per_user
            .unwrap_or(self.pool_size.div_ceil(2))
    }

    /// The upstream database of datasource `name`, with its password and TLS resolved.
    pub fn database(&self, name: &str, base: &Path) -> Result<Database, String> {
        let what = format!("datasource `{name}`");
        if self.pool_size == 0 || self.connections_per_user == Some(0) {
            return Err(format!(
                "{what}: pool_size and connections_per_user must be at least 1"
            ));
        }
        for (key, _, secs) in self.timeouts() {
            if let Some(secs) = secs
                && secs > MAX_TIMEOUT_SECS
            {
                return Err(format!(
                    "{what}: {key} = {secs} is more than PostgreSQL accepts \
                     ({MAX_TIMEOUT_SECS} s, about 24 days); use 0 for no timeout"
                ));
            }
        }
        let mut database = database(
            &what,
            &self.url,
            &self.password,
            self.tls,
            self.tls_root_cert.as_deref(),
            base,
        )?;
        database
            .config
            .connect_timeout(Duration::from_secs(self.connect_timeout_secs));
        database.config.application_name("tablegate");
        Ok(database)
    }
}

/// A database from its URL, a password kept out of it, and its TLS settings; `what` names the
/// configuration section in messages.
fn database(
    what: &str,
    url: &str,
    password: &SecretSource,
    tls: Option<TlsMode>,
    tls_root_cert: Option<&Path>,
    base: &Path,
) -> Result<Database, String> {
    if url.to_ascii_lowercase().contains("sslmode") {
        return Err(format!(
            "{what}: the url sets sslmode; set TLS with the section's tls key instead \
             (disable, require, verify-ca or verify-full), so that no mode falls back to plaintext"
        ));
    }
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| format!("{what}: the url does not parse: {e}"))?;
    // TLS is decided by the host, and every connection tablegate opens goes to the first one.
    if config.get_hosts().len() > 1 || !config.get_hostaddrs().is_empty() {
        return Err(format!(
            "{what}: the url names several hosts or a hostaddr; give exactly one host, so that \
             every connection reaches, and is encrypted for, the same server"
        ));
    }
    if password.is_set() {
        config.password(password.resolve(&format!("{what} password"), base)?);
    }
    let root_cert = tls_root_cert.map(|path| base.join(path));
    let tls = UpstreamTls::configure(what, tls, root_cert.as_deref(), config.get_hosts().first())?;
    Ok(Database::new(config, tls))
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    /// A static, read-only users file (development, tests, installations without WeCom).
    pub users_file: Option<PathBuf>,
    /// The embedded directory store: one SQLite file. Ignored when `postgres_url` is set.
    #[serde(default = "defaults::directory_sqlite")]
    pub sqlite: PathBuf,
    /// A shared PostgreSQL database for the directory, for several proxy replicas.
    pub postgres_url: Option<String>,
    #[serde(default)]
    pub postgres_password: SecretSource,
    /// TLS to the directory database, as a datasource's `tls`.
    pub postgres_tls: Option<TlsMode>,
    /// As a datasource's `tls_root_cert`.
    pub postgres_tls_root_cert: Option<PathBuf>,
    /// How often an open session re-reads its user's entry (disabled users lose the session).
    #[serde(default = "defaults::session_recheck_secs")]
    pub session_recheck_secs: u64,
}

impl Default for DirectoryConfig {
    fn default() -> DirectoryConfig {
        DirectoryConfig {
            users_file: None,
            sqlite: defaults::directory_sqlite(),
            postgres_url: None,
            postgres_password: SecretSource::default(),
            postgres_tls: None,
            postgres_tls_root_cert: None,
            session_recheck_secs: defaults::session_recheck_secs(),
        }
    }
}

/// The WeCom app tablegate syncs users from and logs them in through (a self-built app).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeComConfig {
    /// 企业ID, from the admin console's "My Company" page.
    pub corp_id: String,
    /// The self-built app's AgentId.
    pub agent_id: u64,
    /// The app's Secret.
    pub secret: SecretSource,
    /// Email for users WeCom gives none: `<userid>@<email_suffix>`.
    pub email_suffix: String,
    /// The password new users get (stored only as a SCRAM verifier); unset: new users have no
    /// password and log in through WeCom only.
    #[serde(default)]
    pub initial_password: SecretSource,
    #[serde(default = "defaults::wecom_base_url")]
    pub base_url: String,
    #[serde(default = "defaults::wecom_authorize_url")]
    pub authorize_url: String,
    #[serde(default = "defaults::wecom_qr_login_url")]
    pub qr_login_url: String,
    /// Seconds between background syncs while serving (0: only on demand).
    #[serde(default = "defaults::wecom_sync_interval_secs")]
    pub sync_interval_secs: u64,
    /// user/list calls in flight at once during a sync.
    #[serde(default = "defaults::wecom_concurrency")]
    pub concurrency: usize,
    /// Calls per minute per API tablegate allows itself (WeCom's limit is 10,000).
    #[serde(default = "defaults::wecom_requests_per_minute")]
    pub requests_per_minute: u32,
}

/// Password-free login through WeCom.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginConfig {
    /// Where browsers reach tablegate's HTTP side, e.g. `https://tablegate.example.com`; its
    /// host (and port) must be the WeCom app's trusted domain.
    pub public_url: String,
    /// Signs login credentials (HMAC-SHA256); at least 32 characters.
    pub credential_key: SecretSource,
    /// How long a login credential stays valid.
    #[serde(default = "defaults::credential_ttl_secs")]
    pub credential_ttl_secs: u64,
    /// Where the browser goes after login, with `user` and `credential` query parameters; unset:
    /// the credential is shown with a psql command line.
    pub asktable_url: Option<String>,
    /// The host name shown in the psql command line (default: the `listen` address).
    pub psql_host: Option<String>,
}

/// The admin HTTP endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Bearer token for `POST /admin/wecom/sync`.
    pub token: SecretSource,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where PostgreSQL clients connect.
    #[serde(default = "defaults::listen")]
    pub listen: String,
    /// Client connections open at once, logging in or in a session; more are refused (53300).
    #[serde(default = "defaults::max_client_connections")]
    pub max_client_connections: usize,
    /// Failed logins one client address (IPv6: its /64) may make per window before its logins
    /// are refused until the window ends.
    #[serde(default = "defaults::login_failures_per_address")]
    pub login_failures_per_address: u32,
    /// The window of `login_failures_per_address`, from the address's first failure in it.
    #[serde(default = "defaults::login_failure_window_secs")]
    pub login_failure_window_secs: u64,
    /// Where the HTTP side listens: WeCom login pages, the admin API, health and metrics.
    #[serde(default = "defaults::http_listen")]
    pub http_listen: String,
    /// HTTP connections one client address (IPv6: its /64) may have open at once.
    #[serde(default = "defaults::http_connections_per_address")]
    pub http_connections_per_address: usize,
    /// The policies folder.
    #[serde(default = "defaults::policies")]
    pub policies: PathBuf,
    /// How often the policies folder is checked for edits, which are then reloaded (0: reload
    /// only on SIGHUP).
    #[serde(default = "defaults::policies_poll_ms")]
    pub policies_poll_ms: u64,
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
    pub wecom: Option<WeComConfig>,
    pub login: Option<LoginConfig>,
    pub admin: Option<AdminConfig>,
    /// The folder holding this file: relative paths start here.
    #[serde(skip)]
    pub base: PathBuf,
}

mod defaults {
    pub fn listen() -> String {
        "127.0.0.1:6432".into()
    }
    /// Far above any realistic client count (AskTable's engine pools tens of connections), and
    /// far below the systemd unit's 65536 file descriptors: about 170 MiB of idle sessions.
    pub fn max_client_connections() -> usize {
        10_000
    }
    /// A person who mistypes a password ten times in a minute waits out the minute; a guesser
    /// gets ten guesses a minute per address instead of one a second per connection.
    pub fn login_failures_per_address() -> u32 {
        10
    }
    pub fn login_failure_window_secs() -> u64 {
        60
    }
    pub fn http_listen() -> String {
        "127.0.0.1:8080".into()
    }
    /// An eighth of the listener's 256: one host cannot hold the login pages, and a browser
    /// opens six at most.
    pub fn http_connections_per_address() -> usize {
        32
    }
    pub fn policies() -> std::path::PathBuf {
        "policies".into()
    }
    pub fn policies_poll_ms() -> u64 {
        1000
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
    pub fn session_recheck_secs() -> u64 {
        30
    }
    pub fn directory_sqlite() -> std::path::PathBuf {
        "data/directory.db".into()
    }
    pub fn wecom_base_url() -> String {
        "https://qyapi.weixin.qq.com".into()
    }
    pub fn wecom_authorize_url() -> String {
        "https://open.weixin.qq.com/connect/oauth2/authorize".into()
    }
    pub fn wecom_qr_login_url() -> String {
        "https://login.work.weixin.qq.com/wwlogin/sso/login".into()
    }
    pub fn wecom_sync_interval_secs() -> u64 {
        3600
    }
    pub fn wecom_concurrency() -> usize {
        8
    }
    pub fn wecom_requests_per_minute() -> u32 {
        9000
    }
    pub fn credential_ttl_secs() -> u64 {
        600
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

    pub fn wecom(&self) -> Result<&WeComConfig, String> {
        self.wecom.as_ref().ok_or_else(|| {
            "WeCom is not configured: add a [wecom] section with corp_id, agent_id, secret and email_suffix".to_string()
        })
    }

    /// The shared directory database, when `postgres_url` is set.
    pub fn directory_database(&self) -> Result<Option<Database>, String> {
        let settings = &self.directory;
        let Some(url) = &settings.postgres_url else {
            return Ok(None);
        };
        let mut database = database(
            "[directory] postgres_url",
            url,
            &settings.postgres_password,
            settings.postgres_tls,
            settings.postgres_tls_root_cert.as_deref(),
            &self.base,
        )?;
        database.config.application_name("tablegate directory");
        Ok(Some(database))
    }

    pub fn datasource(&self, name: &str) -> Result<&DatasourceConfig, String> {
        self.datasource.get(name).ok_or_else(|| {
            format!("datasource `{name}` has no [datasource.{name}] section in the configuration")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wecom_login_and_admin_sections_parse_with_defaults() {
        let config: Config = toml::from_str(
            r#"
            [directory]
            postgres_url = "postgres://tablegate@db/tablegate"
            [wecom]
            corp_id = "ww1"
            agent_id = 1000002
            secret = { env = "WECOM_SECRET" }
            email_suffix = "example.com"
            [login]
            public_url = "https://tablegate.example.com"
            credential_key = { file = "login.key" }
            [admin]
            token = { value = "0123456789abcdef" }
            "#,
        )
        .unwrap();
        assert_eq!(config.directory.sqlite, PathBuf::from("data/directory.db"));
        let wecom = config.wecom().unwrap();
        assert_eq!(wecom.base_url, "https://qyapi.weixin.qq.com");
        assert_eq!(wecom.concurrency, 8);
        assert!(!wecom.initial_password.is_set());
        assert_eq!(config.login.unwrap().credential_ttl_secs, 600);
        assert!(format!("{:?}", config.admin).contains("redacted"));
    }

    #[test]
    fn a_missing_wecom_section_says_what_to_add() {
        let config: Config = toml::from_str("").unwrap();
        assert!(config.wecom().unwrap_err().contains("[wecom]"));
        assert_eq!(config.directory.sqlite, PathBuf::from("data/directory.db"));
    }

    /// The examples operators copy from: every key in them is one tablegate knows.
    #[test]
    fn the_configuration_examples_in_the_docs_parse() {
        let doc = |path: &str| {
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
        };
        let first_toml_block_after = |text: &str, heading: &str| -> String {
            text.split(heading)
                .nth(1)
                .and_then(|s| s.split("```toml\n").nth(1))
                .and_then(|s| s.split("```").next())
                .unwrap_or_else(|| panic!("a ```toml block after {heading}"))
                .to_owned()
        };
        for (path, heading) in [
            ("README.md", "## Running it"),
            ("docs/configuration.md", "## A complete example"),
        ] {
            let example = first_toml_block_after(&doc(path), heading);
            let config = Config::parse(&example, PathBuf::new())
                .unwrap_or_else(|e| panic!("{path}, {heading}: {e}"));
            assert!(
                !config.datasource.is_empty(),
                "{path}: the example's datasource"
            );
        }
    }

    #[test]
    fn a_statement_timeout_past_postgres_limit_is_refused_at_start() {
        let datasource = |secs: u64| -> DatasourceConfig {
            toml::from_str(&format!(
                "url = \"postgres://tablegate@127.0.0.1/db\"\nstatement_timeout_secs = {secs}"
            ))
            .unwrap()
        };
        let base = Path::new("/");
        assert!(datasource(2_147_483).database("sales", base).is_ok());
        let error = datasource(2_147_484).database("sales", base).unwrap_err();
        assert!(
            error.starts_with("datasource `sales`: statement_timeout_secs = 2147484"),
            "{error}"
        );
    }
}
