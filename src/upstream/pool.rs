//! A bounded pool of upstream connections for one datasource (session pooling).
//!
//! A client session leases one connection for its whole life. When the session ends cleanly the
//! connection is reset (`DISCARD ALL`) and goes back to the pool; if the reset fails, or the
//! session ended mid-statement, it is closed. Idle connections the server has closed (a restart,
//! an administrator) are noticed when leased and replaced. A leased connection is registered
//! with the leasing session's thread. A user's sessions hold at most their share of the pool
//! ([`UserShares`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::connection::{ConnectError, Connection, Target};
use super::user_share::{UserShare, UserShares};
use crate::wire::{self, FrameReader};

pub struct Pool {
    target: Target,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
    size: usize,
    shares: UserShares,
}

/// The right to hold one of the pool's connections; give the connection back through it.
pub struct Lease {
    pool: Arc<Pool>,
    _permit: OwnedSemaphorePermit,
    _share: Option<UserShare>,
}

#[derive(Debug)]
pub enum LeaseError {
    /// Every connection is in use for longer than the wait allows.
    Exhausted,
    /// The user's sessions hold their whole share for longer than the wait allows.
    ShareInUse {
        per_user: usize,
    },
    Connect(ConnectError),
}

impl std::fmt::Display for LeaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeaseError::Exhausted => f.write_str("all upstream connections are in use"),
            LeaseError::ShareInUse { per_user } => {
                write!(f, "the user's {per_user} upstream connections are in use")
            }
            LeaseError::Connect(e) => write!(f, "cannot connect upstream: {e}"),
        }
    }
}

impl Pool {
    /// A pool of at most `size` connections, of which one user holds at most `per_user`.
    pub fn new(target: Target, size: usize, per_user: usize) -> Arc<Pool> {
        Arc::new(Pool {
            target,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(size)),
            size,
            shares: UserShares::new(per_user),
        })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Connections leased now.
    pub fn in_use(&self) -> usize {
        self.size - self.permits.available_permits()
    }

    /// The most connections the pool holds at once (`pool_size`).
    pub fn size(&self) -> usize {
        self.size
    }

    pub fn idle(&self) -> usize {
        self.idle.lock().expect("pool lock").len()
    }

    /// A connection for `user`'s session (within the user's share), or for tablegate itself
    /// (`None`: health checks, the first connection), waiting at most `wait` in all.
    pub async fn lease(
        self: &Arc<Self>,
        user: Option<&str>,
        wait: Duration,
    ) -> Result<(Connection, Lease), LeaseError> {
        let deadline = tokio::time::Instant::now() + wait;
        let share = match user {
            Some(user) => Some(
                tokio::time::timeout_at(deadline, self.shares.take(user))
                    .await
                    .map_err(|_| LeaseError::ShareInUse {
                        per_user: self.shares.per_user(),
                    })?,
            ),
            None => None,
        };
        let permit = tokio::time::timeout_at(deadline, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| LeaseError::Exhausted)?
            .expect("the pool's semaphore is never closed");
        loop {
            let candidate = self.idle.lock().expect("pool lock").pop();
            match candidate {
                Some(c) if c.stream.is_closed() => continue,
                Some(mut connection) => {
                    connection.stream = match connection.stream.rebind() {
                        Ok(stream) => stream,
                        Err(_) => continue,
                    };
                    let lease = Lease {
                        pool: self.clone(),
                        _permit: permit,
                        _share: share,
                    };
                    return Ok((connection, lease));
                }
                None => break,
            }
        }
        let connection = Connection::open(&self.target)
            .await
            .map_err(LeaseError::Connect)?;
        let lease = Lease {
            pool: self.clone(),
            _permit: permit,
            _share: share,
        };
        Ok((connection, lease))
    }

    /// Closes idle connections (after an upstream restart, or on shutdown).
    pub fn close_idle(&self) {
        self.idle.lock().expect("pool lock").clear();
    }
}

impl Lease {
    /// Resets the session and returns the connection to the pool; closes it if that fails.
    /// Returns whether the connection went back (the reset is a round trip, so `true` also
    /// says the upstream session works).
    pub async fn give_back(self, mut connection: Connection) -> bool {
        let mut out = BytesMut::new();
        wire::query("DISCARD ALL", &mut out);
        let reset = async {
            wire::send(&mut connection.stream, &out).await?;
            let mut reader = FrameReader::new();
            let mut failed = false;
            loop {
                match reader.next(&mut connection.stream).await? {
                    Some(frame) if frame.tag == b'E' => failed = true,
                    Some(frame) if frame.tag == b'Z' => {
                        return Ok::<bool, std::io::Error>(
                            !failed && frame.body.first() == Some(&b'I') && !reader.has_buffered(),
                        );
                    }
                    Some(_) => {}
                    None => return Ok(false),
                }
            }
        };
        let reset = matches!(
            tokio::time::timeout(Duration::from_secs(5), reset).await,
            Ok(Ok(true))
        );
        if reset {
            self.pool.idle.lock().expect("pool lock").push(connection);
        }
        reset
    }
}
