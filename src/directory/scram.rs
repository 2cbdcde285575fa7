//! SCRAM-SHA-256 password verifiers in PostgreSQL's text format.
//!
//! The directory never stores a password, only what a SCRAM server needs to check one:
//! `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (RFC 5802 / RFC 7677), exactly as
//! PostgreSQL keeps it in `pg_authid.rolpassword`, so the proxy can run the SCRAM exchange with
//! a client and an operator can compare with PostgreSQL's own verifiers.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// PostgreSQL's default iteration count (`scram_iterations`).
pub const DEFAULT_ITERATIONS: u32 = 4096;
const SALT_LEN: usize = 16;
const PREFIX: &str = "SCRAM-SHA-256$";

#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

impl ScramVerifier {
    /// A verifier for `password` with a fresh random salt.
    pub fn new(password: &str) -> ScramVerifier {
        let mut salt = [0u8; SALT_LEN];
        rand::fill(&mut salt);
        ScramVerifier::with_salt(password, &salt, DEFAULT_ITERATIONS)
    }

    /// A verifier for `password` with the given salt and iteration count.
    pub fn with_salt(password: &str, salt: &[u8], iterations: u32) -> ScramVerifier {
        let salted = salted_password(password, salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        ScramVerifier {
            iterations,
            salt: salt.to_vec(),
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, b"Server Key"),
        }
    }

    /// A verifier no password matches, for a login that has none: its salt and keys derive from
    /// `secret` and the login, so asking twice for the same name gives the same salt, as for a
    /// real user, and different names give different salts (PostgreSQL's `scram_mock_salt`).
    /// The name folds as userids do (ASCII only): found by red-team review, a Unicode fold gave
    /// `\u{212A}evin` (Kelvin sign) the salt of `kevin` only when no user kevin existed.
    pub fn decoy(secret: &[u8], login: &str) -> ScramVerifier {
        let login = super::record::userid_key(login);
        let derive = |purpose: &str| hmac(secret, format!("{purpose}\0{login}").as_bytes());
        ScramVerifier {
            iterations: DEFAULT_ITERATIONS,
            salt: derive("salt")[..SALT_LEN].to_vec(),
            stored_key: derive("stored key"),
            server_key: derive("server key"),
        }
    }

    /// Parses PostgreSQL's text form.
    pub fn parse(text: &str) -> Result<ScramVerifier, String> {
        let malformed = || {
            "not a SCRAM-SHA-256 verifier (expected `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`)".to_string()
        };
        let rest = text.strip_prefix(PREFIX).ok_or_else(malformed)?;
        let (params, keys) = rest.split_once('$').ok_or_else(malformed)?;
        let (iterations, salt) = params.split_once(':').ok_or_else(malformed)?;
        let (stored_key, server_key) = keys.split_once(':').ok_or_else(malformed)?;
        let key = |b64: &str| -> Result<[u8; 32], String> {
            STANDARD
                .decode(b64)
                .ok()
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(malformed)
        };
        Ok(ScramVerifier {
            iterations: iterations.parse().map_err(|_| malformed())?,
            salt: STANDARD.decode(salt).map_err(|_| malformed())?,
            stored_key: key(stored_key)?,
            server_key: key(server_key)?,
        })
    }

    /// Whether `password` is the one this verifier was made from.
    pub fn matches_password(&self, password: &str) -> bool {
        let candidate = ScramVerifier::with_salt(password, &self.salt, self.iterations);
        // Compare through HMAC so the comparison's time does not depend on where keys differ.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.stored_key)
            .expect("HMAC takes keys of any length");
        mac.update(&self.server_key);
        let expected = mac.finalize().into_bytes();
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&candidate.stored_key)
            .expect("HMAC takes keys of any length");
        mac.update(&candidate.server_key);
        mac.verify_slice(&expected).is_ok()
    }
}

impl fmt::Display for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}{}:{}${}:{}",
            self.iterations,
            STANDARD.encode(&self.salt),
            STANDARD.encode(self.stored_key),
            STANDARD.encode(self.server_key)
        )
    }
}

impl fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ScramVerifier(<redacted>)")
    }
}

/// SaltedPassword = Hi(Normalize(password), salt, i), with PostgreSQL's SASLprep rule: a password
/// that SASLprep rejects is used as its raw bytes.
fn salted_password(password: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    let prepared = stringprep::saslprep(password)
        .map(|p| p.into_owned())
        .unwrap_or_else(|_| password.to_owned());
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(prepared.as_bytes(), salt, iterations, &mut out);
    out
}

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoys_are_stable_per_login_and_distinct_between_logins() {
        let secret = b"process secret";
        let a = ScramVerifier::decoy(secret, "Alice");
        assert_eq!(a, ScramVerifier::decoy(secret, "alice"));
        assert_ne!(a.salt, ScramVerifier::decoy(secret, "bob").salt);
        // Folded as the directory folds userids: a Kelvin sign is not a `k`, as no lookup
        // finds `kevin` under `\u{212A}evin`.
        assert_ne!(
            ScramVerifier::decoy(secret, "kevin").salt,
            ScramVerifier::decoy(secret, "\u{212A}evin").salt
        );
        assert_ne!(
            a.salt,
            ScramVerifier::decoy(b"another secret", "alice").salt
        );
        assert_eq!(a.iterations, DEFAULT_ITERATIONS);
        assert!(!a.matches_password(""));
    }

    #[test]
    fn round_trips_through_text_and_checks_passwords() {
        let v = ScramVerifier::new("correct horse");
        let parsed = ScramVerifier::parse(&v.to_string()).unwrap();
        assert_eq!(parsed, v);
        assert!(parsed.matches_password("correct horse"));
        assert!(!parsed.matches_password("Correct horse"));
        assert!(v.to_string().starts_with("SCRAM-SHA-256$4096:"));
    }

    #[test]
    fn debug_never_shows_keys() {
        let v = ScramVerifier::new("pw");
        assert_eq!(format!("{v:?}"), "ScramVerifier(<redacted>)");
    }

    #[test]
    fn rejects_other_formats() {
        assert!(ScramVerifier::parse("md5abcdef").is_err());
        assert!(ScramVerifier::parse("SCRAM-SHA-256$x:AA==$AA==:AA==").is_err());
    }
}
