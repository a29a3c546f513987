//! Events between services (DESIGN.md), one way for every service.
//!
//! Producing: [`Outbox::publish`] writes an event in the caller's transaction, one row per subscriber, so each
//! subscriber has its own place in line and adding one never touches the producer's code. A [`Relay`] per
//! subscriber delivers that subscriber's rows in order under a lease (one relay per destination across replicas),
//! parks what is refused too often, and prunes what was delivered. [`admin`] serves `OutboxService` so operators see
//! and replay parked events.
//!
//! Receiving: [`sink::EventSink`] serves `EventSinkService` in front of a service's [`sink::EventHandler`]: it binds
//! each event's `source` to the caller's identity, validates, de-duplicates by event id, keeps a tombstone per erased
//! customer and drops what arrives about them later, and hands the batch over in delivery order.
pub mod admin;
pub mod entities;
pub mod inbox;
pub mod jetstream;
pub mod migration;
pub mod relay;
pub mod sink;
pub mod wiring;

use std::sync::Arc;

use prost::Message;
use rapport_kit::{
    config::{self, ConfigError},
    service::EventBus,
};
use rapport_proto::events::v1::{Event, event::Payload};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use tokio::sync::Notify;

pub use relay::{GrpcSink, Relay, RelayConfig, Sink};

use crate::entities::outbox_event;

/// A subscriber of a producer's events: its name (the destination) and where its `EventSinkService` listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    /// Destination name, e.g. `segmentation`.
    pub name: String,
    /// Its address; `None`: events are written and wait until one is configured.
    pub url: Option<String>,
}

/// The subscribers named by `var` (a comma-separated list, default `defaults`); each one's address comes from
/// `RAPPORT_<NAME>_URL` (e.g. `RAPPORT_SEGMENTATION_URL`).
pub fn subscribers_from_env(var: &str, defaults: &[&str]) -> Result<Vec<Subscriber>, ConfigError> {
    let names: Vec<String> = match config::var(var) {
        Some(list) => list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
        None => defaults.iter().map(|s| s.to_string()).collect(),
    };
    let mut out = Vec::new();
    for name in names {
        if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return Err(ConfigError { name: var.into(), problem: format!("{name:?} is not a service name") });
        }
        let url = config::var(&format!("RAPPORT_{}_URL", name.to_uppercase().replace('-', "_")));
        out.push(Subscriber { name, url });
    }
    Ok(out)
}

/// Sets where the subscriber `name` listens, adding it when missing (tests and `rapport up`, which learn addresses
/// only once the services are bound).
pub fn set_subscriber_url(subscribers: &mut Vec<Subscriber>, name: &str, url: Option<String>) {
    match subscribers.iter_mut().find(|s| s.name == name) {
        Some(s) => s.url = url,
        None => subscribers.push(Subscriber { name: name.into(), url }),
    }
}

/// A producer's outbox: who it writes for, and the waker of its relays.
#[derive(Clone, Debug)]
pub struct Outbox {
    source: Arc<str>,
    destinations: Arc<[String]>,
    wake: Arc<Notify>,
}

impl Outbox {
    /// The outbox of `source`, writing one row per destination.
    pub fn new(source: &str, destinations: impl IntoIterator<Item = String>) -> Self {
        Self { source: source.into(), destinations: destinations.into_iter().collect(), wake: Arc::new(Notify::new()) }
    }

    /// The producing service.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The destinations it writes for.
    pub fn destinations(&self) -> &[String] {
        &self.destinations
    }

    /// Wakes the relays (call after the commit); [`Relay::set_waker`] takes it.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Tells the relays that a commit wrote events.
    pub fn notify(&self) {
        self.wake.notify_waiters();
        self.wake.notify_one();
    }

    /// Writes an event about `customer_id` in the caller's transaction, for every destination. Write it after
    /// taking the customer's row lock, so one customer's events are numbered in commit order.
    pub async fn publish<C: ConnectionTrait>(
        &self,
        txn: &C,
        customer_id: &str,
        payload: Payload,
        now_ms: i64,
    ) -> Result<String, DbErr> {
        self.publish_to(txn, None, customer_id, payload, now_ms).await
    }

