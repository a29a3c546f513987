//! Pilots on limited volumes, pure: a segment's customers split into the pilot group and a holdout by a stable draw
//! salted with the pilot's id, and the two groups compared on complaints of the improvement's themes and on NPS, each
//! with its 95 % interval, the differences with theirs, and what that says about rolling out.
use std::collections::{BTreeSet, HashMap};

use rapport_stats::{
    nps::{Difference, Nps},
    proportion::Proportion,
};
use sha2::{Digest, Sha256};

/// Below this many customers in a group, the comparison says it is too early.
pub const MIN_GROUP: i64 = 30;

/// Which group a customer is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Group {
    /// Gets the improvement.
    Pilot,
    /// Does not.
    Holdout,
}

impl Group {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pilot => "pilot",
            Self::Holdout => "holdout",
        }
    }

    /// From its stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pilot" => Some(Self::Pilot),
            "holdout" => Some(Self::Holdout),
            _ => None,
        }
    }
}

/// The group of `customer` in the pilot `pilot_id` holding out `holdout_percent` %: the first eight bytes of
/// SHA-256(pilot id, customer) as a number, modulo 10,000, below the share × 100 is the holdout. Stable, and
/// independent between pilots.
pub fn group_of(pilot_id: &str, customer: &str, holdout_percent: i32) -> Group {
    let digest = Sha256::digest(format!("{pilot_id}\u{1f}{customer}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let bucket = u64::from_be_bytes(first) % 10_000;
    if bucket < u64::try_from(holdout_percent.clamp(0, 100)).unwrap_or(0) * 100 { Group::Holdout } else { Group::Pilot }
}

/// One group's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupFigures {
    /// Members who complained (raised one of the improvement's themes) of all members.
    pub complaints: Proportion,
    /// Its members' answers.
    pub nps: Nps,
}

/// A pilot against its holdout.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The pilot group.
    pub pilot: GroupFigures,
    /// The holdout.
    pub holdout: GroupFigures,
    /// Pilot minus holdout complaint rate.
    pub complaint_difference: Difference,
    /// Pilot minus holdout NPS.
    pub nps_difference: Difference,
    /// What it says.
    pub verdict: String,
}

/// Compares the groups of `members` (customer → group): `complainers` raised one of the improvement's themes during
/// the pilot, `answers` are the NPS answers (customer, score) given during it.
pub fn compare(
    members: &HashMap<String, Group>,
    complainers: &BTreeSet<String>,
    answers: &[(String, i32)],
) -> Comparison {
    let mut size = [0i64; 2];
    let mut hits = [0i64; 2];
    let mut nps = [Nps::default(), Nps::default()];
    let slot = |g: Group| if g == Group::Pilot { 0 } else { 1 };
    for (c, g) in members {
        size[slot(*g)] += 1;
        if complainers.contains(c) {
            hits[slot(*g)] += 1;
        }
    }
    for (c, score) in answers {
        if let Some(g) = members.get(c) {
            nps[slot(*g)].add(*score);
        }
    }
    let pilot = GroupFigures { complaints: Proportion::new(hits[0], size[0]), nps: nps[0] };
    let holdout = GroupFigures { complaints: Proportion::new(hits[1], size[1]), nps: nps[1] };
    let complaint_difference = pilot.complaints.minus(&holdout.complaints);
    let nps_difference = pilot.nps.minus(&holdout.nps);
    let verdict = verdict(&pilot, &holdout, &complaint_difference, &nps_difference);
    Comparison { pilot, holdout, complaint_difference, nps_difference, verdict }
}

