//! Leases: work that must run on one replica at a time (an outbox relay, a sweeper, a campaign worker, migrations).
//!
//! On PostgreSQL a lease is a session-level advisory lock held on a connection of its own, opened beside the pool:
//! PostgreSQL releases it when that connection ends, so a replica that dies or loses the database loses its lease
//! and another replica takes over — no expiry to tune, no clock to trust. On SQLite one process owns the file (the
//! embedded default runs every service once), so a lease is always granted.
use std::{future::Future, sync::Arc, time::Duration};

use sea_orm::{
    DatabaseConnection, DbBackend, DbErr,
    sqlx::{self, Connection, postgres::PgConnection},
};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tracing::Instrument;

/// A held lease; dropping it releases it (the connection closes).
pub struct Lease {
    name: String,
    conn: Option<PgConnection>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("name", &self.name).finish_non_exhaustive()
    }
}

/// The advisory-lock key of a lease name: the first 8 bytes of its SHA-256, so names never need registering.
pub fn key(name: &str) -> i64 {
    let d = Sha256::digest(name.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    i64::from_be_bytes(b)
}

fn sql_err(e: sqlx::Error) -> DbErr {
    DbErr::Custom(format!("lease: {e}"))
}

async fn own_connection(db: &DatabaseConnection) -> Result<PgConnection, DbErr> {
    let opts = db.get_postgres_connection_pool().connect_options();
    PgConnection::connect_with(&opts).await.map_err(sql_err)
}

impl Lease {
    /// Takes the lease `name` if no other holder has it; `None` when it is held elsewhere.
    pub async fn try_acquire(db: &DatabaseConnection, name: &str) -> Result<Option<Self>, DbErr> {
        if db.get_database_backend() != DbBackend::Postgres {
            return Ok(Some(Self { name: name.into(), conn: None }));
        }
        let mut conn = own_connection(db).await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(key(name))
            .fetch_one(&mut conn)
            .await
            .map_err(sql_err)?;
        if !got {
            let _ = conn.close().await;
            return Ok(None);
        }
        Ok(Some(Self { name: name.into(), conn: Some(conn) }))
    }

    /// Takes the lease `name`, waiting for its holder to let go.
    pub async fn acquire(db: &DatabaseConnection, name: &str) -> Result<Self, DbErr> {
        if db.get_database_backend() != DbBackend::Postgres {
            return Ok(Self { name: name.into(), conn: None });
        }
        let mut conn = own_connection(db).await?;
        sqlx::query("SELECT pg_advisory_lock($1)").bind(key(name)).execute(&mut conn).await.map_err(sql_err)?;
        Ok(Self { name: name.into(), conn: Some(conn) })
    }

    /// The lease's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the lease still stands: its connection answers and the lock is still its own.
    pub async fn held(&mut self) -> bool {
        let Some(conn) = self.conn.as_mut() else {
            return true;
        };
        let q = "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
                 AND pid = pg_backend_pid() AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = $1)";
        matches!(sqlx::query_scalar::<_, bool>(q).bind(key(&self.name)).fetch_one(conn).await, Ok(true))
    }

    /// Lets go of the lease at once.
    pub async fn release(mut self) {
        if let Some(mut conn) = self.conn.take() {
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)").bind(key(&self.name)).execute(&mut conn).await;
            let _ = conn.close().await;
        }
    }
}

/// Takes the transaction-scoped lock `name` (PostgreSQL `pg_advisory_xact_lock`, released at commit or rollback),
/// waiting for its holder; nothing on SQLite, where a writing transaction already excludes every other. Two
/// transactions that must not interleave on one subject without a row to lock (an erasure and a write about the
/// same customer) both take it first.
pub async fn lock_in_txn<C: sea_orm::ConnectionTrait>(txn: &C, name: &str) -> Result<(), DbErr> {
    if txn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    txn.execute_raw(sea_orm::Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock($1)",
        [key(name).into()],
    ))
    .await?;
    Ok(())
}

