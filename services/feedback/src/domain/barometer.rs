//! The satisfaction barometer, pure: criteria on four axes (quality of service, customer satisfaction, loyalty,
//! profit), each fed by a measure the suite has and compared with the company's target; the staff's own assessment
//! per axis beside what the customers' measures say; a reading per period with its trend against the previous one
//! and the criteria furthest from target first (the priority axes of improvement). A reading keeps the criteria and
//! weights it was computed with.
use serde::{Deserialize, Serialize};

/// The four axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Axis {
    /// How well customers are served (response times, SLAs).
    QualityOfService,
    /// What customers say (NPS, complaints).
    CustomerSatisfaction,
    /// Whether they come back (repeat purchases).
    Loyalty,
    /// What it earns (tier mix).
    Profit,
}

impl Axis {
    /// Every axis, in order.
    pub const ALL: [Axis; 4] = [Axis::QualityOfService, Axis::CustomerSatisfaction, Axis::Loyalty, Axis::Profit];
}

/// What feeds a criterion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// NPS of the answers in the period (-100 to 100).
    Nps,
    /// Median first-response time of the cases opened in the period, hours (lower is better).
    FirstResponseMedianHours,
    /// Share of those cases with no breached SLA clock, %.
    SlaAttainmentPct,
    /// Share of them answered within half a day, %.
    HalfDayPct,
    /// Complaints and claims opened per 100 survey answers (lower is better).
    ComplaintsPer100Answers,
    /// Of the members who bought in the period, % who bought again (loyalty).
    RepeatPurchasePct,
    /// Members in gold or VIP, % of members, when the reading is taken (loyalty).
    PremiumTierPct,
}

impl Measure {
    /// Whether a lower value is better.
    pub fn lower_is_better(self) -> bool {
        matches!(self, Measure::FirstResponseMedianHours | Measure::ComplaintsPer100Answers)
    }

    /// The worst value a higher-is-better measure can take: scores run from it to the target.
    pub fn floor(self) -> f64 {
        if self == Measure::Nps { -100.0 } else { 0.0 }
    }
}

/// A criterion: a measure on an axis, its weight and the company's target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Criterion {
    /// Id.
    pub criterion_id: String,
    /// The axis.
    pub axis: Axis,
    /// What feeds it.
    pub measure: Measure,
    /// Weight (> 0) in its axis and in the index.
    pub weight: f64,
    /// The company's target.
    pub target: f64,
}

/// The criteria of a fresh installation: the half-day answer and SLAs for quality of service, NPS above 50 and few
/// complaints for satisfaction, repeat purchases for loyalty, the tier mix for profit.
pub fn default_criteria() -> Vec<Criterion> {
    let c =
        |id: &str, axis, measure, weight, target| Criterion { criterion_id: id.into(), axis, measure, weight, target };
    vec![
        c("first_response", Axis::QualityOfService, Measure::FirstResponseMedianHours, 2.0, 12.0),
        c("sla", Axis::QualityOfService, Measure::SlaAttainmentPct, 2.0, 95.0),
        c("nps", Axis::CustomerSatisfaction, Measure::Nps, 3.0, 50.0),
        c("complaints", Axis::CustomerSatisfaction, Measure::ComplaintsPer100Answers, 1.0, 5.0),
        c("repeat_purchase", Axis::Loyalty, Measure::RepeatPurchasePct, 2.0, 40.0),
        c("premium_tiers", Axis::Profit, Measure::PremiumTierPct, 1.0, 20.0),
    ]
}

/// A measure's value in a period, or why there is none.
pub type MeasureValue = Result<f64, String>;

