//! The receiving side of events, the same for every service: [`EventSink`] serves `EventSinkService` and hands
//! each batch to the service's [`EventHandler`] inside one transaction, after
//! - binding every event's `source` to the caller's identity (a service cannot speak for another),
//! - validating (ids present, a payload, not dated beyond the allowed clock skew in the future),
//! - de-duplicating by event id (the inbox), and
//! - keeping a tombstone per erased customer: an event about an erased customer that arrives later is dropped.
//!   Each batch first takes the service's lock of each of its customers ([`rapport_kit::lease::lock_customers`],
//!   scope = the service's domain): the service's own erasure and its writes about a customer take the same lock.
//!
//! The batch keeps its delivery order: events before an erasure are applied before it (and so erased with it).
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use rapport_kit::{
    auth::Caller,
    clock::{Clock, millis},
    db::begin_write,
    error::{ApiError, ErrorCode, Violations},
    pseudonym::Pseudonyms,
};
use rapport_proto::events::v1::{
    DeliverEventsRequest, DeliverEventsResponse, Event, event::Payload, event_sink_service_server::EventSinkService,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter, TryInsertResult,
};
use tonic::{Request, Response, Status};

use crate::{entities::erased_customer, inbox};

/// Full name of the gRPC service.
pub const SERVICE_NAME: &str = "rapport.events.v1.EventSinkService";

/// Why a handler did not apply a batch.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The events are refused (the relay parks them after its attempts).
    #[error("{}", .0.message)]
    Refused(ApiError),
    /// The database failed (the relay retries).
    #[error("database: {0}")]
    Db(#[from] DbErr),
    /// Anything else of the handler's (logged; the caller sees INTERNAL).
    #[error("{0}")]
    Other(String),
}

impl HandlerError {
    /// A service's error as the sink tells it: a database failure is retried by the relay, a refusal of the events
    /// (parked after the relay's attempts) carries the service's answer, anything else of the service's is logged.
    pub fn of<E: rapport_kit::error::ServiceError>(e: E) -> Self {
        match e.db() {
            Some(db) => Self::Db(DbErr::Custom(db.to_string())),
            None if e.is_internal() => Self::Other(e.to_string()),
            None => Self::Refused(e.to_api()),
        }
    }
}

/// What a receiving service does with events. Both methods run inside the sink's transaction, which also records
/// the event ids and tombstones: a failure rolls all of it back.
#[tonic::async_trait]
pub trait EventHandler: Send + Sync + 'static {
    /// Applies fresh events (never seen before, none about an erased customer), in delivery order. Events the
    /// service has no use for are simply skipped.
    async fn apply(&self, txn: &DatabaseTransaction, events: Vec<Event>) -> Result<(), HandlerError>;

    /// Erases everything the service holds about `customer_id`.
    async fn forget(&self, txn: &DatabaseTransaction, customer_id: &str) -> Result<(), HandlerError>;
}

/// How far in the future an event may be dated (`RAPPORT_MAX_CLOCK_SKEW_MS`, default 5 minutes).
pub fn max_skew_from_env() -> Result<Duration, rapport_kit::config::ConfigError> {
    rapport_kit::config::millis("RAPPORT_MAX_CLOCK_SKEW_MS", Duration::from_secs(300))
}

