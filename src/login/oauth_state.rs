//! OAuth `state` values: each login attempt gets one, it works once, and only for a few minutes,
//! so a callback cannot be replayed or forged from another site.
//!
//! A state carries its own proof: a random nonce, its expiry and an HMAC over both, under a key
//! derived from the credential key. Nothing is stored when a login starts — so no flood of
//! `/login/wecom` requests can push a genuine login out, and any replica sharing the key can
//! finish a login another started. Only used states are remembered, until they expire, to make
//! each work once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::random;

const NONCE_LEN: usize = 20;
/// Expiry in Unix milliseconds, zero-padded.
const EXPIRY_LEN: usize = 13;
/// The first 16 bytes of the HMAC, in hex.
const TAG_LEN: usize = 32;
/// Used states remembered at most; past this the earliest to expire are forgotten first (the
/// WeCom code a callback needs works once anyway: this is the second line).
const MAX_USED: usize = 100_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateRejection {
    /// Not issued with this key, or already used.
    Unknown,
    Expired,
}

pub struct OAuthStates {
    key: Vec<u8>,
    lifetime: Duration,
    /// Used states' nonces, with their expiry (Unix milliseconds).
    used: Mutex<HashMap<String, u64>>,
}

fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl OAuthStates {
    pub fn new(key: &[u8], lifetime: Duration) -> OAuthStates {
        OAuthStates {
            key: key.to_vec(),
            lifetime,
            used: Mutex::new(HashMap::new()),
        }
    }

    fn tag(&self, nonce: &str, expiry: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC takes keys of any length");
        mac.update(format!("oauth-state\n{nonce}\n{expiry}").as_bytes());
        mac
    }

    /// A new state: `[A-Za-z0-9]` only, 65 characters (WeCom allows 128).
    pub fn issue(&self) -> String {
        let nonce = random::alphanumeric(NONCE_LEN);
        let expiry = format!(
            "{:0EXPIRY_LEN$}",
            unix_millis(SystemTime::now() + self.lifetime)
        );
        let tag = self.tag(&nonce, &expiry).finalize().into_bytes();
        let hex: String = tag[..TAG_LEN / 2]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{nonce}{expiry}{hex}")
    }

    /// Uses up `state`.
    pub fn take(&self, state: &str) -> Result<(), StateRejection> {
        if state.len() != NONCE_LEN + EXPIRY_LEN + TAG_LEN || !state.is_ascii() {
            return Err(StateRejection::Unknown);
        }
        let (nonce, rest) = state.split_at(NONCE_LEN);
        let (expiry_text, hex) = rest.split_at(EXPIRY_LEN);
        let tag: Option<Vec<u8>> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
            .collect();
        let genuine = tag.is_some_and(|tag| {
            self.tag(nonce, expiry_text)
                .verify_truncated_left(&tag)
                .is_ok()
        });
        let expiry: u64 = expiry_text.parse().map_err(|_| StateRejection::Unknown)?;
        if !genuine {
            return Err(StateRejection::Unknown);
        }
        let now = unix_millis(SystemTime::now());
        if now > expiry {
            return Err(StateRejection::Expired);
        }
        let mut used = self.used.lock().expect("used OAuth states");
        if used.contains_key(nonce) {
            return Err(StateRejection::Unknown);
        }
        if used.len() >= MAX_USED {
            used.retain(|_, until| *until >= now);
            while used.len() >= MAX_USED {
                let first = used
                    .iter()
                    .min_by_key(|(_, until)| **until)
                    .map(|(n, _)| n.clone())
                    .expect("not empty");
                used.remove(&first);
            }
        }
        used.insert(nonce.to_owned(), expiry);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn states(lifetime: Duration) -> OAuthStates {
        OAuthStates::new(&[9u8; 32], lifetime)
    }

    #[test]
    fn a_state_works_once() {
        let states = states(Duration::from_secs(300));
        let s = states.issue();
        assert!(s.len() <= 128);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(states.take(&s), Ok(()));
        assert_eq!(states.take(&s), Err(StateRejection::Unknown));
        assert_eq!(states.take("forged"), Err(StateRejection::Unknown));
    }

    #[test]
    fn a_state_expires() {
        let states = states(Duration::ZERO);
        let s = states.issue();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(states.take(&s), Err(StateRejection::Expired));
    }

    #[test]
    fn altered_or_foreign_states_are_refused() {
        let states = states(Duration::from_secs(300));
        let s = states.issue();
        // A later expiry with the same tag.
        let mut later = s.clone().into_bytes();
        later[NONCE_LEN] = b'9';
        assert_eq!(
            states.take(std::str::from_utf8(&later).unwrap()),
            Err(StateRejection::Unknown)
        );
        let other = OAuthStates::new(&[10u8; 32], Duration::from_secs(300));
        assert_eq!(other.take(&s), Err(StateRejection::Unknown));
        // Non-ASCII of the right length must not panic on slicing.
        assert_eq!(
            states.take(&format!("{}a", "é".repeat(s.len() / 2))),
            Err(StateRejection::Unknown)
        );
    }

    /// Starting logins stores nothing: any number of them leaves every earlier state valid.
    #[test]
    fn a_flood_of_new_logins_pushes_no_state_out() {
        let states = states(Duration::from_secs(300));
        let genuine = states.issue();
        for _ in 0..20_000 {
            states.issue();
        }
        assert_eq!(states.take(&genuine), Ok(()));
    }
}
