//! The audit trail: who changed what, and when. Every accepted mutation — an RPC's in [`crate::frame::Frame::once`],
//! or a background worker's — records one entry in the same transaction as the change, so a change without its
//! entry cannot be committed and a rolled-back change leaves none. A retry that replays a stored answer and a
//! refused request record nothing.
//!
//! Customer ids (the customers a change is about, and the subject of a customer's own token) are kept as keyed
//! pseudonyms ([`Pseudonyms`]): the trail names no customer, survives their erasure, and still answers "what was
//! done about customer X" for someone who knows X. Staff and service subjects are kept as they are: they are whom
//! the trail is for. `AuditService.ListAuditRecords` (sre only) reads it, newest first.
use std::collections::{BTreeSet, HashMap};

use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, Func, Query},
};
use tonic::{Request, Response, Status};

use crate::{
    auth::{Caller, Role},
    clock::{millis, timestamp},
    error::{ApiError, Violations},
    page::{self, PageBounds},
    pseudonym::Pseudonyms,
};
use rapport_proto::audit::v1::{
    AuditRecord, ListAuditRecordsRequest, ListAuditRecordsResponse, audit_service_server::AuditService,
};

/// Full name of the gRPC service.
pub const SERVICE_NAME: &str = "rapport.audit.v1.AuditService";
/// Who may call it (the same in every service).
pub const AUTHZ: &str = "ListAuditRecords: sre\n";
/// The actor role of a service's own background workers (the subject is the worker's name).
pub const SYSTEM: &str = "system";

const PAGE: PageBounds = PageBounds { default: 100, max: 1000 };

/// The `audit_records` and `audit_customers` tables.
pub mod entity {
    use sea_orm::entity::prelude::*;

    /// One change.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_records")]
    pub struct Model {
        /// Order in the trail.
        #[sea_orm(primary_key)]
        pub seq: i64,
        /// When the change was made (ms, the transaction's time).
        pub at: i64,
        /// The RPC or worker action.
        pub method: String,
        /// The actor's role, or [`super::SYSTEM`].
        pub actor_role: String,
        /// The actor's subject (a customer's pseudonymised).
        pub actor_subject: String,
        /// `<kind>:<id>` of what was changed, or empty.
        pub target: String,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    /// The customers a change is about, pseudonymised (`audit_customers`).
    pub mod customer {
        use sea_orm::entity::prelude::*;

        /// One customer of one change.
        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "audit_customers")]
        pub struct Model {
            /// The record.
            #[sea_orm(primary_key, auto_increment = false)]
            pub seq: i64,
            /// The customer's pseudonym.
            #[sea_orm(primary_key, auto_increment = false)]
            pub customer: String,
        }

        /// No relations.
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }
}

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// A role name (`agent`, `sre`, `segmentation`, ...) or [`SYSTEM`].
    pub role: String,
    /// The token's subject, or the worker's name.
    pub subject: String,
}

impl Actor {
    /// The caller of an RPC.
    pub fn of(caller: &Caller) -> Self {
        Self { role: caller.role.as_str().to_string(), subject: caller.subject.clone() }
    }

    /// A service's own background worker, e.g. `feedback.assigner`.
    pub fn worker(name: &str) -> Self {
        Self { role: SYSTEM.to_string(), subject: name.to_string() }
    }

    /// The caller of the RPC being served (the guard's); outside an RPC, an unnamed worker.
    pub fn current() -> Self {
        crate::guard::caller().map_or_else(|| Self::worker(""), |c| Self::of(&c))
    }
}

/// One change to record.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// The transaction's time (ms).
    pub at_ms: i64,
    /// The RPC or worker action, e.g. `AdjustPoints`, `AssignCase`.
    pub method: &'a str,
    /// Who made it.
    pub actor: &'a Actor,
    /// `<kind>:<id>` of what was changed, or empty.
    pub target: &'a str,
    /// The customers it is about (kept pseudonymised).
    pub customers: &'a [String],
}

/// Writes audit entries. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Trail {
    pseudonyms: Pseudonyms,
}

impl Trail {
    /// A trail keeping customer ids as `pseudonyms` of them.
    pub fn new(pseudonyms: Pseudonyms) -> Self {
        Self { pseudonyms }
    }

    /// The subject as the trail keeps it: a customer's pseudonymised.
    fn subject_of(&self, actor: &Actor) -> String {
        if actor.role == Role::Customer.as_str() { self.pseudonyms.of(&actor.subject) } else { actor.subject.clone() }
    }

