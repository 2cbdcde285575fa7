//! A browser for the login pages: an HTTP client with a chosen user agent (WeCom's in-app
//! browser or a desktop one) that keeps cookies, following redirects or not, and the credential
//! page's reader.

use reqwest::redirect::Policy;

pub const WECOM_UA: &str =
    "Mozilla/5.0 (iPhone) AppleWebKit/605.1.15 wxwork/4.1.20 MicroMessenger/7.0.1";
pub const DESKTOP_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0";

pub fn browser(user_agent: &str, follow: bool) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(user_agent)
        .cookie_store(true)
        .redirect(if follow {
            Policy::limited(5)
        } else {
            Policy::none()
        })
        .build()
        .unwrap()
}

/// The login credential a credential page shows.
pub fn credential_in(page: &str) -> String {
    let start = page
        .find("<pre id=\"credential\">")
        .expect("a credential page")
        + "<pre id=\"credential\">".len();
    page[start..start + page[start..].find("</pre>").unwrap()].to_owned()
}
