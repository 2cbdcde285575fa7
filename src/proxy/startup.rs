//! The start of a client connection: TLS negotiation, cancel requests, and the startup packet.
//!
//! Bytes a client sends after SSLRequest but before the TLS handshake are refused (they would be
//! read as if they had come over TLS). Startup parameters are returned as sent; the session
//! decides which to honour (the settings among them are read by [`startup_settings`]), and none
//! is ever passed upstream as it is.

use std::collections::BTreeMap;

use bytes::{Buf, BytesMut};
use tokio::net::TcpStream;

use super::gate::Gate;
use super::stream::ClientStream;
use super::{FEATURE_NOT_SUPPORTED, Fatal, INVALID_AUTHORIZATION};
use crate::wire::{self, FrameReader, take_cstring};

const SSL_REQUEST: u32 = 80877103;
const GSSENC_REQUEST: u32 = 80877104;
const CANCEL_REQUEST: u32 = 80877102;
const PROTOCOL_3: u32 = 3 << 16;

pub enum Opening {
    /// A client that wants a session, with its startup parameters.
    Session(ClientStream, Box<FrameReader>, BTreeMap<String, String>),
    /// A cancel request (handled), a refused or vanished connection.
    Done,
}

enum Step {
    /// Read the next startup packet on this stream.
    Again(ClientStream),
    Finished(Opening),
    Failed(ClientStream, Fatal),
}

/// Negotiates the connection; a fatal error is sent to the client here.
pub async fn open(gate: &Gate, socket: TcpStream) -> Opening {
    let _ = socket.set_nodelay(true);
    let mut stream = ClientStream::Plain(socket);
    let mut reader = FrameReader::new();
    loop {
        match step(gate, stream, &mut reader).await {
            Step::Again(s) => {
                stream = s;
                reader = FrameReader::new();
            }
            Step::Finished(Opening::Session(s, _, params)) => {
                reader.set_limit(wire::MAX_AUTHENTICATION_MESSAGE_LENGTH);
                return Opening::Session(s, Box::new(reader), params);
            }
            Step::Finished(done) => return done,
            Step::Failed(mut s, fatal) => {
                fatal.send(&mut s).await;
                return Opening::Done;
            }
        }
    }
}

async fn step(gate: &Gate, mut stream: ClientStream, reader: &mut FrameReader) -> Step {
    let mut packet = match reader.next_startup(&mut stream).await {
        Ok(Some(p)) => p,
        Ok(None) => return Step::Finished(Opening::Done),
        Err(e) => return Step::Failed(stream, Fatal::io(e)),
    };
    let code = packet.get_u32();
    match code {
        SSL_REQUEST | GSSENC_REQUEST => {
            if reader.has_buffered() {
                return Step::Failed(
                    stream,
                    Fatal::protocol("received unencrypted data after SSL request"),
                );
            }
            match (&gate.tls, code, stream) {
                (Some(acceptor), SSL_REQUEST, ClientStream::Plain(mut socket)) => {
                    if wire::send(&mut socket, b"S").await.is_err() {
                        return Step::Finished(Opening::Done);
                    }
                    match acceptor.accept(socket).await {
                        Ok(tls) => Step::Again(ClientStream::Tls(Box::new(tls))),
                        Err(_) => Step::Finished(Opening::Done),
                    }
                }
                (_, _, mut other) => match wire::send(&mut other, b"N").await {
                    Ok(()) => Step::Again(other),
                    Err(_) => Step::Finished(Opening::Done),
                },
            }
        }
        CANCEL_REQUEST => {
            if packet.len() >= 8 {
                let key = (packet.get_i32(), packet.get_i32());
                if let Some(upstream) = gate.cancels.get(&key).map(|k| k.clone()) {
                    let _ = crate::upstream::connection::cancel(&upstream).await;
                }
            }
            Step::Finished(Opening::Done)
        }
        version if version >> 16 == 3 => {
            let params = match parameters(&mut packet) {
                Ok(p) => p,
                Err(f) => return Step::Failed(stream, f),
            };
            let unknown: Vec<&String> = params.keys().filter(|k| k.starts_with("_pq_.")).collect();
            if version != PROTOCOL_3 || !unknown.is_empty() {
                // Answer with the version and options tablegate speaks, as PostgreSQL does.
                let mut body = BytesMut::new();
                body.extend_from_slice(&(PROTOCOL_3 as i32).to_be_bytes());
                body.extend_from_slice(&(unknown.len() as i32).to_be_bytes());
                for option in &unknown {
                    body.extend_from_slice(option.as_bytes());
                    body.extend_from_slice(&[0]);
                }
                let mut out = BytesMut::new();
                wire::put_message(b'v', &body, &mut out);
                if wire::send(&mut stream, &out).await.is_err() {
                    return Step::Finished(Opening::Done);
                }
            }
            if gate.config.tls.as_ref().is_some_and(|t| t.required) && !stream.is_tls() {
                return Step::Failed(
                    stream,
                    Fatal::new(
                        INVALID_AUTHORIZATION,
                        "tablegate requires TLS: connect with sslmode=require",
                    ),
                );
            }
            Step::Finished(Opening::Session(
                stream,
                Box::new(FrameReader::with_limit(
                    wire::MAX_AUTHENTICATION_MESSAGE_LENGTH,
                )),
                params,
            ))
        }
        _ => Step::Failed(
            stream,
            Fatal::new(
                FEATURE_NOT_SUPPORTED,
                format!(
                    "unsupported frontend protocol {}.{}: tablegate speaks 3.0",
                    code >> 16,
                    code & 0xffff
                ),
            ),
        ),
    }
}

