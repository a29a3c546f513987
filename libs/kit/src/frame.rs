//! The idempotent transaction frame every mutation of every service runs in (AIP-155):
//!
//! 1. begin a write transaction and claim the request id ([`idempotency::claim`]);
//! 2. a retry gets the reply stored by the first run, decoded from its protobuf encoding, and has no other effect;
//! 3. a fresh request runs the mutation in the transaction; a unique-index clash with a concurrent twin becomes the
//!    service's domain error ([`ServiceError::clash`]) instead of INTERNAL;
//! 4. the encoded reply is stored with the customers it is about ([`Done::about`]: erasing one of them blanks it),
//!    the change is recorded in the audit trail with its actor and target ([`Done::on`], [`crate::audit`]), the
//!    transaction commits, and the after-commit hook runs (e.g. waking the outbox relays). On PostgreSQL the reply,
//!    its customers and the audit entry are written by one statement: each statement is a round trip there.
//!
//! Request ids and parameter hashes are stored keyed (HMAC with a key derived from the pseudonym key), so a caller's
//! request id that embeds a customer id (`grant-<customer>`) is not kept in clear.
use std::{
    collections::BTreeSet,
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use hmac::{Hmac, Mac};
use prost::Message;
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr};
use sha2::Sha256;

use crate::{
    audit::{Actor, Entry, Trail},
    clock::Clock,
    db,
    error::ServiceError,
    idempotency,
    pseudonym::Pseudonyms,
};

/// A boxed, sendable future borrowing for `'a`: what a mutation closure returns.
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The idempotency key of a request: its id and the hash of its parameters.
#[derive(Debug, Clone)]
pub struct Key {
    request_id: String,
    fingerprint: String,
    /// Whose request id it is (`role:subject` of the caller; empty for a background caller's own keys): the same
    /// id from two callers is two requests.
    scope: String,
    /// Who the audit trail names for the change.
    actor: Actor,
}

impl Key {
    /// The key of `msg`: `request_id` and the hash of `msg` with `blank` applied (which clears the request id, so
    /// only the parameters count).
    /// The caller of the RPC being served (the guard's) scopes it.
    pub fn of<M: Message + Clone>(request_id: &str, msg: &M, blank: impl FnOnce(&mut M)) -> Self {
        let mut m = msg.clone();
        blank(&mut m);
        let scope = crate::guard::caller().map(|c| format!("{}:{}", c.role, c.subject)).unwrap_or_default();
        Self {
            request_id: request_id.to_string(),
            fingerprint: idempotency::fingerprint(&m.encode_to_vec()),
            scope,
            actor: Actor::current(),
        }
    }

    /// A key from parts (a background `worker`'s own request id and parameter hash), in no caller's scope; the
    /// audit trail names the worker.
    pub fn new(request_id: impl Into<String>, fingerprint: impl Into<String>, worker: &str) -> Self {
        Self {
            request_id: request_id.into(),
            fingerprint: fingerprint.into(),
            scope: String::new(),
            actor: Actor::worker(worker),
        }
    }

    /// The same key in `caller`'s scope (`role:subject`), the change made by `caller`.
    pub fn for_caller(mut self, caller: &crate::auth::Caller) -> Self {
        self.scope = format!("{}:{}", caller.role, caller.subject);
        self.actor = Actor::of(caller);
        self
    }

    fn scoped_id(&self) -> String {
        scoped(&self.scope, &self.request_id)
    }
}

fn scoped(scope: &str, request_id: &str) -> String {
    if scope.is_empty() { request_id.to_string() } else { format!("{scope}\u{1f}{request_id}") }
}

/// `request_id` in the scope of the caller of the RPC being served (as [`Key::of`] keys it), for a request stored
/// outside a frame.
pub fn caller_scoped(request_id: &str) -> String {
    let scope = crate::guard::caller().map(|c| format!("{}:{}", c.role, c.subject)).unwrap_or_default();
    scoped(&scope, request_id)
}

/// What a mutation produced: its reply, the customers the reply is about, and what it changed.
#[derive(Debug, Clone)]
pub struct Done<R> {
    reply: R,
    subjects: Vec<String>,
    target: String,
}

impl<R> Done<R> {
    /// A reply about `subjects` (their erasure blanks the stored copy; the audit trail files the change under them).
    pub fn about<S: Into<String>>(subjects: impl IntoIterator<Item = S>, reply: R) -> Self {
        Self { reply, subjects: subjects.into_iter().map(Into::into).collect(), target: String::new() }
    }

    /// A reply about no customer.
    pub fn reply(reply: R) -> Self {
        Self { reply, subjects: Vec::new(), target: String::new() }
    }

