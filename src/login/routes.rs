//! The login endpoints: `GET /login/wecom` and `GET /login/wecom/callback`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::LoginService;
use super::oauth_state::StateRejection;
use super::pages;
use crate::proxy::Fatal;
use crate::proxy::login_throttle::Scope;
use crate::wecom::{LoginIdentity, WeComErrorKind};

pub const LOGIN_PATH: &str = "/login/wecom";
pub const CALLBACK_PATH: &str = "/login/wecom/callback";

/// Binds a login's state to the browser that started it: a callback URL someone else started
/// (login CSRF: the victim would end up logged in as the attacker) is refused.
struct StateCookie {
    /// Served over HTTPS: the cookie is `Secure` and carries the `__Host-` prefix, with which
    /// browsers refuse it unless this host set it over HTTPS, so a site on a sibling subdomain
    /// cannot plant its own state in the victim's browser (cookie tossing) and pass the check.
    https: bool,
}

impl StateCookie {
    fn for_public_url(public_url: &str) -> StateCookie {
        StateCookie {
            https: public_url.starts_with("https://"),
        }
    }

    fn name(&self) -> &'static str {
        if self.https {
            "__Host-tablegate_login_state"
        } else {
            "tablegate_login_state"
        }
    }

    /// The Set-Cookie value: a session cookie, as the state it carries expires on the server.
    fn set(&self, state: &str) -> String {
        let name = self.name();
        if self.https {
            format!("{name}={state}; Path=/; HttpOnly; SameSite=Lax; Secure")
        } else {
            format!("{name}={state}; Path={LOGIN_PATH}; HttpOnly; SameSite=Lax")
        }
    }

    /// The login state this browser was given at `/login/wecom`.
    fn read<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        let name = self.name();
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| pair.trim().strip_prefix(name)?.strip_prefix('='))
    }
}

/// The login routes, for `serve` to mount.
pub fn router(service: Arc<LoginService>) -> Router {
    Router::new()
        .route(LOGIN_PATH, get(start))
        .route(CALLBACK_PATH, get(callback))
        .with_state(service)
}

fn found(location: &str) -> Response {
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, location.to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (header::REFERRER_POLICY, "no-referrer".to_owned()),
        ],
    )
        .into_response()
}

fn with_query(base: &str, pairs: &[(&str, &str)]) -> Result<url::Url, String> {
    let mut url = url::Url::parse(base).map_err(|e| format!("`{base}` is not a valid URL: {e}"))?;
    url.query_pairs_mut().extend_pairs(pairs);
    Ok(url)
}

/// Sends the WeCom client to OAuth and desktop browsers to the QR login.
async fn start(State(service): State<Arc<LoginService>>, headers: HeaderMap) -> Response {
    let settings = &service.settings;
    let in_wecom = headers
        .get(header::USER_AGENT)
        .and_then(|ua| ua.to_str().ok())
        .is_some_and(|ua| ua.to_ascii_lowercase().contains("wxwork"));
    let state = service.states.issue();
    let redirect_uri = format!("{}{CALLBACK_PATH}", settings.public_url);
    let agent_id = service.client.agent_id().to_string();
    let corp_id = service.client.corp_id();
    let target = if in_wecom {
        with_query(
            &settings.authorize_url,
            &[
                ("appid", corp_id),
                ("redirect_uri", &redirect_uri),
                ("response_type", "code"),
                ("scope", "snsapi_base"),
                ("state", &state),
                ("agentid", &agent_id),
            ],
        )
        .map(|mut url| {
            url.set_fragment(Some("wechat_redirect"));
            url
        })
    } else {
        with_query(
            &settings.qr_login_url,
            &[
                ("login_type", "CorpApp"),
                ("appid", corp_id),
                ("agentid", &agent_id),
                ("redirect_uri", &redirect_uri),
                ("state", &state),
            ],
        )
    };
    match target {
        Ok(url) => {
            let cookie = StateCookie::for_public_url(&settings.public_url).set(&state);
            let mut response = found(url.as_str());
            if let Ok(value) = header::HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Err(e) => {
            tracing::error!("WeCom login is misconfigured: {e}");
            pages::refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "WeCom login is misconfigured; the administrator can see why in tablegate's log.",
            )
        }
    }
}

