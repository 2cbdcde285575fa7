//! WeCom failures, told to the admin as what to fix.
//!
//! WeCom answers every error with HTTP 200 and an `errcode`; each code the admin can act on gets
//! a sentence naming the setting or console page to change. Any other answer is not WeCom's and
//! is an error too, never an empty success. Messages carry WeCom's `hint` (for
//! WeCom support) but never the Secret or an access token.

use std::fmt;
use std::time::Duration;

use super::api::Endpoint;
use crate::control_chars::escape_control;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WeComErrorKind {
    /// WeCom answered with a non-zero `errcode`.
    Api { code: i64, errmsg: String },
    /// No answer (connection, TLS, timeout); the text never holds the request URL.
    Unreachable(String),
    /// An answer WeCom's API never gives: an HTTP status other than 2xx, a body that is not
    /// JSON or has no `errcode`, or a success without the fields it must carry. Usually a
    /// gateway or proxy between tablegate and WeCom answered instead of WeCom.
    Unexpected { status: u16, detail: String },
    /// tablegate's own budget of calls a minute to the endpoint is spent, and someone is
    /// waiting on this call: it is not made rather than made late.
    OverBudget,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeComError {
    pub endpoint: Endpoint,
    pub kind: WeComErrorKind,
}

impl WeComError {
    pub fn code(&self) -> Option<i64> {
        match &self.kind {
            WeComErrorKind::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// For rate-limit errors (45009, 45033): how long to wait before calling WeCom again. A
    /// minute block lasts 60 s; an IP banned for repeated wrong secrets waits an hour, but
    /// tablegate cannot tell the two apart, so the next periodic sync simply tries again later.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.code() {
            Some(45009) | Some(45033) => Some(Duration::from_secs(60)),
            _ => None,
        }
    }

    /// WeCom's `hint: [...]` id, for WeCom support.
    pub fn hint(&self) -> Option<&str> {
        self.errmsg_part("hint: [", "]")
    }

    /// The caller IP WeCom saw (`from ip: ...`), present on 60020.
    pub fn from_ip(&self) -> Option<&str> {
        self.errmsg_part("from ip: ", ",")
    }

    fn errmsg_part(&self, start: &str, end: &str) -> Option<&str> {
        let WeComErrorKind::Api { errmsg, .. } = &self.kind else {
            return None;
        };
        let rest = &errmsg[errmsg.find(start)? + start.len()..];
        let value = rest.split(end).next().unwrap_or(rest).trim();
        (!value.is_empty()).then_some(value)
    }
}

/// What the admin should do about `code`.
fn advice(code: i64, from_ip: Option<&str>) -> String {
    match code {
        -1 => "WeCom is busy; tablegate retried 3 times with backoff. Try again in a few minutes".into(),
        40001 => "the app Secret ([wecom] secret) is wrong, was reset, or the app is disabled. \
                  Copy the Secret again from the app's page in the WeCom admin console. \
                  tablegate does not retry this: repeated wrong secrets get this server's IP banned for an hour".into(),
        40013 => "the CorpID ([wecom] corp_id) is wrong. Copy it from My Company > Company Information in the WeCom admin console".into(),
        40014 | 42001 => "WeCom refused a freshly fetched access token. Check that no other program keeps resetting this app's Secret, then try again".into(),
        40029 => "the login link was already used or is older than 5 minutes. Open the login page again".into(),
        40056 => "the AgentID ([wecom] agent_id) is wrong. Copy the AgentId from the app's page in the WeCom admin console".into(),
        41001 => "tablegate sent no access token. This is a tablegate bug; please report it".into(),
        41002 => "the CorpID ([wecom] corp_id) is empty".into(),
        41004 => "the Secret ([wecom] secret) is empty".into(),
        45009 => "WeCom's rate limit was hit (10,000 calls a minute per API, or an hour-long ban of this IP after repeated wrong Secrets). \
                  tablegate stopped instead of retrying: wait a minute (an hour after a wrong Secret) before syncing again, \
                  and lower [wecom] requests_per_minute if it happens again".into(),
        45033 => "too many WeCom calls were in flight at once. Lower [wecom] concurrency, then sync again".into(),
        48002 => "the app lacks permission for this API. In the WeCom admin console, give the app read access to Contacts and check its visible range".into(),
        48009 => "this is the contact-sync assistant's Secret, which may not read contacts from new IPs. Use the Secret of a self-built app".into(),
        50001 => "the login URL's domain is not the app's trusted domain. Set the app's trusted domain (可信域名) to the host and port of [login] public_url".into(),
        60011 => "a department or user is outside the app's visible range. Widen the app's visible range (可见范围) in the WeCom admin console".into(),
        60020 => {
            let ip = from_ip.unwrap_or("(WeCom did not say which)");
            format!(
                "WeCom refuses calls from this server's IP {ip}. Add {ip} to the app's trusted IPs (企业可信IP) in the WeCom admin console; \
                 the app's trusted domain must be configured first, and a new IP takes about a minute to take effect"
            )
        }
        60111 => "the user left, was deleted, or is not visible to the app".into(),
        301002 => "the Secret belongs to another app than the AgentID. Use the Secret and AgentID ([wecom] secret, agent_id) of the same app".into(),
        _ => format!("see https://open.work.weixin.qq.com/devtool/query?e={code}"),
    }
}

impl fmt::Display for WeComError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            WeComErrorKind::Api { code, errmsg } => {
                // errmsg is WeCom's text (or whatever answered): it reaches terminals and logs.
                let short = escape_control(errmsg.split(", hint:").next().unwrap_or(errmsg));
                write!(
                    f,
                    "WeCom refused {} with error {code} ({short}): {}",
                    self.endpoint,
                    advice(*code, self.from_ip().map(escape_control).as_deref())
                )?;
                if let Some(hint) = self.hint() {
                    write!(f, " [WeCom hint {}]", escape_control(hint))?;
                }
                Ok(())
            }
            WeComErrorKind::Unreachable(detail) => write!(
                f,
                "cannot reach WeCom for {}: {detail}. Check [wecom] base_url and this server's outbound network",
                self.endpoint
            ),
            WeComErrorKind::Unexpected { status, detail } => write!(
                f,
                "WeCom, or a proxy or gateway between tablegate and WeCom, answered {} with something WeCom's API never sends \
                 (HTTP {status}, {detail}), so it was not taken as WeCom's answer. Check that [wecom] base_url points at WeCom \
                 and that any proxy on the way passes WeCom's answers through, then try again",
                self.endpoint,
                detail = escape_control(detail),
            ),
            WeComErrorKind::OverBudget => write!(
                f,
                "not calling {}: this minute's budget of calls ([wecom] requests_per_minute) is spent, e.g. by a flood of login callbacks; try again in a minute",
                self.endpoint
            ),
        }
    }
}

impl std::error::Error for WeComError {}
