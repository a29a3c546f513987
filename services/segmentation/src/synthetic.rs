//! The synthetic persona generator's customers in the domain's terms, for `rapport gen`'s checks, the tests and the
//! benchmarks. It lives outside `domain`, which knows neither the generator nor the wire.
use crate::domain::features::{Event, Features, Kind, from_history};

/// A synthetic customer's history as events (the generator speaks cents and channel indices).
pub fn synth_events(c: &rapport_synth::Customer) -> Vec<Event> {
    c.events
        .iter()
        .map(|e| Event {
            event_id: e.event_id.clone(),
            customer_id: c.customer_id.clone(),
            kind: match e.kind {
                rapport_synth::Kind::Purchase => Kind::Purchase,
                rapport_synth::Kind::Visit => Kind::Visit,
                rapport_synth::Kind::SupportContact => Kind::SupportContact,
                rapport_synth::Kind::Survey => Kind::SurveyResponse,
                rapport_synth::Kind::Complaint => Kind::Complaint,
                rapport_synth::Kind::Referral => Kind::Referral,
            },
            at_ms: e.at_ms,
            channel: Some(e.channel),
            amount_micros: e.amount_cents * 10_000,
            score: (e.kind == rapport_synth::Kind::Survey).then_some(e.score),
            tier: None,
        })
        .collect()
}

/// A synthetic customer's features as of `now_ms`.
pub fn from_synth(c: &rapport_synth::Customer, now_ms: i64) -> Features {
    from_history(&synth_events(c), now_ms)
}
