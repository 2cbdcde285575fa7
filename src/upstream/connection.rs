//! One connection to a datasource's real database, spoken in raw protocol.
//!
//! tablegate logs in with the service credentials and pins the session settings that decide
//! how text is lexed and whether writes are possible: standard_conforming_strings on,
//! client_encoding UTF8, default_transaction_read_only on. After startup the connection is a
//! byte stream, encrypted when the datasource uses TLS: the proxy writes client messages and
//! relays responses without decoding rows.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use pgwire::api::auth::sasl::scram::ScramClientAuth;
use pgwire::messages::startup::{Password, SASLInitialResponse, SASLResponse, Startup};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use super::database::Database;
use super::tls::UpstreamTls;
use crate::stream_enum::delegate_io;
use crate::wire::{self, FrameReader, take_cstring};

/// Where and as whom to connect.
#[derive(Clone)]
pub struct Target {
    pub address: Address,
    pub user: String,
    pub password: Option<String>,
    pub database: String,
    pub connect_timeout: Duration,
    pub tls: Option<UpstreamTls>,
    /// Timeouts pinned as the settings of those names (`statement_timeout`, …); a setting not
    /// here keeps the server's (or the login role's) own.
    pub timeouts: Vec<(&'static str, Duration)>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} as {} on {:?}",
            self.database, self.user, self.address
        )
    }
}

#[derive(Clone, Debug)]
pub enum Address {
    Tcp(String, u16),
    /// A Unix socket directory, as libpq names it (`/var/run/postgresql`), and the port.
    Unix(PathBuf, u16),
}

impl Target {
    /// Reads host, port, user, password and database from a libpq-style configuration.
    pub fn from_database(database: &Database) -> Result<Target, String> {
        let config = &database.config;
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let address = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => Address::Tcp(host.clone(), port),
            Some(tokio_postgres::config::Host::Unix(dir)) => Address::Unix(dir.clone(), port),
            None => Address::Tcp("localhost".into(), port),
        };
        let user = config
            .get_user()
            .ok_or("the datasource url names no user")?
            .to_owned();
        Ok(Target {
            address,
            database: config.get_dbname().unwrap_or(&user).to_owned(),
            user,
            password: config
                .get_password()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
            connect_timeout: config
                .get_connect_timeout()
                .copied()
                .unwrap_or(Duration::from_secs(5)),
            tls: database.tls.clone(),
            timeouts: Vec::new(),
        })
    }
}

/// A TCP, TLS-over-TCP or Unix-socket stream.
pub enum Stream {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<Rebindable>>),
    Unix(UnixStream),
}

/// What every SSLRequest carries in place of a protocol version.
const SSL_REQUEST_CODE: u32 = 80877103;

impl Stream {
    /// Connects, and negotiates TLS when `tls` asks for it: the server must agree, or the
    /// connection fails rather than continue in plaintext.
    async fn open(address: &Address, tls: Option<&UpstreamTls>) -> io::Result<Stream> {
        match (address, tls) {
            (Address::Tcp(host, port), tls) => {
                let mut stream = TcpStream::connect((host.as_str(), *port)).await?;
                stream.set_nodelay(true)?;
                let Some(tls) = tls else {
                    return Ok(Stream::Tcp(stream));
                };
                let mut request = [0u8; 8];
                request[..4].copy_from_slice(&8u32.to_be_bytes());
                request[4..].copy_from_slice(&SSL_REQUEST_CODE.to_be_bytes());
                wire::send(&mut stream, &request).await?;
                if stream.read_u8().await? != b'S' {
                    return Err(io::Error::other(format!(
                        "the server does not accept TLS, and the datasource asks for tls = \"{}\"",
                        tls.mode
                    )));
                }
                let tls_stream = tls.handshake(Rebindable(Some(stream))).await?;
                Ok(Stream::Tls(Box::new(tls_stream)))
            }
            (Address::Unix(dir, port), _) => {
                let path = dir.join(format!(".s.PGSQL.{port}"));
                Ok(Stream::Unix(UnixStream::connect(path).await?))
            }
        }
    }