/// How close a value is to its target, 0 to 100 (100: met or better). A higher-is-better measure scores the share
/// of the way from its floor (-100 for NPS, else 0) to the target; a lower-is-better one target / value.
pub fn score(measure: Measure, value: f64, target: f64) -> f64 {
    let s = if measure.lower_is_better() {
        if value <= target { 1.0 } else { target.max(0.0) / value }
    } else {
        let floor = measure.floor();
        if value >= target {
            1.0
        } else if target <= floor {
            0.0
        } else {
            (value - floor) / (target - floor)
        }
    };
    100.0 * s.clamp(0.0, 1.0)
}

/// One criterion in a reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriterionReading {
    /// The criterion as it was.
    pub criterion: Criterion,
    /// The measure's value, or why there is none.
    pub value: Option<f64>,
    /// Why there is no value.
    pub unavailable: Option<String>,
    /// 0 to 100.
    pub score: Option<f64>,
    /// Weight × (100 - score): how far from target this criterion pulls the index.
    pub weighted_gap: f64,
}

/// One axis in a reading: the customers' measures against the targets, and the staff's own assessment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AxisReading {
    /// The axis.
    pub axis: Axis,
    /// Weighted score of its criteria with a value (0-100), `None` without any.
    pub customers: Option<f64>,
    /// The staff's mean assessment × 10 (0-100), `None` without answers.
    pub staff: Option<f64>,
    /// Staff answers.
    pub staff_answers: usize,
    /// Staff minus customers: above 0 the staff think better of it than the measures say.
    pub perception_gap: Option<f64>,
    /// Change of `customers` since the previous reading.
    pub trend: Option<f64>,
}

/// A reading of one period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// The period (`YYYY-MM`).
    pub period: String,
    /// Weighted score of every criterion with a value (0-100).
    pub index: Option<f64>,
    /// Change of the index since the previous reading.
    pub trend: Option<f64>,
    /// The period of the previous reading, if any.
    pub previous_period: Option<String>,
    /// Per axis, in order.
    pub axes: Vec<AxisReading>,
    /// Per criterion, as configured.
    pub criteria: Vec<CriterionReading>,
    /// Criterion ids furthest from target first (only those short of it).
    pub priorities: Vec<String>,
    /// Their axes, in that order, once each.
    pub priority_axes: Vec<Axis>,
}

fn weighted(items: impl Iterator<Item = (f64, f64)>) -> Option<f64> {
    let (mut sum, mut weights) = (0.0, 0.0);
    for (w, s) in items {
        sum += w * s;
        weights += w;
    }
    (weights > 0.0).then(|| sum / weights)
}

/// The reading of `period` from the criteria, each criterion's measure, the staff's answers (one score 0-10 per
/// axis per agent) and the previous reading.
pub fn read(
    period: &str,
    criteria: &[Criterion],
    value_of: impl Fn(Measure) -> MeasureValue,
    staff: &[Vec<(Axis, i32)>],
    previous: Option<&Reading>,
) -> Reading {
    let readings: Vec<CriterionReading> = criteria
        .iter()
        .map(|c| match value_of(c.measure) {
            Ok(v) => {
                let s = score(c.measure, v, c.target);
                CriterionReading {
                    criterion: c.clone(),
                    value: Some(v),
                    unavailable: None,
                    score: Some(s),
                    weighted_gap: c.weight * (100.0 - s),
                }
            }
            Err(why) => CriterionReading {
                criterion: c.clone(),
                value: None,
                unavailable: Some(why),
                score: None,
                weighted_gap: 0.0,
            },
        })
        .collect();
    let scored = |axis: Option<Axis>| {
        weighted(
            readings
                .iter()
                .filter(|r| axis.is_none_or(|a| r.criterion.axis == a))
                .filter_map(|r| r.score.map(|s| (r.criterion.weight, s))),
        )
    };
    let axes = Axis::ALL
        .into_iter()
        .map(|axis| {
            let answers: Vec<f64> =
                staff.iter().filter_map(|a| a.iter().find(|(x, _)| *x == axis)).map(|(_, s)| f64::from(*s)).collect();
            let staff_score = (!answers.is_empty()).then(|| 10.0 * answers.iter().sum::<f64>() / answers.len() as f64);
            let customers = scored(Some(axis));
            let before = previous.and_then(|p| p.axes.iter().find(|a| a.axis == axis)).and_then(|a| a.customers);
            AxisReading {
                axis,
                customers,
                staff: staff_score,
                staff_answers: answers.len(),
                perception_gap: staff_score.zip(customers).map(|(s, c)| s - c),
                trend: customers.zip(before).map(|(now, then)| now - then),
            }
        })
        .collect();
    let index = scored(None);
    let mut short: Vec<&CriterionReading> = readings.iter().filter(|r| r.weighted_gap > 0.0).collect();
    short.sort_by(|a, b| {
        b.weighted_gap.total_cmp(&a.weighted_gap).then(a.criterion.criterion_id.cmp(&b.criterion.criterion_id))
    });
    let priorities: Vec<String> = short.iter().map(|r| r.criterion.criterion_id.clone()).collect();
    let mut priority_axes = Vec::new();
    for r in &short {
        if !priority_axes.contains(&r.criterion.axis) {
            priority_axes.push(r.criterion.axis);
        }
    }
    Reading {
        period: period.into(),
        index,
        trend: index.zip(previous.and_then(|p| p.index)).map(|(now, then)| now - then),
        previous_period: previous.map(|p| p.period.clone()),
        axes,
        criteria: readings,
        priorities,
        priority_axes,
    }
}