    /// The same, naming the object changed in the audit trail (`kind:id`, e.g. `case:c-42`).
    #[must_use]
    pub fn on(mut self, kind: &str, id: impl std::fmt::Display) -> Self {
        self.target = format!("{kind}:{id}");
        self
    }
}

type Hook = Arc<dyn Fn() + Send + Sync>;

/// Runs mutations once per request id. Cheap to clone.
#[derive(Clone)]
pub struct Frame {
    db: DatabaseConnection,
    clock: Arc<dyn Clock>,
    key: Arc<Vec<u8>>,
    after_commit: Option<Hook>,
    /// SQLite takes one writer at a time: the frame's writers queue here, in order, instead of in SQLite's busy
    /// handler, which polls with sleeps of up to 100 ms (the long tail of concurrent writes).
    writers: Option<Arc<tokio::sync::Mutex<()>>>,
    /// How long a request id is remembered (`RAPPORT_IDEMPOTENCY_RETENTION_MS`, default 7 days).
    retention_ms: i64,
    /// Where each change is recorded.
    trail: Trail,
    /// Fresh writes so far (for the purge's cadence).
    fresh: Arc<AtomicU64>,
}

/// Every this many fresh writes, one purges expired request ids...
const PURGE_EVERY: u64 = 16;
/// ...up to this many.
const PURGE_BATCH: u64 = 512;