fn verdict(pilot: &GroupFigures, holdout: &GroupFigures, c: &Difference, n: &Difference) -> String {
    if pilot.complaints.total < MIN_GROUP || holdout.complaints.total < MIN_GROUP {
        return format!(
            "too few customers to compare yet ({} in the pilot, {} in the holdout; {MIN_GROUP} each at least)",
            pilot.complaints.total, holdout.complaints.total
        );
    }
    let complaints = if c.significant() && c.value < 0.0 {
        format!("fewer complaints in the pilot ({:+.1} points, significant)", 100.0 * c.value)
    } else if c.significant() {
        format!("more complaints in the pilot ({:+.1} points, significant)", 100.0 * c.value)
    } else {
        format!("no significant difference in complaints ({:+.1} points)", 100.0 * c.value)
    };
    let answers = if n.significant() {
        format!("NPS {} in the pilot ({:+.1}, significant)", if n.value > 0.0 { "higher" } else { "lower" }, n.value)
    } else {
        format!("no significant difference in NPS ({:+.1})", n.value)
    };
    let call = if c.significant() && c.value < 0.0 && !(n.significant() && n.value < 0.0) {
        "the roll-out is supported"
    } else if (c.significant() && c.value > 0.0) || (n.significant() && n.value < 0.0) {
        "do not roll out as it is"
    } else {
        "not conclusive yet"
    };
    format!("{complaints}; {answers}: {call}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_draw_is_stable_and_close_to_the_share() {
        assert_eq!(group_of("p-1", "ann", 20), group_of("p-1", "ann", 20));
        let holdout = (0..10_000).filter(|i| group_of("p-1", &format!("c-{i}"), 20) == Group::Holdout).count();
        assert!((1_850..=2_150).contains(&holdout), "{holdout}");
        // Another pilot draws independently.
        let same = (0..1_000)
            .filter(|i| group_of("p-1", &format!("c-{i}"), 50) == group_of("p-2", &format!("c-{i}"), 50))
            .count();
        assert!((430..=570).contains(&same), "{same}");
        assert_eq!(group_of("p-1", "ann", 0), Group::Pilot);
        assert_eq!(group_of("p-1", "ann", 100), Group::Holdout);
    }

    fn members(pilot: usize, holdout: usize) -> HashMap<String, Group> {
        (0..pilot)
            .map(|i| (format!("p{i}"), Group::Pilot))
            .chain((0..holdout).map(|i| (format!("h{i}"), Group::Holdout)))
            .collect()
    }

    #[test]
    fn a_pilot_with_fewer_complaints_by_hand() {
        // 200 in each group; 20 pilot complainers (.10) against 40 in the holdout (.20): -10 points, p = .0051.
        let m = members(200, 200);
        let complainers: BTreeSet<String> =
            (0..20).map(|i| format!("p{i}")).chain((0..40).map(|i| format!("h{i}"))).collect();
        // NPS: 50 answers each; pilot 30 P / 10 / 10 D → 40, holdout 20 P / 10 / 20 D → 0.
        let mut answers = Vec::new();
        for (prefix, p, d) in [("p", 30, 10), ("h", 20, 20)] {
            for i in 0..50 {
                let score = if i < p {
                    10
                } else if i < 50 - d {
                    8
                } else {
                    2
                };
                answers.push((format!("{prefix}{i}"), score));
            }
        }
        let c = compare(&m, &complainers, &answers);
        assert_eq!((c.pilot.complaints.hits, c.pilot.complaints.total), (20, 200));
        assert!((c.complaint_difference.value + 0.10).abs() < 1e-12);
        assert!((c.complaint_difference.p_value - 0.0051).abs() < 1e-4);
        assert_eq!((c.pilot.nps.score(), c.holdout.nps.score()), (40.0, 0.0));
        // se: pilot var .8 - .16 = .64 → 11.31; holdout var .8 → 12.65; combined 16.97; z = 2.357, p = .0184.
        assert!((c.nps_difference.p_value - 0.0184).abs() < 1e-3, "{}", c.nps_difference.p_value);
        assert!(c.verdict.ends_with("the roll-out is supported"), "{}", c.verdict);
        assert!(c.verdict.starts_with("fewer complaints in the pilot (-10.0 points, significant)"), "{}", c.verdict);
    }

    #[test]
    fn small_or_worse_pilots_say_so() {
        let c = compare(&members(10, 40), &BTreeSet::new(), &[]);
        assert!(c.verdict.starts_with("too few customers"), "{}", c.verdict);
        // More complaints in the pilot: 40 of 100 against 10 of 100.
        let complainers: BTreeSet<String> =
            (0..40).map(|i| format!("p{i}")).chain((0..10).map(|i| format!("h{i}"))).collect();
        let c = compare(&members(100, 100), &complainers, &[]);
        assert!(c.verdict.ends_with("do not roll out as it is"), "{}", c.verdict);
        // Equal: not conclusive.
        let complainers: BTreeSet<String> =
            (0..10).map(|i| format!("p{i}")).chain((0..11).map(|i| format!("h{i}"))).collect();
        let c = compare(&members(100, 100), &complainers, &[]);
        assert!(c.verdict.ends_with("not conclusive yet"), "{}", c.verdict);
    }
}
