//! The per-customer feature vector, kept up to date as events arrive, and its windows aged as days pass.
//!
//! Windowed values (90 and 365 days) are running sums over daily activity buckets: an event adds to them, and
//! ageing subtracts the buckets that left the window. Nothing is recomputed from all events on a read.
use serde::{Deserialize, Serialize};

use super::{DAY_MS, day_of};

/// Channels, in wire order (value = index + 1).
pub const CHANNELS: [&str; 7] = ["web", "mobile", "store", "phone", "email", "social", "chat"];

/// What a customer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// A purchase.
    Purchase,
    /// A visit.
    Visit,
    /// A contact with customer care.
    SupportContact,
    /// An NPS answer.
    SurveyResponse,
    /// A complaint.
    Complaint,
    /// A referral made.
    Referral,
    /// The loyalty tier changed.
    TierChange,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 7] = [
        Kind::Purchase,
        Kind::Visit,
        Kind::SupportContact,
        Kind::SurveyResponse,
        Kind::Complaint,
        Kind::Referral,
        Kind::TierChange,
    ];

    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Purchase => "purchase",
            Kind::Visit => "visit",
            Kind::SupportContact => "support_contact",
            Kind::SurveyResponse => "survey_response",
            Kind::Complaint => "complaint",
            Kind::Referral => "referral",
            Kind::TierChange => "tier_change",
        }
    }

    /// From the stored name.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One behaviour event, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unique id.
    pub event_id: String,
    /// Customer.
    pub customer_id: String,
    /// What.
    pub kind: Kind,
    /// When (ms).
    pub at_ms: i64,
    /// Channel index, if given.
    pub channel: Option<usize>,
    /// Purchases: amount in micro-units.
    pub amount_micros: i64,
    /// Surveys: 0-10.
    pub score: Option<i32>,
    /// Tier changes: the new tier.
    pub tier: Option<String>,
}

/// The stored state of a customer's features.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Features {
    /// First event (ms).
    pub first_seen: i64,
    /// Last purchase (ms).
    pub last_purchase_at: Option<i64>,
    /// Purchases ever.
    pub purchases: i64,
    /// Spend ever (micro-units).
    pub spend_micros: i64,
    /// Purchases in the 90-day window.
    pub f90: i64,
    /// Spend in the 90-day window.
    pub m90_micros: i64,
    /// Purchases in the 365-day window.
    pub f365: i64,
    /// Spend in the 365-day window.
    pub m365_micros: i64,
    /// Complaints in the 90-day window.
    pub complaints_90: i64,
    /// The day the windows end on (inclusive).
    pub window_day: i64,
    /// Events per channel.
    pub channels: [i64; 7],
    /// Last NPS answer.
    pub last_nps: Option<i32>,
    /// When it was given (ms), so a late older answer does not replace it.
    pub last_nps_at: i64,
    /// Referrals made.
    pub referrals: i64,
    /// Loyalty tier.
    pub tier: Option<String>,
}

/// One day's activity of one kind (what windows are made of).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Day number.
    pub day: i64,
    /// Kind.
    pub kind: Kind,
    /// Events.
    pub count: i64,
    /// Amount (purchases).
    pub amount_micros: i64,
}

/// NPS class of a score.
pub fn nps_class(score: Option<i32>) -> &'static str {
    match score {
        Some(9..=10) => "promoter",
        Some(7..=8) => "passive",
        Some(0..=6) => "detractor",
        _ => "",
    }
}

impl Features {
    /// Ages the windows to end on `to_day`, subtracting the buckets that left them. `buckets` must hold the
    /// customer's buckets from at least `window_day - 365` on.
    pub fn age(&mut self, to_day: i64, buckets: &[Bucket]) {
        if to_day <= self.window_day {
            return;
        }
        for b in buckets {
            // left the 90-day window: was in (W-90, W], now not in (T-90, T]
            let left = |w: i64| b.day > self.window_day - w && b.day <= to_day - w;
            if b.kind == Kind::Purchase {
                if left(90) {
                    self.f90 -= b.count;
                    self.m90_micros -= b.amount_micros;
                }
                if left(365) {
                    self.f365 -= b.count;
                    self.m365_micros -= b.amount_micros;
                }
            }
            if b.kind == Kind::Complaint && left(90) {
                self.complaints_90 -= b.count;
            }
        }
        self.window_day = to_day;
    }

