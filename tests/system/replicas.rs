//! Two loyalty replicas and two segmentation replicas on one PostgreSQL. Customers are enrolled, buy (moving up
//! tiers) and are erased through alternating loyalty replicas while both relays run: every customer's events reach
//! segmentation once and in order (its counts and its last tier match loyalty's), no erased customer reappears, and
//! a model trained through one segmentation replica places customers on the other.
use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use rapport_kit::{auth::Role, clock::ManualClock, db::testing::fresh_database, testing::Backend};
use rapport_proto::{
    common::v1::Money,
    loyalty::v1::{self as lpb, loyalty_service_client::LoyaltyServiceClient},
    segmentation::v1::{self as spb, segmentation_service_client::SegmentationServiceClient},
};

use crate::support::{
    T0, any_port, auth, channel, eventually, exporter, loyalty_tuned, segmentation_tuned, worker_rounds,
};

const CUSTOMERS: usize = 2_000;

fn purchase(customer: &str, order: String, units: i64) -> lpb::RecordPurchaseRequest {
    lpb::RecordPurchaseRequest {
        request_id: format!("p-{order}"),
        customer_id: customer.into(),
        order_id: order,
        amount: Some(Money { currency_code: "EUR".into(), units, nanos: 0 }),
        channel: 1,
        recurring: false,
    }
}