/// Takes the transaction-scoped lock `name` shared (`pg_advisory_xact_lock_shared`): any number of shared holders,
/// none while an exclusive holder ([`lock_in_txn`]) has it. Nothing on SQLite.
pub async fn lock_shared_in_txn<C: sea_orm::ConnectionTrait>(txn: &C, name: &str) -> Result<(), DbErr> {
    if txn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    txn.execute_raw(sea_orm::Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock_shared($1)",
        [key(name).into()],
    ))
    .await?;
    Ok(())
}

/// Takes, inside `txn`, the lock of one customer within `scope` (the service): an erasure and any write about the
/// customer take it first, so they never interleave (a write that checked the tombstone before the erasure committed
/// would otherwise leave the customer's data behind on PostgreSQL). Named by the customer's pseudonym, never its id.
pub async fn lock_customer<C: sea_orm::ConnectionTrait>(
    txn: &C,
    scope: &str,
    pseudonyms: &crate::pseudonym::Pseudonyms,
    customer_id: &str,
) -> Result<(), DbErr> {
    lock_in_txn(txn, &format!("{scope}.customer:{}", pseudonyms.of(customer_id))).await
}

/// Takes the locks of several customers within `scope`, in one order (their pseudonyms'), each once: a transaction
/// about many never deadlocks with one about a few.
pub async fn lock_customers<'a, C: sea_orm::ConnectionTrait>(
    txn: &C,
    scope: &str,
    pseudonyms: &crate::pseudonym::Pseudonyms,
    customers: impl IntoIterator<Item = &'a str>,
) -> Result<(), DbErr> {
    if txn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let order: std::collections::BTreeSet<String> = customers.into_iter().map(|c| pseudonyms.of(c)).collect();
    let keys: Vec<i64> = order.iter().map(|p| key(&format!("{scope}.customer:{p}"))).collect();
    // One statement per thousand locks. PostgreSQL evaluates a volatile function of the select list after the
    // ORDER BY, so the locks are taken in the list's order.
    for chunk in keys.chunks(crate::db::ROWS_PER_STATEMENT) {
        let rows: Vec<String> = (1..=chunk.len()).map(|n| format!("(${n}::bigint, {n})")).collect();
        let sql = format!("SELECT pg_advisory_xact_lock(k) FROM (VALUES {}) AS t(k, n) ORDER BY n", rows.join(", "));
        let values: Vec<sea_orm::Value> = chunk.iter().map(|k| (*k).into()).collect();
        txn.execute_raw(sea_orm::Statement::from_sql_and_values(DbBackend::Postgres, sql, values)).await?;
    }
    Ok(())
}

/// Runs `f` under `lease` for as long as it returns, then releases the lease.
pub async fn with_lease<T, F: Future<Output = T>>(
    db: &DatabaseConnection,
    name: &str,
    f: impl FnOnce() -> F,
) -> Result<T, DbErr> {
    let lease = Lease::acquire(db, name).await?;
    let out = f().await;
    lease.release().await;
    Ok(out)
}

/// A periodic background task that must run on one replica at a time.
#[derive(Clone)]
pub struct Worker {
    /// The lease name (prefixed by the service, e.g. `loyalty.sweeper`).
    pub name: String,
    /// How often it runs when not woken.
    pub every: Duration,
    /// Wakes it early (after a commit that gave it work).
    pub wake: Arc<Notify>,
}

impl Worker {
    /// A worker named `name` running every `every`.
    pub fn new(name: impl Into<String>, every: Duration) -> Self {
        Self { name: name.into(), every, wake: Arc::new(Notify::new()) }
    }

    /// Uses a waker the writer already holds.
    pub fn with_wake(mut self, wake: Arc<Notify>) -> Self {
        self.wake = wake;
        self
    }

