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
//!
//! One client address (an IPv4 address, an IPv6 /64) may have at most
//! [`LOGINS_PER_ADDRESS`] connections that have not logged in yet, and
//! [`REFUSALS_PER_ADDRESS`] refusals in progress: one host cannot fill the cap with logins it
//! never finishes, nor take every refusal slot so that others' cancel requests go unserved.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::gate::Gate;
use super::login_throttle::Source;
use super::startup::{self, Opening};
use super::{Fatal, TOO_MANY_CONNECTIONS};
use crate::metrics::primitives::Counter;

/// Connections past the cap being answered after their startup packet, at most.
pub const REFUSALS_AT_ONCE: usize = 64;

/// How long a connection past the cap has to send its startup packet (TLS included).
pub const REFUSAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections from one address not yet logged in, at most: room for a connection pool
/// opening at once, or an office behind one NAT address.
pub const LOGINS_PER_ADDRESS: usize = 256;

/// Refusals in progress for one address, at most.
pub const REFUSALS_PER_ADDRESS: usize = 4;

/// At most one warning per this interval while connections are refused: the metric counts each.
const WARNING_INTERVAL: Duration = Duration::from_secs(60);

pub struct ConnectionLimit {
    max: usize,
    slots: Arc<Semaphore>,
    logins: PerAddress,
    refusals_in_progress: Arc<Semaphore>,
    refusals_by_address: PerAddress,
    refused: Counter,
    refused_logins: Counter,
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
            logins: PerAddress::new(LOGINS_PER_ADDRESS),
            refusals_in_progress: Arc::new(Semaphore::new(REFUSALS_AT_ONCE)),
            refusals_by_address: PerAddress::new(REFUSALS_PER_ADDRESS),
            refused: Counter::default(),
            refused_logins: Counter::default(),
            last_warning: Mutex::new(None),
        })
    }

    /// A slot for a new connection from `peer`, held for as long as the permit lives, and its
    /// place among the address's logins, until the login ends; or why there is none.
    pub fn admit(
        &self,
        peer: SocketAddr,
    ) -> Result<(OwnedSemaphorePermit, AddressClaim), NotAdmitted> {
        let login = self.logins.claim(peer).ok_or(NotAdmitted::TooManyLogins)?;
        let slot = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| NotAdmitted::TooManyClients)?;
        Ok((slot, login))
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

    /// Connections refused because their address had too many logins in progress, since start.
    pub fn refused_logins(&self) -> u64 {
        self.refused_logins.get()
    }

    fn count_refusal(&self, peer: SocketAddr, why: NotAdmitted) {
        if why == NotAdmitted::TooManyLogins {
            self.refused_logins.inc();
            return;
        }
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

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotAdmitted {
    /// `max_client_connections` are open.
    TooManyClients,
    /// Its address has [`LOGINS_PER_ADDRESS`] connections not logged in yet.
    TooManyLogins,
}

impl NotAdmitted {
    fn fatal(self, limit: &ConnectionLimit, peer: SocketAddr) -> Fatal {
        match self {
            NotAdmitted::TooManyClients => Fatal::new(TOO_MANY_CONNECTIONS, "sorry, too many clients already")
                .with_hint(format!(
                    "tablegate serves at most {} client connections at once; \
                     its operator can raise max_client_connections in tablegate.toml",
                    limit.max
                )),
            NotAdmitted::TooManyLogins => Fatal::new(
                TOO_MANY_CONNECTIONS,
                format!("too many connections from {} are logging in at once", peer.ip()),
            )
            .with_hint(format!(
                "one address may have at most {LOGINS_PER_ADDRESS} connections that have not logged in yet; finish or close those first"
            )),
        }
    }
}

/// Answers a connection that was not admitted, and closes it. Never waits: the accept loop
/// calls it.
pub fn refuse(gate: &Arc<Gate>, socket: TcpStream, peer: SocketAddr, why: NotAdmitted) {
    let limit = &gate.connections;
    let fatal = why.fatal(limit, peer);
    let in_progress = limit.refusals_by_address.claim(peer).and_then(|claim| {
        let permit = limit
            .refusals_in_progress
            .clone()
            .try_acquire_owned()
            .ok()?;
        Some((claim, permit))
    });
    let Some(in_progress) = in_progress else {
        limit.count_refusal(peer, why);
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
            gate.connections.count_refusal(peer, why);
            fatal.send(&mut stream).await;
        }
    });
}

/// Counts of something per client address (as the login throttle tells addresses apart), each
/// at most a limit.
pub struct PerAddress {
    limit: usize,
    counts: Arc<Mutex<HashMap<Source, usize>>>,
}

impl PerAddress {
    pub fn new(limit: usize) -> PerAddress {
        PerAddress {
            limit,
            counts: Arc::default(),
        }
    }

    /// One more for `peer`'s address, until the claim is dropped; none at the limit.
    pub fn claim(&self, peer: SocketAddr) -> Option<AddressClaim> {
        let source = Source::address(peer.ip());
        let mut counts = self.counts.lock().expect("per-address counts");
        let count = counts.entry(source).or_default();
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(AddressClaim {
            source,
            counts: self.counts.clone(),
        })
    }
}

/// One of an address's counted connections; dropping it gives the place back.
pub struct AddressClaim {
    source: Source,
    counts: Arc<Mutex<HashMap<Source, usize>>>,
}

impl Drop for AddressClaim {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().expect("per-address counts");
        if let Some(count) = counts.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 5000)
    }

    #[test]
    fn slots_are_given_back_when_their_permits_are_dropped() {
        let limit = ConnectionLimit::new(2).unwrap();
        let first = limit.admit(peer("10.0.0.1")).expect("a first slot");
        let second = limit.admit(peer("10.0.0.1")).expect("a second slot");
        assert_eq!(limit.open(), 2);
        let refused = limit.admit(peer("10.0.0.2")).err().expect("the cap is two");
        assert_eq!(refused, NotAdmitted::TooManyClients);
        drop(first);
        assert_eq!(limit.open(), 1);
        assert!(limit.admit(peer("10.0.0.2")).is_ok(), "a slot came back");
        drop(second);
    }

    #[test]
    fn one_address_holds_at_most_its_share_of_logins_in_progress() {
        let limit = ConnectionLimit::new(10 * LOGINS_PER_ADDRESS).unwrap();
        let mut held: Vec<_> = (0..LOGINS_PER_ADDRESS)
            .map(|_| limit.admit(peer("10.0.0.1")).expect("within the share"))
            .collect();
        let refused = limit.admit(peer("10.0.0.1")).err().expect("past the share");
        assert_eq!(refused, NotAdmitted::TooManyLogins);
        assert!(
            limit.admit(peer("::ffff:10.0.0.1")).is_err(),
            "the same address, mapped"
        );
        assert!(limit.admit(peer("10.0.0.2")).is_ok(), "another address");
        // Logged in: the login's place comes back, the connection keeps its slot.
        let (slot, login) = held.pop().unwrap();
        drop(login);
        assert!(limit.admit(peer("10.0.0.1")).is_ok());
        drop(slot);
        assert_eq!(limit.open(), LOGINS_PER_ADDRESS - 1);
    }

    #[test]
    fn a_cap_of_zero_is_refused_naming_the_setting() {
        let error = ConnectionLimit::new(0).err().unwrap();
        assert!(error.contains("max_client_connections"), "{error}");
    }
}
