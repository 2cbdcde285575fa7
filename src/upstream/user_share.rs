//! Each user's share of a datasource's pool (`connections_per_user`).
//!
//! A session holds its upstream connection for its whole life, so without a share one user
//! opening `pool_size` sessions would keep every other user out. A user's sessions may hold at
//! most their share of connections at once; another session of that user waits for one of
//! them to come back, as any session waits for a full pool. A user's entry lives only while
//! some session holds or awaits it, so the table is bounded by the sessions themselves.

use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct UserShares {
    per_user: usize,
    held: Arc<DashMap<String, Arc<Semaphore>>>,
}

/// One connection of a user's share, given back when dropped.
pub struct UserShare {
    // Fields drop in this order: the permit, which refers to the user's semaphore, goes
    // before the entry checks whether anything still does.
    _permit: OwnedSemaphorePermit,
    _entry: Entry,
}

/// A session's claim on its user's entry in the table: the last claim to go removes it.
struct Entry {
    held: Arc<DashMap<String, Arc<Semaphore>>>,
    user: String,
}

impl Drop for Entry {
    fn drop(&mut self) {
        // Only the table itself still refers to the semaphore: no session of this user holds
        // or awaits a connection.
        self.held
            .remove_if(&self.user, |_, semaphore| Arc::strong_count(semaphore) == 1);
    }
}

impl UserShares {
    pub fn new(per_user: usize) -> UserShares {
        UserShares {
            per_user,
            held: Arc::new(DashMap::new()),
        }
    }

    /// The most connections one user may hold (`connections_per_user`).
    pub fn per_user(&self) -> usize {
        self.per_user
    }

    /// Waits until `user` (a userid, matched case-insensitively) holds fewer than their share.
    pub async fn take(&self, user: &str) -> UserShare {
        // Declared before the wait, so that an abandoned wait drops it last, after the
        // semaphore it awaited.
        let entry = Entry {
            held: self.held.clone(),
            user: user.to_lowercase(),
        };
        let semaphore = self
            .held
            .entry(entry.user.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_user)))
            .clone();
        let permit = semaphore
            .acquire_owned()
            .await
            .expect("a share's semaphore is never closed");
        UserShare {
            _permit: permit,
            _entry: entry,
        }
    }

    /// Users holding or awaiting a connection now.
    #[cfg(test)]
    fn users(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_user_past_their_share_waits_for_their_own_connection() {
        let shares = UserShares::new(2);
        let first = shares.take("alice").await;
        let _second = shares.take("ALICE").await;
        let third = tokio::time::timeout(Duration::from_millis(50), shares.take("Alice")).await;
        assert!(third.is_err(), "a third connection waited");
        let _sam = tokio::time::timeout(Duration::from_millis(50), shares.take("sam"))
            .await
            .expect("another user is not held up");
        drop(first);
        tokio::time::timeout(Duration::from_millis(50), shares.take("alice"))
            .await
            .expect("a given-back connection goes to the waiting session");
    }

    #[tokio::test]
    async fn entries_leave_with_the_last_session_even_an_abandoned_wait() {
        let shares = UserShares::new(1);
        let held = shares.take("alice").await;
        let waited = tokio::time::timeout(Duration::from_millis(20), shares.take("alice")).await;
        assert!(waited.is_err());
        assert_eq!(shares.users(), 1);
        drop(held);
        assert_eq!(shares.users(), 0);
    }
}
