//! The transactional outbox (DESIGN.md): an event row is written in the same transaction as the change that caused
//! it, a relay delivers the rows in order with backoff and marks them delivered, and receivers apply each event id
//! once through the inbox. Works on SQLite and PostgreSQL (`FOR UPDATE SKIP LOCKED` there, so relays of several
//! replicas never take the same rows). The event carries the W3C trace context of the transaction that wrote it.
pub mod entities;
pub mod inbox;
pub mod migration;
pub mod relay;

use prost::Message;
use rapport_proto::events::v1::Event;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait};

pub use relay::{GrpcSink, Relay, RelayConfig, Sink};

/// Writes `event` for `destination` inside the caller's transaction. An empty `event_id` gets a fresh one and an
/// empty `traceparent` the current span's.
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
    let row = entities::outbox_event::ActiveModel {
        event_id: Set(event.event_id.clone()),
        destination: Set(destination.to_string()),
        partition_key: Set(event.customer_id.clone()),
        payload: Set(event.encode_to_vec()),
        created_at: Set(now_ms),
        attempts: Set(0),
        next_attempt_at: Set(now_ms),
        delivered_at: Set(None),
        last_error: Set(None),
        ..Default::default()
    };
    entities::outbox_event::Entity::insert(row).exec_without_returning(txn).await?;
    Ok(event.event_id)
}

/// Writes an event of `source` about `customer_id` for `destination` inside the caller's transaction (the common
/// case of [`enqueue`]: a fresh event id, the current trace context).
pub async fn publish<C: ConnectionTrait>(
    txn: &C,
    destination: &str,
    source: &str,
    customer_id: &str,
    payload: rapport_proto::events::v1::event::Payload,
    now_ms: i64,
) -> Result<String, DbErr> {
    let event = Event {
        event_id: String::new(),
        source: source.into(),
        customer_id: customer_id.into(),
        occurred_at: Some(rapport_kit::clock::timestamp(now_ms)),
        traceparent: String::new(),
        payload: Some(payload),
    };
    enqueue(txn, destination, event, now_ms).await
}

/// Undelivered events for `destination`.
pub async fn pending<C: ConnectionTrait>(db: &C, destination: &str) -> Result<u64, DbErr> {
    use entities::outbox_event::{Column, Entity};
    use sea_orm::{ColumnTrait, PaginatorTrait, QueryFilter};
    Entity::find().filter(Column::Destination.eq(destination)).filter(Column::DeliveredAt.is_null()).count(db).await
}
