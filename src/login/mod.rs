//! Password-free login through WeCom.
//!
//! `GET /login/wecom` is the app's homepage in WeCom: it sends the WeCom client to WeCom's OAuth
//! page (silent `snsapi_base`) and desktop browsers to the QR login, with a single-use
//! [`oauth_state`]. WeCom sends the browser back to `GET /login/wecom/callback`, which checks the
//! state, exchanges the code for the userid, refuses non-members and unknown or disabled users,
//! and issues a short-lived [`credential`] the user connects with as their PostgreSQL password.
//! The proxy checks such a password with [`LoginService::authenticate`]. A code WeCom rejects
//! is a failed login, throttled per address as failed PostgreSQL logins are.

pub mod credential;
pub mod oauth_state;
mod pages;
mod routes;

use std::sync::Arc;
use std::time::Duration;

pub use credential::{CREDENTIAL_PREFIX, CredentialRejection, CredentialSigner};

use crate::proxy::login_throttle::LoginThrottle;
pub use routes::router;

use crate::config::Config;
use crate::directory::{Directory, User};
use crate::wecom::WeComClient;
use oauth_state::OAuthStates;

/// Where the login pages live and where they send people.
#[derive(Clone, Debug)]
pub struct LoginSettings {
    /// Where browsers reach tablegate's HTTP side; the callback is
    /// `<public_url>/login/wecom/callback`.
    pub public_url: String,
    /// WeCom's OAuth authorize page (inside the WeCom client).
    pub authorize_url: String,
    /// WeCom's QR login page (desktop browsers).
    pub qr_login_url: String,
    /// After login, go here with `user` and `credential` query parameters; `None`: show the
    /// credential and a psql command line.
    pub asktable_url: Option<String>,
    /// The host and port in the psql command line.
    pub psql_host: String,
    pub psql_port: u16,
    /// How long a login attempt (its OAuth state) may take.
    pub state_lifetime: Duration,
}

pub struct LoginService {
    client: Arc<WeComClient>,
    directory: Directory,
    signer: CredentialSigner,
    states: OAuthStates,
    settings: LoginSettings,
    /// Callbacks whose code WeCom rejected, per client address: each spent a getuserinfo call
    /// of the budget every login shares.
    failures: LoginThrottle,
}

impl LoginService {
    pub fn new(
        client: Arc<WeComClient>,
        directory: Directory,
        signer: CredentialSigner,
        settings: LoginSettings,
        failures: LoginThrottle,
    ) -> LoginService {
        LoginService {
            client,
            directory,
            states: OAuthStates::new(&signer.derived_key("oauth state"), settings.state_lifetime),
            signer,
            settings,
            failures,
        }
    }

    /// A key for another `purpose`, derived from the credential key
    /// ([`CredentialSigner::derived_key`]).
    pub fn derived_key(&self, purpose: &str) -> Vec<u8> {
        self.signer.derived_key(purpose)
    }

    /// The login service as configured in `[login]` and `[wecom]`.
    pub fn from_config(
        config: &Config,
        client: Arc<WeComClient>,
        directory: Directory,
    ) -> Result<LoginService, String> {
        let wecom = config.wecom()?;
        let login = config.login.as_ref().ok_or(
            "WeCom login is not configured: add a [login] section with public_url and credential_key",
        )?;
        let key = login
            .credential_key
            .resolve("[login] credential_key", &config.base)?;
        let signer = CredentialSigner::new(
            key.as_bytes(),
            Duration::from_secs(login.credential_ttl_secs),
        )?;
        let (listen_host, listen_port) = config
            .listen
            .rsplit_once(':')
            .map(|(h, p)| (h.to_owned(), p.parse().unwrap_or(5432)))
            .unwrap_or((config.listen.clone(), 5432));
        let settings = LoginSettings {
            public_url: login.public_url.trim_end_matches('/').to_owned(),
            authorize_url: wecom.authorize_url.clone(),
            qr_login_url: wecom.qr_login_url.clone(),
            asktable_url: login.asktable_url.clone(),
            psql_host: login.psql_host.clone().unwrap_or(listen_host),
            psql_port: listen_port,
            state_lifetime: Duration::from_secs(300),
        };
        Ok(LoginService::new(
            client,
            directory,
            signer,
            settings,
            LoginThrottle::from_config(config)?,
        ))
    }

    /// The userid a credential was issued to, if it is genuine and unexpired (no directory
    /// lookup: see [`LoginService::authenticate`] for the full check).
    pub fn verify_login_credential(&self, token: &str) -> Result<String, CredentialRejection> {
        self.signer.verify_login_credential(token)
    }

    /// Checks a credential sent as a PostgreSQL password for `userid`: genuine, not expired,
    /// issued to that user (case-insensitively), who is still a WeCom user in the directory and
    /// enabled.
    /// Returns the user.
    pub async fn authenticate(
        &self,
        userid: &str,
        credential: &str,
    ) -> Result<User, CredentialLoginError> {
        let refused = CredentialLoginError::Refused;
        let issued_to = self
            .signer
            .verify_login_credential(credential)
            .map_err(|r| refused(r.to_string()))?;
        if !issued_to.eq_ignore_ascii_case(userid) {
            return Err(refused(format!(
                "this login credential was issued to another user; connect as `{issued_to}`"
            )));
        }
        match self.directory.wecom_user(userid).await {
            Ok(Some(user)) if user.enabled => Ok(user),
            Ok(Some(_)) => Err(refused(format!("user `{userid}` is disabled"))),
            Ok(None) => Err(refused(format!(
                "user `{userid}` is not a WeCom user in the directory"
            ))),
            Err(e) => Err(CredentialLoginError::DirectoryUnavailable(e.to_string())),
        }
    }
}

/// Why a login credential did not log its user in.
#[derive(Debug)]
pub enum CredentialLoginError {
    /// The credential or its user is not good for this login: a sentence saying why.
    Refused(String),
    /// The directory could not be read, so nothing was decided (not a failed guess).
    DirectoryUnavailable(String),
}

impl std::fmt::Display for CredentialLoginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialLoginError::Refused(why) => f.write_str(why),
            CredentialLoginError::DirectoryUnavailable(e) => {
                write!(f, "the user directory is unavailable: {e}")
            }
        }
    }
}
