//! Segmentation's rules, pure: features and their windows, clustering, rule segments, campaign targeting.
pub mod clustering;
pub mod features;
pub mod model;
pub mod rules;

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// The day number of a moment (days since the epoch).
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// A stable bucket 0-99 of a customer, salted (e.g. by campaign) so different uses get independent buckets.
pub fn bucket(customer_id: &str, salt: &str) -> u8 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(format!("{salt}/{customer_id}").as_bytes());
    (u16::from_be_bytes([d[0], d[1]]) % 100) as u8
}

#[cfg(test)]
mod tests {
    #[test]
    fn buckets_are_stable_and_spread() {
        assert_eq!(super::bucket("a", "s"), super::bucket("a", "s"));
        let mut counts = [0u32; 10];
        for i in 0..10_000 {
            counts[usize::from(super::bucket(&format!("c{i}"), "x") / 10)] += 1;
        }
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
    }
}