    /// Records `entry` in `txn` (the transaction of the change itself).
    pub async fn record<C: ConnectionTrait>(&self, txn: &C, entry: Entry<'_>) -> Result<(), DbErr> {
        let Kept { at, method, actor_role, actor_subject, target, customers } = self.kept(entry);
        let row = entity::ActiveModel {
            seq: NotSet,
            at: Set(at),
            method: Set(method),
            actor_role: Set(actor_role),
            actor_subject: Set(actor_subject),
            target: Set(target),
        };
        let seq = entity::Entity::insert(row).exec(txn).await?.last_insert_id;
        if customers.is_empty() {
            return Ok(());
        }
        let rows = customers
            .into_iter()
            .map(|customer| entity::customer::ActiveModel { seq: Set(seq), customer: Set(customer) });
        entity::customer::Entity::insert_many(rows).exec_without_returning(txn).await?;
        Ok(())
    }

    /// `entry` as the trail keeps it: the actor's subject and the customers pseudonymised.
    pub(crate) fn kept(&self, entry: Entry<'_>) -> Kept {
        let customers = entry
            .customers
            .iter()
            .filter(|c| !c.is_empty())
            .map(|c| if Pseudonyms::is_pseudonym(c) { c.clone() } else { self.pseudonyms.of(c) })
            .collect();
        Kept {
            at: entry.at_ms,
            method: entry.method.to_string(),
            actor_role: entry.actor.role.clone(),
            actor_subject: self.subject_of(entry.actor),
            target: entry.target.to_string(),
            customers,
        }
    }
}

/// An entry as it is stored (the columns of its record but the sequence number) and the pseudonyms it is filed
/// under.
pub(crate) struct Kept {
    pub(crate) at: i64,
    pub(crate) method: String,
    pub(crate) actor_role: String,
    pub(crate) actor_subject: String,
    pub(crate) target: String,
    pub(crate) customers: BTreeSet<String>,
}

/// Checks a list request; returns the page size.
fn validate(req: &ListAuditRecordsRequest) -> Result<u64, ApiError> {
    let mut v = Violations::new();
    let limit = PAGE.size(req.page_size, &mut v);
    if !req.actor_role.is_empty() {
        v.check(
            req.actor_role == SYSTEM || req.actor_role.parse::<Role>().is_ok(),
            "actor_role",
            "must be a role name or \"system\"",
        );
    }
    if !req.actor_subject.is_empty() {
        v.text("actor_subject", &req.actor_subject, 256);
    }
    if !req.method.is_empty() {
        v.check(
            req.method.len() <= 64 && req.method.chars().all(|c| c.is_ascii_alphanumeric()),
            "method",
            "must be an rpc or action name of at most 64 letters and digits",
        );
    }
    if !req.customer_id.is_empty() {
        v.id("customer_id", &req.customer_id);
    }
    if let (Some(s), Some(e)) = (&req.start_time, &req.end_time) {
        v.check(millis(e) > millis(s), "end_time", "must be after start_time");
    }
    v.finish()?;
    Ok(limit)
}

/// What a page token is bound to: every filter of the request.
fn query_of(req: &ListAuditRecordsRequest) -> String {
    let t = |ts: &Option<prost_types::Timestamp>| ts.as_ref().map(millis).map(|m| m.to_string()).unwrap_or_default();
    [
        "audit",
        &req.actor_role,
        &req.actor_subject,
        &req.method,
        &req.customer_id,
        &t(&req.start_time),
        &t(&req.end_time),
    ]
    .join("\u{1f}")
}

/// `AuditService` over a service's database.
#[derive(Clone)]
pub struct AuditApi {
    db: DatabaseConnection,
    trail: Trail,
    service: &'static str,
}

impl AuditApi {
    /// The trail of `service` (also the `ErrorInfo` domain of its errors) kept in `db`.
    pub fn new(db: DatabaseConnection, trail: Trail, service: &'static str) -> Self {
        Self { db, trail, service }
    }

