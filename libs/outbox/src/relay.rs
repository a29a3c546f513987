//! Delivers one destination's outbox rows, oldest first, one event per call so each delivery joins the trace of the
//! transaction that wrote it.
//!
//! - **One relay per destination at a time.** The relay runs under the lease `<source>.outbox.<destination>`
//!   (`rapport_kit::lease`): with several replicas, exactly one delivers, in `id` order. Events of one customer are
//!   written under that customer's row lock, so their ids follow their commit order, and one relay delivering in id
//!   order keeps them in order at the receiver.
//! - **Short transactions.** Rows are read, delivered and marked one statement at a time; no transaction stays open
//!   across a network call. A crash between delivery and marking redelivers the event, which the receiver's inbox
//!   de-duplicates.
//! - **Parking.** A failed delivery holds back the rows behind it (order) and is retried with exponential backoff;
//!   after `max_attempts` the event is parked with its last error and the destination moves on. Parked events wait
//!   for an operator (`OutboxService.RetryParkedEvents`, `rapport events retry`).
//! - **Retention.** Delivered rows are deleted after `retention`; once a customer's erasure is delivered, that
//!   customer's delivered and parked rows for the destination are deleted at once.
use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use prost::Message;
use rapport_kit::{
    client::{OutgoingChannel, RetryBudget},
    clock::Clock,
    lease::Worker,
};
use rapport_proto::events::v1::{
    DeliverEventsRequest, Event, event, event_sink_service_client::EventSinkServiceClient,
};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait},
};
use tokio::sync::Notify;
use tracing::Instrument;

use crate::entities::outbox_event::{Column, Entity, Model};

/// Where events go.
pub trait Sink: Send + Sync + 'static {
    /// Delivers one event; `Ok` means the receiver has it (applied now or before).
    fn deliver(&self, event: Event) -> impl Future<Output = Result<(), tonic::Status>> + Send;
}

/// Delivers over gRPC to a service's `EventSinkService`.
#[derive(Clone)]
pub struct GrpcSink {
    client: EventSinkServiceClient<OutgoingChannel>,
    budget: RetryBudget,
}

impl GrpcSink {
    /// A sink over `channel`.
    pub fn new(channel: OutgoingChannel) -> Self {
        Self { client: EventSinkServiceClient::new(channel), budget: RetryBudget::default() }
    }
}

impl Sink for GrpcSink {
    async fn deliver(&self, event: Event) -> Result<(), tonic::Status> {
        rapport_kit::client::with_retry(&self.budget, 2, || {
            let mut c = self.client.clone();
            let req = DeliverEventsRequest { events: vec![event.clone()] };
            async move { c.deliver_events(req).await }
        })
        .await
        .map(|_| ())
    }
}

/// How the relay behaves.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The destination whose rows it delivers.
    pub destination: String,
    /// The lease it runs under (`<source>.outbox.<destination>`).
    pub lease: String,
    /// Rows taken per round.
    pub batch: u64,
    /// How often it looks for rows when not woken.
    pub poll_interval: Duration,
    /// First retry delay; doubles per failed attempt up to `max_backoff`.
    pub base_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Attempts before an event the receiver refuses is parked (`RAPPORT_OUTBOX_MAX_ATTEMPTS`, default 10). A receiver
    /// that is down, overloaded or refusing the relay's identity parks nothing: the destination waits, in order.
    pub max_attempts: i32,
    /// How long delivered rows are kept (`RAPPORT_OUTBOX_RETENTION_MS`, default 7 days).
    pub retention: Duration,
}

impl RelayConfig {
    /// Defaults for `source`'s rows to `destination`.
    pub fn new(source: &str, destination: &str) -> Self {
        Self {
            destination: destination.into(),
            lease: format!("{source}.outbox.{destination}"),
            batch: 100,
            poll_interval: Duration::from_millis(500),
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(60),
            max_attempts: 10,
            retention: Duration::from_secs(7 * 86_400),
        }
    }

    /// With `RAPPORT_OUTBOX_MAX_ATTEMPTS` and `RAPPORT_OUTBOX_RETENTION_MS` applied.
    pub fn from_env(source: &str, destination: &str) -> Result<Self, rapport_kit::config::ConfigError> {
        let d = Self::new(source, destination);
        Ok(Self {
            max_attempts: Ord::max(rapport_kit::config::parse("RAPPORT_OUTBOX_MAX_ATTEMPTS", d.max_attempts)?, 1),
            retention: rapport_kit::config::millis("RAPPORT_OUTBOX_RETENTION_MS", d.retention)?,
            ..d
        })
    }
}

/// The relay of one destination.
pub struct Relay<S: Sink> {
    db: DatabaseConnection,
    sink: S,
    config: RelayConfig,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    last_prune: AtomicI64,
    last_gauge: AtomicI64,
    gauges: Gauges,
}

