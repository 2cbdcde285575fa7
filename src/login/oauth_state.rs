//! OAuth `state` values: each login attempt gets one, it works once, and only for a few minutes,
//! so a callback cannot be replayed or forged from another site.
//!
//! States live in this process's memory, so with several replicas the load balancer must send a
//! login's callback to the replica that started it (sticky sessions), or logins fail with
//! "expired". Outstanding states are capped; the oldest are dropped first.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::random;

/// Outstanding states kept at most.
const MAX_OUTSTANDING: usize = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateRejection {
    /// Never issued, already used, or dropped.
    Unknown,
    Expired,
}

pub struct OAuthStates {
    lifetime: Duration,
    issued: Mutex<HashMap<String, Instant>>,
}

impl OAuthStates {
    pub fn new(lifetime: Duration) -> OAuthStates {
        OAuthStates {
            lifetime,
            issued: Mutex::new(HashMap::new()),
        }
    }

    /// A new state: 32 characters of `[A-Za-z0-9]`, as WeCom requires.
    pub fn issue(&self) -> String {
        let state = random::alphanumeric(32);
        let now = Instant::now();
        let mut issued = self.issued.lock().expect("OAuth states");
        issued.retain(|_, at| now.duration_since(*at) <= self.lifetime);
        while issued.len() >= MAX_OUTSTANDING {
            let oldest = issued
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(s, _)| s.clone())
                .expect("not empty");
            issued.remove(&oldest);
        }
        issued.insert(state.clone(), now);
        state
    }

    /// Uses up `state`.
    pub fn take(&self, state: &str) -> Result<(), StateRejection> {
        let issued_at = self
            .issued
            .lock()
            .expect("OAuth states")
            .remove(state)
            .ok_or(StateRejection::Unknown)?;
        if issued_at.elapsed() > self.lifetime {
            return Err(StateRejection::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_works_once() {
        let states = OAuthStates::new(Duration::from_secs(300));
        let s = states.issue();
        assert_eq!(s.len(), 32);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(states.take(&s), Ok(()));
        assert_eq!(states.take(&s), Err(StateRejection::Unknown));
        assert_eq!(states.take("forged"), Err(StateRejection::Unknown));
    }

    #[test]
    fn a_state_expires() {
        let states = OAuthStates::new(Duration::ZERO);
        let s = states.issue();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(states.take(&s), Err(StateRejection::Expired));
    }
}
