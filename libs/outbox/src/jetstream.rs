//! Events over NATS JetStream (`RAPPORT_EVENTS=jetstream`), for production. The outbox stays (publishing stays
//! atomic with the change); its relay publishes to JetStream instead of calling the subscriber.
//!
//! - **Streams and subjects.** One stream per producer, `<prefix>-<source>` (e.g. `rapport-loyalty`), holding
//!   `<prefix>.<source>.>`; an event for a subscriber is published on `<prefix>.<source>.<subscriber>.<kind>` (e.g.
//!   `rapport.loyalty.segmentation.purchase_recorded`) with its outbox row's key as `Nats-Msg-Id`, so a relay that
//!   publishes again after a crash adds nothing within the stream's duplicate window. The stream keeps an event until
//!   its subscriber acknowledges it (work-queue retention), at most 7 days.
//! - **Consumers.** Each subscriber has one durable pull consumer per producer, named after itself and filtered to its
//!   own subjects; every replica of the subscriber pulls from it. One event is outstanding at a time
//!   (`max_ack_pending` 1), so events reach the handler in the order they were written, across replicas — the order
//!   the direct relay keeps.
//! - **The same handler.** Each event goes through [`EventSink::receive`]: the checks, the inbox, the tombstones and
//!   the service's handler of `DeliverEvents`. It is acknowledged after the commit: a lost acknowledgement redelivers
//!   it, and the inbox drops the duplicate.
//! - **Redelivery and parking.** A failure is answered with a delayed negative acknowledgement (the relay's
//!   backoff). An event the service refuses on its last attempt (`RAPPORT_OUTBOX_MAX_ATTEMPTS`) is parked at the
//!   subscriber (`parked_receipts`) and terminated in the stream, and the next one flows; a database failure parks
//!   nothing. Operators list and replay parked receipts through the subscriber's `OutboxService`, with the
//!   subscriber's own name as the destination.
use std::{future::Future, sync::Arc, time::Duration};

use async_nats::jetstream::{
    self, AckKind,
    consumer::{AckPolicy, pull},
    stream,
};
use futures::StreamExt;
use prost::Message as _;
use rapport_kit::{clock::Clock, service::Nats};
use rapport_proto::events::v1::Event;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, sea_query::OnConflict,
};
use tracing::Instrument;

use crate::{
    entities::parked_receipt::{self, Column, Entity},
    relay::{RelayConfig, Sink},
    sink::{EventHandler, EventSink, HandlerError},
};

/// How long a stream keeps an event nobody acknowledged.
const STREAM_MAX_AGE: Duration = Duration::from_secs(7 * 86_400);

/// Within this window a second publish with the same `Nats-Msg-Id` is dropped by the stream.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// How often a consumer looks for parked receipts an operator asked to replay.
const REPLAY_EVERY: Duration = Duration::from_secs(1);

/// A connection to JetStream, and how Rapport names its streams and subjects there.
#[derive(Clone)]
pub struct JetStream {
    js: jetstream::Context,
    prefix: String,
    ack_wait: Duration,
}

impl JetStream {
    /// Connects to `nats` as `name` (the service); the connection is made, and remade, in the background.
    pub async fn connect(nats: &Nats, name: &str) -> Result<Self, String> {
        let client = async_nats::ConnectOptions::new()
            .name(name)
            .retry_on_initial_connect()
            .connect(nats.url.as_str())
            .await
            .map_err(|e| format!("{}: {e}", nats.url))?;
        Ok(Self { js: jetstream::new(client), prefix: nats.prefix.clone(), ack_wait: nats.ack_wait })
    }

    /// The stream of `source`'s events, e.g. `rapport-loyalty`.
    pub fn stream_name(&self, source: &str) -> String {
        format!("{}-{source}", self.prefix)
    }

