//! WeCom's error shape, as the fake answers: HTTP 200, a JSON body with `errcode` and an
//! `errmsg` carrying a hint id, the caller's IP and a link, and the same code and text in the
//! `Error-Code` / `Error-Msg` headers.

use std::net::IpAddr;

use axum::Json;
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};

/// WeCom's text for each code the fake can answer with.
pub fn errmsg_text(code: i64) -> &'static str {
    match code {
        -1 => "system busy",
        40001 => "invalid credential, access_token is invalid or not latest",
        40013 => "invalid corpid",
        40014 => "invalid access_token",
        40029 => "invalid code",
        40056 => "invalid agentid",
        41001 => "access_token missing",
        41002 => "corpid missing",
        41004 => "corpsecret missing",
        42001 => "access_token expired",
        45009 => "api freq out of limit",
        45033 => "api concurrent out of limit",
        48002 => "api forbidden",
        48009 => "api forbidden for contact assistant",
        50001 => "redirect_uri unauthorized",
        60003 => "department not found",
        60011 => "no privilege to access/modify contact/party/agent",
        60020 => "not allow to access from your ip",
        60111 => "userid not found",
        301002 => "not allow operate another agent with this accesstoken.",
        _ => "unknown error",
    }
}

/// The error answer for `code`, as WeCom formats it for a caller at `ip`.
pub fn error_response(code: i64, ip: IpAddr, hint: u64) -> Response {
    let errmsg = format!(
        "{}, hint: [{hint:x}-{:04x}], from ip: {ip}, more info at https://open.work.weixin.qq.com/devtool/query?e={code}",
        errmsg_text(code),
        hint % 0xffff
    );
    let headers = [
        (
            HeaderName::from_static("error-code"),
            HeaderValue::from(code),
        ),
        (
            HeaderName::from_static("error-msg"),
            HeaderValue::from_str(&errmsg).unwrap_or(HeaderValue::from_static("error")),
        ),
    ];
    (
        headers,
        Json(serde_json::json!({ "errcode": code, "errmsg": errmsg })),
    )
        .into_response()
}
