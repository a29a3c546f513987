//! AIP-158 pagination: page sizes with bounds and opaque page tokens bound to the query they came from. A token is
//! tagged with a keyed MAC (the key every replica of a service shares, set at start-up with [`set_key`]), so a
//! caller can neither forge one nor move it to another query.
use std::sync::OnceLock;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{ApiError, ErrorCode, Violations};

/// Page size bounds of a list RPC.
#[derive(Debug, Clone, Copy)]
pub struct PageBounds {
    /// Used when the caller sends 0.
    pub default: u64,
    /// Larger requests are served this many.
    pub max: u64,
}

impl PageBounds {
    /// The effective page size: 0 → default, > max → max, negative → INVALID_ARGUMENT.
    pub fn size(self, requested: i32, v: &mut Violations) -> u64 {
        match requested {
            n if n < 0 => {
                v.add("page_size", "must not be negative");
                self.default
            }
            0 => self.default,
            n => u64::try_from(n).unwrap_or(self.max).min(self.max),
        }
    }
}

static KEY: OnceLock<Vec<u8>> = OnceLock::new();

/// Sets the key of this process's page tokens (once; later calls are ignored). Replicas of a service must share
/// it, so a token from one is accepted by the others: services derive it from their secret pseudonym key. Without
/// it, a random key per process is used.
pub fn set_key(key: Vec<u8>) {
    let _ = KEY.set(key);
}

fn key() -> &'static [u8] {
    KEY.get_or_init(|| {
        use rand::Rng;
        rand::rng().random::<[u8; 32]>().to_vec()
    })
}

fn tag(query: &str, cursor: i64) -> [u8; 8] {
    let mut out = [0u8; 8];
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key()) else {
        return out;
    };
    mac.update(format!("rapport-page:{query}:{cursor}").as_bytes());
    out.copy_from_slice(&mac.finalize().into_bytes()[..8]);
    out
}

/// Splits rows fetched with `limit + 1` into the page and the cursor of the next one (the last row's), if more.
pub fn split<T>(mut rows: Vec<T>, limit: u64, cursor: impl Fn(&T) -> i64) -> (Vec<T>, Option<i64>) {
    if rows.len() as u64 > limit {
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next = rows.last().map(cursor);
        (rows, next)
    } else {
        (rows, None)
    }
}

/// The token for the page after `cursor` of `query` (the list request's filter, e.g. the customer id).
pub fn encode(query: &str, cursor: i64) -> String {
    let mut bytes = cursor.to_be_bytes().to_vec();
    bytes.extend_from_slice(&tag(query, cursor));
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The cursor in `token`; empty → None. A token that was altered or belongs to another query is refused.
pub fn decode(query: &str, token: &str) -> Result<Option<i64>, ApiError> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || {
        let mut e = ApiError::new(ErrorCode::InvalidArgument, "INVALID_PAGE_TOKEN", "invalid page_token");
        e.violations.push(("page_token".into(), "is not a token returned for this query".into()));
        e
    };
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    if bytes.len() != 16 {
        return Err(bad());
    }
    let mut c = [0u8; 8];
    c.copy_from_slice(&bytes[..8]);
    let cursor = i64::from_be_bytes(c);
    if bytes[8..] != tag(query, cursor) {
        return Err(bad());
    }
    Ok(Some(cursor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_tampering() {
        let t = encode("c-1", 42);
        assert_eq!(decode("c-1", &t).unwrap(), Some(42));
        assert_eq!(decode("c-1", "").unwrap(), None);
        assert_eq!(decode("c-2", &t).unwrap_err().reason, "INVALID_PAGE_TOKEN");
        let mut bytes = URL_SAFE_NO_PAD.decode(&t).unwrap();
        bytes[7] ^= 1;
        assert!(decode("c-1", &URL_SAFE_NO_PAD.encode(bytes)).is_err());
        assert!(decode("c-1", "!!!").is_err());
        // Without the key, a token made the old way (an unkeyed hash of the query and cursor) is refused.
        use sha2::Digest;
        let d = Sha256::digest(b"rapport-page:c-1:43");
        let mut forged = 43i64.to_be_bytes().to_vec();
        forged.extend_from_slice(&d[..8]);
        assert!(decode("c-1", &URL_SAFE_NO_PAD.encode(forged)).is_err());
    }

    #[test]
    fn split_keeps_the_page_and_points_past_it() {
        assert_eq!(split(vec![1, 2, 3], 2, |x| *x), (vec![1, 2], Some(2)));
        assert_eq!(split(vec![1, 2], 2, |x| *x), (vec![1, 2], None));
        assert_eq!(split(Vec::<i64>::new(), 2, |x| *x), (vec![], None));
    }

    #[test]
    fn sizes_are_bounded() {
        let b = PageBounds { default: 50, max: 500 };
        let mut v = Violations::new();
        assert_eq!(b.size(0, &mut v), 50);
        assert_eq!(b.size(7, &mut v), 7);
        assert_eq!(b.size(i32::MAX, &mut v), 500);
        assert!(v.finish().is_ok());
        let mut v = Violations::new();
        b.size(-1, &mut v);
        assert!(v.finish().is_err());
    }
}
