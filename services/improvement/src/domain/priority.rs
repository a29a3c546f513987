//! An improvement's priority in the RICE manner: reach × impact × confidence ÷ effort. Reach and impact come from
//! what customers said (the analytics), confidence and effort from people; the score keeps its parts.

/// The lowest and highest impact (RICE's scale: 0.25 minimal … 3 massive).
pub const IMPACT_RANGE: (f64, f64) = (0.25, 3.0);
/// How far back reach counts customers, in weeks (91 days).
pub const REACH_WEEKS: usize = 13;

/// A score and its parts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// reach × impact × confidence ÷ effort.
    pub score: f64,
    /// Distinct customers who raised its themes in the last [`REACH_WEEKS`] weeks.
    pub reach: i64,
    /// The themes' mean severity weight × (1 + VIP share), within [`IMPACT_RANGE`].
    pub impact: f64,
    /// Mean severity weight of those signals.
    pub mean_severity: f64,
    /// Share of VIPs among those customers.
    pub vip_share: f64,
    /// 0-1.
    pub confidence: f64,
    /// Person-weeks (> 0).
    pub effort_weeks: f64,
}

/// The score of an improvement reaching `reach` customers whose signals weigh `mean_severity` on average, a
/// `vip_share` of them VIPs, estimated with `confidence` at `effort_weeks`.
pub fn score(reach: i64, mean_severity: f64, vip_share: f64, confidence: f64, effort_weeks: f64) -> Score {
    let impact = (mean_severity * (1.0 + vip_share)).clamp(IMPACT_RANGE.0, IMPACT_RANGE.1);
    let score = if effort_weeks > 0.0 { reach as f64 * impact * confidence / effort_weeks } else { 0.0 };
    Score { score, reach, impact, mean_severity, vip_share, confidence, effort_weeks }
}

/// Orders scored items, highest first; ties by id.
pub fn rank<T>(items: &mut [(String, Score, T)]) {
    items.sort_by(|a, b| b.1.score.total_cmp(&a.1.score).then(a.0.cmp(&b.0)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_by_hand() {
        // 120 customers, severity 1.25, a fifth VIPs: impact 1.25 × 1.2 = 1.5; × 0.8 ÷ 4 weeks → 36.
        let s = score(120, 1.25, 0.2, 0.8, 4.0);
        assert!((s.impact - 1.5).abs() < 1e-12 && (s.score - 36.0).abs() < 1e-9, "{s:?}");
        // Critical and all VIPs: 3 × 2 = 6, capped at 3.
        assert_eq!(score(10, 3.0, 1.0, 1.0, 1.0).impact, 3.0);
        // Nobody reached: the floor impact, score 0.
        let none = score(0, 0.0, 0.0, 0.5, 2.0);
        assert_eq!((none.impact, none.score), (0.25, 0.0));
    }

    #[test]
    fn ranking_puts_the_best_ratio_first() {
        // A: 200 × 1 × 0.5 / 10 = 10. B: 50 × 2 × 0.9 / 3 = 30. C: 50 × 2 × 0.9 / 3 = 30, after B by id.
        let mut items = vec![
            ("a".to_string(), score(200, 1.0, 0.0, 0.5, 10.0), ()),
            ("c".to_string(), score(50, 2.0, 0.0, 0.9, 3.0), ()),
            ("b".to_string(), score(50, 2.0, 0.0, 0.9, 3.0), ()),
        ];
        rank(&mut items);
        let order: Vec<&str> = items.iter().map(|i| i.0.as_str()).collect();
        assert_eq!(order, vec!["b", "c", "a"]);
        assert!((items[0].1.score - 30.0).abs() < 1e-9 && (items[2].1.score - 10.0).abs() < 1e-9);
    }
}
