//! Seeded synthetic customers drawn from a few planted personas: skewed spend, channel preferences, NPS that goes
//! with complaints. The demo (`rapport gen`), the tests and the benchmarks share this one generator, so a test that
//! recovers the personas measures what the demo shows.
//!
//! Every customer is generated from `(seed, index)` alone: the same seed gives the same data set, in any order and
//! in parallel.
use rand_xoshiro::{
    Xoshiro256PlusPlus,
    rand_core::{RngCore, SeedableRng},
};
use serde::{Deserialize, Serialize};

/// Channels, in the order of `rapport.common.v1.Channel` (value = index + 1).
pub const CHANNELS: [&str; 7] = ["web", "mobile", "store", "phone", "email", "social", "chat"];
const DAY_MS: i64 = 86_400_000;

/// What a synthetic customer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// A purchase.
    Purchase,
    /// A visit.
    Visit,
    /// A contact with customer care.
    SupportContact,
    /// An NPS answer.
    Survey,
    /// A complaint.
    Complaint,
    /// A referral made.
    Referral,
}

/// One synthetic behaviour event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unique, stable id.
    pub event_id: String,
    /// What.
    pub kind: Kind,
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// Channel index into [`CHANNELS`].
    pub channel: usize,
    /// Purchases: amount in cents.
    pub amount_cents: i64,
    /// Surveys: 0-10.
    pub score: i32,
}

/// One synthetic customer and its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// Customer id.
    pub customer_id: String,
    /// Index into [`PERSONAS`]: the planted truth.
    pub persona: usize,
    /// Events, oldest first.
    pub events: Vec<Event>,
}

/// A planted persona.
#[derive(Debug, Clone, Copy)]
pub struct Persona {
    /// Name.
    pub name: &'static str,
    /// Median basket, in cents (log-normal).
    pub basket_cents: f64,
    /// Spread of the basket (sigma of the log).
    pub basket_sigma: f64,
    /// Purchases per year.
    pub purchases_per_year: f64,
    /// Channel weights.
    pub channels: [f64; 7],
    /// NPS answers range (inclusive).
    pub nps: (i32, i32),
    /// Complaints in the last 90 days (mean).
    pub complaints_90d: f64,
    /// Days of inactivity before now (no purchases in the most recent this many days).
    pub quiet_days: i64,
    /// Referrals made (mean).
    pub referrals: f64,
    /// Share of customers with this persona.
    pub share: f64,
}

/// The planted personas.
pub const PERSONAS: [Persona; 4] = [
    Persona {
        name: "vip mobile promoters",
        basket_cents: 12_000.0,
        basket_sigma: 0.35,
        purchases_per_year: 26.0,
        channels: [0.15, 0.75, 0.05, 0.0, 0.05, 0.0, 0.0],
        nps: (9, 10),
        complaints_90d: 0.05,
        quiet_days: 0,
        referrals: 1.5,
        share: 0.15,
    },
    Persona {
        name: "occasional web bargain hunters",
        basket_cents: 1_800.0,
        basket_sigma: 0.4,
        purchases_per_year: 4.0,
        channels: [0.8, 0.05, 0.0, 0.0, 0.15, 0.0, 0.0],
        nps: (6, 8),
        complaints_90d: 0.1,
        quiet_days: 20,
        referrals: 0.05,
        share: 0.4,
    },
    Persona {
        name: "store regulars",
        basket_cents: 5_000.0,
        basket_sigma: 0.3,
        purchases_per_year: 14.0,
        channels: [0.05, 0.05, 0.85, 0.05, 0.0, 0.0, 0.0],
        nps: (7, 9),
        complaints_90d: 0.1,
        quiet_days: 0,
        referrals: 0.3,
        share: 0.3,
    },
    Persona {
        name: "unhappy lapsing complainers",
        basket_cents: 4_000.0,
        basket_sigma: 0.4,
        purchases_per_year: 5.0,
        channels: [0.3, 0.1, 0.0, 0.45, 0.0, 0.0, 0.15],
        nps: (0, 4),
        complaints_90d: 2.5,
        quiet_days: 150,
        referrals: 0.0,
        share: 0.15,
    },
];

/// A small, fast random source seeded per customer.
struct Rng(Xoshiro256PlusPlus);

