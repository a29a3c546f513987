//! Workers under a lease: two replicas of one worker on PostgreSQL never run a round at the same time; on SQLite,
//! where a lease is always granted (one process owns the file), the same two do — the negative control showing
//! that the overlap check finds concurrent rounds when there is no lease.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::{sync::OnceLock, time::Duration};

use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use rapport_kit::{
    db,
    lease::{Round, Worker, overlapping},
    on_both,
    testing::{Backend, eventually, fresh_database},
};

fn exporter() -> &'static InMemorySpanExporter {
    static E: OnceLock<(InMemorySpanExporter, rapport_telemetry::TelemetryGuard)> = OnceLock::new();
    &E.get_or_init(|| {
        let e = InMemorySpanExporter::default();
        let g = rapport_telemetry::init_with_exporter("lease-test", e.clone());
        (e, g)
    })
    .0
}

fn attr<'a>(s: &'a SpanData, key: &str) -> Option<&'a Value> {
    s.attributes.iter().find(|KeyValue { key: k, .. }| k.as_str() == key).map(|kv| &kv.value)
}

/// The rounds of the worker `name`, from its spans.
fn rounds(name: &str) -> Vec<Round> {
    exporter()
        .get_finished_spans()
        .unwrap()
        .iter()
        .filter(|s| s.name == "worker.round" && attr(s, "worker.name").map(|v| v.as_str()) == Some(name.into()))
        .map(|s| Round {
            instance: attr(s, "worker.instance").map(|v| v.as_str().to_string()).unwrap_or_default(),
            start: s.start_time,
            end: s.end_time,
        })
        .collect()
}

async fn two_replicas_of_one_worker(backend: Backend) {
    exporter();
    let database = fresh_database(backend).await.unwrap();
    let conn = db::connect(database.url()).await.unwrap();
    let name = format!("test.worker.{}", uuid::Uuid::new_v4().simple());
    let stop = std::sync::Arc::new(tokio::sync::Notify::new());
    let replicas: Vec<_> = (0..2)
        .map(|_| {
            let (conn, stop) = (conn.clone(), stop.clone());
            let worker = Worker::new(name.clone(), Duration::from_millis(5));
            tokio::spawn(worker.run(conn, async move { stop.notified().await }, || async {
                // A round that takes a while, so that unleased rounds meet.
                tokio::time::sleep(Duration::from_millis(20)).await;
                false
            }))
        })
        .collect();
    eventually(60, "40 rounds", || async { rounds(&name).len() >= 40 }).await;
    let stopping = std::time::SystemTime::now();
    stop.notify_waiters();
    for r in replicas {
        r.await.unwrap();
    }
    let rounds = rounds(&name);
    // While both run (a holder that stops lets the other take over for a last round).
    let instances: std::collections::HashSet<_> =
        rounds.iter().filter(|r| r.end < stopping).map(|r| r.instance.clone()).collect();
    let overlaps = overlapping(&rounds);
    match backend {
        Backend::Postgres => {
            assert_eq!(instances.len(), 1, "only the lease holder runs rounds");
            assert!(overlaps.is_empty(), "rounds overlapped: {overlaps:?}");
        }
        Backend::Sqlite => {
            assert_eq!(instances.len(), 2, "without a lease both replicas run rounds");
            assert!(!overlaps.is_empty(), "the overlap check must find unleased concurrent rounds");
        }
    }
}

on_both!(two_replicas_of_one_worker);
