//! The outbox on SQLite and PostgreSQL: atomic with the writer's transaction, delivered in order with retries,
//! never twice by two relays, and de-duplicated by the inbox.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::sync::{Arc, Mutex};

use rapport_kit::{
    clock::ManualClock,
    db::{self, testing::Backend},
};
use rapport_outbox::{Relay, RelayConfig, Sink, inbox, migration};
use rapport_proto::events::v1::{Event, event};
use sea_orm::{DatabaseConnection, TransactionTrait};
use sea_orm_migration::async_trait;
use sea_orm_migration::prelude::*;

struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(migration::m20261123_000002_create_outbox_events::Migration),
            Box::new(migration::m20261123_000003_create_inbox_events::Migration),
        ]
    }
}

/// A receiver that records what it gets and refuses the listed event ids once each.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<String>>>,
    fail_once: Arc<Mutex<Vec<String>>>,
}

impl Sink for Receiver {
    async fn deliver(&self, e: Event) -> Result<(), tonic::Status> {
        let mut fail = self.fail_once.lock().unwrap();
        if let Some(i) = fail.iter().position(|id| *id == e.event_id) {
            fail.remove(i);
            return Err(tonic::Status::unavailable("receiver down"));
        }
        self.got.lock().unwrap().push(e.event_id);
        Ok(())
    }
}

fn event(id: &str, customer: &str) -> Event {
    Event {
        event_id: id.into(),
        source: "test".into(),
        customer_id: customer.into(),
        occurred_at: None,
        traceparent: String::new(),
        payload: Some(event::Payload::CustomerForgotten(Default::default())),
    }
}

async fn setup(backend: Backend) -> DatabaseConnection {
    let url = db::testing::fresh_database(backend).await.unwrap();
    db::connect_and_migrate::<Migrator>(&url).await.unwrap()
}

async fn in_order_with_retries(backend: Backend) {
    let db = setup(backend).await;
    for i in 1..=5 {
        let txn = db.begin().await.unwrap();
        rapport_outbox::enqueue(&txn, "seg", event(&format!("e{i}"), "c1"), 0).await.unwrap();
        txn.commit().await.unwrap();
    }
    // a rolled-back change leaves no event
    let txn = db.begin().await.unwrap();
    rapport_outbox::enqueue(&txn, "seg", event("ghost", "c1"), 0).await.unwrap();
    txn.rollback().await.unwrap();
    assert_eq!(rapport_outbox::pending(&db, "seg").await.unwrap(), 5);

    let receiver = Receiver::default();
    receiver.fail_once.lock().unwrap().push("e3".into());
    let clock = ManualClock::new(0);
    let relay = Relay::new(db.clone(), receiver.clone(), RelayConfig::new("seg"), Arc::new(clock.clone()));
    assert_eq!(relay.run_once().await.unwrap(), 2, "stops at the failed event");
    assert_eq!(relay.run_once().await.unwrap(), 0, "the failed event is in backoff and holds the rest back");
    clock.advance_ms(1_000);
    assert_eq!(relay.run_once().await.unwrap(), 3);
    assert_eq!(*receiver.got.lock().unwrap(), vec!["e1", "e2", "e3", "e4", "e5"]);
    assert_eq!(rapport_outbox::pending(&db, "seg").await.unwrap(), 0);
    assert_eq!(relay.run_once().await.unwrap(), 0, "nothing is delivered twice");
}

async fn inbox_applies_once(backend: Backend) {
    let db = setup(backend).await;
    let txn = db.begin().await.unwrap();
    assert!(inbox::apply_once(&txn, "ev-1", "loyalty", 1).await.unwrap());
    txn.commit().await.unwrap();
    let txn = db.begin().await.unwrap();
    assert!(!inbox::apply_once(&txn, "ev-1", "loyalty", 2).await.unwrap());
    assert!(inbox::apply_once(&txn, "ev-2", "loyalty", 2).await.unwrap());
    txn.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_in_order_with_retries() {
    in_order_with_retries(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_in_order_with_retries() {
    in_order_with_retries(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_inbox_applies_once() {
    inbox_applies_once(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_inbox_applies_once() {
    inbox_applies_once(Backend::Postgres).await;
}

/// Two relays of two replicas on one PostgreSQL outbox: each event is delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_relays_never_deliver_twice() {
    let db = setup(Backend::Postgres).await;
    for i in 0..200 {
        rapport_outbox::enqueue(&db, "seg", event(&format!("e{i}"), &format!("c{}", i % 7)), 0).await.unwrap();
    }
    let receiver = Receiver::default();
    let clock = Arc::new(ManualClock::new(0));
    let mut cfg = RelayConfig::new("seg");
    cfg.batch = 10;
    let a = Relay::new(db.clone(), receiver.clone(), cfg.clone(), clock.clone());
    let b = Relay::new(db.clone(), receiver.clone(), cfg, clock);
    let (da, db_) = (db.clone(), db.clone());
    let ta = tokio::spawn(async move {
        while rapport_outbox::pending(&da, "seg").await.unwrap() > 0 {
            a.run_once().await.unwrap();
        }
    });
    let tb = tokio::spawn(async move {
        while rapport_outbox::pending(&db_, "seg").await.unwrap() > 0 {
            b.run_once().await.unwrap();
        }
    });
    ta.await.unwrap();
    tb.await.unwrap();
    let got = receiver.got.lock().unwrap().clone();
    let unique: std::collections::HashSet<_> = got.iter().collect();
    assert_eq!(got.len(), 200, "delivered once each");
    assert_eq!(unique.len(), 200);
}
