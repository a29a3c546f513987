//! Request idempotency (AIP-155). A mutation first claims its `request_id` inside its own transaction; the first
//! claim wins and stores its response with the change, so a retry — sequential or concurrent — gets the first
//! response back and has no second effect. The same id with other parameters is refused (`REQUEST_ID_REUSED`).
//!
//! Request ids are scoped per caller (the frame keys them with the caller's role and subject) and expire after the
//! retention (`RAPPORT_IDEMPOTENCY_RETENTION_MS`, default 7 days): an id older than that is a new request, and
//! every fresh write purges a few expired ids.
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait, TryInsertResult, entity::prelude::*};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ErrorCode};

/// The `idempotency_keys` table.
pub mod entity {
    use sea_orm::entity::prelude::*;

    /// One claimed request id and the response it produced.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "idempotency_keys")]
    pub struct Model {
        /// The caller's request id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub request_id: String,
        /// The RPC that claimed it.
        pub method: String,
        /// Hash of the request's parameters.
        pub fingerprint: String,
        /// The encoded response, written in the same transaction as the change.
        pub response: Vec<u8>,
        /// When it was claimed (ms).
        pub created_at: i64,
        /// When an erasure blanked the response (ms).
        pub erased_at: Option<i64>,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    /// The customers a stored response is about (`idempotency_subjects`).
    pub mod subject {
        use sea_orm::entity::prelude::*;

        /// One customer of one stored response.
        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "idempotency_subjects")]
        pub struct Model {
            /// The request id.
            #[sea_orm(primary_key, auto_increment = false)]
            pub request_id: String,
            /// The customer.
            #[sea_orm(primary_key, auto_increment = false)]
            pub subject: String,
        }

        /// No relations.
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }
}

/// How long request ids are remembered by default: 7 days.
pub const DEFAULT_RETENTION_MS: i64 = 7 * 86_400_000;

/// `RAPPORT_IDEMPOTENCY_RETENTION_MS` (default 7 days).
pub fn retention_from_env() -> Result<std::time::Duration, crate::config::ConfigError> {
    let d = crate::config::millis(
        "RAPPORT_IDEMPOTENCY_RETENTION_MS",
        std::time::Duration::from_millis(DEFAULT_RETENTION_MS.unsigned_abs()),
    )?;
    crate::config::at_least("RAPPORT_IDEMPOTENCY_RETENTION_MS", d, std::time::Duration::from_secs(3600))
}

/// The outcome of a claim.
#[derive(Debug)]
pub enum Claim {
    /// The request is new: do the work, then [`complete`] in the same transaction.
    Fresh,
    /// The request was done before: return this encoded response.
    Replay(Vec<u8>),
    /// The request was done before, about a customer erased since: its response is gone with the customer's data.
    Erased,
}

