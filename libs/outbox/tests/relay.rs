//! The outbox on SQLite and PostgreSQL: atomic with the writer's transaction, delivered in order with retries,
//! never twice by two relays, and de-duplicated by the inbox.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::sync::{Arc, Mutex};

use rapport_kit::{
    clock::ManualClock,
    db::{self, testing::Backend},
    on_both,
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
        let mut all = rapport_kit::migration::all();
        all.extend(migration::all());
        all
    }
}

/// A receiver that records what it gets (event id, customer), refuses the listed event ids once each as if it were
/// down, and refuses the poison ones for good until cured.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<String>>>,
    by_customer: Arc<Mutex<Vec<(String, String)>>>,
    fail_once: Arc<Mutex<Vec<String>>>,
    poison: Arc<Mutex<Vec<String>>>,
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl Sink for Receiver {
    async fn deliver(&self, e: Event) -> Result<(), tonic::Status> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(tonic::Status::unavailable("receiver down"));
        }
        if self.poison.lock().unwrap().contains(&e.event_id) {
            return Err(tonic::Status::invalid_argument("this event is refused"));
        }
        let mut fail = self.fail_once.lock().unwrap();
        if let Some(i) = fail.iter().position(|id| *id == e.event_id) {
            fail.remove(i);
            return Err(tonic::Status::unavailable("receiver down"));
        }
        self.got.lock().unwrap().push(e.event_id.clone());
        self.by_customer.lock().unwrap().push((e.customer_id, e.event_id));
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
        payload: Some(event::Payload::TierChanged(Default::default())),
    }
}

fn forgotten(id: &str, customer: &str) -> Event {
    Event { payload: Some(event::Payload::CustomerForgotten(Default::default())), ..event(id, customer) }
}

/// A migrated database, and its guard: keep the guard for as long as the test runs.
async fn setup(backend: Backend) -> (db::testing::TestDb, DatabaseConnection) {
    let database = db::testing::fresh_database(backend).await.unwrap();
    let db = db::connect_and_migrate::<Migrator>(database.url()).await.unwrap();
    (database, db)
}

async fn in_order_with_retries(backend: Backend) {
    let (_database, db) = setup(backend).await;
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
    let relay = Relay::new(db.clone(), receiver.clone(), RelayConfig::new("test", "seg"), Arc::new(clock.clone()));
    assert_eq!(relay.run_once().await.unwrap(), 2, "stops at the failed event");
    assert_eq!(relay.run_once().await.unwrap(), 0, "the failed event is in backoff and holds the rest back");
    clock.advance_ms(1_000);
    assert_eq!(relay.run_once().await.unwrap(), 3);
    assert_eq!(*receiver.got.lock().unwrap(), vec!["e1", "e2", "e3", "e4", "e5"]);
    assert_eq!(rapport_outbox::pending(&db, "seg").await.unwrap(), 0);
    assert_eq!(relay.run_once().await.unwrap(), 0, "nothing is delivered twice");
}

async fn inbox_applies_once(backend: Backend) {
    let (_database, db) = setup(backend).await;
    let txn = db.begin().await.unwrap();
    assert!(inbox::apply_once(&txn, "ev-1", "loyalty", 1).await.unwrap());
    txn.commit().await.unwrap();
    let txn = db.begin().await.unwrap();
    assert!(!inbox::apply_once(&txn, "ev-1", "loyalty", 2).await.unwrap());
    assert!(inbox::apply_once(&txn, "ev-2", "loyalty", 2).await.unwrap());
    txn.commit().await.unwrap();
}

