//! `OutboxService`: operators see parked events and put them back in line. Served by every producing service.
use std::sync::Arc;

use prost::Message;
use rapport_kit::{
    audit::{Actor, Entry, Trail},
    clock::{Clock, timestamp},
    db::begin_write,
    error::{ApiError, Violations},
    idempotency,
    page::{self, PageBounds},
};
use rapport_proto::events::v1::{
    Event, ListParkedEventsRequest, ListParkedEventsResponse, ParkedEvent, RetryParkedEventsRequest,
    RetryParkedEventsResponse, outbox_service_server::OutboxService,
};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, sea_query::Expr,
};
use tonic::{Request, Response, Status};

use crate::entities::{
    outbox_event::{Column, Entity},
    parked_receipt,
};

/// Full name of the gRPC service.
pub const SERVICE_NAME: &str = "rapport.events.v1.OutboxService";
/// Who may call it (the same in every service).
pub const AUTHZ: &str = "ListParkedEvents: sre\nRetryParkedEvents: sre\n";

const PAGE: PageBounds = PageBounds { default: 50, max: 500 };

/// The outbox's operator API over a producer's database.
#[derive(Clone)]
pub struct OutboxAdmin {
    db: DatabaseConnection,
    clock: Arc<dyn Clock>,
    outbox: crate::Outbox,
    trail: Trail,
    domain: &'static str,
}

impl OutboxAdmin {
    /// Over `db`, waking `outbox`'s relays after a retry and recording each in `trail`; errors carry `domain`
    /// (the service).
    pub fn new(
        db: DatabaseConnection,
        clock: Arc<dyn Clock>,
        outbox: crate::Outbox,
        trail: Trail,
        domain: &'static str,
    ) -> Self {
        Self { db, clock, outbox, trail, domain }
    }

    fn fail(&self, e: ApiError) -> Status {
        e.to_status(self.domain)
    }

    fn internal(&self, e: DbErr) -> Status {
        tracing::error!(error = %e, "outbox admin failed");
        self.fail(ApiError::internal())
    }

    /// The events this service received over JetStream and parked, oldest first.
    async fn list_receipts(
        &self,
        query: &str,
        after: Option<i64>,
        limit: u64,
    ) -> Result<ListParkedEventsResponse, DbErr> {
        use parked_receipt::Column as C;
        let mut q =
            parked_receipt::Entity::find().filter(C::ParkedAt.is_not_null()).order_by_asc(C::Id).limit(limit + 1);
        if let Some(a) = after {
            q = q.filter(C::Id.gt(a));
        }
        let (rows, next) = page::split(q.all(&self.db).await?, limit, |r| r.id);
        let events = rows
            .into_iter()
            .map(|r| {
                let event = Event::decode(r.payload.as_slice()).ok();
                ParkedEvent {
                    event_id: r.event_id,
                    destination: self.domain.into(),
                    kind: crate::kind(event.as_ref().and_then(|e| e.payload.as_ref())).into(),
                    attempts: r.attempts,
                    last_error: r.last_error,
                    created_at: Some(timestamp(r.created_at)),
                    parked_at: r.parked_at.map(timestamp),
                    source: r.source,
                }
            })
            .collect();
        Ok(ListParkedEventsResponse {
            events,
            next_page_token: next.map(|c| page::encode(query, c)).unwrap_or_default(),
        })
    }