    /// Like [`Outbox::publish`], for the configured destinations among `only` (an event only some subscribers
    /// need, e.g. one carrying a customer's words, goes nowhere else); `None` = every destination.
    pub async fn publish_to<C: ConnectionTrait>(
        &self,
        txn: &C,
        only: Option<&[&str]>,
        customer_id: &str,
        payload: Payload,
        now_ms: i64,
    ) -> Result<String, DbErr> {
        let event = Event {
            event_id: uuid::Uuid::new_v4().to_string(),
            source: self.source.to_string(),
            customer_id: customer_id.into(),
            occurred_at: Some(rapport_kit::clock::timestamp(now_ms)),
            traceparent: rapport_telemetry::current_traceparent(),
            payload: Some(payload),
        };
        for d in self.destinations.iter().filter(|d| only.is_none_or(|o| o.contains(&d.as_str()))) {
            enqueue(txn, d, event.clone(), now_ms).await?;
        }
        Ok(event.event_id)
    }

    /// Part of an erasure: deletes what the outbox keeps about the customer — delivered events, and events still
    /// waiting for a receiver (no receiver must apply them any more: a receiver that had the customer gets the
    /// erasure, and one that did not has nothing to learn). Waiting erasures stay, so every receiver still gets one;
    /// the relay deletes the rest once it has delivered the erasure.
    pub async fn scrub<C: ConnectionTrait>(&self, txn: &C, customer_id: &str) -> Result<u64, DbErr> {
        let delivered = outbox_event::Entity::delete_many()
            .filter(outbox_event::Column::PartitionKey.eq(customer_id))
            .filter(outbox_event::Column::DeliveredAt.is_not_null())
            .exec(txn)
            .await?
            .rows_affected;
        let waiting = outbox_event::Entity::find()
            .filter(outbox_event::Column::PartitionKey.eq(customer_id))
            .filter(outbox_event::Column::DeliveredAt.is_null())
            .all(txn)
            .await?;
        let stale: Vec<i64> = waiting
            .into_iter()
            .filter(|r| {
                let erasure = Event::decode(r.payload.as_slice())
                    .is_ok_and(|e| matches!(e.payload, Some(Payload::CustomerForgotten(_))));
                !erasure
            })
            .map(|r| r.id)
            .collect();
        let mut n = delivered + jetstream::forget_receipts(txn, customer_id).await?;
        for chunk in stale.chunks(500) {
            n += outbox_event::Entity::delete_many()
                .filter(outbox_event::Column::Id.is_in(chunk.iter().copied()))
                .exec(txn)
                .await?
                .rows_affected;
        }
        Ok(n)
    }
}

/// Starts a relay for each subscriber, delivering `outbox`'s rows from `db` over `bus`, each under its lease, until
/// `stop` resolves. Over gRPC each calls its subscriber with `outgoing` (the producer's identity), and the events of a
/// subscriber without an address wait; over JetStream each publishes to the producer's stream.
pub fn spawn_relays<F, Fut>(
    db: &sea_orm::DatabaseConnection,
    outbox: &Outbox,
    subscribers: &[Subscriber],
    bus: &EventBus,
    outgoing: &rapport_kit::client::Outgoing,
    clock: &Arc<dyn rapport_kit::clock::Clock>,
    stop: F,
) -> Result<(), String>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    for sub in subscribers {
        let cfg = RelayConfig::from_env(outbox.source(), &sub.name).map_err(|e| e.to_string())?;
        match bus {
            EventBus::Direct => {
                let Some(url) = &sub.url else {
                    tracing::info!(destination = %sub.name, "no address for this subscriber: its events wait in the outbox");
                    continue;
                };
                let channel = rapport_kit::client::channel(url, outgoing.clone()).map_err(|e| format!("{url}: {e}"))?;
                let mut relay = Relay::new(db.clone(), GrpcSink::new(channel), cfg, clock.clone());
                relay.set_waker(outbox.waker());
                tokio::spawn(relay.run(stop()));
            }
            EventBus::JetStream(nats) => {
                let (db, nats, clock, wake, stop) = (db.clone(), nats.clone(), clock.clone(), outbox.waker(), stop());
                let (source, destination) = (outbox.source().to_string(), sub.name.clone());
                tokio::spawn(async move {
                    let bus = match jetstream::JetStream::connect(&nats, &source).await {
                        Ok(b) => b,
                        Err(e) => {
                            tracing::error!(destination = %destination, error = %e, "jetstream unreachable: events wait");
                            return;
                        }
                    };
                    let mut relay =
                        Relay::new(db, jetstream::JetStreamSink::new(bus, &source, &destination), cfg, clock);
                    relay.set_waker(wake);
                    relay.run(stop).await;
                });
            }
        }
    }
    Ok(())
}

