//! The front side: a PostgreSQL server that clients connect to.
//!
//! [`connection_limit`] caps the connections open at once; [`startup`] negotiates TLS and reads
//! the startup packet; [`login_throttle`] limits failed logins per client address; [`auth`]
//! establishes who the client is; [`session`] runs the session, whose [`forwarder`] rewrites
//! every statement and forwards it, while [`relay`] streams results back; [`gate`] holds what
//! sessions share; [`stream`] is the socket
//! types; [`threads`] runs each session on one core's runtime.

pub mod auth;
pub mod connection_limit;
mod forwarder;
pub mod gate;
pub mod login_throttle;
pub mod relay;
pub mod session;
pub mod startup;
pub mod stream;
mod threads;

use std::io;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::wire::{self, Report};
pub use gate::Gate;

/// SQLSTATE connection_failure: a socket failed or closed mid-conversation.
pub const CONNECTION_FAILURE: &str = "08006";

/// SQLSTATE protocol_violation: a message broke the protocol, or the session can no longer follow
/// it.
const PROTOCOL_VIOLATION: &str = "08P01";

/// SQLSTATE too_many_connections: no room now (client connections, logins in progress, upstream
/// connections, or an address's failed logins). Poolers and drivers treat class 53 (insufficient
/// resources) as "try again later", as for PostgreSQL's own "too many connections for role".
const TOO_MANY_CONNECTIONS: &str = "53300";

/// SQLSTATE invalid_authorization_specification: the login is refused before or apart from any
/// password (no user name, no TLS, a service account acting for no one or a disabled user).
const INVALID_AUTHORIZATION: &str = "28000";

/// SQLSTATE feature_not_supported: a protocol version, startup option or replication connection
/// tablegate does not support.
const FEATURE_NOT_SUPPORTED: &str = "0A000";

/// An error that ends the connection, sent to the client as a FATAL ErrorResponse.
#[derive(Debug)]
pub struct Fatal {
    code: String,
    message: String,
    hint: Option<String>,
}

impl Fatal {
    pub fn new(code: &str, message: impl Into<String>) -> Fatal {
        Fatal {
            code: code.to_owned(),
            message: message.into(),
            hint: None,
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Fatal {
        self.hint = Some(hint.into());
        self
    }

    pub fn io(e: io::Error) -> Fatal {
        Fatal::new(CONNECTION_FAILURE, format!("connection failure: {e}"))
    }

    pub fn protocol(message: &str) -> Fatal {
        Fatal::new(PROTOCOL_VIOLATION, message)
    }

    /// A client message could not be read: malformed (a bad length, a string without its NUL
    /// or not UTF-8) is a protocol violation, anything else a connection failure.
    pub fn read(e: io::Error) -> Fatal {
        if e.kind() == io::ErrorKind::InvalidData {
            Fatal::protocol(&format!("invalid message from the client: {e}"))
        } else {
            Fatal::io(e)
        }
    }

    /// The client went away mid-conversation.
    pub fn gone() -> Fatal {
        Fatal::new(CONNECTION_FAILURE, "the client closed the connection")
    }

    pub fn encode(&self, out: &mut BytesMut) {
        Report {
            severity: "FATAL",
            code: &self.code,
            message: &self.message,
            detail: None,
            hint: self.hint.as_deref(),
        }
        .error(out);
    }

    /// Writes the error and shuts the writing side down; a failure to write is not reported,
    /// the connection is ending either way.
    pub async fn send(&self, out: &mut (impl AsyncWrite + Unpin)) {
        let mut buf = BytesMut::new();
        self.encode(&mut buf);
        let _ = wire::send(out, &buf).await;
        let _ = out.shutdown().await;
    }
}

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

/// Accepts clients on `listener` until the task is dropped; past `max_client_connections`, a
/// client is refused ([`TOO_MANY_CONNECTIONS`]) and accepting goes on.
pub async fn serve(gate: Arc<Gate>, listener: TcpListener) -> io::Result<()> {
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        match gate.connections.admit(peer) {
            Ok((slot, login)) => threads::spawn_session(gate.clone(), socket, peer, slot, login),
            Err(why) => connection_limit::refuse(&gate, socket, peer, why),
        }
    }
}
