//! The outbox over NATS JetStream, against a real nats-server (`rapport_kit::db::testing::nats_server`: the one on
//! 127.0.0.1:4222, or a throwaway one): the kill test, the order of each customer's events with two
//! replicas of the producer and of the subscriber, and parking at the subscriber with an operator's replay. Each test
//! names its streams under its own prefix.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use rapport_kit::{
    clock::{Clock, SystemClock},
    db::{self, testing::Backend},
    on_both,
    pseudonym::Pseudonyms,
    service::Nats,
};
use rapport_outbox::{
    Relay, RelayConfig, Sink,
    jetstream::{JetStream, JetStreamSink, consume},
    migration,
    sink::{EventHandler, EventSink, HandlerError},
};
use rapport_proto::events::v1::{Event, event};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, Statement, TransactionTrait};
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

/// The subscriber's name (its consumer, its `ErrorInfo` domain) and the producer's.
const ME: &str = "test";
const SOURCE: &str = "loyalty";

fn nats() -> Nats {
    let mut n = Nats::new(&db::testing::nats_server().unwrap());
    n.prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    n.ack_wait = Duration::from_secs(1);
    n
}

/// What the subscriber does: writes an effect row per event, in the sink's transaction; records the order it applied
/// them in; refuses the poison ones.
#[derive(Clone, Default)]
struct Effects {
    order: Arc<Mutex<Vec<(String, String)>>>,
    poison: Arc<Mutex<HashSet<String>>>,
}

#[tonic::async_trait]
impl EventHandler for Effects {
    async fn apply(&self, txn: &DatabaseTransaction, events: Vec<Event>) -> Result<(), HandlerError> {
        for e in events {
            if self.poison.lock().unwrap().contains(&e.event_id) {
                return Err(HandlerError::Refused(rapport_kit::error::ApiError::new(
                    rapport_kit::error::ErrorCode::InvalidArgument,
                    "POISON",
                    "this event is refused",
                )));
            }
            txn.execute_unprepared(&format!("INSERT INTO effects (event_id) VALUES ('{}')", e.event_id)).await?;
            self.order.lock().unwrap().push((e.customer_id, e.event_id));
        }
        Ok(())
    }
    async fn forget(&self, _: &DatabaseTransaction, _: &str) -> Result<(), HandlerError> {
        Ok(())
    }
}

/// A publisher whose broker's acknowledgement is lost now and then: published, but the relay is told it failed.
#[derive(Clone)]
struct LosesAcks {
    inner: Arc<JetStreamSink>,
    calls: Arc<AtomicUsize>,
}

impl Sink for LosesAcks {
    async fn deliver(&self, e: Event) -> Result<(), tonic::Status> {
        self.inner.deliver(e).await?;
        if self.calls.fetch_add(1, Ordering::SeqCst) % 53 == 52 {
            return Err(tonic::Status::unavailable("acknowledgement lost"));
        }
        Ok(())
    }
}