/// A poison event is parked after its attempts while the rest flows; a receiver that is down parks nothing; an
/// operator's retry delivers the parked event once it is cured.
async fn poison_is_parked_and_replayed(backend: Backend) {
    use rapport_proto::events::v1::{
        ListParkedEventsRequest, RetryParkedEventsRequest, outbox_service_server::OutboxService,
    };
    let (_database, db) = setup(backend).await;
    for i in 1..=4 {
        rapport_outbox::enqueue(&db, "seg", event(&format!("e{i}"), "c1"), 0).await.unwrap();
    }
    let receiver = Receiver::default();
    let clock = ManualClock::new(0);
    let mut cfg = RelayConfig::new("test", "seg");
    cfg.max_attempts = 3;
    let relay = Relay::new(db.clone(), receiver.clone(), cfg, Arc::new(clock.clone()));

    // Down for longer than the attempts: nothing is parked, order is kept.
    receiver.down.store(true, std::sync::atomic::Ordering::SeqCst);
    for _ in 0..6 {
        assert_eq!(relay.run_once().await.unwrap(), 0);
        clock.advance_ms(120_000);
    }
    assert_eq!(rapport_outbox::admin::parked(&db, "seg").await.unwrap(), 0, "an outage parks nothing");
    receiver.down.store(false, std::sync::atomic::Ordering::SeqCst);

    receiver.poison.lock().unwrap().push("e2".into());
    assert_eq!(relay.run_once().await.unwrap(), 1, "e1, then e2 is refused");
    clock.advance_ms(120_000);
    assert_eq!(relay.run_once().await.unwrap(), 0, "e2 refused again");
    clock.advance_ms(120_000);
    assert_eq!(relay.run_once().await.unwrap(), 2, "e2 parked on its third refusal, e3 and e4 flow");
    assert_eq!(*receiver.got.lock().unwrap(), vec!["e1", "e3", "e4"]);
    assert_eq!(rapport_outbox::admin::parked(&db, "seg").await.unwrap(), 1);

    let admin = rapport_outbox::admin::OutboxAdmin::new(
        db.clone(),
        Arc::new(clock.clone()),
        rapport_outbox::Outbox::new("test", ["seg".to_string()]),
        rapport_kit::audit::Trail::new(rapport_kit::pseudonym::Pseudonyms::development()),
        "test",
    );
    let listed =
        admin.list_parked_events(tonic::Request::new(ListParkedEventsRequest::default())).await.unwrap().into_inner();
    assert_eq!(listed.events.len(), 1);
    assert_eq!(listed.events[0].event_id, "e2");
    assert_eq!(listed.events[0].kind, "tier_changed");
    assert_eq!(listed.events[0].attempts, 3);
    assert!(listed.events[0].last_error.contains("refused"), "{:?}", listed.events[0]);

    receiver.poison.lock().unwrap().clear();
    let retry = RetryParkedEventsRequest { request_id: "r1".into(), destination: "seg".into(), event_ids: vec![] };
    let n = admin.retry_parked_events(tonic::Request::new(retry.clone())).await.unwrap().into_inner();
    assert_eq!(n.requeued, 1);
    let again = admin.retry_parked_events(tonic::Request::new(retry)).await.unwrap().into_inner();
    assert_eq!(again.requeued, 1, "a retried request gets its first answer");
    assert_eq!(relay.run_once().await.unwrap(), 1);
    assert_eq!(*receiver.got.lock().unwrap(), vec!["e1", "e3", "e4", "e2"]);
    assert_eq!(rapport_outbox::admin::parked(&db, "seg").await.unwrap(), 0);
    assert_eq!(rapport_outbox::pending(&db, "seg").await.unwrap(), 0);
    assert_eq!(relay.run_once().await.unwrap(), 0, "delivered once");
    // The retry is in the audit trail once (its replay added nothing).
    use rapport_kit::audit::entity as audit;
    use sea_orm::EntityTrait;
    let trail = audit::Entity::find().all(&db).await.unwrap();
    assert_eq!(trail.len(), 1);
    assert_eq!((trail[0].method.as_str(), trail[0].target.as_str()), ("RetryParkedEvents", "destination:seg"));
    let bad = admin.retry_parked_events(tonic::Request::new(RetryParkedEventsRequest::default())).await.unwrap_err();
    rapport_kit::testing::assert_status(
        &bad,
        tonic::Code::InvalidArgument,
        "INVALID_ARGUMENT",
        "test",
        Some("destination"),
    );
}

