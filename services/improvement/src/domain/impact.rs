//! The before/after of a shipped improvement, pure: over equal windows either side of the ship date, its themes'
//! share of every signal (the complaint rate), and the NPS of the customers who raised them before shipping, from
//! their answers before and after.
use std::collections::BTreeSet;

use rapport_stats::{
    nps::{Difference, Nps},
    proportion::Proportion,
};

use super::DAY_MS;

/// One signal, as the comparison reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Raised {
    /// When.
    pub at: i64,
    /// Whether it counts under one of the improvement's themes.
    pub of_theme: bool,
    /// Who raised it.
    pub customer: Option<String>,
}

/// Before and after.
#[derive(Debug, Clone, PartialEq)]
pub struct Impact {
    /// Days each side.
    pub window_days: i64,
    /// Theme signals of all signals, before.
    pub before: Proportion,
    /// After.
    pub after: Proportion,
    /// After minus before.
    pub rate_change: Difference,
    /// The affected customers' answers before.
    pub nps_before: Nps,
    /// The same customers' answers after.
    pub nps_after: Nps,
    /// After minus before.
    pub nps_change: Difference,
}

/// The windows either side of `shipped_at`: `window_days`, shortened so the one after ends by `now`. None before a
/// whole day has passed.
pub fn window(shipped_at: i64, now: i64, window_days: i64) -> Option<i64> {
    let days = window_days.min((now - shipped_at) / DAY_MS);
    (days >= 1).then_some(days)
}

/// Compares `signals` and `answers` (customer, score, at) either side of `shipped_at` over `days`.
pub fn compare(signals: &[Raised], answers: &[(String, i32, i64)], shipped_at: i64, days: i64) -> Impact {
    let (from, to) = (shipped_at - days * DAY_MS, shipped_at + days * DAY_MS);
    let (mut before, mut after) = (Proportion::default(), Proportion::default());
    let mut affected = BTreeSet::new();
    for s in signals.iter().filter(|s| s.at >= from && s.at < to) {
        let side = if s.at < shipped_at { &mut before } else { &mut after };
        side.total += 1;
        if s.of_theme {
            side.hits += 1;
            if s.at < shipped_at
                && let Some(c) = &s.customer
            {
                affected.insert(c.clone());
            }
        }
    }
    let (mut nps_before, mut nps_after) = (Nps::default(), Nps::default());
    for (_, score, at) in answers.iter().filter(|a| a.2 >= from && a.2 < to && affected.contains(&a.0)) {
        if *at < shipped_at { nps_before.add(*score) } else { nps_after.add(*score) }
    }
    Impact {
        window_days: days,
        rate_change: after.minus(&before),
        nps_change: nps_after.minus(&nps_before),
        before,
        after,
        nps_before,
        nps_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIP: i64 = 1_767_225_600_000;

    #[test]
    fn windows_end_by_now() {
        assert_eq!(window(SHIP, SHIP + 40 * DAY_MS, 28), Some(28));
        assert_eq!(window(SHIP, SHIP + 10 * DAY_MS + 5, 28), Some(10));
        assert_eq!(window(SHIP, SHIP + DAY_MS - 1, 28), None);
    }

    #[test]
    fn before_and_after_by_hand() {
        // Before: 100 signals, 30 of the theme (from c0..c29); after: 100 signals, 10 of the theme.
        let mut signals = Vec::new();
        for i in 0..100 {
            let at = SHIP - DAY_MS + i;
            signals.push(Raised { at, of_theme: i < 30, customer: Some(format!("c{i}")) });
            signals.push(Raised { at: SHIP + i, of_theme: i < 10, customer: Some(format!("n{i}")) });
        }
        // Outside the 7-day windows: ignored.
        signals.push(Raised { at: SHIP - 8 * DAY_MS, of_theme: true, customer: Some("old".into()) });
        // The affected customers c0..c29 answered 2 before and 9 after (10 each side); a stranger's answer is not
        // theirs.
        let mut answers: Vec<(String, i32, i64)> = Vec::new();
        for i in 0..10 {
            answers.push((format!("c{i}"), 2, SHIP - DAY_MS));
            answers.push((format!("c{i}"), 9, SHIP + DAY_MS));
        }
        answers.push(("n5".into(), 0, SHIP + DAY_MS));
        let r = compare(&signals, &answers, SHIP, 7);
        assert_eq!((r.before.hits, r.before.total, r.after.hits, r.after.total), (30, 100, 10, 100));
        // .10 - .30 = -.20; pooled .2, se0 = √(.2 × .8 × .02) = .05657, z = -3.54: significant.
        assert!((r.rate_change.value + 0.20).abs() < 1e-12 && r.rate_change.significant());
        assert_eq!((r.nps_before.score(), r.nps_after.score()), (-100.0, 100.0));
        assert_eq!(r.nps_change.value, 200.0);
        assert!(r.nps_change.significant(), "no spread on either side: a certain difference");
    }
}
