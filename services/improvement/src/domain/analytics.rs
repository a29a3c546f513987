//! Figures of a theme over consecutive weeks, pure: volume per week, distinct customers, the week-over-week trend, a
//! spike alert against the earlier weeks, the NPS of customers who raised it against everybody else's, the share of
//! VIPs and of high-value customers among them, and the revenue at risk (their 365-day spend).
use std::collections::{BTreeMap, BTreeSet, HashMap};

use rapport_stats::nps::{Difference, Nps};

use super::{DAY_MS, severity_weight};

/// A week.
pub const WEEK_MS: i64 = 7 * DAY_MS;
/// A spike needs at least this many signals in its week.
pub const SPIKE_MIN: i64 = 5;
/// A spike is this many standard deviations above the earlier weeks' mean.
pub const SPIKE_SIGMAS: f64 = 3.0;

/// `weeks` weeks of 7 days ending at `end` (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weeks {
    /// End of the last week (ms, exclusive).
    pub end: i64,
    /// How many weeks.
    pub weeks: usize,
}

impl Weeks {
    /// Start of the first week.
    pub fn start(&self) -> i64 {
        self.end - self.weeks as i64 * WEEK_MS
    }

    /// The week `at` falls in (0 = the first), if inside.
    pub fn index(&self, at: i64) -> Option<usize> {
        if at < self.start() || at >= self.end {
            return None;
        }
        Some(((at - self.start()) / WEEK_MS) as usize)
    }
}

/// What a theme's figures read of one signal.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalFact {
    /// When.
    pub at: i64,
    /// The customer (None: an agent's suggestion).
    pub customer: Option<String>,
    /// `low` … `critical`.
    pub severity: String,
    /// The customer's tier when it was raised.
    pub tier: String,
}

/// An NPS answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Who answered.
    pub customer: String,
    /// 0-10.
    pub score: i32,
    /// When.
    pub at: i64,
}

/// A theme's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// Signals per week, oldest first.
    pub weekly: Vec<i64>,
    /// Signals in the window.
    pub volume: i64,
    /// Distinct customers.
    pub customers: i64,
    /// Last week against the one before, %; 0 when the one before had none.
    pub week_over_week: f64,
    /// Whether last week is a spike.
    pub spike: bool,
    /// What last week had to exceed.
    pub spike_threshold: f64,
    /// NPS of the raisers' answers in the window.
    pub nps_raisers: Nps,
    /// NPS of everybody else's.
    pub nps_others: Nps,
    /// Raisers minus others.
    pub nps_gap: Difference,
    /// Share of its customers whose tier is vip.
    pub vip_share: f64,
    /// Share of its valued customers at or above the high-value threshold.
    pub high_value_share: f64,
    /// Its customers' 365-day spend, summed.
    pub revenue_at_risk: f64,
    /// Customers whose spend is known.
    pub customers_valued: i64,
    /// Mean severity weight of its signals.
    pub mean_severity: f64,
}