    /// The same socket, registered with the runtime this is called on: a pooled connection last
    /// used by a session on another thread would otherwise wake that thread for every read.
    pub fn rebind(self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Tcp(s) => Stream::Tcp(TcpStream::from_std(s.into_std()?)?),
            Stream::Tls(mut s) => {
                s.get_mut().0.rebind()?;
                Stream::Tls(s)
            }
            Stream::Unix(s) => Stream::Unix(UnixStream::from_std(s.into_std()?)?),
        })
    }

    /// Whether the server closed the connection (or sent something unasked) while it was idle.
    pub fn is_closed(&self) -> bool {
        let mut probe = [0u8; 1];
        let result = match self {
            Stream::Tcp(s) => s.try_read(&mut probe),
            Stream::Tls(s) => s.get_ref().0.try_read(&mut probe),
            Stream::Unix(s) => s.try_read(&mut probe),
        };
        !matches!(result, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// The TCP socket under a TLS session, which can move to another runtime without tearing the
/// session down (tokio-rustls offers no way to rebuild a session around a new socket).
pub struct Rebindable(Option<TcpStream>);

impl Rebindable {
    fn socket(&mut self) -> io::Result<&mut TcpStream> {
        self.0.as_mut().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotConnected,
                "the socket was lost while moving it between threads",
            )
        })
    }

    fn rebind(&mut self) -> io::Result<()> {
        let socket = self.0.take().expect("a socket");
        self.0 = Some(TcpStream::from_std(socket.into_std()?)?);
        Ok(())
    }

    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.0 {
            Some(socket) => socket.try_read(buf),
            None => Ok(0),
        }
    }
}

impl AsyncRead for Rebindable {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().socket()?).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rebindable {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.get_mut().socket()?).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().socket()?).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().socket()?).poll_shutdown(cx)
    }
}

delegate_io!(AsyncRead + AsyncWrite for Stream { Tcp, Tls, Unix });

/// The key a client needs to cancel this connection's running query.
#[derive(Clone, Debug)]
pub struct CancelKey {
    pub address: Address,
    /// Cancels travel as the connection did: the key must not cross the network in the clear.
    pub tls: Option<UpstreamTls>,
    pub process_id: i32,
    pub secret: Vec<u8>,
}

pub struct Connection {
    pub stream: Stream,
    /// ParameterStatus values the server reported at startup.
    pub parameters: Vec<(String, String)>,
    pub cancel_key: CancelKey,
}

#[derive(Debug)]
pub enum ConnectError {
    Io(io::Error),
    /// The server refused: its message.
    Refused(String),
    Timeout,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Io(e) => write!(f, "{e}"),
            ConnectError::Refused(m) => f.write_str(m),
            ConnectError::Timeout => f.write_str("timed out"),
        }
    }
}

impl From<io::Error> for ConnectError {
    fn from(e: io::Error) -> Self {
        ConnectError::Io(e)
    }
}

/// Settings every upstream session runs with; clients cannot change them.
const PINNED_OPTIONS: &str =
    "-c standard_conforming_strings=on -c default_transaction_read_only=on";

impl Connection {
    pub async fn open(target: &Target) -> Result<Connection, ConnectError> {
        tokio::time::timeout(target.connect_timeout, Self::open_now(target))
            .await
            .map_err(|_| ConnectError::Timeout)?
    }