    async fn requeue(&self, req: &RetryParkedEventsRequest) -> Result<Result<Vec<u8>, ApiError>, DbErr> {
        let txn = begin_write(&self.db).await?;
        let now = self.clock.now_ms();
        let params = RetryParkedEventsRequest { request_id: String::new(), ..req.clone() }.encode_to_vec();
        let fp = idempotency::fingerprint(&params);
        // Scoped to the operator asking, remembered for the retention, as every request id.
        let id = rapport_kit::frame::caller_scoped(&req.request_id);
        let retention = idempotency::retention_from_env()
            .map_or(idempotency::DEFAULT_RETENTION_MS, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        match idempotency::claim(&txn, &id, "RetryParkedEvents", &fp, now, now.saturating_sub(retention)).await? {
            Ok(idempotency::Claim::Replay(bytes)) => return Ok(Ok(bytes)),
            // Operator requests are about no customer: nothing erases their answers.
            Ok(idempotency::Claim::Erased) => return Ok(Ok(Vec::new())),
            Ok(idempotency::Claim::Fresh) => {}
            Err(e) => return Ok(Err(e)),
        }
        let n = if req.destination == self.domain {
            // Received over JetStream and parked here: the consumers apply them again.
            let mut q = parked_receipt::Entity::update_many()
                .col_expr(parked_receipt::Column::ParkedAt, Expr::value(Option::<i64>::None))
                .filter(parked_receipt::Column::ParkedAt.is_not_null());
            if !req.event_ids.is_empty() {
                q = q.filter(parked_receipt::Column::EventId.is_in(req.event_ids.iter().map(String::as_str)));
            }
            q.exec(&txn).await?.rows_affected
        } else {
            let mut q = Entity::update_many()
                .col_expr(Column::ParkedAt, Expr::value(Option::<i64>::None))
                .col_expr(Column::Attempts, Expr::value(0))
                .col_expr(Column::NextAttemptAt, Expr::value(now))
                .filter(Column::Destination.eq(req.destination.as_str()))
                .filter(Column::ParkedAt.is_not_null());
            if !req.event_ids.is_empty() {
                let keys: Vec<String> = req.event_ids.iter().map(|id| crate::row_key(&req.destination, id)).collect();
                q = q.filter(Column::EventId.is_in(keys));
            }
            q.exec(&txn).await?.rows_affected
        };
        let reply = RetryParkedEventsResponse { requeued: i32::try_from(n).unwrap_or(i32::MAX) }.encode_to_vec();
        idempotency::complete(&txn, &id, reply.clone()).await?;
        let target = format!("destination:{}", req.destination);
        let actor = Actor::current();
        let entry = Entry { at_ms: now, method: "RetryParkedEvents", actor: &actor, target: &target, customers: &[] };
        self.trail.record(&txn, entry).await?;
        txn.commit().await?;
        tracing::info!(destination = %req.destination, requeued = n, "parked events requeued");
        Ok(Ok(reply))
    }
}

#[tonic::async_trait]
impl OutboxService for OutboxAdmin {
    async fn list_parked_events(
        &self,
        request: Request<ListParkedEventsRequest>,
    ) -> Result<Response<ListParkedEventsResponse>, Status> {
        let req = request.into_inner();
        let mut v = Violations::new();
        let limit = PAGE.size(req.page_size, &mut v);
        if !req.destination.is_empty() {
            v.id("destination", &req.destination);
        }
        v.finish().map_err(|e| self.fail(e))?;
        let query = format!("parked:{}", req.destination);
        let after = page::decode(&query, &req.page_token).map_err(|e| self.fail(e))?;
        if req.destination == self.domain {
            return self.list_receipts(&query, after, limit).await.map(Response::new).map_err(|e| self.internal(e));
        }
        let mut q = Entity::find().filter(Column::ParkedAt.is_not_null()).order_by_asc(Column::Id).limit(limit + 1);
        if !req.destination.is_empty() {
            q = q.filter(Column::Destination.eq(req.destination.as_str()));
        }
        if let Some(a) = after {
            q = q.filter(Column::Id.gt(a));
        }
        let rows = q.all(&self.db).await.map_err(|e| self.internal(e))?;
        let (rows, next) = page::split(rows, limit, |r| r.id);
        let events = rows
            .into_iter()
            .map(|r| {
                let event = Event::decode(r.payload.as_slice()).ok();
                ParkedEvent {
                    event_id: event.as_ref().map_or_else(|| r.event_id.clone(), |e| e.event_id.clone()),
                    destination: r.destination,
                    kind: crate::kind(event.as_ref().and_then(|e| e.payload.as_ref())).into(),
                    attempts: r.attempts,
                    last_error: r.last_error.unwrap_or_default(),
                    created_at: Some(timestamp(r.created_at)),
                    parked_at: r.parked_at.map(timestamp),
                    source: String::new(),
                }
            })
            .collect();
        Ok(Response::new(ListParkedEventsResponse {
            events,
            next_page_token: next.map(|c| page::encode(&query, c)).unwrap_or_default(),
        }))
    }

    async fn retry_parked_events(
        &self,
        request: Request<RetryParkedEventsRequest>,
    ) -> Result<Response<RetryParkedEventsResponse>, Status> {
        let req = request.into_inner();
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        v.id("destination", &req.destination);
        for (i, id) in req.event_ids.iter().enumerate() {
            v.id(&format!("event_ids[{i}]"), id);
        }
        v.check(req.event_ids.len() <= 1000, "event_ids", "at most 1000 at once");
        v.finish().map_err(|e| self.fail(e))?;
        let bytes = match self.requeue(&req).await.map_err(|e| self.internal(e))? {
            Ok(b) => b,
            Err(e) => return Err(self.fail(e)),
        };
        self.outbox.notify();
        let reply = RetryParkedEventsResponse::decode(bytes.as_slice())
            .map_err(|e| self.internal(DbErr::Custom(format!("stored reply: {e}"))))?;
        Ok(Response::new(reply))
    }
}

/// How many events for `destination` are parked.
pub async fn parked(db: &DatabaseConnection, destination: &str) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    Entity::find().filter(Column::Destination.eq(destination)).filter(Column::ParkedAt.is_not_null()).count(db).await
}