/// Hash of a request's parameters (its encoding with the request id left out).
pub fn fingerprint(encoded_params: &[u8]) -> String {
    let digest = Sha256::digest(encoded_params);
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Claims `request_id` for `method` inside the caller's transaction; a claim made before `expired_before` is
/// forgotten and the id claimed afresh.
///
/// On PostgreSQL a concurrent claim of the same id waits for the first transaction to end, then sees its row.
pub async fn claim<C: ConnectionTrait>(
    txn: &C,
    request_id: &str,
    method: &str,
    fingerprint: &str,
    now_ms: i64,
    expired_before: i64,
) -> Result<Result<Claim, ApiError>, DbErr> {
    // A few rounds at most: a concurrent purge can delete the row found between our insert and our read.
    let mut existing = None;
    for _ in 0..3 {
        let row = entity::ActiveModel {
            request_id: Set(request_id.to_string()),
            method: Set(method.to_string()),
            fingerprint: Set(fingerprint.to_string()),
            response: Set(Vec::new()),
            created_at: Set(now_ms),
            erased_at: Set(None),
        };
        let inserted = entity::Entity::insert(row)
            .on_conflict_do_nothing_on([entity::Column::RequestId])
            .exec_without_returning(txn)
            .await?;
        if matches!(inserted, TryInsertResult::Inserted(n) if n > 0) {
            return Ok(Ok(Claim::Fresh));
        }
        // Remembered longer than the retention: a new request, if this claim is the one that renews it. The
        // update is conditional, so of two claims of one expired id the second (which waited for the first's
        // row lock on PostgreSQL) finds it renewed and replays the first's reply.
        let renewed = entity::Entity::update_many()
            .col_expr(entity::Column::Method, Expr::value(method))
            .col_expr(entity::Column::Fingerprint, Expr::value(fingerprint))
            .col_expr(entity::Column::Response, Expr::value(Vec::<u8>::new()))
            .col_expr(entity::Column::CreatedAt, Expr::value(now_ms))
            .col_expr(entity::Column::ErasedAt, Expr::value(Option::<i64>::None))
            .filter(entity::Column::RequestId.eq(request_id))
            .filter(entity::Column::CreatedAt.lt(expired_before))
            .exec(txn)
            .await?
            .rows_affected;
        if renewed > 0 {
            entity::subject::Entity::delete_many()
                .filter(entity::subject::Column::RequestId.eq(request_id))
                .exec(txn)
                .await?;
            return Ok(Ok(Claim::Fresh));
        }
        existing = entity::Entity::find_by_id(request_id.to_string()).one(txn).await?;
        if existing.is_some() {
            break;
        }
    }
    let Some(existing) = existing else {
        return Err(DbErr::Custom("idempotency key vanished after a conflict".into()));
    };
    if existing.method != method || existing.fingerprint != fingerprint {
        return Ok(Err(ApiError::new(
            ErrorCode::AlreadyExists,
            "REQUEST_ID_REUSED",
            "request_id was already used for a different request",
        )));
    }
    if existing.erased_at.is_some() {
        return Ok(Ok(Claim::Erased));
    }
    Ok(Ok(Claim::Replay(existing.response)))
}

/// Deletes up to `limit` request ids claimed before `expired_before`, with their subjects; on PostgreSQL rows
/// another transaction holds are skipped (replicas purging at once never wait on each other).
pub async fn purge<C: ConnectionTrait>(txn: &C, expired_before: i64, limit: u64) -> Result<u64, DbErr> {
    use sea_orm::{QueryOrder, QuerySelect};
    let mut q = entity::Entity::find()
        .select_only()
        .column(entity::Column::RequestId)
        .filter(entity::Column::CreatedAt.lt(expired_before))
        .order_by_asc(entity::Column::CreatedAt)
        .limit(limit);
    if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
        q = q.lock_with_behavior(sea_orm::sea_query::LockType::Update, sea_orm::sea_query::LockBehavior::SkipLocked);
    }
    let ids: Vec<String> = q.into_tuple().all(txn).await?;
    if ids.is_empty() {
        return Ok(0);
    }
    entity::subject::Entity::delete_many()
        .filter(entity::subject::Column::RequestId.is_in(ids.iter().cloned()))
        .exec(txn)
        .await?;
    Ok(entity::Entity::delete_many().filter(entity::Column::RequestId.is_in(ids)).exec(txn).await?.rows_affected)
}

/// Stores the response of a fresh claim; call in the same transaction as the change.
pub async fn complete<C: ConnectionTrait>(txn: &C, request_id: &str, response: Vec<u8>) -> Result<(), DbErr> {
    entity::Entity::update_many()
        .col_expr(entity::Column::Response, Expr::value(response))
        .filter(entity::Column::RequestId.eq(request_id))
        .exec(txn)
        .await?;
    Ok(())
}

/// Stores the response of a fresh claim and the customers it is about, so their erasure can blank it; call in the
/// same transaction as the change.
pub async fn complete_for<C: ConnectionTrait>(
    txn: &C,
    request_id: &str,
    subjects: &[String],
    response: Vec<u8>,
) -> Result<(), DbErr> {
    complete(txn, request_id, response).await?;
    for s in subjects {
        let row = entity::subject::ActiveModel { request_id: Set(request_id.to_string()), subject: Set(s.clone()) };
        entity::subject::Entity::insert(row)
            .on_conflict_do_nothing_on([entity::subject::Column::RequestId, entity::subject::Column::Subject])
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// Part of an erasure: blanks every stored response about `subject` (a retry of such a request gets
/// [`Claim::Erased`]) and forgets which responses those were; returns how many.
pub async fn scrub<C: ConnectionTrait>(txn: &C, subject: &str, now_ms: i64) -> Result<u64, DbErr> {
    let ids: Vec<String> = entity::subject::Entity::find()
        .filter(entity::subject::Column::Subject.eq(subject))
        .all(txn)
        .await?
        .into_iter()
        .map(|r| r.request_id)
        .collect();
    let mut n = 0;
    for chunk in ids.chunks(500) {
        n += entity::Entity::update_many()
            .col_expr(entity::Column::Response, Expr::value(Vec::<u8>::new()))
            .col_expr(entity::Column::ErasedAt, Expr::value(now_ms))
            .filter(entity::Column::RequestId.is_in(chunk.iter().cloned()))
            .exec(txn)
            .await?
            .rows_affected;
    }
    entity::subject::Entity::delete_many().filter(entity::subject::Column::Subject.eq(subject)).exec(txn).await?;
    Ok(n)
}
