//! What the fake remembers between calls — tokens, login codes, call counts, rate windows, its
//! clock — and the knobs tests turn: injected errors, raw answers, rate limits, trusted IPs, who is logged in.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::org::{FakeOrg, FakeUser};
use crate::wecom::api::Endpoint;

/// A login code lives this long.
const CODE_LIFETIME: Duration = Duration::from_secs(300);
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// Who the fake WeCom client (or QR scan) logs in as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FakeLogin {
    Member(String),
    /// Someone outside the company: getuserinfo gives only this openid.
    NonMember(String),
}

/// How often an injected error fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Times {
    Once,
    Always,
}

/// Answer calls to `endpoint` with `errcode` once more than `after_calls` calls were made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injection {
    pub endpoint: Endpoint,
    pub errcode: i64,
    pub after_calls: usize,
    pub times: Times,
}

impl Injection {
    /// `errcode` on the next call to `endpoint`, once.
    pub fn new(endpoint: Endpoint, errcode: i64) -> Injection {
        Injection {
            endpoint,
            errcode,
            after_calls: 0,
            times: Times::Once,
        }
    }

    /// Only after `calls` calls succeeded (counted from the start or the last counter reset).
    pub fn after(mut self, calls: usize) -> Injection {
        self.after_calls = calls;
        self
    }

    pub fn always(mut self) -> Injection {
        self.times = Times::Always;
        self
    }
}

/// An answer from something between tablegate and WeCom (a gateway, a proxy) or one WeCom's
/// own data cannot provoke: calls to `endpoint` get this HTTP status and body instead of the
/// fake's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawAnswer {
    pub endpoint: Endpoint,
    pub status: u16,
    pub body: String,
    pub times: Times,
}

impl RawAnswer {
    /// `body` with HTTP `status` on the next call to `endpoint`, once.
    pub fn new(endpoint: Endpoint, status: u16, body: &str) -> RawAnswer {
        RawAnswer {
            endpoint,
            status,
            body: body.into(),
            times: Times::Once,
        }
    }

    pub fn always(mut self) -> RawAnswer {
        self.times = Times::Always;
        self
    }
}

struct TokenRecord {
    expires_at: Duration,
    invalidated: bool,
}

struct CodeRecord {
    login: FakeLogin,
    issued_at: Duration,
}

pub struct FakeState {
    pub org: FakeOrg,
    pub token_lifetime: Duration,
    pub rate_limit_per_minute: usize,
    /// `None`: every IP is trusted.
    pub trusted_ips: Option<Vec<IpAddr>>,
    /// `host:port` a login redirect_uri must use; `None`: any.
    pub trusted_domain: Option<String>,
    pub login: Option<FakeLogin>,
    pub injections: Vec<Injection>,
    pub raw_answers: Vec<RawAnswer>,
    pub calls: BTreeMap<Endpoint, usize>,
    tokens: HashMap<String, TokenRecord>,
    codes: HashMap<String, CodeRecord>,
    windows: HashMap<Endpoint, (Duration, usize)>,
    started: Instant,
    pub clock_offset: Duration,
    hints: u64,
}

impl FakeState {
    pub fn new(org: FakeOrg) -> FakeState {
        FakeState {
            org,
            token_lifetime: Duration::from_secs(7200),
            rate_limit_per_minute: 10_000,
            trusted_ips: None,
            trusted_domain: None,
            login: None,
            injections: vec![],
            raw_answers: vec![],
            calls: BTreeMap::new(),
            tokens: HashMap::new(),
            codes: HashMap::new(),
            windows: HashMap::new(),
            started: Instant::now(),
            clock_offset: Duration::ZERO,
            hints: 0,
        }
    }

    /// The fake's clock: real time since start, plus what tests advanced it by.
    fn now(&self) -> Duration {
        self.started.elapsed() + self.clock_offset
    }

    pub fn next_hint(&mut self) -> u64 {
        self.hints += 1;
        (self.now().as_secs() << 16) | self.hints
    }

