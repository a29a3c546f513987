//! The transaction frame on both databases: replays, reused ids, keyed storage, erasure of stored replies, unique
//! clashes as domain errors, and failed mutations leaving no claim.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use rapport_kit::{
    clock::ManualClock,
    db,
    error::{ApiError, ErrorCode, ServiceError},
    frame::{Done, Frame, Key},
    idempotency,
    pseudonym::Pseudonyms,
    testing::{Backend, TestDb, fresh_database},
};
use rapport_proto::common::v1::Money;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement};
use sea_orm_migration::prelude::*;

struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        rapport_kit::migration::all()
    }
}

#[derive(Debug, thiserror::Error)]
enum TestError {
    #[error("{}", .0.message)]
    Api(ApiError),
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("erased")]
    Erased,
    #[error("thing exists")]
    Exists,
    #[error("refused")]
    Refused,
}

impl From<ApiError> for TestError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl ServiceError for TestError {
    const DOMAIN: &'static str = "test";

    fn to_api(&self) -> ApiError {
        match self {
            Self::Api(e) => e.clone(),
            _ => ApiError::internal(),
        }
    }

    fn is_internal(&self) -> bool {
        matches!(self, Self::Db(_))
    }

    fn db(&self) -> Option<&DbErr> {
        match self {
            Self::Db(e) => Some(e),
            _ => None,
        }
    }

    fn erased() -> Self {
        Self::Erased
    }

    fn clash(method: &str) -> Option<Self> {
        (method == "CreateThing").then_some(Self::Exists)
    }
}

struct Ctx {
    runs: AtomicUsize,
}

async fn setup(backend: Backend) -> (TestDb, DatabaseConnection, Frame, Arc<Ctx>) {
    let database = fresh_database(backend).await.unwrap();
    let db = db::connect_and_migrate::<Migrator>(database.url()).await.unwrap();
    db.execute_raw(Statement::from_string(db.get_database_backend(), "CREATE TABLE things (id TEXT PRIMARY KEY)"))
        .await
        .unwrap();
    let frame = Frame::new(db.clone(), Arc::new(ManualClock::new(1_000)), &Pseudonyms::development());
    (database, db, frame, Arc::new(Ctx { runs: AtomicUsize::new(0) }))
}

fn key(request_id: &str, units: i64) -> Key {
    let params = Money { currency_code: "EUR".into(), units, nanos: 0 };
    Key::of(request_id, &params, |_| {})
}

/// A mutation about `customer` whose reply is a money value of `units`; counts its runs.
async fn credit(frame: &Frame, ctx: &Ctx, rid: &str, customer: &str, units: i64) -> Result<Money, TestError> {
    let customer = customer.to_string();
    frame
        .once(ctx, &key(rid, units), "Credit", move |ctx, _txn, _now| {
            Box::pin(async move {
                ctx.runs.fetch_add(1, Ordering::SeqCst);
                Ok(Done::about([customer], Money { currency_code: "EUR".into(), units, nanos: 0 }))
            })
        })
        .await
}

async fn create_thing(frame: &Frame, ctx: &Ctx, rid: &str, id: &str) -> Result<(), TestError> {
    let id = id.to_string();
    frame
        .once(ctx, &key(rid, 0), "CreateThing", move |_ctx, txn, _now| {
            Box::pin(async move {
                let sql = format!("INSERT INTO things (id) VALUES ('{id}')");
                txn.execute_raw(Statement::from_string(txn.get_database_backend(), sql)).await?;
                Ok(Done::reply(()))
            })
        })
        .await
}