/// Records that `customer_id` was erased (idempotent).
pub async fn bury<C: ConnectionTrait>(
    txn: &C,
    pseudonyms: &Pseudonyms,
    customer_id: &str,
    now_ms: i64,
) -> Result<(), DbErr> {
    let row = erased_customer::ActiveModel { pseudonym: Set(pseudonyms.of(customer_id)), erased_at: Set(now_ms) };
    let _: TryInsertResult<_> = erased_customer::Entity::insert(row)
        .on_conflict_do_nothing_on([erased_customer::Column::Pseudonym])
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// Whether `customer_id` was erased here, or is the pseudonym an erased customer's kept records are filed under
/// (asking by it would tie them together again).
pub async fn is_erased_or_pseudonym<C: ConnectionTrait>(
    db: &C,
    pseudonyms: &Pseudonyms,
    customer_id: &str,
) -> Result<bool, DbErr> {
    Ok(Pseudonyms::is_pseudonym(customer_id) || is_erased(db, pseudonyms, customer_id).await?)
}

/// Whether `customer_id` was erased here.
pub async fn is_erased<C: ConnectionTrait>(txn: &C, pseudonyms: &Pseudonyms, customer_id: &str) -> Result<bool, DbErr> {
    Ok(erased_customer::Entity::find_by_id(pseudonyms.of(customer_id)).one(txn).await?.is_some())
}

/// Which of `customer_ids` were erased here, in one query per thousand.
pub async fn erased_among<C: ConnectionTrait>(
    txn: &C,
    pseudonyms: &Pseudonyms,
    customer_ids: &[&str],
) -> Result<HashSet<String>, DbErr> {
    let by_pseudonym: HashMap<String, &str> = customer_ids.iter().map(|c| (pseudonyms.of(c), *c)).collect();
    let keys: Vec<&str> = by_pseudonym.keys().map(String::as_str).collect();
    let mut erased = HashSet::new();
    for chunk in keys.chunks(rapport_kit::db::ROWS_PER_STATEMENT) {
        let rows = erased_customer::Entity::find()
            .filter(erased_customer::Column::Pseudonym.is_in(chunk.iter().copied()))
            .all(txn)
            .await?;
        erased.extend(rows.iter().filter_map(|r| by_pseudonym.get(&r.pseudonym)).map(|c| c.to_string()));
    }
    Ok(erased)
}

/// Serves `EventSinkService` in front of `H`.
pub struct EventSink<H> {
    db: DatabaseConnection,
    handler: Arc<H>,
    clock: Arc<dyn Clock>,
    pseudonyms: Pseudonyms,
    max_skew_ms: i64,
    domain: &'static str,
    /// Called after each commit that applied something (e.g. to wake the service's own relays).
    after_commit: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl<H: EventHandler> EventSink<H> {
    /// A sink over `db`; errors carry `domain` (the service).
    pub fn new(
        db: DatabaseConnection,
        handler: Arc<H>,
        clock: Arc<dyn Clock>,
        pseudonyms: Pseudonyms,
        max_skew: Duration,
        domain: &'static str,
    ) -> Self {
        let max_skew_ms = i64::try_from(max_skew.as_millis()).unwrap_or(i64::MAX);
        Self { db, handler, clock, pseudonyms, max_skew_ms, domain, after_commit: None }
    }

    /// Runs `f` after each commit.
    pub fn after_commit(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.after_commit = Some(Arc::new(f));
        self
    }

    fn validate(&self, source: Option<&str>, events: &[Event], now: i64) -> Result<(), ApiError> {
        let Some(source) = source else {
            return Err(ApiError::new(ErrorCode::PermissionDenied, "UNKNOWN_CALLER", "the caller has no identity"));
        };
        let mut v = Violations::new();
        v.check(!events.is_empty(), "events", "must not be empty");
        v.check(events.len() <= 1000, "events", "at most 1000 events per batch");
        for (i, e) in events.iter().enumerate() {
            v.id(&format!("events[{i}].event_id"), &e.event_id);
            v.id(&format!("events[{i}].customer_id"), &e.customer_id);
            if e.source != source {
                v.add(format!("events[{i}].source"), format!("must be the caller's own service ({source})"));
            }
            v.check(e.payload.is_some(), &format!("events[{i}].payload"), "must be set");
            if let Some(at) = e.occurred_at.as_ref().map(millis)
                && at > now.saturating_add(self.max_skew_ms)
            {
                v.add(format!("events[{i}].occurred_at"), "must not be in the future");
            }
        }
        v.finish()
    }

    async fn apply(&self, events: Vec<Event>, now: i64) -> Result<(i32, i32), HandlerError> {
        let txn = begin_write(&self.db).await?;
        // Every customer's lock of the service first, in one order, then the tombstones read under them: an erasure
        // (which takes the same lock) either committed before, and its tombstone is seen, or waits for this batch.
        rapport_kit::lease::lock_customers(
            &txn,
            self.domain,
            &self.pseudonyms,
            events.iter().map(|e| e.customer_id.as_str()),
        )
        .await?;
        let (mut applied, mut skipped) = (0, 0);
        let mut run: Vec<Event> = Vec::new();
        for e in events {
            if !inbox::apply_once(&txn, &e.event_id, &e.source, now).await? {
                skipped += 1;
                continue;
            }
            if is_erased(&txn, &self.pseudonyms, &e.customer_id).await? {
                // Erased already: a late event must not bring the customer back.
                skipped += 1;
                continue;
            }
            if matches!(e.payload, Some(Payload::CustomerForgotten(_))) {
                if !run.is_empty() {
                    self.handler.apply(&txn, std::mem::take(&mut run)).await?;
                }
                self.handler.forget(&txn, &e.customer_id).await?;
                crate::jetstream::forget_receipts(&txn, &e.customer_id).await?;
                bury(&txn, &self.pseudonyms, &e.customer_id, now).await?;
                tracing::info!(source = %e.source, "customer erased on request of another service");
            } else {
                run.push(e);
            }
            applied += 1;
        }
        if !run.is_empty() {
            self.handler.apply(&txn, run).await?;
        }
        txn.commit().await?;
        if let Some(f) = &self.after_commit {
            f();
        }
        Ok((applied, skipped))
    }
}

impl<H: EventHandler> EventSink<H> {
    /// Applies `events` that `source` sent by another way than a call (JetStream: the stream they came from is the
    /// producer's identity), with the same checks as `DeliverEvents`.
    pub async fn receive(&self, source: &str, events: Vec<Event>) -> Result<DeliverEventsResponse, HandlerError> {
        let now = self.clock.now_ms();
        self.validate(Some(source), &events, now).map_err(HandlerError::Refused)?;
        let (applied, duplicates) = self.apply(events, now).await?;
        Ok(DeliverEventsResponse { applied, duplicates })
    }

    /// The database it applies events to.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The service it applies events for (its `ErrorInfo` domain).
    pub fn domain(&self) -> &'static str {
        self.domain
    }
}

#[tonic::async_trait]
impl<H: EventHandler> EventSinkService for EventSink<H> {
    async fn deliver_events(
        &self,
        request: Request<DeliverEventsRequest>,
    ) -> Result<Response<DeliverEventsResponse>, Status> {
        let caller = request.extensions().get::<Caller>().cloned();
        let events = request.into_inner().events;
        let now = self.clock.now_ms();
        self.validate(caller.as_ref().map(|c| c.role.as_str()), &events, now).map_err(|e| e.to_status(self.domain))?;
        match self.apply(events, now).await {
            Ok((applied, duplicates)) => Ok(Response::new(DeliverEventsResponse { applied, duplicates })),
            Err(HandlerError::Refused(e)) => Err(e.to_status(self.domain)),
            Err(e) => {
                tracing::error!(error = %e, "applying delivered events failed");
                Err(ApiError::internal().to_status(self.domain))
            }
        }
    }
}