async fn fresh(backend: Backend, table: &str) -> (db::testing::TestDb, DatabaseConnection) {
    let database = db::testing::fresh_database(backend).await.unwrap();
    let db = db::connect_and_migrate::<Migrator>(database.url()).await.unwrap();
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

fn event(id: String, customer: String) -> Event {
    Event {
        event_id: id,
        source: SOURCE.into(),
        customer_id: customer,
        occurred_at: None,
        traceparent: String::new(),
        payload: Some(event::Payload::TierChanged(Default::default())),
    }
}

fn config() -> RelayConfig {
    let mut cfg = RelayConfig::new(SOURCE, ME);
    cfg.poll_interval = Duration::from_millis(5);
    cfg.base_backoff = Duration::from_millis(5);
    cfg.max_backoff = Duration::from_millis(50);
    cfg
}

fn subscriber(receiver: &DatabaseConnection, effects: &Effects) -> Arc<EventSink<Effects>> {
    Arc::new(EventSink::new(
        receiver.clone(),
        Arc::new(effects.clone()),
        Arc::new(SystemClock),
        Pseudonyms::development(),
        Duration::from_secs(300),
        ME,
    ))
}

fn clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// 3,000 events written by 8 concurrent writers (a tenth rolled back) while the relay and the subscriber's consumer
/// are each killed 3 times and the broker's acknowledgement of a publish is lost now and then: the subscriber's
/// effects equal the committed changes, none twice, and the outbox drains.
async fn kill_test_on_jetstream(backend: Backend) {
    const N: usize = 3_000;
    let ((_p, producer), (_r, receiver)) = (fresh(backend, "changes").await, fresh(backend, "effects").await);
    let nats = nats();
    let bus = JetStream::connect(&nats, "test").await.unwrap();
    let effects = Effects::default();
    let sink = subscriber(&receiver, &effects);
    let writing = {
        let producer = producer.clone();
        tokio::spawn(async move {
            let writers: Vec<_> = (0..8)
                .map(|w| {
                    let db = producer.clone();
                    tokio::spawn(async move {
                        for i in (w..N).step_by(8) {
                            let id = format!("ev-{i}");
                            let txn = db.begin().await.unwrap();
                            txn.execute_unprepared(&format!("INSERT INTO changes (event_id) VALUES ('{id}')"))
                                .await
                                .unwrap();
                            rapport_outbox::enqueue(&txn, ME, event(id, format!("c{}", i % 50)), 0).await.unwrap();
                            if i % 10 == 7 { txn.rollback().await.unwrap() } else { txn.commit().await.unwrap() }
                        }
                    })
                })
                .collect();
            for w in writers {
                w.await.unwrap();
            }
        })
    };
    let publisher = LosesAcks { inner: Arc::new(JetStreamSink::new(bus.clone(), SOURCE, ME)), calls: Arc::default() };
    let start_relay = || {
        let relay = Relay::new(producer.clone(), publisher.clone(), config(), clock());
        tokio::spawn(relay.run(std::future::pending()))
    };
    let start_consumer =
        || tokio::spawn(consume(bus.clone(), sink.clone(), SOURCE.into(), config(), clock(), std::future::pending()));
    let (mut relay, mut consumer) = (start_relay(), start_consumer());
    for k in 1..=3 {
        let target = k * 600;
        rapport_kit::testing::eventually(120, "effects applied", || async {
            effects.order.lock().unwrap().len() >= target
        })
        .await;
        // Killed wherever they are: mid-publish, mid-transaction, between the commit and the acknowledgement.
        relay.abort();
        consumer.abort();
        let _ = (relay.await, consumer.await);
        (relay, consumer) = (start_relay(), start_consumer());
    }
    writing.await.unwrap();
    let committed: HashSet<String> = ids(&producer, "changes").await.into_iter().collect();
    assert_eq!(committed.len(), N - N / 10, "the committed nine tenths");
    rapport_kit::testing::eventually(300, "every committed change applied", || async {
        rapport_outbox::pending(&producer, ME).await.unwrap() == 0
            && ids(&receiver, "effects").await.len() >= committed.len()
    })
    .await;
    relay.abort();
    consumer.abort();
    let mut applied: HashMap<String, usize> = HashMap::new();
    for id in ids(&receiver, "effects").await {
        *applied.entry(id).or_default() += 1;
    }
    let lost = committed.iter().filter(|id| !applied.contains_key(*id)).count();
    let phantoms = applied.keys().filter(|id| !committed.contains(*id)).count();
    let doubled = applied.values().filter(|n| **n > 1).count();
    assert_eq!((lost, phantoms, doubled), (0, 0, 0), "(lost, phantoms, doubled)");
    assert!(publisher.calls.load(Ordering::SeqCst) > committed.len(), "some publishes were made again");
    bus.delete_stream(SOURCE).await.unwrap();
}

/// An event the subscriber refuses is parked at the subscriber after its attempts while the rest flows; the
/// subscriber's `OutboxService` lists it under its own name and an operator's retry applies it once it is cured.
async fn poison_is_parked_at_the_subscriber_and_replayed(backend: Backend) {
    use rapport_proto::events::v1::{
        ListParkedEventsRequest, RetryParkedEventsRequest, outbox_service_server::OutboxService,
    };
    let ((_p, producer), (_r, receiver)) = (fresh(backend, "changes").await, fresh(backend, "effects").await);
    let bus = JetStream::connect(&nats(), "test").await.unwrap();
    let cleanup = bus.clone();
    let effects = Effects::default();
    effects.poison.lock().unwrap().insert("e2".into());
    for i in 1..=4 {
        rapport_outbox::enqueue(&producer, ME, event(format!("e{i}"), "c1".into()), 0).await.unwrap();
    }
    let mut cfg = config();
    cfg.max_attempts = 3;
    let relay = tokio::spawn(
        Relay::new(producer.clone(), JetStreamSink::new(bus.clone(), SOURCE, ME), cfg.clone(), clock())
            .run(std::future::pending()),
    );
    let consumer = tokio::spawn(consume(
        bus,
        subscriber(&receiver, &effects),
        SOURCE.into(),
        cfg,
        clock(),
        std::future::pending(),
    ));
    rapport_kit::testing::eventually(60, "e2 parked, the others applied", || async {
        ids(&receiver, "effects").await.len() == 3
            && rapport_outbox::jetstream::parked_receipts(&receiver).await.unwrap() == 1
    })
    .await;
    let order: Vec<String> = effects.order.lock().unwrap().iter().map(|(_, e)| e.clone()).collect();
    assert_eq!(order, ["e1", "e3", "e4"], "in order, the poison skipped");
    assert_eq!(rapport_outbox::pending(&producer, ME).await.unwrap(), 0, "the producer's outbox handed them all over");

    let admin = rapport_outbox::admin::OutboxAdmin::new(
        receiver.clone(),
        clock(),
        rapport_outbox::Outbox::new(ME, Vec::<String>::new()),
        rapport_kit::audit::Trail::new(Pseudonyms::development()),
        ME,
    );
    let only_mine = ListParkedEventsRequest { destination: ME.into(), ..Default::default() };
    let listed = admin.list_parked_events(tonic::Request::new(only_mine.clone())).await.unwrap().into_inner();
    assert_eq!(listed.events.len(), 1);
    let parked = &listed.events[0];
    assert_eq!((parked.event_id.as_str(), parked.source.as_str(), parked.destination.as_str()), ("e2", SOURCE, ME));
    assert_eq!((parked.kind.as_str(), parked.attempts), ("tier_changed", 3));
    assert!(parked.last_error.contains("refused"), "{parked:?}");

    effects.poison.lock().unwrap().clear();
    let retry = RetryParkedEventsRequest { request_id: "r1".into(), destination: ME.into(), event_ids: vec![] };
    let n = admin.retry_parked_events(tonic::Request::new(retry)).await.unwrap().into_inner();
    assert_eq!(n.requeued, 1);
    rapport_kit::testing::eventually(60, "the replayed event applied", || async {
        ids(&receiver, "effects").await.len() == 4
            && rapport_outbox::jetstream::parked_receipts(&receiver).await.unwrap() == 0
    })
    .await;
    let listed = admin.list_parked_events(tonic::Request::new(only_mine)).await.unwrap().into_inner();
    assert!(listed.events.is_empty());
    relay.abort();
    consumer.abort();
    cleanup.delete_stream(SOURCE).await.unwrap();
}

on_both!(kill_test_on_jetstream, poison_is_parked_at_the_subscriber_and_replayed);

/// Two replicas of the producer (relays on one PostgreSQL outbox) and two of the subscriber (consumers on one
/// durable) while writers keep adding events: every customer's events are applied once each, in the order written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_replicas_keep_each_customers_order_on_jetstream() {
    let ((_p, producer), (_r, receiver)) =
        (fresh(Backend::Postgres, "changes").await, fresh(Backend::Postgres, "effects").await);
    let bus = JetStream::connect(&nats(), "test").await.unwrap();
    let effects = Effects::default();
    let tasks: Vec<_> = (0..2)
        .flat_map(|_| {
            let relay = Relay::new(producer.clone(), JetStreamSink::new(bus.clone(), SOURCE, ME), config(), clock());
            let sink = subscriber(&receiver, &effects);
            [
                tokio::spawn(relay.run(std::future::pending())),
                tokio::spawn(consume(bus.clone(), sink, SOURCE.into(), config(), clock(), std::future::pending())),
            ]
        })
        .collect();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let db = producer.clone();
            tokio::spawn(async move {
                for i in 0..150 {
                    let customer = format!("c{w}-{}", i % 5);
                    let txn = db.begin().await.unwrap();
                    rapport_outbox::enqueue(&txn, ME, event(format!("{customer}-{i:03}"), customer), 0).await.unwrap();
                    txn.commit().await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    rapport_kit::testing::eventually(120, "every event applied", || async {
        effects.order.lock().unwrap().len() >= 600
    })
    .await;
    for t in tasks {
        t.abort();
    }
    bus.delete_stream(SOURCE).await.unwrap();
    let got = effects.order.lock().unwrap().clone();
    assert_eq!(got.len(), 600, "each event once");
    let mut per: HashMap<String, Vec<String>> = HashMap::new();
    for (c, e) in got {
        per.entry(c).or_default().push(e);
    }
    for (c, events) in per {
        let mut sorted = events.clone();
        sorted.sort();
        assert_eq!(events, sorted, "events of {c} out of order");
    }
}
