//! Fraud screening, pure and explainable: each signal that fires carries its weight and a sentence; the score is the
//! sum of the weights, at most 1; a referral scoring the programme's threshold or more is flagged for an agent.
use super::Limits;

/// Signals of one side of a referral (hashes only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprints {
    /// Keyed hash of the normalised e-mail.
    pub email: Option<String>,
    /// Hash of the payment instrument.
    pub payment: Option<String>,
    /// Hash of the device.
    pub device: Option<String>,
}

/// What the store knows when a sign-up comes.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The referee's signals.
    pub referee: Fingerprints,
    /// The ambassador's own signals, as it gave them.
    pub ambassador: Fingerprints,
    /// Sign-ups on the code in the last hour, before this one.
    pub signups_last_hour: i64,
    /// Whether another referral of the ambassador came from the referee's device.
    pub device_seen: bool,
    /// Whether another referral of the ambassador paid with the referee's instrument.
    pub payment_seen: bool,
    /// The ambassador's referrals in the last 30 days, before this one.
    pub referrals_last_30_days: i64,
    /// What of the sign-up is on the block list (`email`, `payment`, `device`, `ambassador`, `referee`).
    pub blocked: Vec<&'static str>,
}

/// A signal that fired.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Signal {
    /// Its name.
    pub name: String,
    /// Its weight.
    pub weight: f64,
    /// In words.
    pub detail: String,
}

/// The weight of each signal.
pub const WEIGHTS: [(&str, f64); 8] = [
    ("blocked", 1.0),
    ("same_email", 1.0),
    ("same_payment", 1.0),
    ("same_device", 0.8),
    ("device_reused", 0.5),
    ("payment_reused", 0.5),
    ("over_cap", 0.5),
    ("velocity", 0.3),
];

fn weight(name: &str) -> f64 {
    WEIGHTS.iter().find(|(n, _)| *n == name).map_or(0.0, |(_, w)| *w)
}

fn same(a: &Option<String>, b: &Option<String>) -> bool {
    matches!((a, b), (Some(a), Some(b)) if a == b)
}

/// The signals that fire for `facts` under `limits`, heaviest first.
pub fn screen(facts: &Facts, limits: &Limits) -> Vec<Signal> {
    let mut out = Vec::new();
    let mut fire = |name: &str, detail: String| out.push(Signal { name: name.into(), weight: weight(name), detail });
    if !facts.blocked.is_empty() {
        fire("blocked", format!("on the block list: {}", facts.blocked.join(", ")));
    }
    if same(&facts.referee.email, &facts.ambassador.email) {
        fire("same_email", "the referee's e-mail is the ambassador's, once normalised".into());
    }
    if same(&facts.referee.payment, &facts.ambassador.payment) {
        fire("same_payment", "the referee pays with the ambassador's instrument".into());
    }
    if same(&facts.referee.device, &facts.ambassador.device) {
        fire("same_device", "the referee signed up from the ambassador's device".into());
    }
    if facts.device_seen {
        fire("device_reused", "another referee of this ambassador used the same device".into());
    }
    if facts.payment_seen {
        fire("payment_reused", "another referee of this ambassador used the same payment instrument".into());
    }
    if facts.referrals_last_30_days >= i64::from(limits.max_referrals_per_month) {
        fire(
            "over_cap",
            format!(
                "the ambassador made {} referrals in 30 days (cap {})",
                facts.referrals_last_30_days, limits.max_referrals_per_month
            ),
        );
    }
    if facts.signups_last_hour >= i64::from(limits.velocity_signal_per_hour) {
        fire(
            "velocity",
            format!(
                "{} sign-ups on the code in the last hour (signal from {})",
                facts.signups_last_hour, limits.velocity_signal_per_hour
            ),
        );
    }
    out.sort_by(|a, b| b.weight.total_cmp(&a.weight));
    out
}

/// The score of `signals`: the sum of their weights, at most 1.
pub fn score(signals: &[Signal]) -> f64 {
    signals.iter().map(|s| s.weight).sum::<f64>().min(1.0)
}

/// Whether a referral so scored is flagged.
pub fn flagged(score: f64, threshold: f64) -> bool {
    score >= threshold
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(device: &str) -> Fingerprints {
        Fingerprints { device: Some(device.into()), ..Fingerprints::default() }
    }

    #[test]
    fn a_clean_signup_fires_nothing() {
        let facts = Facts { referee: fp("d1"), ambassador: fp("d2"), ..Facts::default() };
        let signals = screen(&facts, &Limits::default());
        assert!(signals.is_empty());
        assert_eq!(score(&signals), 0.0);
        assert!(!flagged(0.0, 0.5));
    }

    #[test]
    fn each_signal_fires_with_its_weight_and_says_why() {
        let facts = Facts {
            referee: Fingerprints { email: Some("e".into()), payment: Some("p".into()), device: Some("d".into()) },
            ambassador: Fingerprints { email: Some("e".into()), payment: Some("p".into()), device: Some("d".into()) },
            signups_last_hour: 5,
            device_seen: true,
            payment_seen: true,
            referrals_last_30_days: 50,
            blocked: vec!["device"],
        };
        let signals = screen(&facts, &Limits::default());
        let names: Vec<&str> = signals.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "blocked",
                "same_email",
                "same_payment",
                "same_device",
                "device_reused",
                "payment_reused",
                "over_cap",
                "velocity"
            ]
        );
        assert!(signals.iter().all(|s| s.weight > 0.0 && !s.detail.is_empty()));
        assert_eq!(score(&signals), 1.0, "capped at 1");
    }

    #[test]
    fn a_reused_device_alone_reaches_the_default_threshold_and_velocity_alone_does_not() {
        let reused = Facts { device_seen: true, ..Facts::default() };
        assert!(flagged(score(&screen(&reused, &Limits::default())), 0.5));
        let busy = Facts { signups_last_hour: 7, ..Facts::default() };
        let s = screen(&busy, &Limits::default());
        assert_eq!(s[0].name, "velocity");
        assert!(!flagged(score(&s), 0.5));
        let quiet = Facts { signups_last_hour: 4, ..Facts::default() };
        assert!(screen(&quiet, &Limits::default()).is_empty());
    }

    #[test]
    fn missing_signals_never_match() {
        let facts = Facts::default();
        assert!(screen(&facts, &Limits::default()).is_empty());
    }
}
