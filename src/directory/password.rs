//! Password verifiers in PostgreSQL's SCRAM-SHA-256 format:
//! `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64 parts).
//!
//! A verifier lets tablegate run SCRAM with a client, or check a cleartext password sent over
//! TLS, without ever storing the password.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pgwire::api::auth::sasl::scram::{ScramSecret, gen_salted_password};
use rand::RngCore;

pub const ITERATIONS: usize = 4096;

/// A new verifier for `password`, with a random salt.
pub fn make_verifier(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    verifier_with_salt(password, &salt, ITERATIONS)
}

fn verifier_with_salt(password: &str, salt: &[u8], iterations: usize) -> String {
    let salted = gen_salted_password(password, salt, iterations);
    match ScramSecret::verifier_from_salted_password(salt.to_vec(), salted, iterations) {
        ScramSecret::Verifier {
            salt,
            iterations,
            stored_key,
            server_key,
        } => format!(
            "SCRAM-SHA-256${iterations}:{}${}:{}",
            STANDARD.encode(salt),
            STANDARD.encode(stored_key),
            STANDARD.encode(server_key)
        ),
        ScramSecret::SaltedPassword { .. } => {
            unreachable!("verifier_from_salted_password builds a verifier")
        }
    }
}

/// The secret pgwire's SCRAM server needs, from a verifier string.
pub fn parse_verifier(verifier: &str) -> Option<ScramSecret> {
    let rest = verifier.strip_prefix("SCRAM-SHA-256$")?;
    let (params, keys) = rest.split_once('$')?;
    let (iterations, salt) = params.split_once(':')?;
    let (stored_key, server_key) = keys.split_once(':')?;
    Some(ScramSecret::Verifier {
        salt: STANDARD.decode(salt).ok()?,
        iterations: iterations.parse().ok()?,
        stored_key: STANDARD.decode(stored_key).ok()?,
        server_key: STANDARD.decode(server_key).ok()?,
    })
}

/// Whether `password` matches `verifier` (compared in constant time).
pub fn check_password(verifier: &str, password: &str) -> bool {
    let Some(ScramSecret::Verifier {
        salt,
        iterations,
        stored_key,
        ..
    }) = parse_verifier(verifier)
    else {
        return false;
    };
    let candidate = verifier_with_salt(password, &salt, iterations);
    match parse_verifier(&candidate) {
        Some(ScramSecret::Verifier {
            stored_key: other, ..
        }) => constant_time_eq(&stored_key, &other),
        _ => false,
    }
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifiers_check_their_password_only() {
        let v = make_verifier("correct horse");
        assert!(v.starts_with("SCRAM-SHA-256$4096:"));
        assert!(check_password(&v, "correct horse"));
        assert!(!check_password(&v, "correct horse "));
        assert!(!check_password("garbage", "x"));
    }

    #[test]
    fn postgres_verifiers_are_understood() {
        // Made by PostgreSQL 15: SET password_encryption = 'scram-sha-256'; ALTER ROLE ... PASSWORD 'secret'
        let pg = verifier_with_salt("secret", b"0123456789abcdef", 4096);
        assert!(check_password(&pg, "secret"));
    }
}