fn tier_name(t: i32) -> &'static str {
    match lpb::Tier::try_from(t) {
        Ok(lpb::Tier::Silver) => "silver",
        Ok(lpb::Tier::Gold) => "gold",
        Ok(lpb::Tier::Vip) => "vip",
        _ => "bronze",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_replicas_of_each_service() {
    let clock = ManualClock::new(T0);
    let (seg_db, loyalty_db) =
        (fresh_database(Backend::Postgres).await.unwrap(), fresh_database(Backend::Postgres).await.unwrap());
    let nowhere = any_port();
    exporter();
    // Background workers every 100 ms, so that both replicas of each keep competing for its lease.
    let often = Duration::from_millis(100);
    let seg = |loyalty| {
        segmentation_tuned(any_port(), seg_db.url(), loyalty, &clock, move |c| {
            c.refresh_interval = often;
            c.campaign_poll = often;
        })
    };
    let (s1, s2) = (seg(nowhere).await, seg(nowhere).await);
    let loy = |s: std::net::SocketAddr| {
        loyalty_tuned(any_port(), loyalty_db.url(), Some(format!("http://{s}")), &clock, auth(), move |c| {
            c.sweep_interval = often;
        })
    };
    let (l1, l2) = (loy(s1.addr).await, loy(s2.addr).await);
    let replicas = Arc::new([
        LoyaltyServiceClient::new(channel(l1.addr, Role::Sre)),
        LoyaltyServiceClient::new(channel(l2.addr, Role::Sre)),
    ]);

    // Per customer i: enrolled through one replica, purchases through alternating replicas (600, 600 → silver,
    // 4000 → gold for every other customer), every third erased through the replica it was not enrolled on.
    let results: Vec<(String, bool, usize, i32)> = futures::stream::iter(0..CUSTOMERS)
        .map(|i| {
            let replicas = replicas.clone();
            async move {
                let id = format!("rep-{i}");
                let at = |k: usize| replicas[(i + k) % 2].clone();
                at(0)
                    .enrol_member(lpb::EnrolMemberRequest {
                        request_id: format!("e-{i}"),
                        customer_id: id.clone(),
                        display_name: String::new(),
                    })
                    .await
                    .unwrap();
                let mut units = vec![600, 600];
                if i % 2 == 0 {
                    units.push(4_000);
                }
                for (k, u) in units.iter().enumerate() {
                    at(k + 1).record_purchase(purchase(&id, format!("{i}-{k}"), *u)).await.unwrap();
                }
                let erased = i % 3 == 0;
                let mut tier = 0;
                if erased {
                    at(1)
                        .forget_member(lpb::ForgetMemberRequest {
                            request_id: format!("f-{i}"),
                            customer_id: id.clone(),
                        })
                        .await
                        .unwrap();
                } else {
                    let m = at(0).get_member(lpb::GetMemberRequest { customer_id: id.clone() }).await.unwrap();
                    tier = m.into_inner().member.unwrap().tier;
                }
                (id, erased, units.len(), tier)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;

    let lconn = rapport_kit::db::connect(loyalty_db.url()).await.unwrap();
    let sconn = rapport_kit::db::connect(seg_db.url()).await.unwrap();
    eventually(300, "every loyalty event applied in segmentation", || async {
        crate::support::applied(&lconn, "segmentation", &sconn).await
    })
    .await;
    assert_eq!(rapport_outbox::admin::parked(&lconn, "segmentation").await.unwrap(), 0);

    let views = [
        SegmentationServiceClient::new(channel(s1.addr, Role::Sre)),
        SegmentationServiceClient::new(channel(s2.addr, Role::Sre)),
    ];
    for (n, (id, erased, purchases, tier)) in results.iter().enumerate() {
        let got = views[n % 2]
            .clone()
            .get_customer_features(spb::GetCustomerFeaturesRequest { customer_id: id.clone() })
            .await;
        if *erased {
            assert_eq!(got.unwrap_err().code(), tonic::Code::NotFound, "{id} came back after its erasure");
            continue;
        }
        let f = got.unwrap().into_inner().features.unwrap();
        assert_eq!(f.frequency_365d as usize, *purchases, "{id}: each purchase once");
        assert_eq!(f.tier, tier_name(*tier), "{id}: the tier changes arrived in order");
    }

    // A model trained through one replica places a newcomer ingested through the other.
    let mut c1 = views[0].clone();
    for (id, _, _, _) in results.iter().filter(|r| !r.1).take(300) {
        c1.upsert_customer(spb::UpsertCustomerRequest {
            request_id: format!("consent-{id}"),
            customer_id: id.clone(),
            attributes: Default::default(),
            consent_marketing: true,
            consent_profiling: true,
        })
        .await
        .unwrap();
    }
    let job = c1
        .train_model(spb::TrainModelRequest {
            request_id: "train".into(),
            features: vec![],
            k: 2,
            k_min: 0,
            k_max: 0,
            sample_size: 0,
            seed: 1,
            algorithm: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .job_id;
    eventually(120, "training", || {
        let mut c = c1.clone();
        let job = job.clone();
        async move {
            let j = c.get_training_job(spb::GetTrainingJobRequest { job_id: job }).await.unwrap().into_inner();
            assert_ne!(j.state, i32::from(spb::JobState::Failed), "{}", j.error);
            j.state == i32::from(spb::JobState::Succeeded)
        }
    })
    .await;
    let mut c2 = views[1].clone();
    c2.upsert_customer(spb::UpsertCustomerRequest {
        request_id: "consent-newcomer".into(),
        customer_id: "newcomer".into(),
        attributes: Default::default(),
        consent_marketing: true,
        consent_profiling: true,
    })
    .await
    .unwrap();
    let r = c2
        .list_customer_segments(spb::ListCustomerSegmentsRequest { customer_id: "newcomer".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(r.cluster_id >= 0, "the other replica placed the newcomer with the new model");

    for r in [l1, l2, s1, s2] {
        r.stop().await;
    }

    // Exactly one replica of each background worker acts at a time: their rounds, counted from their spans,
    // never overlap across replicas.
    for (worker, database) in [
        ("loyalty.sweeper", &loyalty_db),
        ("loyalty.outbox.segmentation", &loyalty_db),
        ("segmentation.refresher", &seg_db),
        ("segmentation.campaigns", &seg_db),
    ] {
        let rounds = worker_rounds(worker, database.name());
        assert!(rounds.len() >= 5, "{worker}: {} rounds", rounds.len());
        let overlaps = rapport_kit::lease::overlapping(&rounds);
        assert!(overlaps.is_empty(), "{worker}: replicas ran rounds at the same time: {overlaps:?}");
    }
}