/// Delivered rows go after the retention; a delivered erasure takes the customer's rows with it at once.
async fn retention_and_erasure_scrub(backend: Backend) {
    let (_database, db) = setup(backend).await;
    rapport_outbox::enqueue(&db, "seg", event("a1", "ann"), 0).await.unwrap();
    rapport_outbox::enqueue(&db, "seg", event("b1", "bob"), 0).await.unwrap();
    rapport_outbox::enqueue(&db, "seg", forgotten("a2", "ann"), 0).await.unwrap();
    let receiver = Receiver::default();
    let clock = ManualClock::new(0);
    let relay = Relay::new(db.clone(), receiver.clone(), RelayConfig::new("test", "seg"), Arc::new(clock.clone()));
    assert_eq!(relay.run_once().await.unwrap(), 3);
    use rapport_outbox::entities::outbox_event;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let rows_of = |c: &'static str| {
        let db = db.clone();
        async move {
            outbox_event::Entity::find().filter(outbox_event::Column::PartitionKey.eq(c)).count(&db).await.unwrap()
        }
    };
    assert_eq!(rows_of("ann").await, 0, "nothing of an erased customer stays once its erasure is delivered");
    assert_eq!(rows_of("bob").await, 1);
    clock.advance_ms(6 * 86_400_000);
    assert_eq!(relay.prune().await.unwrap(), 0, "kept for 7 days");
    clock.advance_ms(2 * 86_400_000);
    assert_eq!(relay.prune().await.unwrap(), 1);
    assert_eq!(rows_of("bob").await, 0);
}

/// Fan-out: one row per subscriber, each delivered on its own.
async fn fan_out(backend: Backend) {
    let (_database, db) = setup(backend).await;
    let outbox = rapport_outbox::Outbox::new("test", ["seg".to_string(), "referrals".to_string()]);
    let txn = db.begin().await.unwrap();
    let id = outbox.publish(&txn, "c1", event::Payload::TierChanged(Default::default()), 0).await.unwrap();
    txn.commit().await.unwrap();
    assert_eq!(rapport_outbox::pending(&db, "seg").await.unwrap(), 1);
    assert_eq!(rapport_outbox::pending(&db, "referrals").await.unwrap(), 1);
    let (r1, r2) = (Receiver::default(), Receiver::default());
    let clock: Arc<ManualClock> = Arc::new(ManualClock::new(0));
    Relay::new(db.clone(), r1.clone(), RelayConfig::new("test", "seg"), clock.clone()).run_once().await.unwrap();
    assert_eq!(*r1.got.lock().unwrap(), vec![id.clone()]);
    assert_eq!(rapport_outbox::pending(&db, "referrals").await.unwrap(), 1, "each subscriber has its own place");
    Relay::new(db.clone(), r2.clone(), RelayConfig::new("test", "referrals"), clock).run_once().await.unwrap();
    assert_eq!(*r2.got.lock().unwrap(), vec![id], "the same event id for every subscriber");
}

on_both!(
    in_order_with_retries,
    inbox_applies_once,
    poison_is_parked_and_replayed,
    retention_and_erasure_scrub,
    fan_out
);

