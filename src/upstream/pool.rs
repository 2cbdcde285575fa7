//! A bounded pool of upstream connections for one datasource (session pooling).
//!
//! A client session leases one connection for its whole life. When the session ends cleanly the
//! connection is reset (`DISCARD ALL`) and goes back to the pool; if the reset fails, or the
//! session ended mid-statement, it is closed. Idle connections the server has closed (a restart,
//! an administrator) are noticed when leased and replaced. A leased connection is registered
//! with the leasing session's thread.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::connection::{ConnectError, Connection, Target};
use crate::wire::{self, FrameReader};

pub struct Pool {
    target: Target,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
    size: usize,
}

/// The right to hold one of the pool's connections; give the connection back through it.
pub struct Lease {
    pool: Arc<Pool>,
    _permit: OwnedSemaphorePermit,
}

#[derive(Debug)]
pub enum LeaseError {
    /// Every connection is in use for longer than the wait allows.
    Exhausted,
    Connect(ConnectError),
}

impl std::fmt::Display for LeaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeaseError::Exhausted => f.write_str("all upstream connections are in use"),
            LeaseError::Connect(e) => write!(f, "cannot connect upstream: {e}"),
        }
    }
}

impl Pool {
    pub fn new(target: Target, size: usize) -> Arc<Pool> {
        Arc::new(Pool {
            target,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(size)),
            size,
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

    pub async fn lease(
        self: &Arc<Self>,
        wait: Duration,
    ) -> Result<(Connection, Lease), LeaseError> {
        let permit = tokio::time::timeout(wait, self.permits.clone().acquire_owned())
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
