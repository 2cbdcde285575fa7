//! The few HTML pages a login shows: the credential with its psql line, and refusals that say
//! what to do next. Everything interpolated is escaped for HTML, and the psql line's values for
//! the shell too.

use std::fmt::Write;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title></head><body><h1>{}</h1>{body}</body></html>",
        escape(title),
        escape(title)
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        html,
    )
        .into_response()
}

/// A refusal: what happened and what to do.
pub fn refusal(status: StatusCode, message: &str) -> Response {
    page(
        status,
        "tablegate login",
        &format!(
            "<p>{}</p><p><a href=\"/login/wecom\">Log in again</a></p>",
            escape(message)
        ),
    )
}

/// The credential and how to connect with it.
pub fn credential(userid: &str, credential: &str, minutes: u64, host: &str, port: u16) -> Response {
    let mut body = String::new();
    let _ = write!(
        body,
        "<p>Logged in as <b>{}</b>. Your database password, valid for {minutes} minutes:</p>\
         <pre id=\"credential\">{}</pre>\
         <p>Connect with:</p><pre id=\"psql\">{}</pre>\
         <p>The connection must be verified TLS (<code>sslmode=verify-full</code>): this password \
         travels in clear text inside it, and a weaker mode would hand it to anyone posing as \
         tablegate. psql checks tablegate's certificate against the CA certificate in \
         <code>~/.postgresql/root.crt</code>; put your administrator's CA certificate there, or add \
         <code>sslrootcert=/path/to/ca.crt</code> to the line.</p>",
        escape(userid),
        escape(credential),
        escape(&psql_command(userid, credential, host, port)),
    );
    page(StatusCode::OK, "tablegate login", &body)
}

/// The psql command line, safe to paste into a POSIX shell: every value is single-quoted, so
/// nothing in a userid (`$(…)`, backquotes, `;`) runs (found by red-team review), and the TLS
/// mode never falls back to plaintext, where a fake server could ask for the credential in
/// clear text (libpq's default `prefer` did, found by red-team review).
fn psql_command(userid: &str, credential: &str, host: &str, port: u16) -> String {
    let conninfo = format!(
        "host={} port={port} user={} dbname=<datasource> sslmode=verify-full",
        conninfo_value(host),
        conninfo_value(userid)
    );
    format!(
        "PGPASSWORD={} psql {}",
        shell_quote(credential),
        shell_quote(&conninfo)
    )
}

/// `text` as one POSIX shell word: in single quotes, each `'` written as `'\''`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `text` as a libpq connection-string value: quoted when it is empty or holds a space, a
/// quote or a backslash, which would otherwise end or change it.
fn conninfo_value(text: &str) -> String {
    if !text.is_empty() && !text.contains(|c: char| c.is_whitespace() || c == '\'' || c == '\\') {
        return text.to_owned();
    }
    format!("'{}'", text.replace('\\', r"\\").replace('\'', r"\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_psql_line_verifies_the_server_and_quotes_every_value_for_the_shell() {
        let line = psql_command("alice", "tg1.a.b.c", "db.example.com", 6432);
        assert_eq!(
            line,
            "PGPASSWORD='tg1.a.b.c' psql 'host=db.example.com port=6432 user=alice dbname=<datasource> sslmode=verify-full'"
        );
        // A userid that would run a command if pasted unquoted, and one that ends the quotes.
        let line = psql_command("$(id)`id`;id", "tg1.x", "h", 1);
        assert_eq!(
            line,
            "PGPASSWORD='tg1.x' psql 'host=h port=1 user=$(id)`id`;id dbname=<datasource> sslmode=verify-full'"
        );
        let line = psql_command("o'brien x", "tg1.x", "h", 1);
        assert_eq!(
            line,
            r"PGPASSWORD='tg1.x' psql 'host=h port=1 user='\''o\'\''brien x'\'' dbname=<datasource> sslmode=verify-full'"
        );
    }

    #[test]
    fn the_page_shows_the_quoted_line_html_escaped() {
        let response = credential("<b>$(id)", "tg1.x", 10, "h", 1);
        let body = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
            .unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            body.contains("psql &#39;host=h port=1 user=&lt;b&gt;$(id) dbname=&lt;datasource&gt; sslmode=verify-full&#39;"),
            "{body}"
        );
        assert!(body.contains("~/.postgresql/root.crt"), "{body}");
        assert!(!body.contains("sslmode=prefer") && !body.contains("<b>$(id)"));
    }
}