    /// Deletes `source`'s stream and its consumers (decommissioning an installation; tests clean up with it).
    pub async fn delete_stream(&self, source: &str) -> Result<(), String> {
        self.js.delete_stream(self.stream_name(source)).await.map(|_| ()).map_err(|e| e.to_string())
    }

    /// The subject of a `kind` event of `source` for `destination`.
    pub fn subject(&self, source: &str, destination: &str, kind: &str) -> String {
        format!("{}.{source}.{destination}.{kind}", self.prefix)
    }

    /// `source`'s stream, created when missing.
    pub async fn stream(&self, source: &str) -> Result<stream::Stream, String> {
        self.js
            .get_or_create_stream(stream::Config {
                name: self.stream_name(source),
                subjects: vec![format!("{}.{source}.>", self.prefix)],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                max_age: STREAM_MAX_AGE,
                duplicate_window: DUPLICATE_WINDOW,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("stream {}: {e}", self.stream_name(source)))
    }

    /// The durable consumer of `destination` on `source`'s stream, created when missing.
    async fn consumer(&self, source: &str, destination: &str) -> Result<jetstream::consumer::PullConsumer, String> {
        self.stream(source)
            .await?
            .get_or_create_consumer(
                destination,
                pull::Config {
                    durable_name: Some(destination.into()),
                    filter_subject: format!("{}.{source}.{destination}.>", self.prefix),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: self.ack_wait,
                    // One event outstanding: the next is not handed out before this one is acknowledged.
                    max_ack_pending: 1,
                    // Redelivered until applied or parked by the subscriber, never dropped by the server.
                    max_deliver: -1,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| format!("consumer {destination} of {}: {e}", self.stream_name(source)))
    }
}

/// A relay's sink that publishes to the producer's stream; `Ok` once the stream has stored the event.
pub struct JetStreamSink {
    bus: JetStream,
    source: String,
    destination: String,
    ready: tokio::sync::OnceCell<()>,
}

impl JetStreamSink {
    /// Publishes `source`'s events for `destination`.
    pub fn new(bus: JetStream, source: &str, destination: &str) -> Self {
        Self { bus, source: source.into(), destination: destination.into(), ready: tokio::sync::OnceCell::new() }
    }
}

/// A broker that is unreachable or slow: the relay waits and retries, in order, and parks nothing.
fn unavailable(e: impl std::fmt::Display) -> tonic::Status {
    tonic::Status::unavailable(format!("jetstream: {e}"))
}

impl Sink for JetStreamSink {
    async fn deliver(&self, event: Event) -> Result<(), tonic::Status> {
        self.ready
            .get_or_try_init(|| async { self.bus.stream(&self.source).await.map(|_| ()) })
            .await
            .map_err(unavailable)?;
        let subject = self.bus.subject(&self.source, &self.destination, crate::kind(event.payload.as_ref()));
        let mut headers = async_nats::HeaderMap::new();
        headers
            .insert(async_nats::header::NATS_MESSAGE_ID, crate::row_key(&self.destination, &event.event_id).as_str());
        let ack = self
            .bus
            .js
            .publish_with_headers(subject, headers, event.encode_to_vec().into())
            .await
            .map_err(unavailable)?;
        ack.await.map_err(unavailable)?;
        Ok(())
    }
}

/// Applies `source`'s events for the service behind `sink`, from its durable consumer, until `stop` resolves;
/// reconnects with backoff when the broker goes away.
pub async fn consume<H: EventHandler>(
    bus: JetStream,
    sink: Arc<EventSink<H>>,
    source: String,
    config: RelayConfig,
    clock: Arc<dyn Clock>,
    stop: impl Future<Output = ()> + Send,
) {
    tokio::pin!(stop);
    let mut delay = config.base_backoff;
    loop {
        let receiver = Receiver { bus: &bus, sink: &sink, source: &source, config: &config, clock: &clock };
        tokio::select! {
            () = &mut stop => return,
            r = receiver.run() => match r {
                Ok(()) => delay = config.base_backoff,
                Err(e) => tracing::warn!(source = %source, error = %e, "jetstream consumer stopped, will reconnect"),
            },
        }
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(delay) => {}
        }
        delay = Ord::min(delay.saturating_mul(2), config.max_backoff);
    }
}

struct Receiver<'a, H> {
    bus: &'a JetStream,
    sink: &'a EventSink<H>,
    source: &'a str,
    config: &'a RelayConfig,
    clock: &'a Arc<dyn Clock>,
}

