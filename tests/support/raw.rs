//! A raw protocol client for tests that must send what no driver would.

use bytes::{Buf, BytesMut};
use pgwire::api::auth::sasl::scram::ScramClientAuth;
use pgwire::messages::startup::{SASLInitialResponse, SASLResponse, Startup};
use tablegate::wire::{self, Frame, FrameReader};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

pub struct RawClient {
    pub stream: TcpStream,
    reader: FrameReader,
}

impl RawClient {
    /// Logs in through tablegate (SCRAM, no TLS) as `user` on datasource `shop`, sending only
    /// `user` and `database`, and waits for the first ReadyForQuery.
    pub async fn login(port: u16, user: &str, password: &str) -> RawClient {
        let mut client = RawClient {
            stream: TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect"),
            reader: FrameReader::new(),
        };
        let mut startup = Startup::new();
        startup.parameters.insert("user".into(), user.into());
        startup.parameters.insert("database".into(), "shop".into());
        let mut out = BytesMut::new();
        wire::encode(&startup, &mut out);
        client.send(&out).await;
        let scram = ScramClientAuth::new(user.into(), password.into());
        let (first, waiting) = scram.build_client_first().unwrap();
        let sasl = client.take(1).await;
        assert_eq!(sasl[0].tag, b'R', "tablegate asks for SASL");
        out.clear();
        let initial =
            SASLInitialResponse::new("SCRAM-SHA-256".into(), Some(first.into_bytes().into()));
        wire::encode(&initial, &mut out);
        client.send(&out).await;
        let server_first = client.take(1).await.remove(0);
        let (last, _) = waiting.build_client_final(&server_first.body[4..]).unwrap();
        out.clear();
        wire::encode(&SASLResponse::new(last.into_bytes().into()), &mut out);
        client.send(&out).await;
        let greeting = client.until_ready().await;
        assert!(greeting.iter().all(|f| f.tag != b'E'), "login failed");
        client
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send");
    }

    /// Messages up to and including the next ReadyForQuery.
    pub async fn until_ready(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        loop {
            let frame = self
                .reader
                .next(&mut self.stream)
                .await
                .expect("read")
                .expect("a message");
            let done = frame.tag == b'Z';
            frames.push(frame);
            if done {
                return frames;
            }
        }
    }

    /// The next `n` messages.
    pub async fn take(&mut self, n: usize) -> Vec<Frame> {
        let mut frames = Vec::new();
        for _ in 0..n {
            frames.push(
                self.reader
                    .next(&mut self.stream)
                    .await
                    .expect("read")
                    .expect("a message"),
            );
        }
        frames
    }
}

pub fn tags(frames: &[Frame]) -> String {
    frames.iter().map(|f| f.tag as char).collect()
}

/// The SQLSTATE of an ErrorResponse frame.
pub fn sqlstate(frame: &Frame) -> String {
    error_field(frame, b'C')
}

/// Asserts that `frames` are an ErrorResponse of SQLSTATE `code`, then ReadyForQuery.
#[track_caller]
pub fn assert_error(frames: &[Frame], code: &str) {
    assert_eq!(
        (tags(frames).as_str(), sqlstate(&frames[0]).as_str()),
        ("EZ", code)
    );
}

/// The tag of a CommandComplete frame.
pub fn command_tag(frame: &Frame) -> String {
    String::from_utf8_lossy(&frame.body)
        .trim_end_matches('\0')
        .to_owned()
}

/// The message of an ErrorResponse frame.
pub fn message_text(frame: &Frame) -> String {
    error_field(frame, b'M')
}

fn error_field(frame: &Frame, wanted: u8) -> String {
    let mut body = frame.body.clone();
    while body.has_remaining() && body[0] != 0 {
        let field = body.get_u8();
        let value = wire::take_cstring(&mut body).unwrap();
        if field == wanted {
            return value;
        }
    }
    String::new()
}

fn cstring(out: &mut BytesMut, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.extend_from_slice(&[0]);
}

pub fn parse(name: &str, sql: &str) -> BytesMut {
    let mut body = BytesMut::new();
    cstring(&mut body, name);
    cstring(&mut body, sql);
    body.extend_from_slice(&0i16.to_be_bytes());
    message(b'P', &body)
}

pub fn bind(portal: &str, statement: &str) -> BytesMut {
    let mut body = BytesMut::new();
    cstring(&mut body, portal);
    cstring(&mut body, statement);
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    message(b'B', &body)
}

pub fn execute(portal: &str) -> BytesMut {
    fetch(portal, 0)
}

/// An Execute of at most `rows` rows (0: all).
pub fn fetch(portal: &str, rows: i32) -> BytesMut {
    let mut body = BytesMut::new();
    cstring(&mut body, portal);
    body.extend_from_slice(&rows.to_be_bytes());
    message(b'E', &body)
}

pub fn describe_statement(name: &str) -> BytesMut {
    let mut body = BytesMut::from(&b"S"[..]);
    cstring(&mut body, name);
    message(b'D', &body)
}

pub fn sync() -> BytesMut {
    message(b'S', &[])
}

pub fn flush() -> BytesMut {
    message(b'H', &[])
}

pub fn message(tag: u8, body: &[u8]) -> BytesMut {
    let mut out = BytesMut::new();
    wire::put_message(tag, body, &mut out);
    out
}

pub fn query(sql: &str) -> BytesMut {
    let mut body = BytesMut::new();
    cstring(&mut body, sql);
    message(b'Q', &body)
}

/// Messages sent together, as one pipeline.
pub fn pipeline(parts: &[BytesMut]) -> BytesMut {
    parts.iter().fold(BytesMut::new(), |mut all, part| {
        all.extend_from_slice(part);
        all
    })
}

/// The first column of a DataRow frame, as text.
pub fn first_value(frame: &Frame) -> String {
    assert_eq!(frame.tag, b'D', "a DataRow");
    let mut body = frame.body.clone();
    body.advance(2);
    let length = body.get_i32() as usize;
    String::from_utf8(body[..length].to_vec()).unwrap()
}

/// The salt tablegate's SCRAM exchange shows for `user` (no password needed to see it).
pub async fn scram_salt(port: u16, user: &str) -> String {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut out = BytesMut::new();
    let mut startup = Startup::new();
    startup.parameters.insert("user".into(), user.into());
    startup.parameters.insert("database".into(), "shop".into());
    wire::encode(&startup, &mut out);
    let first = b"n,,n=,r=abcdefghijklmnop".to_vec();
    wire::encode(
        &SASLInitialResponse::new("SCRAM-SHA-256".into(), Some(first.into())),
        &mut out,
    );
    socket.write_all(&out).await.unwrap();
    let mut reader = FrameReader::new();
    let _sasl = reader.next(&mut socket).await.unwrap().unwrap();
    let server_first = reader.next(&mut socket).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&server_first.body[4..]).into_owned();
    text.split(',')
        .find_map(|field| field.strip_prefix("s="))
        .expect("a salt")
        .to_owned()
}
