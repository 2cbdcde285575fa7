//! A faithful fake WeCom server, for tests, benchmarks and the quickstart.
//!
//! It serves the API on 127.0.0.1 (a free port) exactly as WeCom's server API documentation describes it: tokens
//! that expire (on a clock tests can advance) or are invalidated early, the visible range, direct
//! members only, users in several departments or named individually, post-2022 apps without
//! mobile/email/avatar, custom attributes, single-use five-minute login codes, the OAuth and QR
//! login pages, every error in WeCom's shape, rate limits — and, for tests, injected errors,
//! raw answers (a gateway's, or ones WeCom's data cannot provoke) and call counters.
//!
//! ```no_run
//! # async fn demo() {
//! use tablegate::wecom::fake::{FakeOrg, FakeUser, FakeWeCom};
//! let org = FakeOrg::new("wwcorp", 1000002, "app-secret", "Company")
//!     .department(2, "Sales", 1)
//!     .user(FakeUser::new("zhangsan", "张三", &[2]).attr("region", "East"));
//! let wecom = FakeWeCom::start(org).await;
//! let client_settings = wecom.credentials(); // base_url points at the fake
//! # }
//! ```

mod errors;
mod org;
mod server;
mod state;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use errors::errmsg_text;
pub use org::{FakeAttr, FakeDepartment, FakeOrg, FakeUser};
pub use state::{FakeLogin, Injection, RawAnswer, Times};

use crate::wecom::api::Endpoint;
use crate::wecom::client::WeComCredentials;
use state::FakeState;

/// A running fake; stops when dropped.
pub struct FakeWeCom {
    address: SocketAddr,
    state: Arc<Mutex<FakeState>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeWeCom {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeWeCom {
    /// Starts serving `org` on 127.0.0.1 at a free port.
    pub async fn start(org: FakeOrg) -> FakeWeCom {
        let state = Arc::new(Mutex::new(FakeState::new(org)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake WeCom server to 127.0.0.1");
        let address = listener.local_addr().expect("a bound address");
        let app =
            server::router(Arc::clone(&state)).into_make_service_with_connect_info::<SocketAddr>();
        let server = tokio::spawn(async move {
            // Ends only when the task is aborted.
            let _ = axum::serve(listener, app).await;
        });
        FakeWeCom {
            address,
            state,
            server,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
        f(&mut self.state.lock().expect("fake WeCom state"))
    }

    /// The API base URL (stands for `https://qyapi.weixin.qq.com`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Stands for `https://open.weixin.qq.com/connect/oauth2/authorize`.
    pub fn authorize_url(&self) -> String {
        format!("{}{}", self.base_url(), Endpoint::Authorize.path())
    }

    /// Stands for `https://login.work.weixin.qq.com/wwlogin/sso/login`.
    pub fn qr_login_url(&self) -> String {
        format!("{}{}", self.base_url(), Endpoint::QrLogin.path())
    }

    /// The app's credentials, pointing at this fake.
    pub fn credentials(&self) -> WeComCredentials {
        self.with(|s| WeComCredentials {
            base_url: self.base_url(),
            corp_id: s.org.corp_id.clone(),
            agent_id: s.org.agent_id,
            secret: s.org.secret.clone(),
        })
    }

    /// Changes the organisation (users joining, leaving, moving; the visible range).
    pub fn update_org(&self, change: impl FnOnce(&mut FakeOrg)) {
        self.with(|s| change(&mut s.org));
    }

    pub fn inject(&self, injection: Injection) {
        self.with(|s| s.injections.push(injection));
    }

    /// Answers an endpoint's calls as something other than WeCom would (see [`RawAnswer`]).
    pub fn answer_raw(&self, answer: RawAnswer) {
        self.with(|s| s.raw_answers.push(answer));
    }

    /// Calls made to `endpoint`, failed ones included.
    pub fn calls(&self, endpoint: Endpoint) -> usize {
        self.with(|s| s.calls.get(&endpoint).copied().unwrap_or(0))
    }

    pub fn total_calls(&self) -> usize {
        self.with(|s| s.calls.values().sum())
    }

    pub fn reset_calls(&self) {
        self.with(|s| s.calls.clear());
    }

    /// Moves the fake's clock: tokens expire (42001), login codes too (40029).
    pub fn advance_clock(&self, by: Duration) {
        self.with(|s| s.clock_offset += by);
    }

    /// Invalidates every token issued so far, as WeCom may do early (40014).
    pub fn invalidate_tokens(&self) {
        self.with(FakeState::invalidate_tokens);
    }

    /// Every access token issued so far (to check none leaks into messages).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.with(|s| s.issued_tokens())
    }

    /// Lifetime of tokens issued from now on (default 7200 s).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.with(|s| s.token_lifetime = lifetime);
    }

    /// Calls per minute per API before 45009 (default 10,000).
    pub fn set_rate_limit(&self, per_minute: usize) {
        self.with(|s| s.rate_limit_per_minute = per_minute);
    }

    /// Only these caller IPs may call the API (else 60020); `None`: any.
    pub fn set_trusted_ips(&self, ips: Option<Vec<IpAddr>>) {
        self.with(|s| s.trusted_ips = ips);
    }

    /// The app's trusted domain (`host:port`) that login redirect_uris must use (else 50001).
    pub fn set_trusted_domain(&self, domain: Option<String>) {
        self.with(|s| s.trusted_domain = domain);
    }

    /// Who the next OAuth or QR login completes as.
    pub fn log_in_as(&self, login: FakeLogin) {
        self.with(|s| s.login = Some(login));
    }

    /// A login code for `login`, as if the authorize page had issued it.
    pub fn issue_code(&self, login: FakeLogin) -> String {
        self.with(|s| s.issue_code(login))
    }
}
