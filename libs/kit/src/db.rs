//! The service's database through sea-orm: SQLite under `./data/<service>.db` by default, PostgreSQL when
//! `DATABASE_URL` names one. Migrations run at start-up and by the `migrate` subcommand.
use std::time::Duration;

use sea_orm::{
    AccessMode, ConnectOptions, Database, DatabaseBackend, DatabaseConnection, DbErr, IsolationLevel,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

/// The embedded default for `service`.
pub fn default_url(service: &str) -> String {
    format!("sqlite://./data/{service}.db?mode=rwc")
}

/// Rows (or values) one multi-row statement carries at most: a few parameters each stays well under both
/// databases' limits on parameters per statement (PostgreSQL 65,535; SQLite 32,766).
pub const ROWS_PER_STATEMENT: usize = 1000;

/// Connections a PostgreSQL pool opens at most unless told otherwise (SQLite: 8, one writer at a time anyway).
pub const DEFAULT_POOL: u32 = 16;

/// Connects to `url` (creating the SQLite file and its folder when needed).
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    connect_with(url, DEFAULT_POOL).await
}

/// Connects to `url` with at most `pool` PostgreSQL connections: replicas × pool must stay under the server's
/// `max_connections` (a lease holds one more connection of its own per worker).
pub async fn connect_with(url: &str, pool: u32) -> Result<DatabaseConnection, DbErr> {
    let mut opts = ConnectOptions::new(url.to_string());
    opts.sqlx_logging(false).connect_timeout(Duration::from_secs(10)).acquire_timeout(Duration::from_secs(30));
    if let Some(path) = sqlite_path(url) {
        if let Some(dir) = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| DbErr::Custom(format!("creating {}: {e}", dir.display())))?;
        }
        // One writer at a time in SQLite: waiting writers queue on the busy timeout instead of failing.
        opts.max_connections(8).map_sqlx_sqlite_opts(|o| {
            o.busy_timeout(Duration::from_secs(30))
                .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
        });
    } else {
        opts.max_connections(pool.max(2));
    }
    Database::connect(opts).await
}

/// Connects and brings the schema up to date. Replicas starting together migrate one after the other (under the
/// `migrations` lease): concurrent `CREATE TABLE`s clash in PostgreSQL's catalogue even with `IF NOT EXISTS`.
pub async fn connect_and_migrate<M: MigratorTrait>(url: &str) -> Result<DatabaseConnection, DbErr> {
    connect_and_migrate_with::<M>(url, DEFAULT_POOL).await
}

/// [`connect_and_migrate`] with at most `pool` PostgreSQL connections.
pub async fn connect_and_migrate_with<M: MigratorTrait>(url: &str, pool: u32) -> Result<DatabaseConnection, DbErr> {
    let db = connect_with(url, pool).await?;
    migrate::<M>(&db).await?;
    Ok(db)
}

/// Brings the schema of `db` up to date under the `migrations` lease.
pub async fn migrate<M: MigratorTrait>(db: &DatabaseConnection) -> Result<(), DbErr> {
    crate::lease::with_lease(db, "migrations", || M::up(db, None)).await?
}

fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// Begins a transaction that writes. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`): a deferred
/// transaction that reads first and writes later can fail with a busy snapshot when another writer got in between.
pub async fn begin_write(db: &DatabaseConnection) -> Result<sea_orm::DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

/// Begins a transaction that only reads, on one snapshot: `REPEATABLE READ READ ONLY` on PostgreSQL (a write in
/// it fails), a deferred transaction on SQLite (WAL: it never waits for the writer, nor the writer for it).
pub async fn begin_read(db: &DatabaseConnection) -> Result<sea_orm::DatabaseTransaction, DbErr> {
    match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            db.begin_with_config(Some(IsolationLevel::RepeatableRead), Some(AccessMode::ReadOnly)).await
        }
        _ => {
            db.begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Deferred),
                ..Default::default()
            })
            .await
        }
    }
}

/// Whether the error is a unique-constraint violation.
pub fn is_unique_violation(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
}

/// Fresh, empty databases for tests, dropped when the test ends; a throwaway PostgreSQL when none answers.
#[path = "test_db.rs"]
pub mod testing;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths() {
        assert_eq!(sqlite_path("sqlite://./data/loyalty.db?mode=rwc"), Some("./data/loyalty.db"));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://h/db"), None);
    }
}