    /// Applies an event (after [`Features::age`] to the event's day when it is later than the window's end).
    pub fn apply(&mut self, e: &Event) {
        let day = day_of(e.at_ms);
        if self.first_seen == 0 || e.at_ms < self.first_seen {
            self.first_seen = e.at_ms;
        }
        let in90 = day > self.window_day - 90 && day <= self.window_day;
        let in365 = day > self.window_day - 365 && day <= self.window_day;
        if let Some(c) = e.channel {
            self.channels[c] += 1;
        }
        match e.kind {
            Kind::Purchase => {
                self.purchases += 1;
                self.spend_micros += e.amount_micros;
                self.last_purchase_at = Some(self.last_purchase_at.map_or(e.at_ms, |l| l.max(e.at_ms)));
                if in90 {
                    self.f90 += 1;
                    self.m90_micros += e.amount_micros;
                }
                if in365 {
                    self.f365 += 1;
                    self.m365_micros += e.amount_micros;
                }
            }
            Kind::Complaint if in90 => self.complaints_90 += 1,
            Kind::SurveyResponse if e.at_ms >= self.last_nps_at => {
                self.last_nps = e.score;
                self.last_nps_at = e.at_ms;
            }
            Kind::Referral => self.referrals += 1,
            Kind::TierChange => self.tier.clone_from(&e.tier),
            _ => {}
        }
    }

    /// The value of a named feature at `now` (see [`FEATURE_NAMES`]); `None` for an unknown name.
    pub fn value(&self, name: &str, now_ms: i64) -> Option<f64> {
        let units = |m: i64| m as f64 / 1e6;
        let total: i64 = self.channels.iter().sum();
        let share = |i: usize| {
            if total == 0 { 0.0 } else { self.channels[i] as f64 / total as f64 }
        };
        Some(match name {
            // Never bought: as long ago as the customer is known, at least two years.
            "recency_days" => match self.last_purchase_at {
                Some(t) => ((now_ms - t) as f64 / DAY_MS as f64).max(0.0),
                None => 730.0,
            },
            "frequency_90d" => self.f90 as f64,
            "monetary_90d" => units(self.m90_micros),
            "frequency_365d" => self.f365 as f64,
            "monetary_365d" => units(self.m365_micros),
            "average_basket" => {
                if self.purchases == 0 {
                    0.0
                } else {
                    units(self.spend_micros) / self.purchases as f64
                }
            }
            "tenure_days" => ((now_ms - self.first_seen) as f64 / DAY_MS as f64).max(0.0),
            // Not asked yet: counted as neutral.
            "last_nps" => f64::from(self.last_nps.unwrap_or(7)),
            "complaints_90d" => self.complaints_90 as f64,
            "referrals" => self.referrals as f64,
            other => {
                let ch = other.strip_prefix("channel_mix.")?;
                share(CHANNELS.iter().position(|c| *c == ch)?)
            }
        })
    }

    /// The channel mix (share of events per channel).
    pub fn channel_mix(&self) -> Vec<(&'static str, f64)> {
        CHANNELS.iter().map(|c| (*c, self.value(&format!("channel_mix.{c}"), 0).unwrap_or(0.0))).collect()
    }
}

/// Every numeric feature name.
pub const FEATURE_NAMES: [&str; 17] = [
    "recency_days",
    "frequency_90d",
    "monetary_90d",
    "frequency_365d",
    "monetary_365d",
    "average_basket",
    "tenure_days",
    "last_nps",
    "complaints_90d",
    "referrals",
    "channel_mix.web",
    "channel_mix.mobile",
    "channel_mix.store",
    "channel_mix.phone",
    "channel_mix.email",
    "channel_mix.social",
    "channel_mix.chat",
];