    /// Runs `round` under the worker's lease until `stop` resolves. A replica without the lease tries again every
    /// `every` (at most every 5 s), so a successor takes over soon after the holder dies. `round` returns whether
    /// there is more to do at once.
    ///
    /// Each round is a `worker.round` span (`worker.name`, `worker.instance` — one per call of `run`, so per
    /// replica —, `db.namespace`, and `worker.more`): tests count the rounds and check that no two replicas' rounds
    /// of one worker ever overlap.
    pub async fn run<F, Fut>(self, db: DatabaseConnection, stop: impl Future<Output = ()> + Send, mut round: F)
    where
        F: FnMut() -> Fut + Send,
        Fut: Future<Output = bool> + Send,
    {
        tokio::pin!(stop);
        let retry = self.every.min(Duration::from_secs(5));
        let mut lease: Option<Lease> = None;
        let instance = uuid::Uuid::new_v4().simple().to_string();
        let namespace = namespace(&db).await;
        loop {
            if let Some(l) = lease.as_mut()
                && !l.held().await
            {
                tracing::warn!(worker = %self.name, "lease lost");
                lease = None;
            }
            if lease.is_none() {
                match Lease::try_acquire(&db, &self.name).await {
                    Ok(Some(l)) => {
                        tracing::debug!(worker = %self.name, "lease taken");
                        lease = Some(l);
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(worker = %self.name, error = %e, "lease unavailable"),
                }
            }
            let wait = match lease {
                Some(_) => {
                    let span = tracing::info_span!(
                        "worker.round",
                        // `loyalty.sweeper`, `loyalty.outbox.segmentation`: the service is the first part.
                        rapport.service = self.name.split('.').next().unwrap_or_default(),
                        worker.name = %self.name,
                        worker.instance = %instance,
                        db.namespace = %namespace,
                        worker.more = tracing::field::Empty,
                    );
                    let more = round().instrument(span.clone()).await;
                    span.record("worker.more", more);
                    if more { Duration::ZERO } else { self.every }
                }
                None => retry,
            };
            tokio::select! {
                biased;
                () = &mut stop => break,
                // Only the holder is woken early: the others would open a connection to try the lease each time.
                () = self.wake.notified(), if !wait.is_zero() && lease.is_some() => {},
                () = tokio::time::sleep(wait) => {},
            }
        }
        if let Some(l) = lease {
            l.release().await;
        }
    }
}

/// The database's name (PostgreSQL) or `sqlite`, naming where a worker's rounds happen.
async fn namespace(db: &DatabaseConnection) -> String {
    if db.get_database_backend() != DbBackend::Postgres {
        return "sqlite".into();
    }
    sqlx::query_scalar::<_, String>("SELECT current_database()")
        .fetch_one(db.get_postgres_connection_pool())
        .await
        .unwrap_or_default()
}

/// A worker's round as seen in its span: which replica ran it, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    /// `worker.instance` of the replica that ran it.
    pub instance: String,
    /// When it started.
    pub start: std::time::SystemTime,
    /// When it ended.
    pub end: std::time::SystemTime,
}

/// The pairs of rounds run by different replicas at the same time (none when the lease works).
pub fn overlapping(rounds: &[Round]) -> Vec<(Round, Round)> {
    let mut sorted = rounds.to_vec();
    sorted.sort_by_key(|r| r.start);
    let mut out = Vec::new();
    for (i, a) in sorted.iter().enumerate() {
        for b in sorted[i + 1..].iter().take_while(|b| b.start < a.end) {
            if b.instance != a.instance {
                out.push((a.clone(), b.clone()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_distinct() {
        assert_eq!(key("loyalty.sweeper"), key("loyalty.sweeper"));
        assert_ne!(key("loyalty.sweeper"), key("segmentation.refresher"));
    }

    #[test]
    fn overlapping_rounds_of_different_replicas_are_found() {
        let t = |ms: u64| std::time::UNIX_EPOCH + Duration::from_millis(ms);
        let r = |i: &str, a, b| Round { instance: i.into(), start: t(a), end: t(b) };
        assert!(overlapping(&[r("a", 0, 10), r("b", 10, 20), r("a", 20, 30)]).is_empty());
        assert_eq!(overlapping(&[r("a", 0, 10), r("a", 5, 8), r("b", 30, 40)]), vec![]);
        assert_eq!(overlapping(&[r("a", 0, 10), r("b", 9, 20)]), vec![(r("a", 0, 10), r("b", 9, 20))]);
        assert_eq!(overlapping(&[r("b", 2, 3), r("a", 0, 10)]).len(), 1);
    }
}