    async fn list(
        &self,
        req: &ListAuditRecordsRequest,
        limit: u64,
    ) -> Result<Result<ListAuditRecordsResponse, ApiError>, DbErr> {
        use entity::{Column, Entity, customer};
        let query = query_of(req);
        let after = match page::decode(&query, &req.page_token) {
            Ok(a) => a,
            Err(e) => return Ok(Err(e)),
        };
        let mut q = Entity::find().order_by_desc(Column::Seq).limit(limit + 1);
        if let Some(a) = after {
            q = q.filter(Column::Seq.lt(a));
        }
        if !req.actor_role.is_empty() {
            q = q.filter(Column::ActorRole.eq(req.actor_role.as_str()));
        }
        if !req.actor_subject.is_empty() {
            // A customer actor is kept pseudonymised: their id matches too.
            let s = &req.actor_subject;
            q = q.filter(Column::ActorSubject.is_in([s.clone(), self.trail.pseudonyms.of(s)]));
        }
        if !req.method.is_empty() {
            q = q.filter(Column::Method.eq(req.method.as_str()));
        }
        if !req.customer_id.is_empty() {
            let pseudonym = self.trail.pseudonyms.of(&req.customer_id);
            q = q.filter(
                Column::Seq.in_subquery(
                    Query::select()
                        .column(customer::Column::Seq)
                        .from(customer::Entity)
                        .and_where(customer::Column::Customer.eq(pseudonym))
                        .to_owned(),
                ),
            );
        }
        if let Some(s) = &req.start_time {
            q = q.filter(Column::At.gte(millis(s)));
        }
        if let Some(e) = &req.end_time {
            q = q.filter(Column::At.lt(millis(e)));
        }
        let rows = q.all(&self.db).await?;
        let (rows, next) = page::split(rows, limit, |r| r.seq);
        let counts: HashMap<i64, i64> = if rows.is_empty() {
            HashMap::new()
        } else {
            customer::Entity::find()
                .select_only()
                .column(customer::Column::Seq)
                .column_as(Expr::from(Func::count(Expr::col(customer::Column::Customer))), "n")
                .filter(customer::Column::Seq.is_in(rows.iter().map(|r| r.seq)))
                .group_by(customer::Column::Seq)
                .into_tuple::<(i64, i64)>()
                .all(&self.db)
                .await?
                .into_iter()
                .collect()
        };
        let records = rows
            .into_iter()
            .map(|r| AuditRecord {
                sequence: r.seq,
                service: self.service.to_string(),
                customers: i32::try_from(counts.get(&r.seq).copied().unwrap_or(0)).unwrap_or(i32::MAX),
                method: r.method,
                actor_role: r.actor_role,
                actor_subject: r.actor_subject,
                target: r.target,
                time: Some(timestamp(r.at)),
            })
            .collect();
        Ok(Ok(ListAuditRecordsResponse {
            records,
            next_page_token: next.map(|c| page::encode(&query, c)).unwrap_or_default(),
        }))
    }
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn list_audit_records(
        &self,
        request: Request<ListAuditRecordsRequest>,
    ) -> Result<Response<ListAuditRecordsResponse>, Status> {
        let req = request.into_inner();
        let limit = validate(&req).map_err(|e| e.to_status(self.service))?;
        match self.list(&req, limit).await {
            Ok(Ok(r)) => Ok(Response::new(r)),
            Ok(Err(e)) => Err(e.to_status(self.service)),
            Err(e) => {
                tracing::error!(error = %e, "listing audit records failed");
                Err(ApiError::internal().to_status(self.service))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> ListAuditRecordsRequest {
        ListAuditRecordsRequest::default()
    }

    #[test]
    fn validation_names_each_field() {
        assert_eq!(validate(&req()).unwrap(), 100);
        assert_eq!(validate(&ListAuditRecordsRequest { page_size: 5000, ..req() }).unwrap(), 1000);
        let bad = ListAuditRecordsRequest {
            actor_role: "boss".into(),
            method: "Adjust Points".into(),
            customer_id: "a b".into(),
            page_size: -1,
            start_time: Some(timestamp(2_000)),
            end_time: Some(timestamp(1_000)),
            ..req()
        };
        let e = validate(&bad).unwrap_err();
        let fields: Vec<&str> = e.violations.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["page_size", "actor_role", "method", "customer_id", "end_time"]);
        assert!(validate(&ListAuditRecordsRequest { actor_role: SYSTEM.into(), ..req() }).is_ok());
        assert!(validate(&ListAuditRecordsRequest { actor_role: "agent".into(), ..req() }).is_ok());
    }

    #[test]
    fn page_tokens_are_bound_to_every_filter() {
        let a = query_of(&ListAuditRecordsRequest { method: "AdjustPoints".into(), ..req() });
        let b = query_of(&ListAuditRecordsRequest { customer_id: "AdjustPoints".into(), ..req() });
        let c = query_of(&ListAuditRecordsRequest { start_time: Some(timestamp(5)), ..req() });
        assert!(a != b && b != c && a != c && a != query_of(&req()));
    }

    #[test]
    fn a_customer_actor_is_pseudonymised_and_staff_are_not() {
        let trail = Trail::new(Pseudonyms::development());
        let customer = Actor { role: "customer".into(), subject: "cust-1".into() };
        assert_eq!(trail.subject_of(&customer), Pseudonyms::development().of("cust-1"));
        let agent = Actor { role: "agent".into(), subject: "agent-7".into() };
        assert_eq!(trail.subject_of(&agent), "agent-7");
        assert_eq!(
            Actor::worker("feedback.assigner"),
            Actor { role: SYSTEM.into(), subject: "feedback.assigner".into() }
        );
        assert_eq!(Actor::current(), Actor::worker(""), "outside an rpc nobody is the caller");
    }
}