/// The UTC window `[start, end)` of a period `YYYY-MM`, in milliseconds; `None` when it is not one.
pub fn period_window(period: &str) -> Option<(i64, i64)> {
    // Digits only (an integer parse would take `+1`): one spelling per month, so periods sort as text.
    let (y, m) = period.split_once('-')?;
    if y.len() != 4 || m.len() != 2 || !(y.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (y, m): (i64, i64) = (y.parse().ok()?, m.parse().ok()?);
    if !(1..=12).contains(&m) || y < 1970 {
        return None;
    }
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let first = |y: i64, m: i64| super::sla::day_number(&format!("{y:04}-{m:02}-01")).map(|d| d * super::DAY_MS);
    Some((first(y, m)?, first(ny, nm)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_how_close_to_target() {
        assert_eq!(score(Measure::Nps, 50.0, 50.0), 100.0);
        assert_eq!(score(Measure::Nps, 60.0, 50.0), 100.0, "better than target is met, not more");
        assert!((score(Measure::Nps, 25.0, 50.0) - 100.0 * 125.0 / 150.0).abs() < 1e-9, "from -100 to the target");
        assert_eq!(score(Measure::Nps, -100.0, 50.0), 0.0);
        assert!(score(Measure::Nps, -5.0, 50.0) > score(Measure::Nps, -80.0, 50.0), "progress below zero shows");
        assert_eq!(score(Measure::SlaAttainmentPct, 45.0, 90.0), 50.0);
        assert_eq!(score(Measure::FirstResponseMedianHours, 6.0, 12.0), 100.0);
        assert_eq!(score(Measure::FirstResponseMedianHours, 24.0, 12.0), 50.0, "twice as slow: half");
        assert_eq!(score(Measure::ComplaintsPer100Answers, 10.0, 5.0), 50.0);
        assert_eq!(score(Measure::Nps, -5.0, -10.0), 100.0, "a negative target met");
        assert_eq!(score(Measure::RepeatPurchasePct, 5.0, 0.0), 100.0);
    }

    fn values(m: Measure) -> MeasureValue {
        match m {
            Measure::Nps => Ok(-25.0),                    // 50: half way from -100 to 50
            Measure::FirstResponseMedianHours => Ok(6.0), // 100
            Measure::SlaAttainmentPct => Ok(76.0),        // 80
            Measure::ComplaintsPer100Answers => Ok(5.0),  // 100
            Measure::RepeatPurchasePct => Err("loyalty unavailable".into()),
            Measure::PremiumTierPct => Ok(10.0), // 50
            Measure::HalfDayPct => Ok(100.0),
        }
    }

    #[test]
    fn a_reading_weighs_criteria_compares_points_of_view_and_ranks_priorities() {
        let staff =
            vec![vec![(Axis::QualityOfService, 9), (Axis::CustomerSatisfaction, 8)], vec![(Axis::QualityOfService, 7)]];
        let r = read("2026-03", &default_criteria(), values, &staff, None);
        // index: (2·100 + 2·80 + 3·50 + 1·100 + 1·50) / 9
        let index = (200.0 + 160.0 + 150.0 + 100.0 + 50.0) / 9.0;
        assert!((r.index.unwrap() - index).abs() < 1e-9);
        assert_eq!((r.trend, r.previous_period.as_deref()), (None, None));
        let q = &r.axes[0];
        assert_eq!(
            (q.axis, q.customers, q.staff, q.staff_answers),
            (Axis::QualityOfService, Some(90.0), Some(80.0), 2)
        );
        assert_eq!(q.perception_gap, Some(-10.0));
        let s = &r.axes[1];
        assert_eq!((s.customers, s.staff, s.perception_gap), (Some(62.5), Some(80.0), Some(17.5)));
        let l = &r.axes[2];
        assert_eq!((l.customers, l.staff), (None, None), "loyalty did not answer and no one assessed it");
        let repeat = r.criteria.iter().find(|c| c.criterion.criterion_id == "repeat_purchase").unwrap();
        assert_eq!((repeat.score, repeat.unavailable.as_deref()), (None, Some("loyalty unavailable")));
        // gaps: nps 3·50 = 150, premium 1·50 = 50, sla 2·20 = 40
        assert_eq!(r.priorities, ["nps", "premium_tiers", "sla"]);
        assert_eq!(r.priority_axes, [Axis::CustomerSatisfaction, Axis::Profit, Axis::QualityOfService]);
    }

    #[test]
    fn the_next_reading_shows_its_trend_and_keeps_its_own_weights() {
        let first = read("2026-03", &default_criteria(), values, &[], None);
        let mut reweighted = default_criteria();
        reweighted.iter_mut().filter(|c| c.criterion_id == "nps").for_each(|c| c.weight = 1.0);
        let better = |m: Measure| if m == Measure::Nps { Ok(50.0) } else { values(m) };
        let second = read("2026-04", &reweighted, better, &[], Some(&first));
        assert_eq!(second.previous_period.as_deref(), Some("2026-03"));
        let trend = second.index.unwrap() - first.index.unwrap();
        assert!((second.trend.unwrap() - trend).abs() < 1e-9 && trend > 0.0);
        assert_eq!(second.axes[1].trend, Some(100.0 - 62.5));
        assert_eq!(first.criteria.iter().find(|c| c.criterion.criterion_id == "nps").unwrap().criterion.weight, 3.0);
        assert_eq!(second.criteria.iter().find(|c| c.criterion.criterion_id == "nps").unwrap().criterion.weight, 1.0);
    }

    #[test]
    fn periods_are_utc_months() {
        assert_eq!(period_window("1970-01"), Some((0, 31 * super::super::DAY_MS)));
        let (s, e) = period_window("2026-02").unwrap();
        assert_eq!((e - s) / super::super::DAY_MS, 28);
        assert_eq!(s, 1_769_904_000_000, "2026-02-01T00:00:00Z");
        let (s, e) = period_window("2024-12").unwrap();
        assert_eq!(((e - s) / super::super::DAY_MS, e), (31, 1_735_689_600_000), "into 2025-01-01");
        for bad in ["2026-13", "2026-1", "26-01", "2026/01", "", "2026-00", "2026-+1", "+026-01"] {
            assert_eq!(period_window(bad), None, "{bad}");
        }
    }
}
