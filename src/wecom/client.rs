//! The WeCom API client: access-token caching, retries and a rate budget around each call.
//!
//! - The token is fetched once per (CorpID, Secret) — one client holds one pair — and reused
//!   until shortly before it expires. Concurrent callers wait for a single fetch.
//! - A call answered with 40014 or 42001 (or 40001, which WeCom also uses for a stale token on
//!   data calls) drops the token, fetches a new one and retries once. 40001 from gettoken itself
//!   means a wrong Secret and is never retried: repeated tries get the IP banned.
//! - -1 (system busy) is retried with exponential backoff, at most 3 times.
//! - 45009 / 45033 (rate limits) are returned at once: retrying would only extend the block.
//! - An answer not in WeCom's shape (HTTP status other than 2xx, no `errcode`, a success
//!   without its payload) is an error: a gateway's answer is never read as an empty success.
//!
//! Neither the Secret nor the token ever appears in an error or a log line: both go only into
//! query strings, and transport errors are stripped of their URL.

use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::api::{
    AgentResponse, ApiDepartment, ApiUser, DepartmentListResponse, Endpoint, Envelope,
    TokenResponse, UserInfoResponse, UserListResponse,
};
use super::error::{WeComError, WeComErrorKind};
use super::rate_limit::RateLimiter;

/// -1 is retried this many times.
const BUSY_RETRIES: u32 = 3;

/// Which WeCom app to act as.
#[derive(Clone)]
pub struct WeComCredentials {
    /// e.g. `https://qyapi.weixin.qq.com`; tests point it at the fake.
    pub base_url: String,
    pub corp_id: String,
    pub agent_id: u64,
    pub secret: String,
}

impl fmt::Debug for WeComCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeComCredentials")
            .field("base_url", &self.base_url)
            .field("corp_id", &self.corp_id)
            .field("agent_id", &self.agent_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Calls per minute per API tablegate allows itself.
    pub requests_per_minute: u32,
    /// The first wait after -1; doubled for each further retry.
    pub busy_backoff: Duration,
    pub timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            requests_per_minute: 9_000,
            busy_backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(30),
        }
    }
}

/// An access token; shown nowhere.
#[derive(Clone, PartialEq, Eq)]
struct AccessToken(String);

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

struct CachedToken {
    token: AccessToken,
    refresh_at: Instant,
}

/// Who completed an OAuth login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginIdentity {
    Member {
        userid: String,
    },
    /// Not a member of the company (WeCom gives an openid only).
    NonMember,
}

pub struct WeComClient {
    http: reqwest::Client,
    credentials: WeComCredentials,
    options: ClientOptions,
    token: Mutex<Option<CachedToken>>,
    limiter: RateLimiter,
}

impl fmt::Debug for WeComClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeComClient")
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// How an answer with a non-zero errcode is handled.
enum Next {
    RefreshTokenAndRetry,
    RetryAfter(Duration),
    Fail,
}

impl WeComClient {
    pub fn new(
        credentials: WeComCredentials,
        options: ClientOptions,
    ) -> Result<WeComClient, String> {
        // reqwest is built without a bundled crypto provider; ring is the one rustls gets here.
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .build()
            .map_err(|e| format!("cannot set up the HTTP client for WeCom: {e}"))?;
        Ok(WeComClient {
            http,
            limiter: RateLimiter::new(options.requests_per_minute),
            credentials,
            options,
            token: Mutex::new(None),
        })
    }

    pub fn corp_id(&self) -> &str {
        &self.credentials.corp_id
    }

    pub fn agent_id(&self) -> u64 {
        self.credentials.agent_id
    }

    /// The visible department tree (department/list without an id).
    pub async fn departments(&self) -> Result<Vec<ApiDepartment>, WeComError> {
        let response: DepartmentListResponse = self.call(Endpoint::DepartmentList, &[]).await?;
        Ok(response.department)
    }

    /// A department's direct members (user/list).
    pub async fn department_members(&self, department_id: u64) -> Result<Vec<ApiUser>, WeComError> {
        let response: UserListResponse = self
            .call(
                Endpoint::UserList,
                &[("department_id", department_id.to_string())],
            )
            .await?;
        Ok(response.userlist)
    }

    /// One user (user/get).
    pub async fn user(&self, userid: &str) -> Result<ApiUser, WeComError> {
        self.call(Endpoint::UserGet, &[("userid", userid.to_owned())])
            .await
    }

    /// The users the app's visible range names individually (agent/get → allow_userinfos).
    pub async fn individually_visible_users(&self) -> Result<Vec<String>, WeComError> {
        let response: AgentResponse = self
            .call(
                Endpoint::AgentGet,
                &[("agentid", self.agent_id().to_string())],
            )
            .await?;
        Ok(response
            .allow_userinfos
            .unwrap_or_default()
            .user
            .into_iter()
            .map(|u| u.userid)
            .collect())
    }

    /// Exchanges an OAuth code for who logged in (auth/getuserinfo).
    pub async fn login_identity(&self, code: &str) -> Result<LoginIdentity, WeComError> {
        let response: UserInfoResponse = self
            .call(Endpoint::GetUserInfo, &[("code", code.to_owned())])
            .await?;
        Ok(match response.userid.filter(|u| !u.is_empty()) {
            Some(userid) => LoginIdentity::Member { userid },
            None => LoginIdentity::NonMember,
        })
    }