async fn replays_and_keyed_storage(backend: Backend) {
    let (_database, db, frame, ctx) = setup(backend).await;
    let first = credit(&frame, &ctx, "grant-cust-42", "cust-42", 7).await.unwrap();
    let again = credit(&frame, &ctx, "grant-cust-42", "cust-42", 7).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(ctx.runs.load(Ordering::SeqCst), 1, "a retry has no second effect");

    // Another request under the same id is refused with the documented reason.
    match credit(&frame, &ctx, "grant-cust-42", "cust-42", 8).await {
        Err(TestError::Api(e)) => {
            assert_eq!(e.code, ErrorCode::AlreadyExists);
            assert_eq!(e.reason, "REQUEST_ID_REUSED");
        }
        other => panic!("expected REQUEST_ID_REUSED, got {other:?}"),
    }

    // The caller's request id (which embeds a customer id) is not stored in clear, and the reply is protobuf.
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT request_id, fingerprint, response FROM idempotency_keys",
        ))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let id: String = rows[0].try_get("", "request_id").unwrap();
    let fp: String = rows[0].try_get("", "fingerprint").unwrap();
    let response: Vec<u8> = rows[0].try_get("", "response").unwrap();
    assert!(!id.contains("cust-42") && id != "grant-cust-42", "stored id {id}");
    let plain = idempotency::fingerprint(&prost::Message::encode_to_vec(&Money {
        currency_code: "EUR".into(),
        units: 7,
        nanos: 0,
    }));
    assert_ne!(fp, plain, "the parameter hash is keyed too");
    assert_eq!(<Money as prost::Message>::decode(response.as_slice()).unwrap(), first);
}

async fn erasure_blanks_stored_replies(backend: Backend) {
    let (_database, db, frame, ctx) = setup(backend).await;
    credit(&frame, &ctx, "r-1", "cust-9", 3).await.unwrap();
    credit(&frame, &ctx, "r-2", "cust-10", 4).await.unwrap();
    let txn = db::begin_write(&db).await.unwrap();
    assert_eq!(idempotency::scrub(&txn, "cust-9", 2_000).await.unwrap(), 1);
    txn.commit().await.unwrap();
    assert!(matches!(credit(&frame, &ctx, "r-1", "cust-9", 3).await, Err(TestError::Erased)));
    assert_eq!(credit(&frame, &ctx, "r-2", "cust-10", 4).await.unwrap().units, 4, "others keep theirs");
    assert_eq!(ctx.runs.load(Ordering::SeqCst), 2);
}

async fn clashes_and_failures(backend: Backend) {
    let (_database, _db, frame, ctx) = setup(backend).await;
    create_thing(&frame, &ctx, "c-1", "t-1").await.unwrap();
    // Another request id inserting the same row: the unique index answers, as the domain error.
    assert!(matches!(create_thing(&frame, &ctx, "c-2", "t-1").await, Err(TestError::Exists)));
    // A failed mutation rolls back its claim: the same id can run again.
    let refuse = |rid: &'static str| {
        let (frame, ctx) = (frame.clone(), ctx.clone());
        async move {
            frame
                .once(&*ctx, &key(rid, 1), "Refuse", |_c, _t, _n| {
                    Box::pin(async { Err::<Done<Money>, _>(TestError::Refused) })
                })
                .await
        }
    };
    assert!(matches!(refuse("f-1").await, Err(TestError::Refused)));
    assert_eq!(credit(&frame, &ctx, "f-1", "cust-1", 1).await.unwrap().units, 1, "the failed claim left nothing");
}

rapport_kit::on_both!(replays_and_keyed_storage, erasure_blanks_stored_replies, clashes_and_failures);

/// A mutation as `caller` (role:subject scope) returning `units`; counts its runs.
async fn credit_as(frame: &Frame, ctx: &Ctx, caller: &str, rid: &str, units: i64) -> Result<Money, TestError> {
    use rapport_kit::auth::{Caller, Role};
    let who = Caller { subject: caller.into(), role: Role::Agent };
    let params = Money { currency_code: "EUR".into(), units, nanos: 0 };
    frame
        .once(ctx, &Key::of(rid, &params, |_| {}).for_caller(&who), "Credit", move |ctx, _txn, _now| {
            Box::pin(async move {
                ctx.runs.fetch_add(1, Ordering::SeqCst);
                Ok(Done::reply(Money { currency_code: "EUR".into(), units, nanos: 0 }))
            })
        })
        .await
}

/// Request ids are scoped per caller: two agents' same id are two requests (neither replays nor refuses the
/// other's), one agent's retry replays.
async fn request_ids_are_scoped_per_caller(backend: Backend) {
    let (_database, _db, frame, ctx) = setup(backend).await;
    assert_eq!(credit_as(&frame, &ctx, "ann", "r-1", 5).await.unwrap().units, 5);
    assert_eq!(credit_as(&frame, &ctx, "bob", "r-1", 9).await.unwrap().units, 9, "bob's r-1 is his own");
    assert_eq!(credit_as(&frame, &ctx, "ann", "r-1", 5).await.unwrap().units, 5);
    assert_eq!(ctx.runs.load(Ordering::SeqCst), 2, "ann's retry replayed");
    assert!(matches!(credit_as(&frame, &ctx, "ann", "r-1", 6).await, Err(TestError::Api(_))), "reused by ann");
}

