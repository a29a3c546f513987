//! Rule segments: a predicate tree over features, attributes, cluster, tier, NPS class, event counts within a
//! window, absence of an event, other segments and a stable random bucket. Evaluation can explain itself.
use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::features::{Features, Kind, nps_class};

/// Comparison of a feature with a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// <
    Lt,
    /// <=
    Le,
    /// >
    Gt,
    /// >=
    Ge,
    /// ==
    Eq,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq => (a - b).abs() < 1e-9,
        }
    }
    fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "=",
        }
    }
}

/// A rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Rule {
    /// All hold.
    All(Vec<Rule>),
    /// At least one holds.
    Any(Vec<Rule>),
    /// Does not hold.
    Not(Box<Rule>),
    /// Feature compared with a value.
    Feature {
        /// Feature name.
        name: String,
        /// Operator.
        op: Op,
        /// Value.
        value: f64,
    },
    /// Attribute equals a value.
    Attribute {
        /// Name.
        name: String,
        /// Value.
        value: String,
    },
    /// Cluster among these stable ids.
    Cluster(Vec<i32>),
    /// Tier among these.
    Tier(Vec<String>),
    /// NPS class among these.
    NpsClass(Vec<String>),
    /// At least `times` events of `kind` within `days`.
    EventCount {
        /// Kind.
        kind: Kind,
        /// Times.
        times: i64,
        /// Days.
        days: i64,
    },
    /// No event of `kind` within `days`.
    EventAbsent {
        /// Kind.
        kind: Kind,
        /// Days.
        days: i64,
    },
    /// Member of another segment.
    InSegment(String),
    /// Stable random bucket in `[from, to)`.
    Bucket {
        /// From.
        from: u8,
        /// To.
        to: u8,
    },
}

impl Rule {
    /// Segments this rule refers to.
    pub fn dependencies(&self) -> HashSet<String> {
        let mut out = HashSet::new();
        self.walk(&mut |r| {
            if let Rule::InSegment(s) = r {
                out.insert(s.clone());
            }
        });
        out
    }

    /// Whether the rule depends on time passing (windows, absences, recency, tenure).
    pub fn time_dependent(&self) -> bool {
        let mut t = false;
        self.walk(&mut |r| match r {
            Rule::EventCount { .. } | Rule::EventAbsent { .. } | Rule::InSegment(_) => t = true,
            Rule::Feature { name, .. } => {
                t |=
                    name.ends_with("_90d") || name.ends_with("_365d") || name == "recency_days" || name == "tenure_days"
            }
            _ => {}
        });
        t
    }

    fn walk(&self, f: &mut dyn FnMut(&Rule)) {
        f(self);
        match self {
            Rule::All(rs) | Rule::Any(rs) => rs.iter().for_each(|r| r.walk(f)),
            Rule::Not(r) => r.walk(f),
            _ => {}
        }
    }
}

/// What a rule is evaluated against: one customer at one moment.
pub struct Subject<'a> {
    /// Customer id.
    pub customer_id: &'a str,
    /// Features.
    pub features: &'a Features,
    /// Attributes.
    pub attributes: &'a BTreeMap<String, String>,
    /// Stable cluster id, if assigned.
    pub cluster: Option<i32>,
    /// Events per (kind, day) over the last year.
    pub daily: &'a HashMap<(Kind, i64), i64>,
    /// Today's day number.
    pub today: i64,
    /// Now (ms).
    pub now_ms: i64,
    /// Memberships already decided (segments this one may depend on).
    pub memberships: &'a HashSet<String>,
}

impl Subject<'_> {
    fn count_within(&self, kind: Kind, days: i64) -> i64 {
        self.daily
            .iter()
            .filter(|((k, d), _)| *k == kind && *d > self.today - days && *d <= self.today)
            .map(|(_, n)| n)
            .sum()
    }
}

/// One evaluated condition, for explanations.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Where in the tree.
    pub path: String,
    /// What it checks.
    pub description: String,
    /// The customer's value.
    pub actual: String,
    /// Whether it held.
    pub held: bool,
    /// Whether `actual` is personal data (an attribute's value), shown only to the roles that see personal fields.
    pub personal: bool,
}

