//! The cap on client connections (`max_client_connections`), and how a connection past it is
//! refused.
//!
//! Every accepted connection takes a slot, from accept until its session ends however it ends:
//! the slot is owned by the session's task, so a return, an error, a panic or a dropped task
//! all give it back. Past the cap a connection gets what PostgreSQL sends past
//! `max_connections`: TLS negotiation and the startup packet as usual, then FATAL 53300 "sorry,
//! too many clients already", and the connection is closed. The answer waits for the startup
//! packet because libpq's default `sslmode=prefer` opens with SSLRequest, and since the fix for
//! CVE-2024-10977 libpq drops an error that answers SSLRequest without showing its message. A
//! cancel request past the cap is still served, as PostgreSQL serves it, so a client can stop
//! its running query while tablegate is full.
//!
//! Refusing that way holds a socket for a moment too, so at most [`REFUSALS_AT_ONCE`] are in
//! progress, each within [`REFUSAL_TIMEOUT`]; past those, the error is written as soon as the
//! connection is accepted and it is closed, which plain-text clients still show.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Fatal;
use super::gate::Gate;
use super::startup::{self, Opening};
use crate::metrics::primitives::Counter;

/// Connections past the cap being answered after their startup packet, at most.
pub const REFUSALS_AT_ONCE: usize = 64;

/// How long a connection past the cap has to send its startup packet (TLS included).
pub const REFUSAL_TIMEOUT: Duration = Duration::from_secs(10);

/// At most one warning per this interval while connections are refused: the metric counts each.
const WARNING_INTERVAL: Duration = Duration::from_secs(60);

pub struct ConnectionLimit {
    max: usize,
    slots: Arc<Semaphore>,
    refusals_in_progress: Arc<Semaphore>,
    refused: Counter,
    last_warning: Mutex<Option<Instant>>,
}

impl ConnectionLimit {
    pub fn new(max: usize) -> Result<ConnectionLimit, String> {
        if max == 0 || max > Semaphore::MAX_PERMITS {
            return Err(format!(
                "max_client_connections must be between 1 and {}; it is {max}",
                Semaphore::MAX_PERMITS
            ));
        }
        Ok(ConnectionLimit {
            max,
            slots: Arc::new(Semaphore::new(max)),
            refusals_in_progress: Arc::new(Semaphore::new(REFUSALS_AT_ONCE)),
            refused: Counter::default(),
            last_warning: Mutex::new(None),
        })
    }

    /// A slot for a new connection, held for as long as the permit lives; none past the cap.
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    /// Connections holding a slot now.
    pub fn open(&self) -> usize {
        self.max - self.slots.available_permits()
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections refused because the cap was reached, since start.
    pub fn refused(&self) -> u64 {
        self.refused.get()
    }

    fn too_many_clients(&self) -> Fatal {
        Fatal::new("53300", "sorry, too many clients already").with_hint(format!(
            "tablegate serves at most {} client connections at once; \
             its operator can raise max_client_connections in tablegate.toml",
            self.max
        ))
    }

    fn count_refusal(&self, peer: SocketAddr) {
        self.refused.inc();
        let Ok(mut last) = self.last_warning.try_lock() else {
            return;
        };
        if last.is_none_or(|at| at.elapsed() >= WARNING_INTERVAL) {
            *last = Some(Instant::now());
            tracing::warn!(
                client = %peer,
                max_client_connections = self.max,
                refused_since_start = self.refused.get(),
                "too many client connections: new ones are refused (53300) until some close"
            );
        }
    }
}

/// Answers a connection that found no slot, and closes it. Never waits: the accept loop calls it.
pub fn refuse(gate: &Arc<Gate>, socket: TcpStream, peer: SocketAddr) {
    let limit = &gate.connections;
    let fatal = limit.too_many_clients();
    let Ok(in_progress) = limit.refusals_in_progress.clone().try_acquire_owned() else {
        limit.count_refusal(peer);
        // Best effort on a new socket: the message fits its empty send buffer.
        let mut out = BytesMut::new();
        fatal.encode(&mut out);
        let _ = socket.try_write(&out);
        return;
    };
    let gate = gate.clone();
    tokio::spawn(async move {
        let _in_progress = in_progress;
        let opened = tokio::time::timeout(REFUSAL_TIMEOUT, startup::open(&gate, socket)).await;
        // A cancel request was served by `open`; only a client asking for a session is refused.
        if let Ok(Opening::Session(mut stream, _, _)) = opened {
            gate.connections.count_refusal(peer);
            fatal.send(&mut stream).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_given_back_when_their_permits_are_dropped() {
        let limit = ConnectionLimit::new(2).unwrap();
        let first = limit.admit().expect("a first slot");
        let second = limit.admit().expect("a second slot");
        assert_eq!(limit.open(), 2);
        assert!(limit.admit().is_none(), "the cap is two");
        drop(first);
        assert_eq!(limit.open(), 1);
        assert!(limit.admit().is_some(), "a slot came back");
        drop(second);
    }

    #[test]
    fn a_cap_of_zero_is_refused_naming_the_setting() {
        let error = ConnectionLimit::new(0).err().unwrap();
        assert!(error.contains("max_client_connections"), "{error}");
    }
}
