//! `rapport.common.v1.Money` ↔ micro-units (millionths of the currency unit), the one money representation the
//! services compute with.
use rapport_proto::common::v1::Money;

use crate::error::Violations;

/// Micro-units per currency unit.
pub const MICROS: i64 = 1_000_000;

/// The micro-units of `m` (nanos below a micro-unit are dropped); saturates instead of overflowing.
pub fn micros(m: &Money) -> i64 {
    m.units.saturating_mul(MICROS).saturating_add(i64::from(m.nanos / 1000))
}

/// `micros` in `currency`.
pub fn money(micros: i64, currency: &str) -> Money {
    Money {
        currency_code: currency.into(),
        units: micros.div_euclid(MICROS),
        nanos: i32::try_from(micros.rem_euclid(MICROS) * 1000).unwrap_or(0),
    }
}

/// Validates a required, positive amount below a billion units (in `currency` when given) and returns its
/// micro-units; each problem is recorded under `field`.
pub fn positive(v: &mut Violations, field: &str, m: Option<&Money>, currency: Option<&str>) -> i64 {
    let Some(m) = m else {
        v.add(field, "is required");
        return 0;
    };
    match currency {
        Some(c) if m.currency_code != c => {
            v.add(format!("{field}.currency_code"), format!("must be {c}, the programme currency"))
        }
        None if m.currency_code.len() != 3 || !m.currency_code.chars().all(|c| c.is_ascii_uppercase()) => {
            v.add(format!("{field}.currency_code"), "must be a three-letter ISO 4217 code")
        }
        _ => {}
    }
    if !(-999_999_999..=999_999_999).contains(&m.nanos) || (m.units > 0 && m.nanos < 0) || (m.units < 0 && m.nanos > 0)
    {
        v.add(format!("{field}.nanos"), "must be within ±999999999 and have the sign of units");
    }
    let micros = m.units.checked_mul(MICROS).and_then(|u| u.checked_add(i64::from(m.nanos / 1000)));
    match micros {
        Some(x) if x > 0 && m.units < 1_000_000_000 => x,
        _ => {
            v.add(field, "must be positive and below 1000000000 units");
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_validates() {
        let m = money(12_340_000, "EUR");
        assert_eq!((m.units, m.nanos), (12, 340_000_000));
        assert_eq!(micros(&m), 12_340_000);
        let mut v = Violations::new();
        assert_eq!(positive(&mut v, "amount", Some(&m), Some("EUR")), 12_340_000);
        assert!(v.finish().is_ok());
        let mut v = Violations::new();
        positive(&mut v, "amount", Some(&money(-1, "usd")), None);
        assert_eq!(v.len(), 3, "currency, sign of nanos, not positive");
    }
}
