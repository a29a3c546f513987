//! Next best actions for the customer in front of an agent: configurable rules over named facts (what loyalty,
//! segmentation, referrals and feedback itself know of the customer), each suggestion with the facts that made it
//! fire. A fact whose service did not answer is `unknown`: it equals nothing but `unknown` and compares with no
//! number, so a rule never fires on a guess.
use serde::{Deserialize, Serialize};

/// The facts a condition may name, with what each holds.
pub const FACTS: &[(&str, &str)] = &[
    ("nps.class", "class of the customer's last answer: promoter, passive, detractor or none"),
    ("nps.last_score", "the last answer, 0 to 10, or none"),
    ("cases.open", "cases still open"),
    ("cases.recent", "cases opened in the last 90 days"),
    ("loyalty.tier", "bronze, silver, gold, vip, none (not a member) or unknown"),
    ("loyalty.points", "active points balance"),
    ("loyalty.points_to_next_tier", "qualifying points missing for the next tier"),
    ("loyalty.tier_drops_at_period_end", "true when the tier is not secured for the next period"),
    ("loyalty.days_to_period_end", "whole days until the tier period ends"),
    ("segmentation.recency_days", "days since the last purchase, or none"),
    ("segmentation.frequency_365d", "purchases in the last 365 days"),
    ("segmentation.monetary_365d", "spend in the last 365 days, in units"),
    ("segmentation.cluster", "the cluster's label, or none"),
    ("referrals.has_code", "true when the customer has a referral code"),
];

/// The value of a fact whose service did not answer.
pub const UNKNOWN: &str = "unknown";

/// How a condition compares the fact with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Same text.
    Eq,
    /// Different text.
    Ne,
    /// Both numbers, fact greater.
    Gt,
    /// Both numbers, fact greater or equal.
    Gte,
    /// Both numbers, fact smaller.
    Lt,
    /// Both numbers, fact smaller or equal.
    Lte,
}

impl Op {
    /// Whether the op compares numbers.
    pub fn numeric(self) -> bool {
        !matches!(self, Op::Eq | Op::Ne)
    }

    /// The op as people write it.
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "≠",
            Op::Gt => ">",
            Op::Gte => "≥",
            Op::Lt => "<",
            Op::Lte => "≤",
        }
    }
}

/// One test of a fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// A name from [`FACTS`].
    pub fact: String,
    /// The comparison.
    pub op: Op,
    /// What the fact is compared with (a number for the numeric ops).
    pub value: String,
}

impl Condition {
    /// Whether `actual` passes. An unknown fact passes only a condition that asks for `unknown` (equal): a
    /// difference from a value it might have had is not known either.
    pub fn holds(&self, actual: &str) -> bool {
        if actual == UNKNOWN && self.value != UNKNOWN {
            return false;
        }
        match self.op {
            Op::Eq => actual == self.value,
            Op::Ne => actual != self.value,
            op => match (actual.parse::<f64>(), self.value.parse::<f64>()) {
                (Ok(a), Ok(b)) => match op {
                    Op::Gt => a > b,
                    Op::Gte => a >= b,
                    Op::Lt => a < b,
                    _ => a <= b,
                },
                _ => false,
            },
        }
    }
}

/// A rule: when all its conditions hold, suggest its action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRule {
    /// Id, named in suggestions.
    pub rule_id: String,
    /// The action, as the agent reads it.
    pub action: String,
    /// Why it matters.
    pub description: String,
    /// All must hold (at least one).
    pub conditions: Vec<Condition>,
}

/// A suggested action and the facts that made its rule fire.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    /// The rule.
    pub rule_id: String,
    /// The action.
    pub action: String,
    /// The rule's description.
    pub description: String,
    /// Each condition's fact with the customer's value, and the condition in words.
    pub facts: Vec<FiredFact>,
}

/// A fact a suggestion rests on.
#[derive(Debug, Clone, PartialEq)]
pub struct FiredFact {
    /// The fact's name.
    pub name: String,
    /// The customer's value.
    pub value: String,
    /// The condition it met, e.g. `cases.open ≥ 1`.
    pub condition: String,
}

/// What is known of one customer, by fact name. A name missing is `unknown`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts(std::collections::BTreeMap<&'static str, String>);

impl Facts {
    /// Sets `name` (one of [`FACTS`]).
    pub fn set(&mut self, name: &'static str, value: impl ToString) {
        debug_assert!(FACTS.iter().any(|(n, _)| *n == name), "unknown fact {name}");
        self.0.insert(name, value.to_string());
    }

    /// Every known fact, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.0.iter().map(|(k, v)| (*k, v.as_str()))
    }

    /// The value of `name`, `unknown` when not known.
    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).map_or(UNKNOWN, String::as_str)
    }
}

/// The rules that fire on `facts`, in rule order.
pub fn suggest(rules: &[ActionRule], facts: &Facts) -> Vec<Suggestion> {
    rules
        .iter()
        .filter(|r| !r.conditions.is_empty() && r.conditions.iter().all(|c| c.holds(facts.get(&c.fact))))
        .map(|r| Suggestion {
            rule_id: r.rule_id.clone(),
            action: r.action.clone(),
            description: r.description.clone(),
            facts: r
                .conditions
                .iter()
                .map(|c| FiredFact {
                    name: c.fact.clone(),
                    value: facts.get(&c.fact).to_string(),
                    condition: format!("{} {} {}", c.fact, c.op.symbol(), c.value),
                })
                .collect(),
        })
        .collect()
}