/// A request id is remembered for the retention: a retry within it replays, one after it is a new request, and
/// fresh writes purge expired ids.
async fn request_ids_expire_after_the_retention(backend: Backend) {
    use sea_orm::{EntityTrait, PaginatorTrait};
    let database = fresh_database(backend).await.unwrap();
    let db = db::connect_and_migrate::<Migrator>(database.url()).await.unwrap();
    let clock = ManualClock::new(1_000);
    let day = 86_400_000;
    let frame = Frame::new(db.clone(), Arc::new(clock.clone()), &Pseudonyms::development())
        .with_retention(std::time::Duration::from_millis(7 * day as u64));
    let ctx = Ctx { runs: AtomicUsize::new(0) };
    for i in 0..40 {
        credit(&frame, &ctx, &format!("old-{i}"), "c", 1).await.unwrap();
    }
    clock.advance_days(6);
    credit(&frame, &ctx, "old-0", "c", 1).await.unwrap();
    assert_eq!(ctx.runs.load(Ordering::SeqCst), 40, "within the retention: replayed");
    let stored: Option<Money> = frame.stored::<Money, TestError>(&key("old-1", 1), "Credit").await.unwrap();
    assert!(stored.is_some());
    clock.advance_days(2);
    let stored: Option<Money> = frame.stored::<Money, TestError>(&key("old-1", 1), "Credit").await.unwrap();
    assert!(stored.is_none(), "expired: nothing stored any more");
    credit(&frame, &ctx, "old-0", "c", 1).await.unwrap();
    assert_eq!(ctx.runs.load(Ordering::SeqCst), 41, "after the retention: a new request");
    // One in every 16 fresh writes purges expired ids (up to 512): after 16 more, the 39 others are gone.
    for i in 1..=15 {
        credit(&frame, &ctx, &format!("new-{i}"), "c", 1).await.unwrap();
    }
    assert_eq!(idempotency::entity::Entity::find().count(&db).await.unwrap(), 16);
    // Two claims at once of one expired id (two replicas): one runs, the other replays its reply.
    clock.advance_days(8);
    let before = ctx.runs.load(Ordering::SeqCst);
    let (a, b) = tokio::join!(credit(&frame, &ctx, "new-1", "c", 1), credit(&frame, &ctx, "new-1", "c", 1));
    assert_eq!(a.unwrap(), b.unwrap());
    assert_eq!(ctx.runs.load(Ordering::SeqCst), before + 1, "renewed once");
}

rapport_kit::on_both!(request_ids_are_scoped_per_caller, request_ids_expire_after_the_retention);

/// A change by `who` (an agent) about `customer`, naming `target`.
async fn change(frame: &Frame, ctx: &Ctx, who: &str, rid: &str, customer: &str) -> Result<Money, TestError> {
    use rapport_kit::auth::{Caller, Role};
    let caller = Caller { subject: who.into(), role: Role::Agent };
    let customer = customer.to_string();
    frame
        .once(ctx, &key(rid, 2).for_caller(&caller), "AdjustPoints", move |ctx, _txn, _now| {
            Box::pin(async move {
                ctx.runs.fetch_add(1, Ordering::SeqCst);
                Ok(Done::about([customer], Money { currency_code: "EUR".into(), units: 2, nanos: 0 }).on("entry", 7))
            })
        })
        .await
}

async fn audit(
    db: &DatabaseConnection,
    req: rapport_proto::audit::v1::ListAuditRecordsRequest,
) -> Result<rapport_proto::audit::v1::ListAuditRecordsResponse, tonic::Status> {
    use rapport_kit::audit::{AuditApi, Trail};
    use rapport_proto::audit::v1::audit_service_server::AuditService;
    let api = AuditApi::new(db.clone(), Trail::new(Pseudonyms::development()), "test");
    api.list_audit_records(tonic::Request::new(req)).await.map(tonic::Response::into_inner)
}