/// The row key of an event for a destination: an event fanned out to several subscribers has one row each.
pub fn row_key(destination: &str, event_id: &str) -> String {
    format!("{destination}/{event_id}")
}

/// Writes `event` for `destination` inside the caller's transaction. An empty `event_id` gets a fresh one and an
/// empty `traceparent` the current span's. Most producers use [`Outbox::publish`].
pub async fn enqueue<C: ConnectionTrait>(
    txn: &C,
    destination: &str,
    mut event: Event,
    now_ms: i64,
) -> Result<String, DbErr> {
    if event.event_id.is_empty() {
        event.event_id = uuid::Uuid::new_v4().to_string();
    }
    if event.traceparent.is_empty() {
        event.traceparent = rapport_telemetry::current_traceparent();
    }
    let row = outbox_event::ActiveModel {
        event_id: Set(row_key(destination, &event.event_id)),
        destination: Set(destination.to_string()),
        partition_key: Set(event.customer_id.clone()),
        payload: Set(event.encode_to_vec()),
        created_at: Set(now_ms),
        attempts: Set(0),
        next_attempt_at: Set(now_ms),
        delivered_at: Set(None),
        last_error: Set(None),
        parked_at: Set(None),
        ..Default::default()
    };
    outbox_event::Entity::insert(row).exec_without_returning(txn).await?;
    Ok(event.event_id)
}

/// Events for `destination` not yet delivered (parked ones included).
pub async fn pending<C: ConnectionTrait>(db: &C, destination: &str) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    outbox_event::Entity::find()
        .filter(outbox_event::Column::Destination.eq(destination))
        .filter(outbox_event::Column::DeliveredAt.is_null())
        .count(db)
        .await
}

/// The name of an event's payload kind, e.g. `purchase_recorded`.
pub fn kind(payload: Option<&Payload>) -> &'static str {
    match payload {
        Some(Payload::PurchaseRecorded(_)) => "purchase_recorded",
        Some(Payload::TierChanged(_)) => "tier_changed",
        Some(Payload::CustomerForgotten(_)) => "customer_forgotten",
        Some(Payload::SegmentMembershipChanged(_)) => "segment_membership_changed",
        Some(Payload::SurveyAnswered(_)) => "survey_answered",
        Some(Payload::PromoterIdentified(_)) => "promoter_identified",
        Some(Payload::CaseOpened(_)) => "case_opened",
        Some(Payload::ThemeSignal(_)) => "theme_signal",
        Some(Payload::PurchaseReturned(_)) => "purchase_returned",
        Some(Payload::ReferralMade(_)) => "referral_made",
        Some(Payload::ReferralConverted(_)) => "referral_converted",
        Some(Payload::ThemeAccepted(_)) => "theme_accepted",
        Some(Payload::ImprovementShipped(_)) => "improvement_shipped",
        None => "empty",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_come_from_the_list_and_their_urls() {
        let subs = subscribers_from_env("RAPPORT_TEST_OUTBOX_SUBSCRIBERS_UNSET", &["segmentation"]).unwrap();
        assert_eq!(subs.len(), 1);
        assert_eq!(subs[0].name, "segmentation");
        assert_eq!(row_key("segmentation", "e1"), "segmentation/e1");
        assert_eq!(kind(None), "empty");
    }
}