    async fn open_now(target: &Target) -> Result<Connection, ConnectError> {
        let mut stream = Stream::open(&target.address, target.tls.as_ref()).await?;
        let mut startup = Startup::new();
        for (k, v) in [
            ("user", target.user.as_str()),
            ("database", target.database.as_str()),
            ("application_name", "tablegate"),
            ("client_encoding", "UTF8"),
        ] {
            startup.parameters.insert(k.into(), v.into());
        }
        let mut options = PINNED_OPTIONS.to_owned();
        for (setting, timeout) in &target.timeouts {
            options.push_str(&format!(" -c {setting}={}", timeout.as_millis()));
        }
        startup.parameters.insert("options".into(), options);
        let mut out = BytesMut::new();
        wire::encode(&startup, &mut out);
        wire::send(&mut stream, &out).await?;

        let mut reader = FrameReader::new();
        let mut scram = None;
        let mut scram_final = None;
        let mut parameters = Vec::new();
        let mut key = None;
        loop {
            let mut frame = reader.next(&mut stream).await?.ok_or_else(|| {
                ConnectError::Refused("the server closed the connection during login".into())
            })?;
            match frame.tag {
                b'R' => {
                    let code = frame.body.get_i32();
                    out.clear();
                    match code {
                        0 => {}
                        3 => {
                            let password = target
                                .password
                                .clone()
                                .ok_or_else(|| needs_password(target))?;
                            wire::encode(&Password::new(password), &mut out);
                        }
                        5 => {
                            let password = target
                                .password
                                .as_deref()
                                .ok_or_else(|| needs_password(target))?;
                            let salt = frame.body.split_to(4);
                            let password = md5_password(&target.user, password, &salt);
                            wire::encode(&Password::new(password), &mut out);
                        }
                        10 => {
                            let password = target
                                .password
                                .clone()
                                .ok_or_else(|| needs_password(target))?;
                            let auth = ScramClientAuth::new(target.user.clone(), password);
                            let (first, waiting) = auth
                                .build_client_first()
                                .map_err(|e| ConnectError::Refused(format!("SCRAM: {e}")))?;
                            wire::encode(
                                &SASLInitialResponse::new(
                                    "SCRAM-SHA-256".into(),
                                    Some(first.into_bytes().into()),
                                ),
                                &mut out,
                            );
                            scram = Some(waiting);
                        }
                        11 => {
                            let waiting = scram.take().ok_or_else(|| {
                                ConnectError::Refused("unexpected SASL message".into())
                            })?;
                            let (last, waiting_final) = waiting
                                .build_client_final(&frame.body)
                                .map_err(|e| ConnectError::Refused(format!("SCRAM: {e}")))?;
                            wire::encode(&SASLResponse::new(last.into_bytes().into()), &mut out);
                            scram_final = Some(waiting_final);
                        }
                        12 => {
                            let waiting = scram_final.take().ok_or_else(|| {
                                ConnectError::Refused("unexpected SASL message".into())
                            })?;
                            waiting.verify_server_final(&frame.body).map_err(|e| {
                                ConnectError::Refused(format!(
                                    "SCRAM: the server's signature is wrong: {e}"
                                ))
                            })?;
                        }
                        other => {
                            return Err(ConnectError::Refused(format!(
                                "the server asks for authentication method {other}, which tablegate does not support"
                            )));
                        }
                    }
                    if !out.is_empty() {
                        wire::send(&mut stream, &out).await?;
                    }
                }
                b'S' => {
                    let name = take_cstring(&mut frame.body)?;
                    let value = take_cstring(&mut frame.body)?;
                    parameters.push((name, value));
                }
                b'K' => {
                    let process_id = frame.body.get_i32();
                    key = Some(CancelKey {
                        address: target.address.clone(),
                        tls: target.tls.clone(),
                        process_id,
                        secret: frame.body.to_vec(),
                    });
                }
                b'E' => return Err(ConnectError::Refused(error_message(frame.body))),
                b'N' | b'v' => {}
                b'Z' => break,
                other => {
                    return Err(ConnectError::Refused(format!(
                        "unexpected message {:?} during login",
                        other as char
                    )));
                }
            }
        }
        Ok(Connection {
            stream,
            parameters,
            cancel_key: key
                .ok_or_else(|| ConnectError::Refused("the server sent no cancel key".into()))?,
        })
    }
}

fn needs_password(target: &Target) -> ConnectError {
    ConnectError::Refused(format!(
        "the server asks for a password for {}, and the datasource configuration has none",
        target.user
    ))
}

fn md5_password(user: &str, password: &str, salt: &[u8]) -> String {
    use md5::{Digest, Md5};
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let inner = hex(&Md5::digest(format!("{password}{user}")));
    let mut outer = Md5::new();
    outer.update(inner.as_bytes());
    outer.update(salt);
    format!("md5{}", hex(&outer.finalize()))
}

/// The primary message of an ErrorResponse body.
pub fn error_message(mut body: BytesMut) -> String {
    let mut message = String::from("error");
    while !body.is_empty() && body[0] != 0 {
        let field = body.get_u8();
        let Ok(value) = take_cstring(&mut body) else {
            break;
        };
        if field == b'M' {
            message = value;
        }
    }
    message
}

/// Sends a CancelRequest for the query running on the connection `key` belongs to.
pub async fn cancel(key: &CancelKey) -> io::Result<()> {
    let mut stream = Stream::open(&key.address, key.tls.as_ref()).await?;
    let mut packet = BytesMut::with_capacity(12 + key.secret.len());
    packet.extend_from_slice(&((12 + key.secret.len()) as u32).to_be_bytes());
    packet.extend_from_slice(&80877102u32.to_be_bytes());
    packet.extend_from_slice(&key.process_id.to_be_bytes());
    packet.extend_from_slice(&key.secret);
    wire::send(&mut stream, &packet).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_matches_postgres() {
        // psql: SELECT 'md5' || md5(md5('secretalice') || 'abcd')
        assert_eq!(
            md5_password("alice", "secret", b"abcd"),
            "md5c90bcafc0a2b54511742383e34d5dc9d"
        );
    }
}