/// Each accepted change records one audit entry with its actor, method, target and customers (kept pseudonymised);
/// a replay, a refusal and a rolled-back change record none; the trail filters and pages.
async fn each_change_is_audited_once(backend: Backend) {
    use rapport_proto::audit::v1::ListAuditRecordsRequest as Req;
    let (_database, db, frame, ctx) = setup(backend).await;
    change(&frame, &ctx, "ann", "a-1", "cust-1").await.unwrap();
    change(&frame, &ctx, "ann", "a-1", "cust-1").await.unwrap(); // replay
    change(&frame, &ctx, "bob", "b-1", "cust-2").await.unwrap();
    let refused = frame
        .once(&*ctx, &key("f-1", 1), "Refuse", |_c, _t, _n| {
            Box::pin(async { Err::<Done<Money>, _>(TestError::Refused) })
        })
        .await;
    assert!(matches!(refused, Err(TestError::Refused)));
    // A worker's change outside any RPC.
    frame
        .once(&*ctx, &Key::new("w-1", "fp", "test.sweeper"), "Sweep", |_c, _t, _n| {
            Box::pin(async { Ok::<_, TestError>(Done::reply(())) })
        })
        .await
        .unwrap();

    let all = audit(&db, Req::default()).await.unwrap().records;
    let seen: Vec<(&str, &str, &str, &str, i32)> = all
        .iter()
        .map(|r| (r.method.as_str(), r.actor_role.as_str(), r.actor_subject.as_str(), r.target.as_str(), r.customers))
        .collect();
    assert_eq!(
        seen,
        [
            ("Sweep", "system", "test.sweeper", "", 0),
            ("AdjustPoints", "agent", "bob", "entry:7", 1),
            ("AdjustPoints", "agent", "ann", "entry:7", 1),
        ],
        "newest first, one per accepted change"
    );
    assert!(all.iter().all(|r| r.service == "test" && r.time.is_some()));
    assert!(all[0].sequence > all[1].sequence && all[1].sequence > all[2].sequence);

    // Filters: by customer (matched through the pseudonym), actor, role, method, time.
    let about = |c: &str| Req { customer_id: c.into(), ..Req::default() };
    let r = audit(&db, about("cust-1")).await.unwrap().records;
    assert_eq!((r.len(), r[0].actor_subject.as_str()), (1, "ann"));
    assert!(audit(&db, about("cust-3")).await.unwrap().records.is_empty());
    let r = audit(&db, Req { actor_subject: "bob".into(), ..Req::default() }).await.unwrap().records;
    assert_eq!(r.len(), 1);
    let r = audit(&db, Req { actor_role: "system".into(), ..Req::default() }).await.unwrap().records;
    assert_eq!(r[0].method, "Sweep");
    let r = audit(&db, Req { method: "AdjustPoints".into(), ..Req::default() }).await.unwrap().records;
    assert_eq!(r.len(), 2);
    let later = rapport_kit::clock::timestamp(1_001);
    assert!(audit(&db, Req { start_time: Some(later), ..Req::default() }).await.unwrap().records.is_empty());

    // No customer id is kept in clear.
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), "SELECT customer FROM audit_customers"))
        .await
        .unwrap();
    for row in rows {
        let c: String = row.try_get("", "customer").unwrap();
        assert!(Pseudonyms::is_pseudonym(&c), "kept {c}");
    }

    // Pages of one, bound to their filters.
    let first = audit(&db, Req { page_size: 1, ..Req::default() }).await.unwrap();
    assert_eq!(first.records.len(), 1);
    let second =
        audit(&db, Req { page_size: 1, page_token: first.next_page_token.clone(), ..Req::default() }).await.unwrap();
    assert_eq!(second.records[0].sequence, all[1].sequence);
    let moved = audit(&db, Req { method: "Sweep".into(), page_token: first.next_page_token, ..Req::default() }).await;
    assert_eq!(moved.unwrap_err().code(), tonic::Code::InvalidArgument);
    let bad = audit(&db, Req { actor_role: "boss".into(), ..Req::default() }).await.unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
}

rapport_kit::on_both!(each_change_is_audited_once);
