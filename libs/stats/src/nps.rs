//! NPS arithmetic: classes (0-6 detractor, 7-8 passive, 9-10 promoter), the score (% promoters − % detractors), its
//! 95 % confidence interval, and the difference of two groups' scores with its interval and significance.
use crate::{Z95, two_sided_p};

/// Fewer answers than this on either side of a difference are never called significant.
pub const MIN_FOR_SIGNIFICANCE: i64 = 10;

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
    /// The NPS of `scores`.
    pub fn of(scores: impl IntoIterator<Item = i32>) -> Self {
        let mut n = Self::default();
        for s in scores {
            n.add(s);
        }
        n
    }

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

    /// The variance of one answer counted +1 (promoter), 0 or -1 (detractor): p + d - (p - d)², p and d the shares.
    fn variance(&self) -> f64 {
        let n = self.responses();
        if n == 0 {
            return 0.0;
        }
        let (p, d) = (self.promoters as f64 / n as f64, self.detractors as f64 / n as f64);
        (p + d - (p - d).powi(2)).max(0.0)
    }

    /// The standard error of the score (in NPS points).
    fn standard_error(&self) -> f64 {
        let n = self.responses();
        if n == 0 { 0.0 } else { 100.0 * (self.variance() / n as f64).sqrt() }
    }

    /// The 95 % confidence interval of the score. Each answer counts +1 (promoter), 0 or -1 (detractor); the NPS is
    /// 100 × their mean, whose standard error is √(var / n) with var = p + d - (p - d)² (p, d the shares). The
    /// normal approximation, clamped to -100..100; one answer or none gives the whole range, since one answer says
    /// nothing of its spread.
    pub fn interval(&self) -> (f64, f64) {
        if self.responses() < 2 {
            return (-100.0, 100.0);
        }
        let half = Z95 * self.standard_error();
        let s = self.score();
        ((s - half).max(-100.0), (s + half).min(100.0))
    }

    /// This group's score minus `other`'s, with the 95 % interval of the difference (the two standard errors
    /// combined, independent groups) and its two-sided significance. Fewer than two answers on either side
    /// decides nothing; fewer than [`MIN_FOR_SIGNIFICANCE`] gives the interval but is never called significant (the
    /// normal approximation says nothing of so few answers: two detractors against two promoters have no spread).
    pub fn minus(&self, other: &Nps) -> Difference {
        let value = self.score() - other.score();
        if self.responses() < 2 || other.responses() < 2 {
            return Difference { value, low: -200.0, high: 200.0, p_value: 1.0 };
        }
        let se = (self.standard_error().powi(2) + other.standard_error().powi(2)).sqrt();
        let d = Difference::normal(value, se);
        if self.responses() < MIN_FOR_SIGNIFICANCE || other.responses() < MIN_FOR_SIGNIFICANCE {
            return Difference { p_value: 1.0, ..d };
        }
        d
    }
}

/// A difference between two groups with its 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Difference {
    /// The difference (first group minus second).
    pub value: f64,
    /// Lower end of the 95 % interval.
    pub low: f64,
    /// Upper end.
    pub high: f64,
    /// Two-sided p-value of "no difference".
    pub p_value: f64,
}

impl Difference {
    /// A difference with standard error `se`, normal approximation. A zero error is a certain difference, unless the
    /// difference is zero too.
    pub fn normal(value: f64, se: f64) -> Self {
        if se <= 0.0 {
            let p_value = if value == 0.0 { 1.0 } else { 0.0 };
            return Self { value, low: value, high: value, p_value };
        }
        Self { value, low: value - Z95 * se, high: value + Z95 * se, p_value: two_sided_p(value / se) }
    }

    /// Whether the interval leaves out zero (p < 0.05).
    pub fn significant(&self) -> bool {
        self.p_value < 0.05
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(Nps::of([10, 9, 9]).score(), 100.0);
        assert_eq!(Nps::of([0, 3, 6]).score(), -100.0);
        assert_eq!(Nps::of([7, 8]).score(), 0.0);
        assert_eq!(Nps::of([]).score(), 0.0);
        // 2 promoters, 1 passive, 1 detractor: 50 % - 25 % = 25.
        assert_eq!(Nps::of([9, 10, 7, 6]).score(), 25.0);
        // Ties at the borders: 6 and 7, 8 and 9.
        assert_eq!(Nps::of([6, 7, 8, 9]).score(), 0.0);
    }

    #[test]
    fn intervals_by_hand() {
        // All promoters: no spread, the interval is the point.
        assert_eq!(Nps::of([10, 9, 9, 10]).interval(), (100.0, 100.0));
        // One answer says nothing of the spread.
        assert_eq!(Nps::of([9]).interval(), (-100.0, 100.0));
        // 2 P, 1 passive, 1 D: p = .5, d = .25, var = .75 - .0625 = .6875, se = √(.6875/4) = .41458, half = 81.26.
        let (lo, hi) = Nps::of([9, 10, 7, 6]).interval();
        assert!((lo - (25.0 - 81.258)).abs() < 0.01, "{lo}");
        assert!((hi - 100.0).abs() < 1e-9, "clamped: {hi}");
        // 100 answers, 60 P, 20 passive, 20 D: NPS 40, var = .8 - .16 = .64, se = .08, half = 1.96 × 8 = 15.68.
        let mut n = Nps { promoters: 60, passives: 20, detractors: 20 };
        let (lo, hi) = n.interval();
        assert!((lo - 24.32).abs() < 1e-3 && (hi - 55.68).abs() < 1e-3, "{lo} {hi}");
        // Four times the sample halves the interval.
        n = Nps { promoters: 240, passives: 80, detractors: 80 };
        let (lo, hi) = n.interval();
        assert!((hi - lo - 15.68).abs() < 1e-3);
    }

    #[test]
    fn differences_by_hand() {
        // A: 60 P / 20 / 20 of 100 → 40, se 8. B: 40 P / 20 / 40 of 100 → 0, var = .8 - 0 = .8, se = √.008 = 8.944.
        let a = Nps { promoters: 60, passives: 20, detractors: 20 };
        let b = Nps { promoters: 40, passives: 20, detractors: 40 };
        let d = a.minus(&b);
        let se = (64.0f64 + 80.0).sqrt(); // 12
        assert!((d.value - 40.0).abs() < 1e-9);
        assert!((d.low - (40.0 - Z95 * se)).abs() < 1e-9 && (d.high - (40.0 + Z95 * se)).abs() < 1e-9);
        // z = 40 / 12 = 3.33: p ≈ 0.00086.
        assert!((d.p_value - 0.000_858).abs() < 1e-5, "{}", d.p_value);
        assert!(d.significant());
        // The same shares on 10 answers each: se = √(6.4 + 8) = 3.79 × √10 … z = 40 / 37.95 = 1.05, not significant.
        let a = Nps { promoters: 6, passives: 2, detractors: 2 };
        let b = Nps { promoters: 4, passives: 2, detractors: 4 };
        assert!(!a.minus(&b).significant());
        // One answer decides nothing; two against two without spread neither.
        assert!(!Nps::of([10]).minus(&Nps::of([0, 0, 0])).significant());
        assert!(!Nps::of([10, 10]).minus(&Nps::of([0, 0])).significant());
        assert!(Nps::of([10; 10]).minus(&Nps::of([0; 10])).significant());
    }
}
