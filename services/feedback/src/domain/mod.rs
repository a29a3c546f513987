//! Feedback rules, pure: no IO, no wire format, no database. NPS arithmetic with its confidence interval, and when a
//! customer may be surveyed again; cases (`cases.rs`), their themes (`themes.rs`), routing (`routing.rs`) and SLA
//! clocks (`sla.rs`).

pub mod actions;
pub mod barometer;
pub mod cases;
pub mod report;
pub mod routing;
pub mod sla;
pub mod themes;

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;
/// The question every NPS survey asks.
pub const QUESTION: &str = "Would you recommend us to a friend or relative?";
/// Default waiting time between two surveys of one customer.
pub const DEFAULT_WAIT_DAYS: i64 = 7;
/// Default time a survey may be answered.
pub const DEFAULT_VALID_DAYS: i64 = 14;

pub use rapport_stats::nps::{Nps, NpsClass};

/// When a customer last surveyed at `last` (ms) may be surveyed again, waiting `wait_days`.
pub fn next_allowed(last: i64, wait_days: i64) -> i64 {
    last.saturating_add(wait_days.saturating_mul(DAY_MS))
}

/// The UTC day (`YYYY-MM-DD`) of `ms`.
pub fn day_key(ms: i64) -> String {
    let days = ms.div_euclid(DAY_MS);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fatigue_and_days() {
        assert_eq!(next_allowed(1_000, 7), 1_000 + 7 * DAY_MS);
        assert_eq!(day_key(0), "1970-01-01");
        assert_eq!(day_key(1_767_225_600_000), "2026-01-01");
        assert_eq!(day_key(1_767_225_600_000 - 1), "2025-12-31");
        assert_eq!(day_key(951_782_400_000), "2000-02-29");
    }
}