fn parameters(packet: &mut BytesMut) -> Result<BTreeMap<String, String>, Fatal> {
    let mut params = BTreeMap::new();
    while !packet.is_empty() && packet[0] != 0 {
        let key = take_cstring(packet).map_err(Fatal::io)?;
        let value = take_cstring(packet).map_err(Fatal::io)?;
        params.insert(key, value);
    }
    Ok(params)
}

/// Startup settings a client may give, applied with SET (the same rules as SET statements).
pub(super) const STARTUP_SETTINGS: [&str; 6] = [
    "datestyle",
    "timezone",
    "extra_float_digits",
    "intervalstyle",
    "search_path",
    "application_name",
];

/// Settings from the startup packet: `-c name=value` in `options`, then direct parameters.
pub(super) fn startup_settings(
    params: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, Fatal> {
    let mut settings = BTreeMap::new();
    if let Some(options) = params.get("options") {
        let mut words = split_options(options).into_iter();
        while let Some(word) = words.next() {
            let assignment = match word.as_str() {
                "-c" => words.next().unwrap_or_default(),
                w if w.starts_with("--") => w[2..].to_owned(),
                w if w.starts_with("-c") => w[2..].to_owned(),
                w => {
                    return Err(Fatal::new(
                        FEATURE_NOT_SUPPORTED,
                        format!("option `{w}` is not supported through tablegate"),
                    ));
                }
            };
            let (name, value) = assignment.split_once('=').ok_or_else(|| {
                Fatal::new(
                    "42601",
                    format!("`{assignment}` in options should be name=value"),
                )
            })?;
            settings.insert(
                name.to_ascii_lowercase().replace('-', "_"),
                value.to_owned(),
            );
        }
    }
    // Direct parameters override `options`, as in PostgreSQL (found by red-team review:
    // tablegate read them the other way round, so a service account's `tablegate.act_as`
    // could name one user where a client checking the direct parameter saw another).
    for (key, value) in params {
        match key.as_str() {
            "user" | "database" | "options" => {}
            k if k.starts_with("_pq_.") => {}
            "replication" => {
                return Err(Fatal::new(
                    FEATURE_NOT_SUPPORTED,
                    "replication connections are not supported",
                ));
            }
            k => {
                settings.insert(k.to_ascii_lowercase(), value.clone());
            }
        }
    }
    Ok(settings)
}

/// Splits libpq's `options` string: spaces separate, a backslash escapes the next character.
fn split_options(options: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => word.extend(chars.next()),
            c if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_split_like_libpq() {
        assert_eq!(
            split_options(r"-c a=b  -c c=d\ e --f=g"),
            ["-c", "a=b", "-c", "c=d e", "--f=g"]
        );
    }

    #[test]
    fn startup_settings_come_from_parameters_and_options() {
        let params: BTreeMap<String, String> = [
            ("user", "u"),
            ("DateStyle", "ISO"),
            ("options", "-c tablegate.act_as=alice --search-path=public"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let settings = startup_settings(&params).unwrap();
        assert_eq!(settings["datestyle"], "ISO");
        assert_eq!(settings["tablegate.act_as"], "alice");
        assert_eq!(settings["search_path"], "public");
        assert!(startup_settings(&[("options".to_string(), "-X".to_string())].into()).is_err());
        let both: BTreeMap<String, String> = [
            ("tablegate.act_as", "alice"),
            ("options", "-c tablegate.act_as=carol"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            startup_settings(&both).unwrap()["tablegate.act_as"],
            "alice"
        );
    }
}