impl Rng {
    fn new(seed: u64, index: u64) -> Self {
        Self(Xoshiro256PlusPlus::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    fn poisson(&mut self, mean: f64) -> u32 {
        if mean <= 0.0 {
            return 0;
        }
        if mean > 30.0 {
            return (mean + mean.sqrt() * self.normal()).round().max(0.0) as u32;
        }
        let l = (-mean).exp();
        let (mut k, mut p) = (0u32, 1.0);
        loop {
            p *= self.unit();
            if p <= l {
                return k;
            }
            k += 1;
        }
    }
    fn pick(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.unit() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.unit() * (hi - lo + 1) as f64) as i64
    }
}

/// The persona of customer `index`.
pub fn persona_of(seed: u64, index: u64) -> usize {
    let mut rng = Rng::new(seed, index);
    let shares: Vec<f64> = PERSONAS.iter().map(|p| p.share).collect();
    rng.pick(&shares)
}

/// Customer `index` of the data set `seed`, with a history over the year before `now_ms`.
pub fn customer(seed: u64, index: u64, now_ms: i64) -> Customer {
    let persona = persona_of(seed, index);
    let p = PERSONAS[persona];
    let mut rng = Rng::new(seed.rotate_left(17), index);
    let customer_id = format!("cust-{seed}-{index}");
    let mut events = Vec::new();
    let mut push = |rng: &mut Rng, kind: Kind, days_ago: i64, amount_cents: i64, score: i32| {
        let channel = rng.pick(&p.channels);
        let at_ms = now_ms - days_ago * DAY_MS - rng.range(0, DAY_MS - 1);
        events.push(Event { event_id: String::new(), kind, at_ms, channel, amount_cents, score });
    };
    let active_days = (365 - p.quiet_days).max(1);
    let purchases = rng.poisson(p.purchases_per_year * active_days as f64 / 365.0).max(1);
    for _ in 0..purchases {
        let days_ago = rng.range(p.quiet_days, 364);
        let amount = (p.basket_cents * (p.basket_sigma * rng.normal()).exp()).round().max(100.0) as i64;
        push(&mut rng, Kind::Purchase, days_ago, amount, 0);
        if rng.unit() < 0.8 {
            push(&mut rng, Kind::Visit, days_ago, 0, 0);
        }
    }
    for _ in 0..rng.poisson(p.complaints_90d) {
        let days_ago = rng.range(0, 89);
        push(&mut rng, Kind::Complaint, days_ago, 0, 0);
        push(&mut rng, Kind::SupportContact, days_ago, 0, 0);
    }
    let surveys = 1 + rng.poisson(1.0);
    for _ in 0..surveys {
        let days_ago = rng.range(0, 364);
        let score = rng.range(i64::from(p.nps.0), i64::from(p.nps.1)) as i32;
        push(&mut rng, Kind::Survey, days_ago, 0, score);
    }
    for _ in 0..rng.poisson(p.referrals) {
        let days_ago = rng.range(0, 364);
        push(&mut rng, Kind::Referral, days_ago, 0, 0);
    }
    events.sort_by_key(|e| e.at_ms);
    for (i, e) in events.iter_mut().enumerate() {
        e.event_id = format!("{customer_id}-e{i}");
    }
    Customer { customer_id, persona, events }
}

/// Customers `0..n` of the data set `seed`.
pub fn customers(seed: u64, n: u64, now_ms: i64) -> impl Iterator<Item = Customer> {
    (0..n).map(move |i| customer(seed, i, now_ms))
}

/// A synthetic customer's consent, as segmentation's wire request: every synthetic customer consents to profiling
/// and offers (a customer first seen through its events has consented to nothing).
pub fn consent(c: &Customer) -> rapport_proto::segmentation::v1::UpsertCustomerRequest {
    rapport_proto::segmentation::v1::UpsertCustomerRequest {
        request_id: format!("consent-{}", c.customer_id),
        customer_id: c.customer_id.clone(),
        attributes: Default::default(),
        consent_marketing: true,
        consent_profiling: true,
    }
}

/// A customer's history as segmentation's wire events (what `rapport gen` streams and the tests ingest).
pub fn behaviour_events(c: &Customer) -> Vec<rapport_proto::segmentation::v1::BehaviourEvent> {
    use rapport_proto::{
        common::v1::Money,
        segmentation::v1::{BehaviourEvent, EventKind},
    };
    c.events
        .iter()
        .map(|e| BehaviourEvent {
            event_id: e.event_id.clone(),
            customer_id: c.customer_id.clone(),
            kind: match e.kind {
                Kind::Purchase => EventKind::Purchase,
                Kind::Visit => EventKind::Visit,
                Kind::SupportContact => EventKind::SupportContact,
                Kind::Survey => EventKind::SurveyResponse,
                Kind::Complaint => EventKind::Complaint,
                Kind::Referral => EventKind::Referral,
            }
            .into(),
            occurred_at: Some(rapport_proto::Timestamp {
                seconds: e.at_ms.div_euclid(1000),
                nanos: (e.at_ms.rem_euclid(1000) * 1_000_000) as i32,
            }),
            channel: e.channel as i32 + 1,
            amount: (e.kind == Kind::Purchase).then(|| Money {
                currency_code: "EUR".into(),
                units: e.amount_cents / 100,
                nanos: ((e.amount_cents % 100) * 10_000_000) as i32,
            }),
            score: e.score,
            tier: String::new(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_customers() {
        let a: Vec<_> = customers(7, 50, 1_000 * DAY_MS).collect();
        let b: Vec<_> = customers(7, 50, 1_000 * DAY_MS).collect();
        assert_eq!(a, b);
        assert_ne!(a, customers(8, 50, 1_000 * DAY_MS).collect::<Vec<_>>());
    }

    #[test]
    fn personas_show_their_traits() {
        let now = 1_000 * DAY_MS;
        let all: Vec<_> = customers(1, 4_000, now).collect();
        let mean = |persona: usize, f: &dyn Fn(&Customer) -> f64| {
            let xs: Vec<f64> = all.iter().filter(|c| c.persona == persona).map(f).collect();
            xs.iter().sum::<f64>() / xs.len() as f64
        };
        let spend = |c: &Customer| c.events.iter().map(|e| e.amount_cents as f64).sum::<f64>();
        let complaints = |c: &Customer| c.events.iter().filter(|e| e.kind == Kind::Complaint).count() as f64;
        assert!(mean(0, &spend) > 3.0 * mean(2, &spend), "vips spend most");
        assert!(mean(3, &complaints) > 10.0 * mean(0, &complaints), "lapsing customers complain");
        let shares: Vec<usize> = (0..4).map(|p| all.iter().filter(|c| c.persona == p).count()).collect();
        assert!(shares.iter().all(|s| *s > 300), "{shares:?}");
        // every event happened within the last year, ids are unique
        let ids: std::collections::HashSet<_> =
            all.iter().flat_map(|c| c.events.iter().map(|e| e.event_id.clone())).collect();
        assert_eq!(ids.len(), all.iter().map(|c| c.events.len()).sum::<usize>());
        assert!(all.iter().flat_map(|c| &c.events).all(|e| e.at_ms <= now && e.at_ms > now - 366 * DAY_MS));
    }
}
