//! The tests' databases: a throwaway PostgreSQL started from the binaries on PATH, found running by a second
//! caller, and test databases that are gone once their guard is dropped.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::path::Path;

use rapport_kit::testing::{Backend, fresh_database};
use rapport_kit::{
    db,
    db::testing::{start_throwaway, stop_throwaway},
};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

async fn databases(admin: &DatabaseConnection, like: &str) -> usize {
    let rows = admin
        .query_all_raw(Statement::from_string(
            admin.get_database_backend(),
            format!("SELECT datname FROM pg_database WHERE datname LIKE '{like}'"),
        ))
        .await
        .unwrap();
    rows.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throwaway_server_starts_from_the_binaries_on_path() {
    let dir = std::env::temp_dir().join(format!("rapport-throwaway-{}", uuid::Uuid::new_v4().simple()));
    // Stopped and removed even when an assertion fails.
    struct Cleanup(std::path::PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = stop_throwaway(&self.0);
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Cleanup(dir.clone());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // Two callers at once: one starts the server, the other waits on the lock and finds it running.
    let (a, b) = (dir.clone(), dir.clone());
    let (a, b) = tokio::join!(
        tokio::task::spawn_blocking(move || start_throwaway(&a, port)),
        tokio::task::spawn_blocking(move || start_throwaway(&b, port)),
    );
    let (a, b) = (a.unwrap().expect("started"), b.unwrap().expect("found running"));
    assert_eq!(a, b);
    let admin = db::connect(&format!("{a}/postgres")).await.expect("the throwaway server answers");
    admin.execute_unprepared("CREATE DATABASE probe").await.unwrap();
    assert_eq!(databases(&admin, "probe").await, 1);
    admin.close().await.unwrap();
    stop_throwaway(&dir).expect("stopped");
    assert!(db::connect(&format!("{a}/postgres")).await.is_err(), "stopped server still answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_databases_are_dropped_with_their_guard() {
    let pg = fresh_database(Backend::Postgres).await.unwrap();
    let name = pg.url().rsplit('/').next().unwrap().to_string();
    let base = pg.url().trim_end_matches(&name).to_string();
    let conn = db::connect(pg.url()).await.unwrap();
    conn.execute_unprepared("CREATE TABLE t (x INT)").await.unwrap();
    let admin = db::connect(&format!("{base}postgres")).await.unwrap();
    assert_eq!(databases(&admin, &name).await, 1);
    // Dropped although a connection is still open.
    drop(pg);
    assert_eq!(databases(&admin, &name).await, 0, "database {name} left behind");
    drop(conn);

    let lite = fresh_database(Backend::Sqlite).await.unwrap();
    let conn = db::connect(lite.url()).await.unwrap();
    conn.execute_unprepared("CREATE TABLE t (x INT)").await.unwrap();
    conn.close().await.unwrap();
    let path = lite.url().trim_start_matches("sqlite://").split('?').next().unwrap().to_string();
    assert!(Path::new(&path).exists());
    drop(lite);
    assert!(!Path::new(&path).exists(), "{path} left behind");
}