async fn callback(
    State(service): State<Arc<LoginService>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let refuse = |status, message: &str| pages::refusal(status, message);
    let cookie = StateCookie::for_public_url(&service.settings.public_url);
    if params.get("state").map(String::as_str) != cookie.read(&headers) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "This login did not start in this browser. Open tablegate from the WeCom Workplace (or the login page) and start again.",
        );
    }
    match params.get("state").map(|s| service.states.take(s)) {
        Some(Ok(())) => {}
        Some(Err(StateRejection::Expired)) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "This login took too long. Start again.",
            );
        }
        Some(Err(StateRejection::Unknown)) | None => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "This login link is not valid here: it was already used, or it did not start at this tablegate. Start again.",
            );
        }
    }
    let Some(code) = params.get("code").filter(|c| !c.is_empty()) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "WeCom did not approve the login. Start again and confirm it in WeCom.",
        );
    };
    // Each exchange spends a call of the budget all logins share: an address whose codes
    // WeCom keeps rejecting is refused before calling it (found by red-team review: a flood
    // of callbacks with bogus codes kept genuine logins out until the minute passed).
    let throttled = |refused: Fatal| {
        refuse(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Login refused: {}.", refused.message()),
        )
    };
    let mut attempt = match service
        .failures
        .attempt(peer.ip(), Scope::AddressAndNetwork)
    {
        Ok(attempt) => attempt,
        Err(refused) => return throttled(refused),
    };
    if let Err(refused) = attempt.guess().await {
        return throttled(refused);
    }
    let identity = service.client.login_identity(code).await;
    // A non-member, or a code WeCom does not know (40029): made up, used or expired.
    attempt.settle(match &identity {
        Ok(LoginIdentity::NonMember) => true,
        Ok(LoginIdentity::Member { .. }) => false,
        Err(e) => e.code() == Some(40029),
    });
    let userid = match identity {
        Ok(LoginIdentity::Member { userid }) => userid,
        Ok(LoginIdentity::NonMember) => {
            return refuse(
                StatusCode::FORBIDDEN,
                "Only members of the company can log in to tablegate.",
            );
        }
        Err(e) if e.kind == WeComErrorKind::OverBudget => {
            tracing::warn!("WeCom login refused: {e}");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many logins at once right now. Try again in a minute.",
            );
        }
        Err(e) if e.code() == Some(40029) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "This login link was already used or is older than 5 minutes. Start again.",
            );
        }
        Err(e) => {
            tracing::error!("WeCom login failed: {e}");
            return refuse(
                StatusCode::BAD_GATEWAY,
                "tablegate could not confirm the login with WeCom; the administrator can see why in tablegate's log.",
            );
        }
    };
    match service.directory.wecom_user(&userid).await {
        Ok(Some(user)) if user.enabled => issue(&service, &user.userid),
        Ok(Some(_)) => refuse(
            StatusCode::FORBIDDEN,
            "Your tablegate account is disabled. Ask your administrator.",
        ),
        Ok(None) => refuse(
            StatusCode::FORBIDDEN,
            "You are not in tablegate's directory yet. Ask your administrator to run a WeCom sync.",
        ),
        Err(e) => {
            tracing::error!("directory lookup during login failed: {e}");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "tablegate's directory is unavailable. Try again later.",
            )
        }
    }
}

fn issue(service: &LoginService, userid: &str) -> Response {
    let credential = service.signer.issue(userid);
    let settings = &service.settings;
    tracing::info!(userid = ?userid, "WeCom login");
    match &settings.asktable_url {
        Some(asktable) => match with_query(
            asktable,
            &[("user", userid), ("credential", credential.as_str())],
        ) {
            Ok(url) => found(url.as_str()),
            Err(e) => {
                tracing::error!("[login] asktable_url: {e}");
                pages::refusal(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The AskTable address is misconfigured; the administrator can see why in tablegate's log.",
                )
            }
        },
        None => pages::credential(
            userid,
            &credential,
            service.signer.lifetime().as_secs() / 60,
            &settings.psql_host,
            settings.psql_port,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookies(cookies: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, cookies.parse().unwrap());
        headers
    }

    #[test]
    fn over_https_only_a_host_prefixed_secure_cookie_carries_the_state() {
        let cookie = StateCookie::for_public_url("https://tablegate.example.com");
        assert_eq!(
            cookie.set("s1"),
            "__Host-tablegate_login_state=s1; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
        // A cookie a sibling subdomain could set (no prefix) is not read.
        let planted = with_cookies("tablegate_login_state=evil; __Host-tablegate_login_state=s1");
        assert_eq!(cookie.read(&planted), Some("s1"));
        assert_eq!(
            cookie.read(&with_cookies("tablegate_login_state=evil")),
            None
        );
    }

    #[test]
    fn over_http_the_cookie_stays_on_the_login_path() {
        let cookie = StateCookie::for_public_url("http://127.0.0.1:8080");
        assert_eq!(
            cookie.set("s1"),
            "tablegate_login_state=s1; Path=/login/wecom; HttpOnly; SameSite=Lax"
        );
        assert_eq!(
            cookie.read(&with_cookies("a=b; tablegate_login_state=s1")),
            Some("s1")
        );
    }
}
