//! A campaign that loyalty refuses for authorisation pauses with a visible reason instead of failing its targets,
//! resumes when triggered again, and reports its failed targets by reason (not enrolled, erased meanwhile).
use std::sync::Arc;

use rapport_kit::{
    auth::{Authenticator, Role},
    clock::{ManualClock, timestamp},
    db::testing::fresh_database,
    testing::Backend,
};
use rapport_proto::{
    loyalty::v1::{self as lpb, loyalty_service_client::LoyaltyServiceClient},
    segmentation::v1::{self as spb, segmentation_service_client::SegmentationServiceClient},
};

use crate::support::{T0, any_port, channel, eventually, free_port, loyalty, loyalty_with_auth, segmentation};

async fn campaign(sc: &SegmentationServiceClient<rapport_kit::client::OutgoingChannel>) -> spb::Campaign {
    sc.clone()
        .get_campaign(spb::GetCampaignRequest { campaign_id: "spring".into() })
        .await
        .unwrap()
        .into_inner()
        .campaign
        .unwrap()
}

fn trigger(request_id: &str) -> spb::TriggerCampaignRequest {
    spb::TriggerCampaignRequest {
        request_id: request_id.into(),
        campaign_id: "spring".into(),
        segment_id: "everyone".into(),
        offer_id: "thank-you".into(),
        holdout_percent: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_campaign_pauses_and_resumes() {
    let clock = ManualClock::new(T0);
    let (seg_db, loyalty_db) =
        (fresh_database(Backend::Sqlite).await.unwrap(), fresh_database(Backend::Sqlite).await.unwrap());
    let loyalty_addr = free_port();
    let l = loyalty(loyalty_addr, loyalty_db.url(), None, &clock).await;
    let mut lc = LoyaltyServiceClient::new(channel(l.addr, Role::Sre));
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
    // Six customers, four of them members.
    for i in 0..4 {
        lc.enrol_member(lpb::EnrolMemberRequest {
            request_id: format!("e{i}"),
            customer_id: format!("c{i}"),
            display_name: String::new(),
        })
        .await
        .unwrap();
    }
    l.stop().await;

    // Loyalty comes back with another key set: segmentation's calls are refused.
    let other = Arc::new(Authenticator::development());
    let wrong = loyalty_with_auth(loyalty_addr, loyalty_db.url(), None, &clock, other).await;
    let s = segmentation(any_port(), seg_db.url(), loyalty_addr, &clock).await;
    let mut sc = SegmentationServiceClient::new(channel(s.addr, Role::Sre));
    for i in 0..6 {
        let id = format!("c{i}");
        sc.upsert_customer(spb::UpsertCustomerRequest {
            request_id: format!("u{i}"),
            customer_id: id,
            attributes: Default::default(),
            consent_marketing: true,
            consent_profiling: true,
        })
        .await
        .unwrap();
    }
    sc.create_segment(spb::CreateSegmentRequest {
        request_id: "seg".into(),
        segment: Some(spb::Segment {
            segment_id: "everyone".into(),
            display_name: "everyone".into(),
            condition: Some(spb::Condition {
                node: Some(spb::condition::Node::Feature(spb::FeatureCompare {
                    name: "frequency_365d".into(),
                    op: spb::Comparison::Ge.into(),
                    value: 0.0,
                })),
            }),
            size: 0,
            create_time: None,
        }),
    })
    .await
    .unwrap();
    sc.trigger_campaign(trigger("t1")).await.unwrap();
    eventually(30, "the campaign paused", || async {
        campaign(&sc).await.state == i32::from(spb::CampaignState::Paused)
    })
    .await;
    let c = campaign(&sc).await;
    assert!(c.state_reason.contains("Unauthenticated"), "{}", c.state_reason);
    assert_eq!((c.targeted, c.granted, c.failed), (6, 0, 0), "no target failed for the refusal");

    // Meanwhile a target is erased; then loyalty is fixed and the campaign triggered again.
    sc.forget_customer(spb::ForgetCustomerRequest { request_id: "f5".into(), customer_id: "c5".into() }).await.unwrap();
    wrong.stop().await;
    let l = loyalty(loyalty_addr, loyalty_db.url(), None, &clock).await;
    sc.trigger_campaign(trigger("t2")).await.unwrap();
    eventually(30, "the campaign completed", || async {
        campaign(&sc).await.state == i32::from(spb::CampaignState::Completed)
    })
    .await;
    let c = campaign(&sc).await;
    assert_eq!((c.granted, c.failed), (4, 2));
    assert_eq!(c.state_reason, "");
    assert_eq!(c.failed_by_reason.get("NOT_A_MEMBER"), Some(&1));
    assert_eq!(c.failed_by_reason.get("CUSTOMER_ERASED"), Some(&1));
    s.stop().await;
    l.stop().await;
}