/// The eight features clustered on by default.
pub const DEFAULT_MODEL_FEATURES: [&str; 8] = [
    "recency_days",
    "frequency_365d",
    "monetary_365d",
    "average_basket",
    "complaints_90d",
    "last_nps",
    "channel_mix.mobile",
    "channel_mix.store",
];

/// Whether a feature is skewed (money and counts): it is log-scaled before standardisation. Recency is not: its log
/// would pull frequent buyers apart by whether they bought yesterday or last week.
pub fn is_skewed(name: &str) -> bool {
    matches!(
        name,
        "frequency_90d"
            | "monetary_90d"
            | "frequency_365d"
            | "monetary_365d"
            | "average_basket"
            | "complaints_90d"
            | "referrals"
            | "tenure_days"
    )
}

/// Folds a history into features as of `now_ms` (the generator, tests and benchmarks use it; the service applies
/// events one by one, which gives the same result).
pub fn from_history(events: &[Event], now_ms: i64) -> Features {
    let mut f = Features { window_day: day_of(now_ms), ..Features::default() };
    for e in events {
        f.apply(e);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: Kind, day: i64, amount_units: i64) -> Event {
        Event {
            event_id: format!("{kind:?}{day}"),
            customer_id: "c".into(),
            kind,
            at_ms: day * DAY_MS + 1000,
            channel: Some(1),
            amount_micros: amount_units * 1_000_000,
            score: None,
            tier: None,
        }
    }

    fn buckets(events: &[Event]) -> Vec<Bucket> {
        events
            .iter()
            .map(|e| Bucket { day: day_of(e.at_ms), kind: e.kind, count: 1, amount_micros: e.amount_micros })
            .collect()
    }

    #[test]
    fn windows_fill_and_age_out() {
        let events = [ev(Kind::Purchase, 1000, 10), ev(Kind::Purchase, 1050, 20), ev(Kind::Complaint, 1060, 0)];
        let mut f = Features { window_day: 1000, ..Features::default() };
        for e in &events {
            f.age(day_of(e.at_ms), &buckets(&events));
            f.apply(e);
        }
        assert_eq!((f.f90, f.m90_micros / 1_000_000, f.f365, f.complaints_90), (2, 30, 2, 1));
        // day 1100: the purchase of day 1000 leaves the 90-day window
        f.age(1100, &buckets(&events));
        assert_eq!((f.f90, f.m90_micros / 1_000_000, f.f365), (1, 20, 2));
        // day 1160: everything left the 90-day window, nothing the 365-day one
        f.age(1160, &buckets(&events));
        assert_eq!((f.f90, f.complaints_90, f.f365), (0, 0, 2));
        f.age(1366, &buckets(&events));
        assert_eq!((f.f365, f.m365_micros), (1, 20_000_000));
        f.age(1500, &buckets(&events));
        assert_eq!((f.f365, f.m365_micros), (0, 0));
        // the same as folding the history at that date
        let mut g = from_history(&events, 1500 * DAY_MS);
        g.age(1500, &[]);
        assert_eq!((g.f90, g.f365), (0, 0));
    }

    #[test]
    fn values_and_classes() {
        let mut f = from_history(&[ev(Kind::Purchase, 100, 30), ev(Kind::Purchase, 110, 10)], 120 * DAY_MS);
        f.apply(&Event { score: Some(9), ..ev(Kind::SurveyResponse, 115, 0) });
        // a late, older answer does not replace the newer one
        f.apply(&Event { score: Some(2), ..ev(Kind::SurveyResponse, 105, 0) });
        assert_eq!(f.value("average_basket", 0), Some(20.0));
        assert!((f.value("recency_days", 120 * DAY_MS).unwrap() - 10.0).abs() < 0.01);
        assert_eq!(f.value("channel_mix.mobile", 0), Some(1.0));
        assert_eq!(f.value("nope", 0), None);
        assert_eq!(nps_class(f.last_nps), "promoter");
        assert_eq!(nps_class(Some(6)), "detractor");
        assert!(FEATURE_NAMES.iter().all(|n| f.value(n, 0).is_some()));
    }
}