    /// Counts the call and applies, in WeCom's order, injected errors, the trusted-IP list (API
    /// calls only) and the rate limit (API calls only).
    pub fn begin_call(&mut self, endpoint: Endpoint, ip: IpAddr) -> Result<(), i64> {
        let count = {
            let calls = self.calls.entry(endpoint).or_default();
            *calls += 1;
            *calls
        };
        if let Some(index) = self
            .injections
            .iter()
            .position(|i| i.endpoint == endpoint && count > i.after_calls)
        {
            let injection = self.injections[index].clone();
            if injection.times == Times::Once {
                self.injections.remove(index);
            }
            return Err(injection.errcode);
        }
        if matches!(endpoint, Endpoint::Authorize | Endpoint::QrLogin) {
            return Ok(());
        }
        if let Some(trusted) = &self.trusted_ips
            && !trusted.contains(&ip)
        {
            return Err(60020);
        }
        let now = self.now();
        let window = self.windows.entry(endpoint).or_insert((now, 0));
        if now.saturating_sub(window.0) >= RATE_WINDOW {
            *window = (now, 0);
        }
        window.1 += 1;
        if window.1 > self.rate_limit_per_minute {
            return Err(45009);
        }
        Ok(())
    }

    /// The raw answer set for `endpoint`, if any; the call is counted.
    pub fn take_raw_answer(&mut self, endpoint: Endpoint) -> Option<RawAnswer> {
        let index = self
            .raw_answers
            .iter()
            .position(|a| a.endpoint == endpoint)?;
        *self.calls.entry(endpoint).or_default() += 1;
        let answer = self.raw_answers[index].clone();
        if answer.times == Times::Once {
            self.raw_answers.remove(index);
        }
        Some(answer)
    }

    pub fn check_token(&self, token: Option<&str>) -> Result<(), i64> {
        let token = token.filter(|t| !t.is_empty()).ok_or(41001)?;
        match self.tokens.get(token) {
            None => Err(40014),
            Some(record) if record.invalidated => Err(40014),
            Some(record) if self.now() >= record.expires_at => Err(42001),
            Some(_) => Ok(()),
        }
    }

    /// A new token and its lifetime in seconds.
    pub fn issue_token(&mut self) -> (String, u64) {
        let token = crate::random::alphanumeric(128);
        let expires_at = self.now() + self.token_lifetime;
        self.tokens.insert(
            token.clone(),
            TokenRecord {
                expires_at,
                invalidated: false,
            },
        );
        (token, self.token_lifetime.as_secs())
    }

    pub fn issued_tokens(&self) -> Vec<String> {
        self.tokens.keys().cloned().collect()
    }

    /// WeCom may invalidate tokens early: every token issued so far stops working (40014).
    pub fn invalidate_tokens(&mut self) {
        for record in self.tokens.values_mut() {
            record.invalidated = true;
        }
    }

    pub fn issue_code(&mut self, login: FakeLogin) -> String {
        let code = crate::random::alphanumeric(32);
        let issued_at = self.now();
        self.codes
            .insert(code.clone(), CodeRecord { login, issued_at });
        code
    }

    /// A code works once, within five minutes.
    pub fn take_code(&mut self, code: &str) -> Result<FakeLogin, i64> {
        let record = self.codes.remove(code).ok_or(40029)?;
        if self.now().saturating_sub(record.issued_at) > CODE_LIFETIME {
            return Err(40029);
        }
        Ok(record.login)
    }

    /// The visible departments: those in the visible range and everything below them.
    pub fn visible_departments(&self) -> HashSet<u64> {
        let mut visible: HashSet<u64> = self.org.visible_departments.iter().copied().collect();
        loop {
            let before = visible.len();
            for d in &self.org.departments {
                if visible.contains(&d.parent_id) {
                    visible.insert(d.id);
                }
            }
            if visible.len() == before {
                return visible;
            }
        }
    }

    /// Whether the app can see this user: through a visible department or individually.
    pub fn user_visible(&self, user: &FakeUser, visible: &HashSet<u64>) -> bool {
        user.departments.iter().any(|d| visible.contains(d))
            || self
                .org
                .visible_users
                .iter()
                .any(|u| u.eq_ignore_ascii_case(&user.userid))
    }
}
