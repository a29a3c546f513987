//! Damaging bytes the way a coverage-guided fuzzer does: bit flips, interesting bytes, insertions, deletions,
//! truncation, duplicated ranges, overlong varints and stray fields.
use rand::{Rng, seq::IndexedRandom};

use crate::generate::varint;

/// `input` with one to four random mutations.
pub fn mutate(input: &[u8], rng: &mut impl Rng) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        if b.is_empty() {
            b.extend((0..rng.random_range(1..16)).map(|_| rng.random::<u8>()));
            continue;
        }
        let at = rng.random_range(0..b.len());
        match rng.random_range(0..8) {
            0 => b[at] ^= 1 << rng.random_range(0..8),
            1 => b[at] = *[0u8, 1, 0x7f, 0x80, 0xff].choose(rng).unwrap_or(&0),
            2 => {
                let extra: Vec<u8> = (0..rng.random_range(1..8)).map(|_| rng.random()).collect();
                b.splice(at..at, extra);
            }
            3 => {
                let end = (at + rng.random_range(1..16)).min(b.len());
                b.drain(at..end);
            }
            4 => b.truncate(at),
            5 => {
                let end = (at + rng.random_range(1..64)).min(b.len());
                let copy = b[at..end].to_vec();
                b.splice(at..at, copy);
            }
            6 => {
                // An overlong varint (ten bytes of continuation).
                b.splice(at..at, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
            }
            _ => {
                // A stray field: a small field number with a random wire type and a value.
                let mut extra = Vec::new();
                varint((rng.random_range(1..20u64) << 3) | rng.random_range(0..6u64), &mut extra);
                varint(rng.random_range(0..1_000_000), &mut extra);
                b.splice(at..at, extra);
            }
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::StdRng};

    use super::*;

    #[test]
    fn mutations_change_the_input_and_handle_empty_ones() {
        let mut rng = StdRng::seed_from_u64(3);
        let seed = b"\x0a\x03c-1\x10\x05".to_vec();
        let changed = (0..100).filter(|_| mutate(&seed, &mut rng) != seed).count();
        assert!(changed > 90, "{changed} of 100 changed");
        assert!(!mutate(&[], &mut rng).is_empty());
    }
}
