//! Events in → train → rule segment → campaign → every member (and no holdout member) holds the offer in loyalty
//! exactly once — also when the campaign is triggered twice and when segmentation restarts mid-campaign while
//! loyalty is down. Loyalty's purchases reach segmentation through its outbox.
use std::collections::{HashMap, HashSet};

use rapport_kit::{
    auth::Role,
    clock::{ManualClock, timestamp},
    db::testing::fresh_database,
};
use rapport_proto::{
    common::v1::{Channel, Money},
    loyalty::v1::{self as lpb, loyalty_service_client::LoyaltyServiceClient},
    segmentation::v1::{self as spb, condition::Node, segmentation_service_client::SegmentationServiceClient},
};

use crate::support::{Db, T0, any_port, channel, eventually, free_port, loyalty, segmentation};

const CUSTOMERS: u64 = 240;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_loop_sqlite() {
    campaign_loop(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_loop_postgres() {
    campaign_loop(Db::Postgres).await;
}

async fn campaign_loop(db: Db) {
    let clock = ManualClock::new(T0);
    let (loyalty_db, seg_db) = (fresh_database(db).await.unwrap(), fresh_database(db).await.unwrap());
    let loyalty_addr = free_port();
    let customers: Vec<_> = rapport_synth::customers(5, CUSTOMERS, T0).collect();

    // Loyalty: the members and the offer. Then loyalty goes down.
    let l1 = loyalty(loyalty_addr, loyalty_db.url(), None, &clock).await;
    let mut lc = LoyaltyServiceClient::new(channel(l1.addr, Role::Sre));
    for c in &customers {
        lc.enrol_member(lpb::EnrolMemberRequest {
            request_id: format!("en-{}", c.customer_id),
            customer_id: c.customer_id.clone(),
            display_name: String::new(),
        })
        .await
        .unwrap();
    }
    lc.create_offer(lpb::CreateOfferRequest {
        request_id: "offer".into(),
        offer: Some(lpb::Offer {
            offer_id: "thank-you".into(),
            title: "thank you".into(),
            kind: lpb::OfferKind::PercentOff.into(),
            value: 1500,
            sku: String::new(),
            tiers: vec![],
            start_time: Some(timestamp(T0)),
            end_time: Some(timestamp(T0 + 30 * 86_400_000)),
            max_uses_per_customer: 1,
        }),
    })
    .await
    .unwrap();
    l1.stop().await;

    // Segmentation: events in (client streaming), train, a rule segment, a campaign — loyalty is down.
    let s1 = segmentation(any_port(), seg_db.url(), loyalty_addr, &clock).await;
    let mut sc = SegmentationServiceClient::new(channel(s1.addr, Role::Sre));
    let messages: Vec<spb::IngestEventsRequest> = customers
        .chunks(20)
        .map(|cs| spb::IngestEventsRequest { events: cs.iter().flat_map(rapport_synth::behaviour_events).collect() })
        .collect();
    let total: i64 = messages.iter().map(|m| m.events.len() as i64).sum();
    for c in &customers {
        sc.upsert_customer(rapport_synth::consent(c)).await.unwrap();
    }
    let r = sc.ingest_events(tokio_stream::iter(messages.clone())).await.unwrap().into_inner();
    assert_eq!((r.applied, r.duplicates), (total, 0));
    // the same stream again changes nothing
    let r = sc.ingest_events(tokio_stream::iter(messages)).await.unwrap().into_inner();
    assert_eq!((r.applied, r.duplicates), (0, total));

    let job = sc
        .train_model(spb::TrainModelRequest {
            request_id: "train-1".into(),
            features: vec![],
            k: 4,
            k_min: 0,
            k_max: 0,
            sample_size: 0,
            seed: 3,
            algorithm: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .job_id;
    eventually(120, "training", || {
        let mut sc = sc.clone();
        let job = job.clone();
        async move {
            let j = sc.get_training_job(spb::GetTrainingJobRequest { job_id: job }).await.unwrap().into_inner();
            assert_ne!(j.state, i32::from(spb::JobState::Failed), "{}", j.error);
            j.state == i32::from(spb::JobState::Succeeded) && j.model_version > 0
        }
    })
    .await;
    // the VIP persona's cluster
    let vip = customers.iter().find(|c| c.persona == 0).unwrap();
    let vip_cluster = sc
        .list_customer_segments(spb::ListCustomerSegmentsRequest { customer_id: vip.customer_id.clone() })
        .await
        .unwrap()
        .into_inner()
        .cluster_id;
    assert!(vip_cluster >= 0);
    let condition = spb::Condition {
        node: Some(Node::Any(spb::Conditions {
            conditions: vec![
                spb::Condition { node: Some(Node::Cluster(spb::ClusterIn { cluster_ids: vec![vip_cluster] })) },
                spb::Condition { node: Some(Node::NpsClass(spb::ValuesIn { values: vec!["promoter".into()] })) },
            ],
        })),
    };
    let seg = sc
        .create_segment(spb::CreateSegmentRequest {
            request_id: "seg".into(),
            segment: Some(spb::Segment {
                segment_id: "fans".into(),
                display_name: "fans".into(),
                condition: Some(condition),
                size: 0,
                create_time: None,
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .segment
        .unwrap();
    assert!(seg.size > 20, "segment size {}", seg.size);
    let trigger = |rid: &str| spb::TriggerCampaignRequest {
        request_id: rid.into(),
        campaign_id: "spring".into(),
        segment_id: "fans".into(),
        offer_id: "thank-you".into(),
        holdout_percent: 20,
    };
    let c = sc.trigger_campaign(trigger("t-1")).await.unwrap().into_inner().campaign.unwrap();
    assert_eq!(c.targeted, seg.size);
    assert!(c.held_out > 0 && c.held_out < c.targeted / 2, "held out {}", c.held_out);
    // Loyalty is down: nothing can be granted yet. Segmentation restarts mid-campaign.
    let c = sc
        .get_campaign(spb::GetCampaignRequest { campaign_id: "spring".into() })
        .await
        .unwrap()
        .into_inner()
        .campaign
        .unwrap();
    assert_eq!((c.state, c.granted), (i32::from(spb::CampaignState::Running), 0));
    s1.stop().await;

    // Loyalty comes back (its outbox now delivers to segmentation), segmentation restarts on the same database.
    let s2 = segmentation(any_port(), seg_db.url(), loyalty_addr, &clock).await;
    let l2 = loyalty(loyalty_addr, loyalty_db.url(), Some(format!("http://{}", s2.addr)), &clock).await;
    let mut sc = SegmentationServiceClient::new(channel(s2.addr, Role::Sre));
    let mut lc = LoyaltyServiceClient::new(channel(l2.addr, Role::Sre));
    eventually(60, "the campaign to complete", || {
        let mut sc = sc.clone();
        async move {
            let c = sc
                .get_campaign(spb::GetCampaignRequest { campaign_id: "spring".into() })
                .await
                .unwrap()
                .into_inner()
                .campaign
                .unwrap();
            c.state == i32::from(spb::CampaignState::Completed)
        }
    })
    .await;
    // Triggered again: with the same request id, and with a new one for the same campaign.
    sc.trigger_campaign(trigger("t-1")).await.unwrap();
    sc.trigger_campaign(trigger("t-2")).await.unwrap();
    let c = sc
        .get_campaign(spb::GetCampaignRequest { campaign_id: "spring".into() })
        .await
        .unwrap()
        .into_inner()
        .campaign
        .unwrap();
    assert_eq!(c.granted + c.held_out + c.failed, c.targeted);
    assert_eq!(c.failed, 0);

    // Every member holds the offer once, no holdout member and no outsider holds it.
    let mut members = HashSet::new();
    let mut token = String::new();
    loop {
        let r = sc
            .list_segment_members(spb::ListSegmentMembersRequest {
                segment_id: "fans".into(),
                page_size: 50,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        members.extend(r.customer_ids);
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    assert_eq!(members.len() as i64, c.targeted);
    let mut holders: HashMap<String, usize> = HashMap::new();
    for cu in &customers {
        let offers = lc
            .list_member_offers(lpb::ListMemberOffersRequest {
                customer_id: cu.customer_id.clone(),
                only_usable: false,
            })
            .await
            .unwrap()
            .into_inner()
            .offers;
        let held: Vec<_> = offers.iter().filter(|o| o.campaign_id == "spring").collect();
        if !held.is_empty() {
            assert_eq!(held.len(), 1);
            assert_eq!(held[0].uses_left, 1, "granted once");
            holders.insert(cu.customer_id.clone(), held.len());
        }
    }
    assert_eq!(holders.len() as i64, c.granted);
    assert!(holders.keys().all(|h| members.contains(h)), "only members hold the offer");

    // A purchase recorded in loyalty reaches segmentation's features through the outbox.
    let buyer = &customers[0].customer_id;
    let before = sc
        .get_customer_features(spb::GetCustomerFeaturesRequest { customer_id: buyer.clone() })
        .await
        .unwrap()
        .into_inner()
        .features
        .unwrap();
    lc.record_purchase(lpb::RecordPurchaseRequest {
        request_id: "buy".into(),
        customer_id: buyer.clone(),
        order_id: "o-1".into(),
        amount: Some(Money { currency_code: "EUR".into(), units: 80, nanos: 0 }),
        channel: Channel::Mobile.into(),
        recurring: false,
    })
    .await
    .unwrap();
    eventually(30, "the purchase in segmentation's features", || {
        let mut sc = sc.clone();
        let buyer = buyer.clone();
        let want = before.frequency_90d + 1.0;
        async move {
            let f = sc
                .get_customer_features(spb::GetCustomerFeaturesRequest { customer_id: buyer })
                .await
                .unwrap()
                .into_inner()
                .features
                .unwrap();
            (f.frequency_90d - want).abs() < 1e-9
        }
    })
    .await;

    // Erasure in loyalty reaches segmentation: the customer is gone there too, campaign counts unchanged.
    let forgotten = customers.iter().map(|c| c.customer_id.clone()).find(|c| holders.contains_key(c)).unwrap();
    lc.forget_member(lpb::ForgetMemberRequest { request_id: "forget".into(), customer_id: forgotten.clone() })
        .await
        .unwrap();
    eventually(30, "the erasure in segmentation", || {
        let mut sc = sc.clone();
        let id = forgotten.clone();
        async move {
            sc.get_customer_features(spb::GetCustomerFeaturesRequest { customer_id: id })
                .await
                .is_err_and(|s| s.code() == tonic::Code::NotFound)
        }
    })
    .await;
    let after = sc
        .get_campaign(spb::GetCampaignRequest { campaign_id: "spring".into() })
        .await
        .unwrap()
        .into_inner()
        .campaign
        .unwrap();
    assert_eq!((after.targeted, after.granted), (c.targeted, c.granted));
    let r = sc
        .check_membership(spb::CheckMembershipRequest { segment_id: "fans".into(), customer_id: forgotten })
        .await
        .unwrap()
        .into_inner();
    assert!(!r.member);
    s2.stop().await;
    l2.stop().await;
}
