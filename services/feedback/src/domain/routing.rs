//! Routing, pure: ordered rules (the first that matches wins, `general` when none does) over what is known of a
//! case at intake, and the choice of an agent within capacity, round robin or least loaded.
use serde::{Deserialize, Serialize};

/// The queue every unrouted case goes to; it always exists.
pub const DEFAULT_QUEUE: &str = "general";
/// `routed_by` of a case no rule matched.
pub const DEFAULT_RULE: &str = "default";

/// A routing rule: every non-empty list must contain the case's value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Id.
    pub rule_id: String,
    /// Themes.
    pub themes: Vec<String>,
    /// Channels (wire values).
    pub channels: Vec<i32>,
    /// Severities (`low` … `critical`).
    pub severities: Vec<String>,
    /// Tiers (`bronze` … `vip`, `unknown`).
    pub tiers: Vec<String>,
    /// Only detractors.
    pub detractors_only: bool,
    /// Any of these segments.
    pub segments: Vec<String>,
    /// Destination.
    pub queue_id: String,
}

/// What routing knows of a case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Theme.
    pub theme: String,
    /// Channel (wire value).
    pub channel: i32,
    /// Severity.
    pub severity: String,
    /// Tier, or `unknown`.
    pub tier: String,
    /// Whether the customer's last NPS answer was a detractor's.
    pub detractor: bool,
    /// The customer's segments.
    pub segments: Vec<String>,
}

impl Rule {
    /// Whether the rule routes a case with `f`.
    pub fn matches(&self, f: &Facts) -> bool {
        let within = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
        within(&self.themes, &f.theme)
            && (self.channels.is_empty() || self.channels.contains(&f.channel))
            && within(&self.severities, &f.severity)
            && within(&self.tiers, &f.tier)
            && (!self.detractors_only || f.detractor)
            && (self.segments.is_empty() || self.segments.iter().any(|s| f.segments.contains(s)))
    }
}

/// The queue and the rule that route a case: the first matching rule, or the default queue.
pub fn route<'a>(rules: &'a [Rule], f: &Facts) -> (&'a str, &'a str) {
    rules.iter().find(|r| r.matches(f)).map_or((DEFAULT_QUEUE, DEFAULT_RULE), |r| (&r.queue_id, &r.rule_id))
}

/// How a queue picks an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignment {
    /// Each in turn, after the last one given a case.
    RoundRobin,
    /// The fewest open cases.
    LeastLoaded,
}

impl Assignment {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoundRobin => "round_robin",
            Self::LeastLoaded => "least_loaded",
        }
    }

    /// From its stored name.
    pub fn parse(s: &str) -> Self {
        if s == "least_loaded" { Self::LeastLoaded } else { Self::RoundRobin }
    }
}

/// An agent that could take a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Id.
    pub agent_id: String,
    /// Open cases it holds.
    pub open: i64,
    /// Most it may hold.
    pub capacity: i64,
}

/// The agent to give a case to, among online `candidates` of the queue (`last` = the one given the previous case),
/// or `None` when all are at capacity.
pub fn pick<'a>(how: Assignment, candidates: &'a [Candidate], last: Option<&str>) -> Option<&'a str> {
    let mut free: Vec<&Candidate> = candidates.iter().filter(|c| c.open < c.capacity).collect();
    free.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
    let chosen = match how {
        Assignment::LeastLoaded => free.iter().min_by_key(|c| (c.open, c.agent_id.clone())).copied(),
        Assignment::RoundRobin => {
            let after = last.and_then(|l| free.iter().find(|c| c.agent_id.as_str() > l));
            after.or_else(|| free.first()).copied()
        }
    };
    chosen.map(|c| c.agent_id.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, queue: &str) -> Rule {
        Rule { rule_id: id.into(), queue_id: queue.into(), ..Rule::default() }
    }

    fn facts() -> Facts {
        Facts {
            theme: "delivery".into(),
            channel: 5,
            severity: "medium".into(),
            tier: "vip".into(),
            detractor: false,
            segments: vec!["fans".into()],
        }
    }

    #[test]
    fn the_first_matching_rule_wins() {
        let vip = Rule { tiers: vec!["vip".into()], ..rule("vip", "vip-desk") };
        let delivery = Rule { themes: vec!["delivery".into()], ..rule("delivery", "logistics") };
        let unhappy = Rule { detractors_only: true, ..rule("unhappy", "recovery") };
        let f = facts();
        assert_eq!(route(&[vip.clone(), delivery.clone()], &f), ("vip-desk", "vip"));
        assert_eq!(route(&[delivery.clone(), vip.clone()], &f), ("logistics", "delivery"));
        assert_eq!(route(std::slice::from_ref(&unhappy), &f), (DEFAULT_QUEUE, DEFAULT_RULE));
        assert_eq!(route(&[unhappy, vip], &Facts { detractor: true, ..f.clone() }), ("recovery", "unhappy"));
        let mail = Rule { channels: vec![5], severities: vec!["high".into(), "medium".into()], ..rule("m", "mail") };
        assert!(mail.matches(&f));
        assert!(!mail.matches(&Facts { channel: 1, ..f.clone() }));
        let fans = Rule { segments: vec!["other".into(), "fans".into()], ..rule("f", "q") };
        assert!(fans.matches(&f) && !fans.matches(&Facts { segments: vec![], ..f }));
    }

    fn c(id: &str, open: i64, capacity: i64) -> Candidate {
        Candidate { agent_id: id.into(), open, capacity }
    }

    #[test]
    fn agents_within_capacity_round_robin_or_least_loaded() {
        let team = [c("ann", 2, 3), c("bob", 0, 3), c("cyd", 3, 3)];
        assert_eq!(pick(Assignment::LeastLoaded, &team, None), Some("bob"));
        assert_eq!(pick(Assignment::RoundRobin, &team, None), Some("ann"));
        assert_eq!(pick(Assignment::RoundRobin, &team, Some("ann")), Some("bob"));
        // cyd is full: after bob comes ann again.
        assert_eq!(pick(Assignment::RoundRobin, &team, Some("bob")), Some("ann"));
        assert_eq!(pick(Assignment::RoundRobin, &team, Some("zed")), Some("ann"));
        assert_eq!(pick(Assignment::LeastLoaded, &[c("ann", 1, 1)], None), None);
        assert_eq!(pick(Assignment::LeastLoaded, &[c("bob", 1, 5), c("ann", 1, 5)], None), Some("ann"));
    }
}
