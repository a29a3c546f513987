//! Other services' events into segmentation: the wire events become behaviour events and erasures, applied through
//! the store inside the shared sink's transaction (`rapport_outbox::sink`), which has already checked the sender,
//! de-duplicated and dropped what concerns erased customers.
use rapport_outbox::sink::{EventHandler, HandlerError};
use rapport_proto::events::v1::{Event as WireEvent, event::Payload};
use sea_orm::DatabaseTransaction;

use crate::{
    domain::features::{Event, Kind},
    store::Store,
};

/// Applies delivered events to segmentation's store.
pub struct Handler {
    store: Store,
}

impl Handler {
    /// Over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

/// The feature index of a wire channel (1-7), if known.
fn channel_index(channel: i32) -> Option<usize> {
    usize::try_from(channel).ok().filter(|c| (1..=7).contains(c)).map(|c| c - 1)
}

/// The behaviour event a wire event stands for, if segmentation uses it.
fn behaviour(e: &WireEvent, now: i64) -> Option<Event> {
    let at_ms = e.occurred_at.as_ref().map(rapport_kit::clock::millis).unwrap_or(now);
    let base = |kind: Kind| Event {
        event_id: e.event_id.clone(),
        customer_id: e.customer_id.clone(),
        kind,
        at_ms,
        channel: None,
        amount_micros: 0,
        score: None,
        tier: None,
    };
    match e.payload.as_ref()? {
        Payload::PurchaseRecorded(p) => {
            let amount = p.amount.as_ref().map_or(0, rapport_kit::money::micros);
            let channel = channel_index(p.channel);
            Some(Event { channel, amount_micros: amount.max(0), ..base(Kind::Purchase) })
        }
        Payload::TierChanged(t) => Some(Event { tier: Some(t.to_tier.clone()), ..base(Kind::TierChange) }),
        Payload::SurveyAnswered(a) => {
            let channel = channel_index(a.channel);
            Some(Event { channel, score: Some(a.score.clamp(0, 10)), ..base(Kind::SurveyResponse) })
        }
        // A complaint or a claim: a care signal segments can use (a detractor's follow-up is not a complaint).
        Payload::CaseOpened(c) if c.kind == "follow_up" => None,
        Payload::CaseOpened(c) => {
            let channel = channel_index(c.channel);
            Some(Event { channel, ..base(Kind::Complaint) })
        }
        // A referral the customer made counts as behaviour once, when made (its conversion is the referee's purchase,
        // which segmentation already has from loyalty).
        Payload::ReferralMade(_) => Some(base(Kind::Referral)),
        Payload::ReferralConverted(_) => None,
        // Erasures come to `forget`; membership changes are segmentation's own; a promoter is already counted by
        // its answer; themes are for the improvement service, which tells feedback what it accepts and ships.
        // Returns do not change behaviour features yet (a purchase returned still counts as made).
        Payload::CustomerForgotten(_)
        | Payload::PurchaseReturned(_)
        | Payload::SegmentMembershipChanged(_)
        | Payload::PromoterIdentified(_)
        | Payload::ThemeSignal(_)
        | Payload::ThemeAccepted(_)
        | Payload::ImprovementShipped(_) => None,
    }
}

#[tonic::async_trait]
impl EventHandler for Handler {
    async fn apply(&self, txn: &DatabaseTransaction, events: Vec<WireEvent>) -> Result<(), HandlerError> {
        let now = self.store.now();
        let events: Vec<Event> = events.iter().filter_map(|e| behaviour(e, now)).collect();
        self.store.apply_in(txn, events, now).await.map_err(HandlerError::of)
    }

    async fn forget(&self, txn: &DatabaseTransaction, customer_id: &str) -> Result<(), HandlerError> {
        self.store.forget_in(txn, customer_id).await.map_err(HandlerError::of)
    }
}