impl Frame {
    /// A frame over `db`; stored request ids are keyed with a key derived from `pseudonyms`.
    pub fn new(db: DatabaseConnection, clock: Arc<dyn Clock>, pseudonyms: &Pseudonyms) -> Self {
        let writers =
            (db.get_database_backend() == sea_orm::DbBackend::Sqlite).then(|| Arc::new(tokio::sync::Mutex::new(())));
        let retention_ms = idempotency::retention_from_env()
            .map_or(idempotency::DEFAULT_RETENTION_MS, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Self {
            db,
            clock,
            key: Arc::new(pseudonyms.derive("request-ids")),
            after_commit: None,
            writers,
            retention_ms,
            trail: Trail::new(pseudonyms.clone()),
            fresh: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The audit trail, for a worker's change made outside [`Frame::once`].
    pub fn trail(&self) -> &Trail {
        &self.trail
    }

    /// The same frame remembering request ids for `retention`.
    pub fn with_retention(mut self, retention: std::time::Duration) -> Self {
        self.retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        self
    }

    /// Runs `hook` after every commit of a fresh request (e.g. `outbox.notify()`).
    pub fn after_commit(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.after_commit = Some(Arc::new(hook));
        self
    }

    /// This process's turn to write, for a write transaction outside [`Frame::once`] (a worker's): on SQLite,
    /// writers queue in the frame instead of polling the database's lock; nothing to wait for on PostgreSQL. Hold it
    /// until the transaction ends.
    pub async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.writers {
            Some(w) => Some(w.clone().lock_owned().await),
            None => None,
        }
    }

    /// The connection.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Runs `f` once for `key`: replays the stored reply of an earlier run, or runs `f` in a new write transaction
    /// (with `ctx` and the time of the transaction) and stores its reply with the change.
    pub async fn once<C, R, E, F>(&self, ctx: &C, key: &Key, method: &str, f: F) -> Result<R, E>
    where
        C: Sync,
        R: Message + Default,
        E: ServiceError,
        F: for<'t> FnOnce(&'t C, &'t DatabaseTransaction, i64) -> BoxFut<'t, Result<Done<R>, E>>,
    {
        let _turn = self.write_turn().await;
        let txn = db::begin_write(&self.db).await?;
        let now = self.clock.now_ms();
        let (id, fingerprint) = (self.keyed("id", &key.scoped_id()), self.keyed("fp", &key.fingerprint));
        let expired_before = now.saturating_sub(self.retention_ms);
        match idempotency::claim(&txn, &id, method, &fingerprint, now, expired_before).await? {
            Ok(idempotency::Claim::Fresh) => {
                // Every PURGE_EVERY-th fresh write takes expired request ids with it (PURGE_BATCH at most, 32 per
                // write on average): the table holds about the retention's.
                if self.fresh.fetch_add(1, Ordering::Relaxed).is_multiple_of(PURGE_EVERY) {
                    idempotency::purge(&txn, expired_before, PURGE_BATCH).await?;
                }
            }
            Ok(idempotency::Claim::Replay(bytes)) => {
                return R::decode(bytes.as_slice())
                    .map_err(|e| E::from(DbErr::Custom(format!("stored reply of {method}: {e}"))));
            }
            // A customer of the stored reply was erased since: the reply went with their data.
            Ok(idempotency::Claim::Erased) => return Err(E::erased()),
            Err(reused) => return Err(E::from(reused)),
        }
        let done = match f(ctx, &txn, now).await {
            Ok(d) => d,
            // On PostgreSQL two requests can both find a row missing and both insert it: the loser's insert hits the
            // unique index, which is the answer its check would have given a moment later.
            Err(e) if e.db().is_some_and(db::is_unique_violation) => return Err(E::clash(method).unwrap_or(e)),
            Err(e) => return Err(e),
        };
        let entry = Entry { at_ms: now, method, actor: &key.actor, target: &done.target, customers: &done.subjects };
        self.finish(&txn, &id, &done.subjects, done.reply.encode_to_vec(), entry).await?;
        txn.commit().await?;
        if let Some(hook) = &self.after_commit {
            hook();
        }
        Ok(done.reply)
    }

    /// The reply stored by an earlier run of `key` (None: never run), without claiming anything: for a request whose
    /// work before the transaction is slow or depends on other services (a retry then gets its first answer at
    /// once, whatever changed since). Like [`Frame::once`], the same id with other parameters is REQUEST_ID_REUSED
    /// and a reply blanked by an erasure is the service's erased answer.
    pub async fn stored<R, E>(&self, key: &Key, method: &str) -> Result<Option<R>, E>
    where
        R: Message + Default,
        E: ServiceError,
    {
        use sea_orm::EntityTrait;
        let id = self.keyed("id", &key.scoped_id());
        let Some(row) = idempotency::entity::Entity::find_by_id(id).one(&self.db).await? else { return Ok(None) };
        if row.created_at < self.clock.now_ms().saturating_sub(self.retention_ms) {
            return Ok(None);
        }
        if row.method != method || row.fingerprint != self.keyed("fp", &key.fingerprint) {
            return Err(E::from(crate::error::ApiError::new(
                crate::error::ErrorCode::AlreadyExists,
                "REQUEST_ID_REUSED",
                "request_id was already used for a different request",
            )));
        }
        if row.erased_at.is_some() {
            return Err(E::erased());
        }
        R::decode(row.response.as_slice())
            .map(Some)
            .map_err(|e| E::from(DbErr::Custom(format!("stored reply of {method}: {e}"))))
    }

    /// Stores a fresh request's reply with the customers it is about and records its audit entry. On PostgreSQL
    /// in one statement (its data-modifying `WITH` parts run once each, in the transaction): four round trips per
    /// write become one. On SQLite, in the process, one by one.
    async fn finish(
        &self,
        txn: &DatabaseTransaction,
        id: &str,
        subjects: &[String],
        reply: Vec<u8>,
        entry: Entry<'_>,
    ) -> Result<(), DbErr> {
        use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
        if txn.get_database_backend() != DbBackend::Postgres {
            idempotency::complete_for(txn, id, subjects, reply).await?;
            return self.trail.record(txn, entry).await;
        }
        let kept = self.trail.kept(entry);
        let mut values: Vec<Value> = vec![
            kept.at.into(),
            kept.method.into(),
            kept.actor_role.into(),
            kept.actor_subject.into(),
            kept.target.into(),
            reply.into(),
            id.into(),
        ];
        // `(VALUES ($n), ($n+1), ...)` over `items`, their values appended.
        let rows = |values: &mut Vec<Value>, items: Vec<String>| {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                values.push(item.into());
                out.push(format!("(${})", values.len()));
            }
            out.join(", ")
        };
        let mut sql = String::from(
            "WITH audit AS (INSERT INTO audit_records (at, method, actor_role, actor_subject, target) \
             VALUES ($1, $2, $3, $4, $5) RETURNING seq)",
        );
        if !kept.customers.is_empty() {
            let list = rows(&mut values, kept.customers.into_iter().collect());
            sql.push_str(&format!(
                ", filed AS (INSERT INTO audit_customers (seq, customer) SELECT audit.seq, c.customer \
                 FROM audit, (VALUES {list}) AS c(customer))"
            ));
        }
        let subjects: Vec<String> = subjects.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect();
        if !subjects.is_empty() {
            let list = rows(&mut values, subjects);
            sql.push_str(&format!(
                ", subjects AS (INSERT INTO idempotency_subjects (request_id, subject) SELECT $7, s.subject \
                 FROM (VALUES {list}) AS s(subject) ON CONFLICT (request_id, subject) DO NOTHING)"
            ));
        }
        sql.push_str(" UPDATE idempotency_keys SET response = $6 WHERE request_id = $7");
        txn.execute_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values)).await?;
        Ok(())
    }

    fn keyed(&self, what: &str, value: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return value.to_string();
        };
        mac.update(what.as_bytes());
        mac.update(b":");
        mac.update(value.as_bytes());
        mac.finalize().into_bytes().iter().take(20).map(|b| format!("{b:02x}")).collect()
    }
}
