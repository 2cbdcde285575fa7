//! The few HTML pages a login shows: the credential with its psql line, and refusals that say
//! what to do next. Everything interpolated is escaped.

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
         <p>Connect with:</p><pre id=\"psql\">PGPASSWORD='{}' psql \"host={} port={port} user={} dbname=&lt;datasource&gt;\"</pre>",
        escape(userid),
        escape(credential),
        escape(credential),
        escape(host),
        escape(userid),
    );
    page(StatusCode::OK, "tablegate login", &body)
}