/// Two replicas' relays on one PostgreSQL outbox while writers keep adding events: one relay delivers at a time
/// (the lease), so every customer's events arrive once each and in the order they were written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_relays_keep_each_customers_order() {
    let (_database, db) = setup(Backend::Postgres).await;
    let receiver = Receiver::default();
    let clock = Arc::new(rapport_kit::clock::SystemClock);
    let mut cfg = RelayConfig::new("test", "seg");
    cfg.batch = 7;
    cfg.poll_interval = std::time::Duration::from_millis(5);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let relays: Vec<_> = (0..2)
        .map(|_| tokio::spawn(Relay::new(db.clone(), receiver.clone(), cfg.clone(), clock.clone()).run(stopped())))
        .collect();
    // Four writers, each customer written by one writer in order (as under a customer's row lock).
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let db = db.clone();
            tokio::spawn(async move {
                for i in 0..150 {
                    let customer = format!("c{w}-{}", i % 5);
                    let txn = db.begin().await.unwrap();
                    rapport_outbox::enqueue(&txn, "seg", event(&format!("{customer}/{i:03}"), &customer), 0)
                        .await
                        .unwrap();
                    txn.commit().await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    rapport_kit::testing::eventually(60, "every event delivered", || async {
        rapport_outbox::pending(&db, "seg").await.unwrap() == 0
    })
    .await;
    let _ = stop_tx.send(true);
    for r in relays {
        r.await.unwrap();
    }
    let got = receiver.by_customer.lock().unwrap().clone();
    assert_eq!(got.len(), 600, "each event once");
    let mut per: std::collections::HashMap<String, Vec<String>> = Default::default();
    for (c, e) in got {
        per.entry(c).or_default().push(e);
    }
    for (c, events) in per {
        let mut sorted = events.clone();
        sorted.sort();
        assert_eq!(events, sorted, "events of {c} out of order");
    }
}

/// Leases: one holder at a time on PostgreSQL, released when dropped or released; always granted on SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_have_one_holder() {
    use rapport_kit::lease::Lease;
    let (_pg_database, pg) = setup(Backend::Postgres).await;
    let mut a = Lease::try_acquire(&pg, "t.lease").await.unwrap().expect("first holder");
    assert!(Lease::try_acquire(&pg, "t.lease").await.unwrap().is_none(), "a second holder waits");
    assert!(Lease::try_acquire(&pg, "t.other").await.unwrap().is_some(), "other names are independent");
    assert!(a.held().await);
    a.release().await;
    let b = Lease::try_acquire(&pg, "t.lease").await.unwrap().expect("free again");
    drop(b);
    rapport_kit::testing::eventually(10, "a dropped lease is released", || async {
        Lease::try_acquire(&pg, "t.lease").await.unwrap().is_some()
    })
    .await;
    let (_lite_database, lite) = setup(Backend::Sqlite).await;
    assert!(Lease::try_acquire(&lite, "t.lease").await.unwrap().is_some());
    assert!(Lease::try_acquire(&lite, "t.lease").await.unwrap().is_some());
}

/// Replicas starting together on a fresh PostgreSQL database migrate one after the other, and all start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_on_a_fresh_database() {
    let database = db::testing::fresh_database(Backend::Postgres).await.unwrap();
    let url = database.url().to_string();
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { db::connect_and_migrate::<Migrator>(&url).await.map(|_| ()) })
        })
        .collect();
    for s in starts {
        s.await.unwrap().expect("every replica starts");
    }
}

mod kill {
    //! The outbox kill test: 5,000 events written by concurrent transactions (a tenth of them rolled back) while the
    //! relay is killed 3 times, the receiver is down 3 times and dies in the middle of applying now and then, and an
    //! acknowledgement is lost after delivery and before marking. The receiver's applied set equals the committed
    //! set, nothing is applied twice, the backlog drains to 0. The negative control publishes outside the writer's
    //! transaction, and the same check catches its phantoms.
    use std::{
        collections::HashMap,
        sync::{
            Arc,
            atomic::{AtomicBool, AtomicUsize, Ordering},
        },
        time::Duration,
    };

