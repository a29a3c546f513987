//! Proportions (a share of a group that did something, e.g. complained) and the difference of two groups' shares.
use crate::{Z95, nps::Difference};

/// `hits` of `total`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Proportion {
    /// How many did it.
    pub hits: i64,
    /// Out of how many.
    pub total: i64,
}

impl Proportion {
    /// `hits` of `total`.
    pub fn new(hits: i64, total: i64) -> Self {
        Self { hits, total }
    }

    /// The share (0 for an empty group).
    pub fn share(&self) -> f64 {
        if self.total <= 0 { 0.0 } else { self.hits as f64 / self.total as f64 }
    }

    /// The Wilson score 95 % interval of the share (good for small groups and shares near 0 or 1).
    pub fn interval(&self) -> (f64, f64) {
        if self.total <= 0 {
            return (0.0, 1.0);
        }
        let (n, p, z) = (self.total as f64, self.share(), Z95);
        let denom = 1.0 + z * z / n;
        let centre = (p + z * z / (2.0 * n)) / denom;
        let half = z * ((p * (1.0 - p) + z * z / (4.0 * n)) / n).sqrt() / denom;
        ((centre - half).max(0.0), (centre + half).min(1.0))
    }

    /// This share minus `other`'s: the 95 % interval of the difference (unpooled standard error) and the p-value of
    /// the pooled two-proportion z-test. An empty group decides nothing.
    pub fn minus(&self, other: &Proportion) -> Difference {
        let value = self.share() - other.share();
        if self.total <= 0 || other.total <= 0 {
            return Difference { value, low: -1.0, high: 1.0, p_value: 1.0 };
        }
        let (p1, n1, p2, n2) = (self.share(), self.total as f64, other.share(), other.total as f64);
        let se = (p1 * (1.0 - p1) / n1 + p2 * (1.0 - p2) / n2).sqrt();
        let pooled = (self.hits + other.hits) as f64 / (n1 + n2);
        let se0 = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
        let p_value = if se0 > 0.0 { crate::two_sided_p(value / se0) } else { 1.0 };
        Difference { value, low: value - Z95 * se, high: value + Z95 * se, p_value }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_wilson_by_hand() {
        let p = Proportion::new(10, 100);
        assert!((p.share() - 0.1).abs() < 1e-12);
        // Wilson, n = 100, p = .1: centre = (.1 + 3.8415/200) / 1.038415 = .11482, half = 1.96 × √((.09 + .0096)/100)
        // / 1.038415 = .05958 → [.0552, .1744].
        let (lo, hi) = p.interval();
        assert!((lo - 0.0552).abs() < 5e-4 && (hi - 0.1744).abs() < 5e-4, "{lo} {hi}");
        assert_eq!(Proportion::new(0, 0).interval(), (0.0, 1.0));
        let (lo, _) = Proportion::new(0, 50).interval();
        assert!(lo.abs() < 1e-12, "{lo}");
    }

    #[test]
    fn differences_by_hand() {
        // 20 of 200 (.10) against 40 of 200 (.20): d = -.10, unpooled se = √(.09/200 + .16/200) = .035355,
        // interval -.10 ± .06930; pooled .15, se0 = √(.15 × .85 × .01) = .035707, z = -2.8006, p = .0051.
        let d = Proportion::new(20, 200).minus(&Proportion::new(40, 200));
        assert!((d.value + 0.10).abs() < 1e-12);
        assert!((d.low - (-0.16930)).abs() < 1e-4 && (d.high - (-0.03070)).abs() < 1e-4, "{:?}", d);
        assert!((d.p_value - 0.0051).abs() < 1e-4, "{}", d.p_value);
        assert!(d.significant());
        // 11 of 100 against 13 of 100: not significant.
        assert!(!Proportion::new(11, 100).minus(&Proportion::new(13, 100)).significant());
        assert!(!Proportion::new(1, 1).minus(&Proportion::new(0, 0)).significant());
    }
}
