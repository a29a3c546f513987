//! PostgreSQL races: 64 concurrent twins of one creation under different request ids — one wins, the others get
//! the documented ALREADY_EXISTS, never INTERNAL; concurrent ingest batches over the same customers in opposite
//! orders finish without a deadlock.
use rapport_kit::{auth::Role, clock::ManualClock, db::testing::fresh_database, testing::Backend};
use rapport_proto::{
    common::v1::Money,
    loyalty::v1::{self as lpb, loyalty_service_client::LoyaltyServiceClient},
    segmentation::v1::{self as spb, segmentation_service_client::SegmentationServiceClient},
};
use tonic::Code;

use crate::support::{T0, any_port, channel, loyalty, segmentation};

/// Runs `n` calls at once; returns (successes, codes of the failures).
async fn storm<F, Fut, T>(n: usize, call: F) -> (usize, Vec<Code>)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = (0..n).map(|i| tokio::spawn(call(i))).collect();
    let (mut ok, mut codes) = (0, Vec::new());
    for h in handles {
        match h.await.unwrap() {
            Ok(_) => ok += 1,
            Err(s) => codes.push(s.code()),
        }
    }
    (ok, codes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_twins_get_already_exists() {
    let clock = ManualClock::new(T0);
    let (loyalty_db, seg_db) =
        (fresh_database(Backend::Postgres).await.unwrap(), fresh_database(Backend::Postgres).await.unwrap());
    let l = loyalty(any_port(), loyalty_db.url(), None, &clock).await;
    let s = segmentation(any_port(), seg_db.url(), l.addr, &clock).await;
    let lc = LoyaltyServiceClient::new(channel(l.addr, Role::Sre));
    let sc = SegmentationServiceClient::new(channel(s.addr, Role::Sre));

    for round in 0..3 {
        let (ok, codes) = storm(64, |i| {
            let mut c = lc.clone();
            async move {
                c.enrol_member(lpb::EnrolMemberRequest {
                    request_id: format!("enrol-{round}-{i}"),
                    customer_id: format!("twin-{round}"),
                    display_name: String::new(),
                })
                .await
            }
        })
        .await;
        assert_eq!(ok, 1, "one enrolment wins");
        assert!(codes.iter().all(|c| *c == Code::AlreadyExists), "enrol: {codes:?}");
    }

    // One order id recorded for 64 different members at once.
    for i in 0..64 {
        lc.clone()
            .enrol_member(lpb::EnrolMemberRequest {
                request_id: format!("m-{i}"),
                customer_id: format!("buyer-{i}"),
                display_name: String::new(),
            })
            .await
            .unwrap();
    }
    let (ok, codes) = storm(64, |i| {
        let mut c = lc.clone();
        async move {
            c.record_purchase(lpb::RecordPurchaseRequest {
                request_id: format!("buy-{i}"),
                customer_id: format!("buyer-{i}"),
                order_id: "order-shared".into(),
                amount: Some(Money { currency_code: "EUR".into(), units: 30, nanos: 0 }),
                channel: 1,
                recurring: false,
            })
            .await
        }
    })
    .await;
    assert_eq!(ok, 1, "one purchase wins");
    assert!(codes.iter().all(|c| *c == Code::AlreadyExists), "purchase: {codes:?}");

    let (ok, codes) = storm(64, |i| {
        let mut c = sc.clone();
        async move {
            c.create_segment(spb::CreateSegmentRequest {
                request_id: format!("seg-{i}"),
                segment: Some(spb::Segment {
                    segment_id: "everyone".into(),
                    display_name: "everyone".into(),
                    condition: Some(spb::Condition {
                        node: Some(spb::condition::Node::Feature(spb::FeatureCompare {
                            name: "frequency_90d".into(),
                            op: spb::Comparison::Ge.into(),
                            value: 0.0,
                        })),
                    }),
                    size: 0,
                    create_time: None,
                }),
            })
            .await
        }
    })
    .await;
    assert_eq!(ok, 1, "one segment wins");
    assert!(codes.iter().all(|c| *c == Code::AlreadyExists), "segment: {codes:?}");

    // Opposite orders over the same customers, many times at once: no deadlock (a deadlock would be INTERNAL).
    let batch = |rev: bool, round: usize| {
        let mut ids: Vec<usize> = (0..40).collect();
        if rev {
            ids.reverse();
        }
        ids.into_iter()
            .map(|c| spb::BehaviourEvent {
                event_id: format!("v-{round}-{rev}-{c}"),
                customer_id: format!("shopper-{c}"),
                kind: spb::EventKind::Visit.into(),
                occurred_at: Some(rapport_kit::clock::timestamp(T0)),
                channel: 1,
                amount: None,
                score: 0,
                tier: String::new(),
            })
            .collect::<Vec<_>>()
    };
    let (ok, codes) = storm(16, |i| {
        let mut c = sc.clone();
        let events = batch(i % 2 == 1, i);
        async move { c.ingest_event_batch(spb::IngestEventBatchRequest { events }).await }
    })
    .await;
    assert_eq!((ok, codes), (16, vec![]), "every batch applied");
    s.stop().await;
    l.stop().await;
}