fn cond(fact: &str, op: Op, value: &str) -> Condition {
    Condition { fact: fact.into(), op, value: value.into() }
}

/// The rules a fresh installation suggests with: a detractor with an open case is called back today; a VIP whose
/// tier is not secured for the next period gets a retention offer; a promoter without a referral code is invited to
/// be an ambassador; a lapsing high-value customer gets a win-back offer.
pub fn default_rules() -> Vec<ActionRule> {
    vec![
        ActionRule {
            rule_id: "callback_today".into(),
            action: "call back today".into(),
            description: "a detractor is waiting on an open case".into(),
            conditions: vec![cond("nps.class", Op::Eq, "detractor"), cond("cases.open", Op::Gte, "1")],
        },
        ActionRule {
            rule_id: "retention_offer".into(),
            action: "retention offer".into(),
            description: "a VIP whose tier drops at the end of its period".into(),
            conditions: vec![
                cond("loyalty.tier", Op::Eq, "vip"),
                cond("loyalty.tier_drops_at_period_end", Op::Eq, "true"),
                cond("loyalty.days_to_period_end", Op::Lte, "90"),
            ],
        },
        ActionRule {
            rule_id: "ambassador_invitation".into(),
            action: "ambassador invitation".into(),
            description: "a promoter without a referral code".into(),
            conditions: vec![cond("nps.class", Op::Eq, "promoter"), cond("referrals.has_code", Op::Eq, "false")],
        },
        ActionRule {
            rule_id: "win_back_offer".into(),
            action: "win-back offer".into(),
            description: "a high-value customer who stopped buying".into(),
            conditions: vec![
                cond("segmentation.recency_days", Op::Gte, "90"),
                cond("segmentation.monetary_365d", Op::Gte, "500"),
            ],
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fired(facts: &Facts) -> Vec<String> {
        suggest(&default_rules(), facts).into_iter().map(|s| s.rule_id).collect()
    }

    #[test]
    fn a_detractor_with_an_open_case_is_called_back_and_the_facts_say_why() {
        let mut f = Facts::default();
        f.set("nps.class", "detractor");
        f.set("cases.open", 2);
        let s = suggest(&default_rules(), &f);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].rule_id, "callback_today");
        let facts: Vec<(&str, &str)> = s[0].facts.iter().map(|x| (x.name.as_str(), x.value.as_str())).collect();
        assert_eq!(facts, [("nps.class", "detractor"), ("cases.open", "2")]);
        assert_eq!(s[0].facts[1].condition, "cases.open ≥ 1");
        f.set("cases.open", 0);
        assert!(fired(&f).is_empty(), "no open case: nothing to call back about");
    }

    #[test]
    fn a_vip_losing_the_tier_soon_gets_a_retention_offer() {
        let mut f = Facts::default();
        f.set("loyalty.tier", "vip");
        f.set("loyalty.tier_drops_at_period_end", true);
        f.set("loyalty.days_to_period_end", 30);
        assert_eq!(fired(&f), ["retention_offer"]);
        f.set("loyalty.days_to_period_end", 200);
        assert!(fired(&f).is_empty(), "too early to offer");
        f.set("loyalty.days_to_period_end", 30);
        f.set("loyalty.tier_drops_at_period_end", false);
        assert!(fired(&f).is_empty(), "tier secured");
    }

    #[test]
    fn a_promoter_without_a_code_is_invited_only_when_referrals_says_so() {
        let mut f = Facts::default();
        f.set("nps.class", "promoter");
        assert!(fired(&f).is_empty(), "referrals did not answer: no guess");
        f.set("referrals.has_code", false);
        assert_eq!(fired(&f), ["ambassador_invitation"]);
        f.set("referrals.has_code", true);
        assert!(fired(&f).is_empty());
    }

    #[test]
    fn a_lapsing_high_value_customer_gets_a_win_back_offer() {
        let mut f = Facts::default();
        f.set("segmentation.recency_days", 120);
        f.set("segmentation.monetary_365d", 800.5);
        assert_eq!(fired(&f), ["win_back_offer"]);
        f.set("segmentation.monetary_365d", 80);
        assert!(fired(&f).is_empty(), "low value");
        f.set("segmentation.monetary_365d", 800);
        f.set("segmentation.recency_days", "none");
        assert!(fired(&f).is_empty(), "never bought: not a number, never compared");
    }

    #[test]
    fn unknown_facts_match_nothing_but_unknown() {
        let f = Facts::default();
        assert!(cond("loyalty.tier", Op::Eq, "unknown").holds(f.get("loyalty.tier")));
        assert!(!cond("loyalty.tier", Op::Eq, "vip").holds(f.get("loyalty.tier")));
        assert!(!cond("loyalty.points", Op::Lt, "10").holds(f.get("loyalty.points")));
        assert!(!cond("referrals.has_code", Op::Ne, "true").holds(f.get("referrals.has_code")), "no guess either way");
        assert!(!cond("loyalty.tier", Op::Ne, "unknown").holds(f.get("loyalty.tier")));
        assert!(fired(&f).is_empty());
        // a rule without conditions never fires
        let empty =
            ActionRule { rule_id: "x".into(), action: "x".into(), description: String::new(), conditions: vec![] };
        assert!(suggest(&[empty], &f).is_empty());
    }
}