impl<H: EventHandler> Receiver<'_, H> {
    async fn run(&self) -> Result<(), String> {
        let consumer = self.bus.consumer(self.source, self.sink.domain()).await?;
        let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
        tracing::info!(source = %self.source, "jetstream consumer running");
        let mut replay = tokio::time::interval(REPLAY_EVERY);
        loop {
            tokio::select! {
                m = messages.next() => match m {
                    None => return Err("the consumer's message stream ended".into()),
                    Some(Err(e)) => return Err(e.to_string()),
                    Some(Ok(m)) => self.handle(m).await,
                },
                _ = replay.tick() => {
                    if let Err(e) = self.replay().await {
                        tracing::warn!(source = %self.source, error = %e, "replaying parked receipts failed");
                    }
                }
            }
        }
    }

    async fn handle(&self, message: jetstream::Message) {
        let (delivered, sequence) = message.info().map_or((1, 0), |i| (i.delivered, i.stream_sequence));
        let event = match Event::decode(message.payload.as_ref()) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(source = %self.source, sequence, error = %e, "undecodable event parked");
                let stub =
                    Event { event_id: format!("seq-{sequence}"), source: self.source.into(), ..Default::default() };
                self.settle(&message, self.park(&stub, &message.payload, 1, &format!("undecodable: {e}")).await, true)
                    .await;
                return;
            }
        };
        let span = tracing::info_span!(
            "outbox.receive",
            otel.kind = "consumer",
            rapport.service = self.sink.domain(),
            messaging.system = "nats",
            messaging.destination.name = %message.subject,
            messaging.message.id = %event.event_id,
        );
        rapport_telemetry::set_parent(&span, rapport_telemetry::context_from_traceparent(&event.traceparent));
        let result = self.sink.receive(self.source, vec![event.clone()]).instrument(span).await;
        match result {
            Ok(_) => self.ack(&message, AckKind::Ack).await,
            Err(HandlerError::Refused(e)) if delivered >= i64::from(self.config.max_attempts) => {
                tracing::error!(
                    source = %self.source,
                    event_id = %event.event_id,
                    attempts = delivered,
                    reason = e.reason,
                    "event parked after its last attempt"
                );
                let attempts = i32::try_from(delivered).unwrap_or(i32::MAX);
                let parked = self.park(&event, &message.payload, attempts, &e.message).await;
                self.settle(&message, parked, false).await;
            }
            Err(e) => {
                tracing::warn!(
                    source = %self.source,
                    event_id = %event.event_id,
                    attempts = delivered,
                    error = %e,
                    "applying an event failed, will retry"
                );
                let attempts = i32::try_from(delivered).unwrap_or(i32::MAX);
                let delay = u64::try_from(crate::relay::backoff(self.config, attempts)).unwrap_or(0);
                self.ack(&message, AckKind::Nak(Some(Duration::from_millis(delay)))).await;
            }
        }
    }

    /// Terminates a parked event in the stream, or has it redelivered when parking it failed.
    async fn settle(&self, message: &jetstream::Message, parked: Result<(), DbErr>, undecodable: bool) {
        match parked {
            Ok(()) => self.ack(message, AckKind::Term).await,
            Err(e) => {
                tracing::error!(source = %self.source, undecodable, error = %e, "parking an event failed, will retry");
                let delay = self.config.base_backoff;
                self.ack(message, AckKind::Nak(Some(delay))).await;
            }
        }
    }

    async fn ack(&self, message: &jetstream::Message, kind: AckKind) {
        // A lost acknowledgement is not fatal: the event comes again after the wait, and the inbox drops it.
        if let Err(e) = message.ack_with(kind).await {
            tracing::warn!(source = %self.source, error = %e, "acknowledging an event failed");
        }
    }

    async fn park(&self, event: &Event, payload: &[u8], attempts: i32, error: &str) -> Result<(), DbErr> {
        let now = self.clock.now_ms();
        let row = parked_receipt::ActiveModel {
            event_key: Set(format!("{}/{}", self.source, event.event_id)),
            event_id: Set(event.event_id.clone()),
            source: Set(self.source.into()),
            partition_key: Set(event.customer_id.clone()),
            payload: Set(payload.to_vec()),
            created_at: Set(event.occurred_at.as_ref().map_or(now, rapport_kit::clock::millis)),
            attempts: Set(attempts),
            last_error: Set(error.into()),
            parked_at: Set(Some(now)),
            ..Default::default()
        };
        Entity::insert(row)
            .on_conflict(
                OnConflict::column(Column::EventKey)
                    .update_columns([Column::Attempts, Column::LastError, Column::ParkedAt])
                    .to_owned(),
            )
            .exec_without_returning(self.sink.db())
            .await?;
        Ok(())
    }

    /// Applies the parked receipts of this source that an operator asked to replay; one refused again is parked
    /// again with its new answer.
    async fn replay(&self) -> Result<(), DbErr> {
        let db = self.sink.db();
        let rows = Entity::find()
            .filter(Column::Source.eq(self.source))
            .filter(Column::ParkedAt.is_null())
            .order_by_asc(Column::Id)
            .limit(50)
            .all(db)
            .await?;
        for row in rows {
            let outcome = match Event::decode(row.payload.as_slice()) {
                Ok(event) => self.sink.receive(self.source, vec![event]).await,
                Err(e) => Err(HandlerError::Other(format!("undecodable: {e}"))),
            };
            match outcome {
                Ok(_) => {
                    Entity::delete_by_id(row.id).exec(db).await?;
                    tracing::info!(source = %self.source, event_id = %row.event_id, "parked event replayed");
                }
                Err(HandlerError::Db(e)) => return Err(e),
                Err(e) => {
                    Entity::update_many()
                        .col_expr(Column::ParkedAt, sea_orm::sea_query::Expr::value(self.clock.now_ms()))
                        .col_expr(Column::Attempts, sea_orm::sea_query::Expr::value(row.attempts.saturating_add(1)))
                        .col_expr(Column::LastError, sea_orm::sea_query::Expr::value(e.to_string()))
                        .filter(Column::Id.eq(row.id))
                        .exec(db)
                        .await?;
                    tracing::warn!(source = %self.source, event_id = %row.event_id, "replayed event refused again");
                }
            }
        }
        Ok(())
    }
}

/// Part of an erasure: deletes the customer's parked receipts.
pub async fn forget_receipts<C: ConnectionTrait>(txn: &C, customer_id: &str) -> Result<u64, DbErr> {
    Ok(Entity::delete_many().filter(Column::PartitionKey.eq(customer_id)).exec(txn).await?.rows_affected)
}

/// How many receipts are parked at this service (waiting for an operator).
pub async fn parked_receipts(db: &DatabaseConnection) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    Entity::find().filter(Column::ParkedAt.is_not_null()).count(db).await
}

/// The producers whose events the service receives: the callers its `authz-events.txt` lets deliver.
pub fn sources(events_authz: &str) -> Vec<String> {
    events_authz
        .lines()
        .filter_map(|l| l.trim().strip_prefix("DeliverEvents:"))
        .flat_map(str::split_whitespace)
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_the_callers_allowed_to_deliver() {
        let text = "# who may deliver\nDeliverEvents:   loyalty  feedback\n";
        assert_eq!(sources(text), ["loyalty", "feedback"]);
        assert!(sources("# none\n").is_empty());
    }
}
