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

/// The class of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NpsClass {
    /// 0 to 6.
    Detractor,
    /// 7 or 8.
    Passive,
    /// 9 or 10.
    Promoter,
}

impl NpsClass {
    /// The class of `score` (0 to 10).
    pub fn of(score: i32) -> Self {
        match score {
            9.. => Self::Promoter,
            7 | 8 => Self::Passive,
            _ => Self::Detractor,
        }
    }
}

/// Counts of a set of answers and their NPS.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Nps {
    /// Answers 9-10.
    pub promoters: i64,
    /// Answers 7-8.
    pub passives: i64,
    /// Answers 0-6.
    pub detractors: i64,
}

impl Nps {
    /// Adds one answer.
    pub fn add(&mut self, score: i32) {
        self.add_n(score, 1);
    }

    /// Adds `n` answers of `score`.
    pub fn add_n(&mut self, score: i32, n: i64) {
        match NpsClass::of(score) {
            NpsClass::Promoter => self.promoters += n,
            NpsClass::Passive => self.passives += n,
            NpsClass::Detractor => self.detractors += n,
        }
    }

    /// All answers.
    pub fn responses(&self) -> i64 {
        self.promoters + self.passives + self.detractors
    }

    /// % promoters - % detractors (-100 to 100); 0 without answers.
    pub fn score(&self) -> f64 {
        let n = self.responses();
        if n == 0 {
            return 0.0;
        }
        100.0 * (self.promoters - self.detractors) as f64 / n as f64
    }

    /// The 95 % confidence interval of the score. Each answer counts +1 (promoter), 0 or -1 (detractor); the NPS is
    /// 100 × their mean, whose standard error is √(var / n) with var = p + d - (p - d)² (p, d the shares). The
    /// normal approximation, clamped to -100..100; one answer or none gives the whole range, since one answer says
    /// nothing of its spread.
    pub fn interval(&self) -> (f64, f64) {
        let n = self.responses();
        if n < 2 {
            return (-100.0, 100.0);
        }
        let (p, d) = (self.promoters as f64 / n as f64, self.detractors as f64 / n as f64);
        let var = (p + d - (p - d).powi(2)).max(0.0);
        let half = 1.96 * (var / n as f64).sqrt() * 100.0;
        let s = self.score();
        ((s - half).max(-100.0), (s + half).min(100.0))
    }
}

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

    fn of(scores: &[i32]) -> Nps {
        let mut n = Nps::default();
        for s in scores {
            n.add(*s);
        }
        n
    }

    #[test]
    fn classes_split_at_6_7_and_8_9() {
        assert_eq!(NpsClass::of(0), NpsClass::Detractor);
        assert_eq!(NpsClass::of(6), NpsClass::Detractor);
        assert_eq!(NpsClass::of(7), NpsClass::Passive);
        assert_eq!(NpsClass::of(8), NpsClass::Passive);
        assert_eq!(NpsClass::of(9), NpsClass::Promoter);
        assert_eq!(NpsClass::of(10), NpsClass::Promoter);
    }

    #[test]
    fn scores_by_hand() {
        assert_eq!(of(&[10, 9, 9]).score(), 100.0);
        assert_eq!(of(&[0, 3, 6]).score(), -100.0);
        assert_eq!(of(&[7, 8]).score(), 0.0);
        assert_eq!(of(&[]).score(), 0.0);
        // 2 promoters, 1 passive, 1 detractor: 50 % - 25 % = 25.
        assert_eq!(of(&[9, 10, 7, 6]).score(), 25.0);
        // Ties at the borders: 6 and 7, 8 and 9.
        assert_eq!(of(&[6, 7, 8, 9]).score(), 0.0);
    }

    #[test]
    fn intervals_by_hand() {
        // All promoters: no spread, the interval is the point.
        assert_eq!(of(&[10, 9, 9, 10]).interval(), (100.0, 100.0));
        // One answer says nothing of the spread.
        assert_eq!(of(&[9]).interval(), (-100.0, 100.0));
        // 2 P, 1 passive, 1 D: p = .5, d = .25, var = .75 - .0625 = .6875, se = √(.6875/4) = .41458, half = 81.26.
        let (lo, hi) = of(&[9, 10, 7, 6]).interval();
        assert!((lo - (25.0 - 81.258)).abs() < 0.01, "{lo}");
        assert!((hi - 100.0).abs() < 1e-9, "clamped: {hi}");
        // 100 answers, 60 P, 20 passive, 20 D: NPS 40, var = .8 - .16 = .64, se = .08, half = 15.68.
        let mut n = Nps { promoters: 60, passives: 20, detractors: 20 };
        let (lo, hi) = n.interval();
        assert!((lo - 24.32).abs() < 1e-9 && (hi - 55.68).abs() < 1e-9, "{lo} {hi}");
        // Four times the sample halves the interval.
        n = Nps { promoters: 240, passives: 80, detractors: 80 };
        let (lo, hi) = n.interval();
        assert!((hi - lo - 15.68).abs() < 1e-9);
    }

    #[test]
    fn fatigue_and_days() {
        assert_eq!(next_allowed(1_000, 7), 1_000 + 7 * DAY_MS);
        assert_eq!(day_key(0), "1970-01-01");
        assert_eq!(day_key(1_767_225_600_000), "2026-01-01");
        assert_eq!(day_key(1_767_225_600_000 - 1), "2025-12-31");
        assert_eq!(day_key(951_782_400_000), "2000-02-29");
    }
}
