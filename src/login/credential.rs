//! Login credentials: what a WeCom login hands the user to connect with, as a PostgreSQL
//! password.
//!
//! `tg1.<userid, base64url>.<expiry, Unix seconds>.<HMAC-SHA256, base64url>`: compact, printable,
//! no quoting needed in a connection string, and checkable by any replica that shares the key
//! — no server-side session. The MAC covers a version tag, the userid and the expiry.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const VERSION: &str = "tg1";
/// How every credential starts, so a password field can be told from one.
pub const CREDENTIAL_PREFIX: &str = "tg1.";
/// Keys shorter than this are refused: the MAC is only as strong as its key.
pub const MIN_KEY_LEN: usize = 32;

/// Why a credential was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialRejection {
    Malformed,
    /// Not signed with this key: forged, altered, or the key changed since.
    BadSignature,
    Expired,
}

impl fmt::Display for CredentialRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CredentialRejection::Malformed => "the login credential is malformed",
            CredentialRejection::BadSignature => {
                "the login credential was not issued by this tablegate (or its key changed); log in through WeCom again"
            }
            CredentialRejection::Expired => {
                "the login credential has expired; log in through WeCom again"
            }
        })
    }
}

impl std::error::Error for CredentialRejection {}

/// Issues and checks login credentials with one key.
pub struct CredentialSigner {
    key: Vec<u8>,
    lifetime: Duration,
}

impl fmt::Debug for CredentialSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialSigner")
            .field("key", &"<redacted>")
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl CredentialSigner {
    pub fn new(key: &[u8], lifetime: Duration) -> Result<CredentialSigner, String> {
        if key.len() < MIN_KEY_LEN {
            return Err(format!(
                "[login] credential_key must be at least {MIN_KEY_LEN} characters (e.g. `openssl rand -hex 32`)"
            ));
        }
        Ok(CredentialSigner {
            key: key.to_vec(),
            lifetime,
        })
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// A key for another `purpose`, derived from this one: replicas sharing the credential key
    /// share it, and it tells nothing about the credential key.
    pub fn derived_key(&self, purpose: &str) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC takes keys of any length");
        mac.update(format!("tablegate derived key\n{purpose}").as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    fn mac(&self, userid: &str, expiry: u64) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC takes keys of any length");
        mac.update(format!("{VERSION}\n{userid}\n{expiry}").as_bytes());
        mac
    }

    /// A credential for `userid`, valid for the signer's lifetime from now.
    pub fn issue(&self, userid: &str) -> String {
        self.issue_at(userid, SystemTime::now())
    }

    pub fn issue_at(&self, userid: &str, now: SystemTime) -> String {
        let expiry = unix_seconds(now + self.lifetime);
        let tag = self.mac(userid, expiry).finalize().into_bytes();
        format!(
            "{VERSION}.{}.{expiry}.{}",
            URL_SAFE_NO_PAD.encode(userid),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The userid a credential was issued for, if it is genuine and not expired.
    pub fn verify_login_credential(&self, token: &str) -> Result<String, CredentialRejection> {
        self.verify_at(token, SystemTime::now())
    }

    pub fn verify_at(&self, token: &str, now: SystemTime) -> Result<String, CredentialRejection> {
        let malformed = CredentialRejection::Malformed;
        let mut parts = token.trim().split('.');
        let (Some(VERSION), Some(userid), Some(expiry), Some(tag), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(malformed);
        };
        let userid = URL_SAFE_NO_PAD
            .decode(userid)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or(malformed)?;
        let expiry: u64 = expiry.parse().map_err(|_| malformed)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| malformed)?;
        self.mac(&userid, expiry)
            .verify_slice(&tag)
            .map_err(|_| CredentialRejection::BadSignature)?;
        if unix_seconds(now) >= expiry {
            return Err(CredentialRejection::Expired);
        }
        Ok(userid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> CredentialSigner {
        CredentialSigner::new(&[7u8; 32], Duration::from_secs(600)).unwrap()
    }

    #[test]
    fn a_credential_verifies_for_its_user_until_it_expires() {
        let now = SystemTime::now();
        let token = signer().issue_at("ZhangSan", now);
        assert!(token.starts_with("tg1."));
        assert!(
            token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        );
        assert_eq!(signer().verify_at(&token, now).unwrap(), "ZhangSan");
        assert_eq!(
            signer().verify_at(&token, now + Duration::from_secs(601)),
            Err(CredentialRejection::Expired)
        );
    }

    #[test]
    fn altered_or_foreign_credentials_are_refused() {
        let token = signer().issue("alice");
        let other = CredentialSigner::new(&[8u8; 32], Duration::from_secs(600)).unwrap();
        assert_eq!(
            other.verify_login_credential(&token),
            Err(CredentialRejection::BadSignature)
        );
        let parts: Vec<&str> = token.split('.').collect();
        let as_bob = format!(
            "{}.{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode("bob"),
            parts[2],
            parts[3]
        );
        assert_eq!(
            signer().verify_login_credential(&as_bob),
            Err(CredentialRejection::BadSignature)
        );
        let later = format!("{}.{}.{}.{}", parts[0], parts[1], u64::MAX, parts[3]);
        assert_eq!(
            signer().verify_login_credential(&later),
            Err(CredentialRejection::BadSignature)
        );
        assert_eq!(
            signer().verify_login_credential("password123"),
            Err(CredentialRejection::Malformed)
        );
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(CredentialSigner::new(b"short", Duration::from_secs(1)).is_err());
        assert!(!format!("{:?}", signer()).contains('7'));
    }
}
