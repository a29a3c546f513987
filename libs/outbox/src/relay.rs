//! Delivers outbox rows to their destination, oldest first, one event per call so each delivery joins the trace
//! of the transaction that wrote it. A failed delivery stops the batch (order is kept) and is retried with
//! exponential backoff; nothing is marked delivered before the receiver acknowledged it.
use std::{future::Future, sync::Arc, time::Duration};

use prost::Message;
use rapport_kit::{
    client::{OutgoingChannel, RetryBudget},
    clock::Clock,
};
use rapport_proto::events::v1::{DeliverEventsRequest, Event, event_sink_service_client::EventSinkServiceClient};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
    sea_query::{Expr, LockBehavior, LockType},
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
    /// Rows taken per round.
    pub batch: u64,
    /// How often it looks for rows when not woken.
    pub poll_interval: Duration,
    /// First retry delay; doubles per failed attempt up to `max_backoff`.
    pub base_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
}

impl RelayConfig {
    /// Defaults for `destination`.
    pub fn new(destination: &str) -> Self {
        Self {
            destination: destination.into(),
            batch: 100,
            poll_interval: Duration::from_millis(500),
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// The relay of one destination.
pub struct Relay<S: Sink> {
    db: DatabaseConnection,
    sink: S,
    config: RelayConfig,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
}

impl<S: Sink> Relay<S> {
    /// A relay over `db`'s outbox.
    pub fn new(db: DatabaseConnection, sink: S, config: RelayConfig, clock: Arc<dyn Clock>) -> Self {
        Self { db, sink, config, clock, wake: Arc::new(Notify::new()) }
    }

    /// Notify it after a commit that enqueued events, to deliver them without waiting for the next poll.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Uses a waker the writer already holds.
    pub fn set_waker(&mut self, wake: Arc<Notify>) {
        self.wake = wake;
    }

    /// One round: delivers what is due, in order; returns how many rows were delivered.
    pub async fn run_once(&self) -> Result<usize, DbErr> {
        if self.db.get_database_backend() == DbBackend::Postgres {
            // Rows stay locked while they are delivered: other replicas' relays skip them.
            let txn = self.db.begin().await?;
            let n = self.round(&txn, true).await?;
            txn.commit().await?;
            Ok(n)
        } else {
            // SQLite has one writer and one relay per file; a read transaction upgraded to a write one could fail
            // with a busy snapshot while the service writes, so each statement stands alone.
            self.round(&self.db, false).await
        }
    }

    async fn round<C: ConnectionTrait>(&self, txn: &C, lock: bool) -> Result<usize, DbErr> {
        let now = self.clock.now_ms();
        let mut q = Entity::find()
            .filter(Column::Destination.eq(self.config.destination.as_str()))
            .filter(Column::DeliveredAt.is_null())
            .order_by_asc(Column::Id)
            .limit(self.config.batch);
        if lock {
            q = q.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        let rows: Vec<Model> = q.all(txn).await?;
        let mut delivered = 0;
        for row in rows {
            // Strict order: a row in backoff holds back the rows behind it.
            if row.next_attempt_at > now {
                break;
            }
            let event = match Event::decode(row.payload.as_slice()) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(event_id = %row.event_id, error = %e, "undecodable outbox row skipped");
                    self.mark_delivered(txn, row.id, now).await?;
                    continue;
                }
            };
            let span = tracing::info_span!(
                "outbox.deliver",
                otel.kind = "producer",
                messaging.destination.name = %self.config.destination,
                messaging.message.id = %row.event_id,
            );
            rapport_telemetry::set_parent(&span, rapport_telemetry::context_from_traceparent(&event.traceparent));
            match self.sink.deliver(event).instrument(span).await {
                Ok(()) => {
                    self.mark_delivered(txn, row.id, now).await?;
                    delivered += 1;
                }
                Err(status) => {
                    let attempts = row.attempts.saturating_add(1);
                    let backoff = backoff(&self.config, attempts);
                    tracing::warn!(
                        destination = %self.config.destination,
                        event_id = %row.event_id,
                        attempts,
                        code = ?status.code(),
                        "event delivery failed, will retry"
                    );
                    Entity::update_many()
                        .col_expr(Column::Attempts, Expr::value(attempts))
                        .col_expr(Column::NextAttemptAt, Expr::value(now + backoff))
                        .col_expr(Column::LastError, Expr::value(status.message().to_string()))
                        .filter(Column::Id.eq(row.id))
                        .exec(txn)
                        .await?;
                    break;
                }
            }
        }
        Ok(delivered)
    }

    async fn mark_delivered<C: ConnectionTrait>(&self, txn: &C, id: i64, now: i64) -> Result<(), DbErr> {
        Entity::update_many()
            .col_expr(Column::DeliveredAt, Expr::value(now))
            .filter(Column::Id.eq(id))
            .exec(txn)
            .await?;
        Ok(())
    }

    /// Runs until `stop` resolves.
    pub async fn run(self, stop: impl Future<Output = ()> + Send) {
        tokio::pin!(stop);
        loop {
            let more = match self.run_once().await {
                Ok(n) => n as u64 == self.config.batch,
                Err(e) => {
                    tracing::error!(error = %e, destination = %self.config.destination, "outbox relay round failed");
                    false
                }
            };
            if more {
                continue;
            }
            tokio::select! {
                () = &mut stop => return,
                () = self.wake.notified() => {},
                () = tokio::time::sleep(self.config.poll_interval) => {},
            }
        }
    }
}

fn backoff(cfg: &RelayConfig, attempts: i32) -> i64 {
    let shift = u32::try_from(attempts.clamp(1, 20) - 1).unwrap_or(0);
    let ms = cfg.base_backoff.as_millis().saturating_mul(1u128 << shift).min(cfg.max_backoff.as_millis());
    i64::try_from(ms).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let c = RelayConfig::new("x");
        assert_eq!(backoff(&c, 1), 200);
        assert_eq!(backoff(&c, 2), 400);
        assert_eq!(backoff(&c, 30), 60_000);
    }
}
