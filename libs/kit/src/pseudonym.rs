//! Keyed pseudonyms of customer ids (HMAC-SHA256): what an erased customer's records are kept under, and what a
//! receiver's tombstone holds. Without the key nobody can go from a pseudonym back to the id, not even by trying
//! every likely id; with it, the same id always gives the same pseudonym, so a late event still meets its tombstone.
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::config::{self, ConfigError};

/// Shortest key accepted, in bytes.
pub const MIN_KEY_LEN: usize = 32;

/// Makes pseudonyms with a secret key.
#[derive(Clone)]
pub struct Pseudonyms {
    key: SecretString,
}

impl std::fmt::Debug for Pseudonyms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonyms(..)")
    }
}

impl Pseudonyms {
    /// With `key` (at least [`MIN_KEY_LEN`] bytes).
    pub fn new(key: SecretString) -> Result<Self, String> {
        if key.expose_secret().len() < MIN_KEY_LEN {
            return Err(format!("the pseudonym key must be at least {MIN_KEY_LEN} bytes"));
        }
        Ok(Self { key })
    }

    /// From `RAPPORT_PSEUDONYM_KEY`. Unset, a fixed development key is used, and only when the service listens on
    /// loopback: a deployed service must be given its own key.
    pub fn from_env(loopback: bool) -> Result<Self, ConfigError> {
        let err = |problem: String| ConfigError { name: "RAPPORT_PSEUDONYM_KEY".into(), problem };
        match config::var("RAPPORT_PSEUDONYM_KEY") {
            Some(k) => Self::new(SecretString::from(k)).map_err(err),
            None if loopback => Ok(Self::development()),
            None => Err(err("required when the service listens beyond loopback".into())),
        }
    }

    /// The development key (tests and the embedded default on loopback).
    pub fn development() -> Self {
        Self { key: SecretString::from("rapport development pseudonym key, loopback only".to_string()) }
    }

    /// A key for another purpose (e.g. `page-tokens`), derived from this one: the same on every replica.
    pub fn derive(&self, purpose: &str) -> Vec<u8> {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.key.expose_secret().as_bytes()) else {
            return Vec::new();
        };
        mac.update(b"derive:");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// Whether `id` has the shape of a pseudonym (what an erased customer's kept records are filed under).
    pub fn is_pseudonym(id: &str) -> bool {
        id.strip_prefix("anon-").is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    }

    /// The pseudonym of `customer_id`: `anon-` and 32 hex digits.
    pub fn of(&self, customer_id: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.key.expose_secret().as_bytes()) else {
            // HMAC takes keys of any length; this branch is unreachable.
            return String::from("anon-");
        };
        mac.update(customer_id.as_bytes());
        let tag = mac.finalize().into_bytes();
        let hex: String = tag.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!("anon-{hex}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_keyed_and_not_the_plain_hash() {
        let a = Pseudonyms::development();
        let b = Pseudonyms::new(SecretString::from("another key that is long enough for hmac".to_string())).unwrap();
        assert_eq!(a.of("alice"), a.of("alice"));
        assert_ne!(a.of("alice"), a.of("bob"));
        assert_ne!(a.of("alice"), b.of("alice"), "the key changes the pseudonym");
        assert!(a.of("alice").starts_with("anon-") && a.of("alice").len() == 37);
        assert!(Pseudonyms::is_pseudonym(&a.of("alice")));
        assert!(!Pseudonyms::is_pseudonym("alice") && !Pseudonyms::is_pseudonym("anon-x"));
        assert!(Pseudonyms::new(SecretString::from("short".to_string())).is_err());
        assert!(format!("{a:?}").contains(".."), "the key never prints");
    }
}