    use rapport_kit::{
        auth::{Caller, Role},
        clock::SystemClock,
        db::testing::Backend,
        pseudonym::Pseudonyms,
    };
    use rapport_outbox::{
        Relay, RelayConfig, Sink,
        sink::{EventHandler, EventSink, HandlerError},
    };
    use rapport_proto::events::v1::{DeliverEventsRequest, Event, event, event_sink_service_server::EventSinkService};
    use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, Statement, TransactionTrait};

    struct Effects;

    #[tonic::async_trait]
    impl EventHandler for Effects {
        async fn apply(&self, txn: &DatabaseTransaction, events: Vec<Event>) -> Result<(), HandlerError> {
            for e in events {
                txn.execute_unprepared(&format!("INSERT INTO effects (event_id) VALUES ('{}')", e.event_id)).await?;
            }
            Ok(())
        }
        async fn forget(&self, _: &DatabaseTransaction, _: &str) -> Result<(), HandlerError> {
            Ok(())
        }
    }

    /// The wire between relay and receiver, with the faults.
    #[derive(Clone)]
    struct Wire {
        sink: Arc<EventSink<Effects>>,
        down: Arc<AtomicBool>,
        calls: Arc<AtomicUsize>,
    }

    impl Sink for Wire {
        async fn deliver(&self, e: Event) -> Result<(), tonic::Status> {
            if self.down.load(Ordering::SeqCst) {
                return Err(tonic::Status::unavailable("receiver down"));
            }
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let mut req = tonic::Request::new(DeliverEventsRequest { events: vec![e] });
            req.extensions_mut().insert(Caller { subject: "test".into(), role: Role::Loyalty });
            if n % 97 == 96 {
                // The receiver dies while applying: its transaction never commits.
                let sink = self.sink.clone();
                let h = tokio::spawn(async move { sink.deliver_events(req).await });
                tokio::task::yield_now().await;
                h.abort();
                let _ = h.await;
                return Err(tonic::Status::unavailable("receiver died"));
            }
            self.sink.deliver_events(req).await?;
            if n % 53 == 52 {
                // Failpoint: delivered and applied, but the acknowledgement never reaches the relay.
                return Err(tonic::Status::unavailable("acknowledgement lost"));
            }
            Ok(())
        }
    }

    async fn fresh(backend: Backend, table: &str) -> (rapport_kit::testing::TestDb, DatabaseConnection) {
        let (database, db) = super::setup(backend).await;
        db.execute_unprepared(&format!("CREATE TABLE {table} (event_id VARCHAR(64) NOT NULL)")).await.unwrap();
        (database, db)
    }

    async fn ids(db: &DatabaseConnection, table: &str) -> Vec<String> {
        db.query_all_raw(Statement::from_string(db.get_database_backend(), format!("SELECT event_id FROM {table}")))
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.try_get_by_index(0).unwrap())
            .collect()
    }

    /// What went wrong between the committed changes and the receiver's effects: (lost, phantoms, doubled).
    async fn compare(producer: &DatabaseConnection, receiver: &DatabaseConnection) -> (usize, usize, usize) {
        let committed: std::collections::HashSet<String> = ids(producer, "changes").await.into_iter().collect();
        let mut applied: HashMap<String, usize> = HashMap::new();
        for id in ids(receiver, "effects").await {
            *applied.entry(id).or_default() += 1;
        }
        let lost = committed.iter().filter(|id| !applied.contains_key(*id)).count();
        let phantoms = applied.keys().filter(|id| !committed.contains(*id)).count();
        let doubled = applied.values().filter(|n| **n > 1).count();
        (lost, phantoms, doubled)
    }

    fn event(id: String, i: usize) -> Event {
        Event {
            event_id: id,
            source: "loyalty".into(),
            customer_id: format!("c{}", i % 50),
            occurred_at: None,
            traceparent: String::new(),
            payload: Some(event::Payload::TierChanged(Default::default())),
        }
    }

    /// Writes `n` changes from 8 writers, a tenth rolled back; `inside` puts the event in the change's transaction,
    /// otherwise it is published on its own first (the bug the outbox exists to prevent).
    async fn write(db: &DatabaseConnection, n: usize, inside: bool) {
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let db = db.clone();
                tokio::spawn(async move {
                    for i in (w..n).step_by(8) {
                        let id = format!("ev-{i}");
                        if !inside {
                            rapport_outbox::enqueue(&db, "receiver", event(id.clone(), i), 0).await.unwrap();
                        }
                        let txn = db.begin().await.unwrap();
                        txn.execute_unprepared(&format!("INSERT INTO changes (event_id) VALUES ('{id}')"))
                            .await
                            .unwrap();
                        if inside {
                            rapport_outbox::enqueue(&txn, "receiver", event(id, i), 0).await.unwrap();
                        }
                        if i % 10 == 7 {
                            txn.rollback().await.unwrap();
                        } else {
                            txn.commit().await.unwrap();
                        }
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
    }

    fn wire(receiver: &DatabaseConnection) -> Wire {
        let sink = EventSink::new(
            receiver.clone(),
            Arc::new(Effects),
            Arc::new(SystemClock),
            Pseudonyms::development(),
            Duration::from_secs(300),
            "test",
        );
        Wire { sink: Arc::new(sink), down: Arc::default(), calls: Arc::default() }
    }

    fn config() -> RelayConfig {
        let mut cfg = RelayConfig::new("test", "receiver");
        cfg.poll_interval = Duration::from_millis(5);
        cfg.base_backoff = Duration::from_millis(5);
        cfg.max_backoff = Duration::from_millis(20);
        cfg
    }

    async fn relay_and_receiver_killed(backend: Backend) {
        let ((_p, producer), (_r, receiver)) = (fresh(backend, "changes").await, fresh(backend, "effects").await);
        let wire = wire(&receiver);
        let writing = {
            let producer = producer.clone();
            tokio::spawn(async move { write(&producer, 5_000, true).await })
        };
        let start = || {
            let relay = Relay::new(producer.clone(), wire.clone(), config(), Arc::new(SystemClock));
            tokio::spawn(relay.run(std::future::pending()))
        };
        let mut relay = start();
        for k in 1..=3 {
            // Let some deliveries through, then kill the relay wherever it is and start another; take the receiver
            // down for a while.
            let target = k * 1_000;
            rapport_kit::testing::eventually(120, "deliveries", || async {
                wire.calls.load(Ordering::SeqCst) >= target
            })
            .await;
            relay.abort();
            let _ = relay.await;
            wire.down.store(true, Ordering::SeqCst);
            relay = start();
            tokio::time::sleep(Duration::from_millis(50)).await;
            wire.down.store(false, Ordering::SeqCst);
        }
        writing.await.unwrap();
        rapport_kit::testing::eventually(300, "the backlog drained", || async {
            rapport_outbox::pending(&producer, "receiver").await.unwrap() == 0
        })
        .await;
        relay.abort();
        assert_eq!(compare(&producer, &receiver).await, (0, 0, 0), "(lost, phantoms, doubled)");
        assert_eq!(ids(&receiver, "effects").await.len(), 4_500, "the committed nine tenths");
    }

    /// Publishing outside the transaction: rolled-back changes still send their events, and the check sees them.
    async fn negative_control_publishing_outside_the_transaction(backend: Backend) {
        let ((_p, producer), (_r, receiver)) = (fresh(backend, "changes").await, fresh(backend, "effects").await);
        write(&producer, 200, false).await;
        let relay = Relay::new(producer.clone(), wire(&receiver), config(), Arc::new(SystemClock));
        while rapport_outbox::pending(&producer, "receiver").await.unwrap() > 0 {
            relay.run_once().await.unwrap();
        }
        let (_, phantoms, _) = compare(&producer, &receiver).await;
        assert_eq!(phantoms, 20, "every rolled-back change still published its event");
    }

    rapport_kit::on_both!(relay_and_receiver_killed, negative_control_publishing_outside_the_transaction);
}