    /// One API call with the token, the rate budget and the retry rules.
    async fn call<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        params: &[(&str, String)],
    ) -> Result<T, WeComError> {
        let mut refreshed = false;
        let mut busy_retries = 0;
        loop {
            let token = self.access_token().await?;
            let mut query: Vec<(&str, &str)> = vec![("access_token", token.0.as_str())];
            query.extend(params.iter().map(|(k, v)| (*k, v.as_str())));
            let answer = self.get(endpoint, &query).await?;
            if answer.errcode == 0 {
                return answer.payload(endpoint);
            }
            let (code, errmsg) = (answer.errcode, answer.errmsg);
            let next = match code {
                40014 | 42001 | 40001 if !refreshed => Next::RefreshTokenAndRetry,
                -1 if busy_retries < BUSY_RETRIES => {
                    Next::RetryAfter(self.options.busy_backoff * 2u32.pow(busy_retries))
                }
                _ => Next::Fail,
            };
            match next {
                Next::RefreshTokenAndRetry => {
                    refreshed = true;
                    self.forget_token(&token).await;
                }
                Next::RetryAfter(wait) => {
                    busy_retries += 1;
                    tokio::time::sleep(wait).await;
                }
                Next::Fail => {
                    return Err(WeComError {
                        endpoint,
                        kind: WeComErrorKind::Api { code, errmsg },
                    });
                }
            }
        }
    }

    /// The cached token, or a new one. Holding the lock while fetching makes concurrent callers
    /// share one gettoken call.
    async fn access_token(&self) -> Result<AccessToken, WeComError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| Instant::now() < t.refresh_at) {
            return Ok(token.token.clone());
        }
        let fresh = self.fetch_token().await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    async fn forget_token(&self, failed: &AccessToken) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|t| &t.token == failed) {
            *cached = None;
        }
    }

    async fn fetch_token(&self) -> Result<CachedToken, WeComError> {
        let endpoint = Endpoint::GetToken;
        let mut busy_retries = 0;
        loop {
            let query = [
                ("corpid", self.credentials.corp_id.as_str()),
                ("corpsecret", self.credentials.secret.as_str()),
            ];
            let answer = self.get(endpoint, &query).await?;
            match answer.errcode {
                0 => {
                    let response: TokenResponse = answer.payload(endpoint)?;
                    let lifetime = Duration::from_secs(response.expires_in);
                    // Refresh a little early: 5 minutes, or a tenth of a short lifetime.
                    let margin = (lifetime / 10).min(Duration::from_secs(300));
                    return Ok(CachedToken {
                        token: AccessToken(response.access_token),
                        refresh_at: Instant::now() + lifetime - margin,
                    });
                }
                -1 if busy_retries < BUSY_RETRIES => {
                    tokio::time::sleep(self.options.busy_backoff * 2u32.pow(busy_retries)).await;
                    busy_retries += 1;
                }
                code => {
                    return Err(WeComError {
                        endpoint,
                        kind: WeComErrorKind::Api {
                            code,
                            errmsg: answer.errmsg,
                        },
                    });
                }
            }
        }
    }

    /// One GET within the rate budget, as WeCom answers: HTTP 2xx with a JSON `errcode`.
    /// Anything else came from something other than WeCom's API and is an error.
    async fn get(&self, endpoint: Endpoint, query: &[(&str, &str)]) -> Result<Answer, WeComError> {
        if endpoint == Endpoint::GetUserInfo {
            // A person waits at the login callback: past the budget, say so at once rather
            // than hold the connection (found by red-team review: bogus callbacks, each a
            // getuserinfo call, held genuine logins for a minute and connections without bound).
            self.limiter
                .try_acquire(endpoint)
                .await
                .map_err(|_| WeComError {
                    endpoint,
                    kind: WeComErrorKind::OverBudget,
                })?;
        } else {
            self.limiter.acquire(endpoint).await;
        }
        let url = format!(
            "{}{}",
            self.credentials.base_url.trim_end_matches('/'),
            endpoint.path()
        );
        let unreachable = |e: reqwest::Error| WeComError {
            endpoint,
            kind: WeComErrorKind::Unreachable(describe_transport_error(e)),
        };
        let response = self
            .http
            .get(&url)
            .query(query)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let unexpected = |detail: &str| WeComError {
            endpoint,
            kind: WeComErrorKind::Unexpected {
                status: status.as_u16(),
                detail: detail.to_owned(),
            },
        };
        if !status.is_success() {
            // The body is not quoted: a gateway may echo the request URL, token included.
            return Err(unexpected("WeCom answers every call with HTTP 200"));
        }
        let body = response.bytes().await.map_err(unreachable)?.to_vec();
        let envelope: Envelope = match serde_json::from_slice::<serde_json::Value>(&body) {
            Err(_) => return Err(unexpected("not JSON")),
            Ok(json) => serde_json::from_value(json)
                .map_err(|_| unexpected("JSON without WeCom's `errcode`"))?,
        };
        Ok(Answer {
            status: status.as_u16(),
            errcode: envelope.errcode,
            errmsg: envelope.errmsg,
            body,
        })
    }
}

/// An answer in WeCom's shape: HTTP 2xx and an `errcode`.
struct Answer {
    status: u16,
    errcode: i64,
    errmsg: String,
    body: Vec<u8>,
}

impl Answer {
    /// A successful answer's payload; one lacking a field it must carry is an error, never
    /// an empty value.
    fn payload<T: DeserializeOwned>(&self, endpoint: Endpoint) -> Result<T, WeComError> {
        serde_json::from_slice(&self.body).map_err(|e| WeComError {
            endpoint,
            kind: WeComErrorKind::Unexpected {
                status: self.status,
                detail: format!("errcode 0 but {e}"),
            },
        })
    }
}

/// A transport error with its causes, without the URL (which holds the Secret or the token).
fn describe_transport_error(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
