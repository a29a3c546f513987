//! Care reporting, pure: first-response and resolution times (median, 90th percentile), SLA attainment, the share
//! answered within the half-day target, and the first-response distribution, for one group of cases.
use super::sla::ViewState;

/// The B2C promise: an answer within half a day (wall-clock).
pub const HALF_DAY_MS: i64 = 12 * 3_600_000;
/// Upper bounds (ms) of the first-response buckets; a last bucket takes the rest, and unanswered cases count apart.
pub const BUCKETS_MS: [i64; 5] = [3_600_000, 4 * 3_600_000, HALF_DAY_MS, 24 * 3_600_000, 72 * 3_600_000];

/// What reporting needs of one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaseTimes {
    /// Wall-clock time to the first answer, if answered.
    pub first_response: Option<i64>,
    /// Wall-clock time to resolution, if resolved.
    pub resolution: Option<i64>,
    /// The first-response clock now.
    pub first_state: ViewState,
    /// The resolution clock now.
    pub resolution_state: ViewState,
}

/// The figures of a group of cases.
#[derive(Debug, Clone, PartialEq)]
pub struct CareStats {
    /// Cases.
    pub cases: i64,
    /// Answered.
    pub answered: i64,
    /// Resolved.
    pub resolved: i64,
    /// First-response time, median and 90th percentile (answered cases).
    pub first_response_p50: Option<i64>,
    /// 90th percentile.
    pub first_response_p90: Option<i64>,
    /// Resolution time, median.
    pub resolution_p50: Option<i64>,
    /// 90th percentile.
    pub resolution_p90: Option<i64>,
    /// Share (0-1) of cases with no breached clock.
    pub sla_attainment: f64,
    /// Share (0-1) of cases answered within half a day (unanswered ones count against).
    pub within_half_day: f64,
    /// First-response distribution: one count per bucket of [`BUCKETS_MS`], then over the last bound, then
    /// unanswered.
    pub distribution: Vec<i64>,
}

/// The `p`-th percentile (0 < p ≤ 1) by nearest rank: the smallest value with at least `p` of the values at or
/// below it. Linear time (selection, not a sort).
pub fn percentile(values: &[i64], p: f64) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    let n = values.len();
    let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
    let mut v = values.to_vec();
    let (_, nth, _) = v.select_nth_unstable(rank - 1);
    Some(*nth)
}

impl CareStats {
    /// The figures of `cases`.
    pub fn of(cases: &[CaseTimes]) -> Self {
        let firsts: Vec<i64> = cases.iter().filter_map(|c| c.first_response).collect();
        let resolutions: Vec<i64> = cases.iter().filter_map(|c| c.resolution).collect();
        let n = cases.len() as i64;
        let share = |k: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
        let attained = cases
            .iter()
            .filter(|c| c.first_state != ViewState::Breached && c.resolution_state != ViewState::Breached)
            .count();
        let mut distribution = vec![0i64; BUCKETS_MS.len() + 2];
        for c in cases {
            let slot = match c.first_response {
                Some(t) => BUCKETS_MS.iter().position(|b| t <= *b).unwrap_or(BUCKETS_MS.len()),
                None => BUCKETS_MS.len() + 1,
            };
            distribution[slot] += 1;
        }
        Self {
            cases: n,
            answered: firsts.len() as i64,
            resolved: resolutions.len() as i64,
            first_response_p50: percentile(&firsts, 0.5),
            first_response_p90: percentile(&firsts, 0.9),
            resolution_p50: percentile(&resolutions, 0.5),
            resolution_p90: percentile(&resolutions, 0.9),
            sla_attainment: share(attained),
            within_half_day: share(firsts.iter().filter(|t| **t <= HALF_DAY_MS).count()),
            distribution,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, by sorting.
    fn reference(values: &[i64], p: f64) -> Option<i64> {
        let mut v = values.to_vec();
        v.sort_unstable();
        (0..v.len()).map(|i| v[i]).find(|x| v.iter().filter(|y| *y <= x).count() as f64 >= p * v.len() as f64)
    }

    #[test]
    fn percentiles_match_the_brute_force_reference() {
        let mut seed = 7u64;
        let mut next = || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as i64
        };
        for n in [1usize, 2, 3, 9, 10, 11, 100, 257] {
            let values: Vec<i64> = (0..n).map(|_| next() % 1000).collect();
            for p in [0.5, 0.9, 0.1, 1.0] {
                assert_eq!(percentile(&values, p), reference(&values, p), "n={n} p={p}");
            }
        }
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[5, 1, 3, 2, 4], 0.5), Some(3));
        assert_eq!(percentile(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9), Some(9));
    }

    #[test]
    fn a_group_of_cases() {
        let h = 3_600_000;
        let case = |first: Option<i64>, res: Option<i64>, breached: bool| CaseTimes {
            first_response: first,
            resolution: res,
            first_state: if breached { ViewState::Breached } else { ViewState::Met },
            resolution_state: ViewState::Running,
        };
        let s = CareStats::of(&[
            case(Some(h / 2), Some(2 * h), false),
            case(Some(3 * h), None, false),
            case(Some(20 * h), Some(30 * h), true),
            case(None, None, false),
        ]);
        assert_eq!((s.cases, s.answered, s.resolved), (4, 3, 2));
        assert_eq!((s.first_response_p50, s.first_response_p90), (Some(3 * h), Some(20 * h)));
        assert_eq!((s.resolution_p50, s.resolution_p90), (Some(2 * h), Some(30 * h)));
        assert_eq!(s.sla_attainment, 0.75);
        assert_eq!(s.within_half_day, 0.5);
        assert_eq!(s.distribution, vec![1, 1, 0, 1, 0, 0, 1]);
    }
}