/// Whether the last week is a spike over the earlier ones: at least [`SPIKE_MIN`] signals, and above their mean by
/// [`SPIKE_SIGMAS`] standard deviations (population), counting at least √mean as the deviation (a Poisson floor, so
/// a flat history of small counts does not alarm at every bump). Returns the decision and the threshold.
pub fn spike(weekly: &[i64]) -> (bool, f64) {
    let Some((last, earlier)) = weekly.split_last() else { return (false, 0.0) };
    if earlier.is_empty() {
        return (false, 0.0);
    }
    let n = earlier.len() as f64;
    let mean = earlier.iter().sum::<i64>() as f64 / n;
    let sd = (earlier.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
    let threshold = mean + SPIKE_SIGMAS * sd.max(mean.max(1.0).sqrt());
    (*last >= SPIKE_MIN && *last as f64 > threshold, threshold)
}

/// The last week against the one before, in %; 0 when the one before had none.
pub fn week_over_week(weekly: &[i64]) -> f64 {
    match weekly {
        [.., prev, last] if *prev > 0 => 100.0 * (*last - *prev) as f64 / *prev as f64,
        _ => 0.0,
    }
}

/// The figures of one theme's `signals` (those inside `weeks`), with every NPS answer of the window and the
/// customers' known 365-day spend.
pub fn figures(
    signals: &[SignalFact],
    answers: &[Answer],
    spend: &HashMap<String, f64>,
    weeks: Weeks,
    high_value: f64,
) -> Figures {
    let mut weekly = vec![0i64; weeks.weeks];
    // Each customer's tier as its latest signal gave it.
    let mut tiers: BTreeMap<&str, (i64, &str)> = BTreeMap::new();
    let mut severity = 0.0;
    let mut volume = 0;
    for s in signals {
        let Some(w) = weeks.index(s.at) else { continue };
        weekly[w] += 1;
        volume += 1;
        severity += severity_weight(&s.severity);
        if let Some(c) = &s.customer {
            let e = tiers.entry(c.as_str()).or_insert((s.at, s.tier.as_str()));
            if s.at >= e.0 {
                *e = (s.at, s.tier.as_str());
            }
        }
    }
    let raisers: BTreeSet<&str> = tiers.keys().copied().collect();
    let (mut nps_raisers, mut nps_others) = (Nps::default(), Nps::default());
    for a in answers.iter().filter(|a| weeks.index(a.at).is_some()) {
        if raisers.contains(a.customer.as_str()) {
            nps_raisers.add(a.score);
        } else {
            nps_others.add(a.score);
        }
    }
    let customers = raisers.len() as i64;
    let vips = tiers.values().filter(|(_, t)| *t == "vip").count() as i64;
    let valued: Vec<f64> = raisers.iter().filter_map(|c| spend.get(*c).copied()).collect();
    let high = valued.iter().filter(|v| **v >= high_value).count();
    let share = |n: i64, of: i64| if of == 0 { 0.0 } else { n as f64 / of as f64 };
    let (spike, spike_threshold) = spike(&weekly);
    Figures {
        week_over_week: week_over_week(&weekly),
        spike,
        spike_threshold,
        volume,
        customers,
        nps_gap: nps_raisers.minus(&nps_others),
        nps_raisers,
        nps_others,
        vip_share: share(vips, customers),
        high_value_share: share(high as i64, valued.len() as i64),
        revenue_at_risk: valued.iter().sum(),
        customers_valued: valued.len() as i64,
        mean_severity: if volume == 0 { 0.0 } else { severity / volume as f64 },
        weekly,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const END: i64 = 1_767_225_600_000; // 2026-01-01

    fn signal(days_before_end: f64, customer: &str, severity: &str, tier: &str) -> SignalFact {
        SignalFact {
            at: END - (days_before_end * DAY_MS as f64) as i64,
            customer: (!customer.is_empty()).then(|| customer.to_string()),
            severity: severity.into(),
            tier: tier.into(),
        }
    }

    #[test]
    fn spikes_by_hand() {
        // Earlier weeks 10, 12, 8, 10: mean 10, sd √2 = 1.414, Poisson floor √10 = 3.162 → threshold 19.487.
        let (s, t) = spike(&[10, 12, 8, 10, 20]);
        assert!(s && (t - 19.486_833).abs() < 1e-5, "{t}");
        assert!(!spike(&[10, 12, 8, 10, 19]).0);
        // A quiet theme: mean 0, floor 1 → threshold 3; six is a spike, four is under the minimum of five.
        assert!(spike(&[0, 0, 0, 0, 6]).0);
        assert!(!spike(&[0, 0, 0, 4]).0);
        // A noisy history: 2, 30, 2, 30 → mean 16, sd 14 → threshold 58.
        let (s, t) = spike(&[2, 30, 2, 30, 40]);
        assert!(!s && (t - 58.0).abs() < 1e-9);
        assert_eq!(spike(&[7]), (false, 0.0));
        assert_eq!(week_over_week(&[3, 4, 6]), 50.0);
        assert_eq!(week_over_week(&[0, 5]), 0.0);
    }

    #[test]
    fn figures_by_hand() {
        let weeks = Weeks { end: END, weeks: 2 };
        let signals = vec![
            signal(10.0, "ann", "high", "gold"), // week 0
            signal(3.0, "ann", "low", "vip"),    // week 1: ann's latest tier is vip
            signal(2.0, "bob", "critical", "silver"),
            signal(1.0, "", "medium", "unknown"), // a suggestion: counted, no customer
            signal(20.0, "old", "high", "vip"),   // before the window: left out
        ];
        let answers = vec![
            Answer { customer: "ann".into(), score: 3, at: END - DAY_MS },
            Answer { customer: "bob".into(), score: 9, at: END - DAY_MS },
            Answer { customer: "cy".into(), score: 10, at: END - DAY_MS },
            Answer { customer: "di".into(), score: 10, at: END - DAY_MS },
            Answer { customer: "ed".into(), score: 7, at: END - 30 * DAY_MS }, // outside
        ];
        let spend: HashMap<String, f64> = [("ann".to_string(), 900.0), ("cy".to_string(), 50.0)].into();
        let f = figures(&signals, &answers, &spend, weeks, 500.0);
        assert_eq!(f.weekly, vec![1, 3]);
        assert_eq!((f.volume, f.customers), (4, 2));
        assert_eq!(f.week_over_week, 200.0);
        // Raisers ann (3) and bob (9): NPS 0; others cy and di (10, 10): 100.
        assert_eq!((f.nps_raisers.score(), f.nps_others.score()), (0.0, 100.0));
        assert_eq!(f.nps_gap.value, -100.0);
        assert_eq!(f.vip_share, 0.5);
        // Only ann's spend is known among the raisers: one valued, high.
        assert_eq!((f.customers_valued, f.high_value_share, f.revenue_at_risk), (1, 1.0, 900.0));
        // (2 + 0.5 + 3 + 1) / 4.
        assert_eq!(f.mean_severity, 1.625);
    }
}