/// Evaluates `rule`; with `trace`, records every leaf and node.
pub fn evaluate(rule: &Rule, s: &Subject<'_>, path: &str, trace: &mut Option<Vec<Step>>) -> bool {
    let mut record = |description: String, actual: String, held: bool| {
        if let Some(t) = trace.as_mut() {
            let personal = matches!(rule, Rule::Attribute { .. });
            t.push(Step { path: path.to_string(), description, actual, held, personal });
        }
        held
    };
    match rule {
        Rule::All(rs) => {
            let mut all = true;
            for (i, r) in rs.iter().enumerate() {
                all &= evaluate(r, s, &format!("{path}.all[{i}]"), trace);
            }
            all
        }
        Rule::Any(rs) => {
            let mut any = false;
            for (i, r) in rs.iter().enumerate() {
                any |= evaluate(r, s, &format!("{path}.any[{i}]"), trace);
            }
            any
        }
        Rule::Not(r) => !evaluate(r, s, &format!("{path}.not"), trace),
        Rule::Feature { name, op, value } => {
            let v = s.features.value(name, s.now_ms).unwrap_or(f64::NAN);
            record(format!("{name} {} {value}", op.symbol()), format!("{v:.2}"), op.holds(v, *value))
        }
        Rule::Attribute { name, value } => {
            let v = s.attributes.get(name).cloned().unwrap_or_default();
            let held = v == *value;
            record(format!("attribute {name} = {value:?}"), format!("{v:?}"), held)
        }
        Rule::Cluster(ids) => {
            let held = s.cluster.is_some_and(|c| ids.contains(&c));
            record(format!("cluster in {ids:?}"), s.cluster.map_or("none".into(), |c| c.to_string()), held)
        }
        Rule::Tier(tiers) => {
            let t = s.features.tier.clone().unwrap_or_default();
            let held = tiers.contains(&t);
            record(format!("tier in {tiers:?}"), format!("{t:?}"), held)
        }
        Rule::NpsClass(classes) => {
            let c = nps_class(s.features.last_nps);
            let held = classes.iter().any(|x| x == c);
            record(format!("nps class in {classes:?}"), format!("{c:?}"), held)
        }
        Rule::EventCount { kind, times, days } => {
            let n = s.count_within(*kind, *days);
            record(format!("{} at least {times} times within {days} days", kind.as_str()), n.to_string(), n >= *times)
        }
        Rule::EventAbsent { kind, days } => {
            let n = s.count_within(*kind, *days);
            record(format!("no {} within {days} days", kind.as_str()), n.to_string(), n == 0)
        }
        Rule::InSegment(id) => {
            let held = s.memberships.contains(id);
            record(format!("member of segment {id:?}"), held.to_string(), held)
        }
        Rule::Bucket { from, to } => {
            let b = super::bucket(s.customer_id, "segment");
            record(format!("random bucket in [{from}, {to})"), b.to_string(), b >= *from && b < *to)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::features::Features;

    fn subject<'a>(
        f: &'a Features,
        attrs: &'a BTreeMap<String, String>,
        daily: &'a HashMap<(Kind, i64), i64>,
        members: &'a HashSet<String>,
    ) -> Subject<'a> {
        Subject {
            customer_id: "c1",
            features: f,
            attributes: attrs,
            cluster: Some(2),
            daily,
            today: 100,
            now_ms: 100 * 86_400_000,
            memberships: members,
        }
    }

    #[test]
    fn trees_evaluate_and_explain() {
        let f = Features {
            f365: 12,
            m365_micros: 900_000_000,
            last_nps: Some(10),
            tier: Some("gold".into()),
            ..Features::default()
        };
        let attrs = BTreeMap::from([("country".to_string(), "FR".to_string())]);
        let daily = HashMap::from([((Kind::Purchase, 99), 2), ((Kind::Purchase, 50), 1), ((Kind::Complaint, 10), 1)]);
        let members = HashSet::from(["vip".to_string()]);
        let s = subject(&f, &attrs, &daily, &members);
        let rule = Rule::All(vec![
            Rule::Feature { name: "monetary_365d".into(), op: Op::Ge, value: 500.0 },
            Rule::Attribute { name: "country".into(), value: "FR".into() },
            Rule::Any(vec![Rule::Cluster(vec![1]), Rule::Tier(vec!["gold".into(), "vip".into()])]),
            Rule::NpsClass(vec!["promoter".into()]),
            Rule::EventCount { kind: Kind::Purchase, times: 2, days: 7 },
            Rule::EventAbsent { kind: Kind::Complaint, days: 30 },
            Rule::Not(Box::new(Rule::InSegment("churners".into()))),
            Rule::InSegment("vip".into()),
        ]);
        let mut trace = Some(Vec::new());
        assert!(evaluate(&rule, &s, "condition", &mut trace));
        let steps = trace.unwrap();
        assert_eq!(steps[0].path, "condition.all[0]");
        assert_eq!(steps[0].actual, "900.00");
        assert!(steps.iter().any(|st| st.path == "condition.all[2].any[0]" && !st.held));
        // a window too short for the old complaint and purchase
        let r = Rule::EventCount { kind: Kind::Purchase, times: 3, days: 50 };
        assert!(!evaluate(&r, &s, "c", &mut None));
        assert!(evaluate(&Rule::EventCount { kind: Kind::Purchase, times: 3, days: 51 }, &s, "c", &mut None));
        assert!(!evaluate(&Rule::EventAbsent { kind: Kind::Complaint, days: 91 }, &s, "c", &mut None));
    }

    #[test]
    fn dependencies_and_time() {
        let r = Rule::Any(vec![Rule::InSegment("a".into()), Rule::Not(Box::new(Rule::InSegment("b".into())))]);
        assert_eq!(r.dependencies(), HashSet::from(["a".to_string(), "b".to_string()]));
        assert!(!Rule::Tier(vec!["vip".into()]).time_dependent());
        assert!(Rule::Feature { name: "recency_days".into(), op: Op::Gt, value: 1.0 }.time_dependent());
    }

    #[test]
    fn buckets_split_customers() {
        let f = Features::default();
        let attrs = BTreeMap::new();
        let daily = HashMap::new();
        let members = HashSet::new();
        let mut inside = 0;
        for i in 0..1000 {
            let id = format!("c{i}");
            let s = Subject { customer_id: &id, ..subject(&f, &attrs, &daily, &members) };
            if evaluate(&Rule::Bucket { from: 0, to: 10 }, &s, "c", &mut None) {
                inside += 1;
            }
        }
        assert!((60..140).contains(&inside), "{inside}");
    }
}