/// How often delivered rows past their retention are deleted.
const PRUNE_EVERY_MS: i64 = 60_000;

/// How often the backlog and the parked events are counted for the metrics.
const GAUGE_EVERY_MS: i64 = 15_000;

/// `rapport.outbox.backlog` (events waiting) and `rapport.outbox.parked` (events parked), per source and destination,
/// reported by the replica that holds the destination's lease; no-ops unless telemetry exports metrics.
struct Gauges {
    backlog: opentelemetry::metrics::Gauge<i64>,
    parked: opentelemetry::metrics::Gauge<i64>,
}

impl Gauges {
    fn new() -> Self {
        let meter = opentelemetry::global::meter("rapport");
        Self {
            backlog: meter.i64_gauge("rapport.outbox.backlog").with_description("events waiting for delivery").build(),
            parked: meter.i64_gauge("rapport.outbox.parked").with_description("events parked for an operator").build(),
        }
    }
}

impl<S: Sink> Relay<S> {
    /// A relay over `db`'s outbox.
    pub fn new(db: DatabaseConnection, sink: S, config: RelayConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            db,
            sink,
            config,
            clock,
            wake: Arc::new(Notify::new()),
            last_prune: AtomicI64::new(i64::MIN),
            last_gauge: AtomicI64::new(i64::MIN),
            gauges: Gauges::new(),
        }
    }

    /// Notify it after a commit that enqueued events, to deliver them without waiting for the next poll.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Uses a waker the writer already holds.
    pub fn set_waker(&mut self, wake: Arc<Notify>) {
        self.wake = wake;
    }

    /// One round: delivers what is due, in order, parking what ran out of attempts; returns how many rows were
    /// delivered. Callers other than [`Relay::run`] must hold the destination's lease themselves.
    pub async fn run_once(&self) -> Result<usize, DbErr> {
        let now = self.clock.now_ms();
        let rows: Vec<Model> = Entity::find()
            .filter(Column::Destination.eq(self.config.destination.as_str()))
            .filter(Column::DeliveredAt.is_null())
            .filter(Column::ParkedAt.is_null())
            .order_by_asc(Column::Id)
            .limit(self.config.batch)
            .all(&self.db)
            .await?;
        let mut delivered = 0;
        for row in rows {
            // Strict order: a row in backoff holds back the rows behind it.
            if row.next_attempt_at > now {
                break;
            }
            let event = match Event::decode(row.payload.as_slice()) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(event_id = %row.event_id, error = %e, "undecodable outbox row parked");
                    self.park(&row, row.attempts, &format!("undecodable: {e}"), now).await?;
                    continue;
                }
            };
            let forgotten = matches!(event.payload, Some(event::Payload::CustomerForgotten(_)));
            let span = tracing::info_span!(
                "outbox.deliver",
                otel.kind = "producer",
                // Its parent is the writer's span (another trace, maybe another process): it names its own service.
                rapport.service = self.config.lease.split('.').next().unwrap_or_default(),
                messaging.destination.name = %self.config.destination,
                messaging.message.id = %event.event_id,
            );
            rapport_telemetry::set_parent(&span, rapport_telemetry::context_from_traceparent(&event.traceparent));
            match self.sink.deliver(event).instrument(span).await {
                Ok(()) => {
                    Entity::update_many()
                        .col_expr(Column::DeliveredAt, Expr::value(now))
                        .filter(Column::Id.eq(row.id))
                        .exec(&self.db)
                        .await?;
                    delivered += 1;
                    if forgotten {
                        self.scrub(&row.partition_key).await?;
                    }
                }
                Err(status) => {
                    let attempts = row.attempts.saturating_add(1);
                    let error = format!("{:?}: {}", status.code(), status.message());
                    if attempts >= self.config.max_attempts && refuses_the_event(status.code()) {
                        tracing::error!(
                            destination = %self.config.destination,
                            event_id = %row.event_id,
                            attempts,
                            code = ?status.code(),
                            "event parked after its last attempt"
                        );
                        self.park(&row, attempts, &error, now).await?;
                        continue;
                    }
                    tracing::warn!(
                        destination = %self.config.destination,
                        event_id = %row.event_id,
                        attempts,
                        code = ?status.code(),
                        "event delivery failed, will retry"
                    );
                    Entity::update_many()
                        .col_expr(Column::Attempts, Expr::value(attempts))
                        .col_expr(Column::NextAttemptAt, Expr::value(now + backoff(&self.config, attempts)))
                        .col_expr(Column::LastError, Expr::value(error))
                        .filter(Column::Id.eq(row.id))
                        .exec(&self.db)
                        .await?;
                    break;
                }
            }
        }
        Ok(delivered)
    }

    async fn park(&self, row: &Model, attempts: i32, error: &str, now: i64) -> Result<(), DbErr> {
        Entity::update_many()
            .col_expr(Column::Attempts, Expr::value(attempts))
            .col_expr(Column::LastError, Expr::value(error.to_string()))
            .col_expr(Column::ParkedAt, Expr::value(now))
            .filter(Column::Id.eq(row.id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// The destination now has the customer's erasure: nothing of that customer needs keeping for it.
    async fn scrub(&self, partition_key: &str) -> Result<(), DbErr> {
        Entity::delete_many()
            .filter(Column::Destination.eq(self.config.destination.as_str()))
            .filter(Column::PartitionKey.eq(partition_key))
            .filter(Column::DeliveredAt.is_not_null().or(Column::ParkedAt.is_not_null()))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Deletes delivered rows older than the retention; returns how many.
    pub async fn prune(&self) -> Result<u64, DbErr> {
        let cutoff = self.clock.now_ms().saturating_sub(i64::try_from(self.config.retention.as_millis()).unwrap_or(0));
        let r = Entity::delete_many()
            .filter(Column::Destination.eq(self.config.destination.as_str()))
            .filter(Column::DeliveredAt.lt(cutoff))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected)
    }

    /// Counts the destination's waiting and parked events: (backlog, parked).
    pub async fn backlog(&self) -> Result<(u64, u64), DbErr> {
        let mine = || Entity::find().filter(Column::Destination.eq(self.config.destination.as_str()));
        let waiting =
            mine().filter(Column::DeliveredAt.is_null()).filter(Column::ParkedAt.is_null()).count(&self.db).await?;
        let parked = mine().filter(Column::ParkedAt.is_not_null()).count(&self.db).await?;
        Ok((waiting, parked))
    }

    async fn report(&self) {
        match self.backlog().await {
            Ok((waiting, parked)) => {
                let source = self.config.lease.split('.').next().unwrap_or_default().to_string();
                let attributes = [
                    opentelemetry::KeyValue::new("rapport.service", source),
                    opentelemetry::KeyValue::new("messaging.destination.name", self.config.destination.clone()),
                ];
                self.gauges.backlog.record(i64::try_from(waiting).unwrap_or(i64::MAX), &attributes);
                self.gauges.parked.record(i64::try_from(parked).unwrap_or(i64::MAX), &attributes);
            }
            Err(e) => tracing::warn!(destination = %self.config.destination, error = %e, "counting the backlog failed"),
        }
    }

    async fn round(&self) -> bool {
        let now = self.clock.now_ms();
        if now.saturating_sub(self.last_gauge.load(Ordering::Relaxed)) >= GAUGE_EVERY_MS {
            self.last_gauge.store(now, Ordering::Relaxed);
            self.report().await;
        }
        if now.saturating_sub(self.last_prune.load(Ordering::Relaxed)) >= PRUNE_EVERY_MS {
            self.last_prune.store(now, Ordering::Relaxed);
            match self.prune().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(destination = %self.config.destination, rows = n, "delivered events pruned"),
                Err(e) => tracing::warn!(destination = %self.config.destination, error = %e, "pruning failed"),
            }
        }
        match self.run_once().await {
            Ok(n) => n as u64 == self.config.batch,
            Err(e) => {
                tracing::error!(error = %e, destination = %self.config.destination, "outbox relay round failed");
                false
            }
        }
    }

    /// Runs under the destination's lease until `stop` resolves.
    pub async fn run(self, stop: impl Future<Output = ()> + Send) {
        let worker = Worker::new(self.config.lease.clone(), self.config.poll_interval).with_wake(self.wake.clone());
        let db = self.db.clone();
        let relay = &self;
        worker.run(db, stop, || relay.round()).await;
    }
}

/// Whether the receiver's answer is about this event (park it once attempts run out) rather than about the receiver
/// or the relay (down, overloaded, misconfigured: wait, keeping order).
fn refuses_the_event(code: tonic::Code) -> bool {
    use tonic::Code as C;
    !matches!(
        code,
        C::Unavailable
            | C::DeadlineExceeded
            | C::ResourceExhausted
            | C::Cancelled
            | C::Unauthenticated
            | C::PermissionDenied
            | C::Unknown
    )
}

pub(crate) fn backoff(cfg: &RelayConfig, attempts: i32) -> i64 {
    let shift = u32::try_from(attempts.clamp(1, 20) - 1).unwrap_or(0);
    let ms = cfg.base_backoff.as_millis().saturating_mul(1u128 << shift).min(cfg.max_backoff.as_millis());
    i64::try_from(ms).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let c = RelayConfig::new("x", "y");
        assert_eq!(backoff(&c, 1), 200);
        assert_eq!(backoff(&c, 2), 400);
        assert_eq!(backoff(&c, 30), 60_000);
        assert_eq!(c.lease, "x.outbox.y");
        assert!(refuses_the_event(tonic::Code::InvalidArgument));
        assert!(!refuses_the_event(tonic::Code::Unavailable));
    }
}
