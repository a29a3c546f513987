//! One trace across services: a campaign's grant call from segmentation is the parent of loyalty's server span, and
//! so is a referral reward's payment from referrals' payout worker.
use rapport_kit::{
    auth::Role,
    clock::{ManualClock, timestamp},
    db::testing::fresh_database,
};
use rapport_proto::{
    loyalty::v1::{self as lpb, loyalty_service_client::LoyaltyServiceClient},
    segmentation::v1::{self as spb, condition::Node, segmentation_service_client::SegmentationServiceClient},
};

use crate::support::{
    Db, T0, any_port, channel, eventually, exporter, issue_code, loyalty, purchase_event, referrals, segmentation,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_grant_is_one_trace_across_segmentation_and_loyalty() {
    let exp = exporter();
    let clock = ManualClock::new(T0);
    let (loyalty_db, seg_db) = (fresh_database(Db::Sqlite).await.unwrap(), fresh_database(Db::Sqlite).await.unwrap());
    let l = loyalty(any_port(), loyalty_db.url(), None, &clock).await;
    let s = segmentation(any_port(), seg_db.url(), l.addr, &clock).await;
    let mut lc = LoyaltyServiceClient::new(channel(l.addr, Role::Sre));
    let mut sc = SegmentationServiceClient::new(channel(s.addr, Role::Sre));
    let customers: Vec<_> = rapport_synth::customers(8, 5, T0).collect();
    for c in &customers {
        lc.enrol_member(lpb::EnrolMemberRequest {
            request_id: c.customer_id.clone(),
            customer_id: c.customer_id.clone(),
            display_name: String::new(),
        })
        .await
        .unwrap();
    }
    lc.create_offer(lpb::CreateOfferRequest {
        request_id: "o".into(),
        offer: Some(lpb::Offer {
            offer_id: "o".into(),
            title: "o".into(),
            kind: lpb::OfferKind::AmountOff.into(),
            value: 500,
            sku: String::new(),
            tiers: vec![],
            start_time: Some(timestamp(T0)),
            end_time: Some(timestamp(T0 + 86_400_000)),
            max_uses_per_customer: 1,
        }),
    })
    .await
    .unwrap();
    for c in &customers {
        sc.upsert_customer(rapport_synth::consent(c)).await.unwrap();
    }
    let events: Vec<_> = customers.iter().flat_map(rapport_synth::behaviour_events).collect();
    sc.ingest_event_batch(spb::IngestEventBatchRequest { events }).await.unwrap();
    let everyone = spb::Condition {
        node: Some(Node::Feature(spb::FeatureCompare {
            name: "tenure_days".into(),
            op: spb::Comparison::Ge.into(),
            value: 0.0,
        })),
    };
    sc.create_segment(spb::CreateSegmentRequest {
        request_id: "s".into(),
        segment: Some(spb::Segment {
            segment_id: "all".into(),
            display_name: "all".into(),
            condition: Some(everyone),
            size: 0,
            create_time: None,
        }),
    })
    .await
    .unwrap();
    sc.trigger_campaign(spb::TriggerCampaignRequest {
        request_id: "c".into(),
        campaign_id: "traced".into(),
        segment_id: "all".into(),
        offer_id: "o".into(),
        holdout_percent: 0,
    })
    .await
    .unwrap();
    eventually(30, "loyalty's span under the campaign's grant", || async {
        let spans = exp.get_finished_spans().unwrap();
        spans.iter().filter(|g| g.name == "campaign.grant").any(|g| {
            spans.iter().any(|l| {
                l.name == "rapport.loyalty.v1.LoyaltyService/GrantOffers"
                    && l.span_context.trace_id() == g.span_context.trace_id()
                    && l.parent_span_id == g.span_context.span_id()
            })
        })
    })
    .await;
    s.stop().await;
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referral_reward_is_one_trace_across_referrals_and_loyalty() {
    use rapport_proto::{
        events::v1::{DeliverEventsRequest, event_sink_service_client::EventSinkServiceClient},
        referrals::v1::{self as rpb, referrals_service_client::ReferralsServiceClient},
    };
    let exp = exporter();
    let clock = ManualClock::new(T0);
    let (loyalty_db, r_db) = (fresh_database(Db::Sqlite).await.unwrap(), fresh_database(Db::Sqlite).await.unwrap());
    let l = loyalty(any_port(), loyalty_db.url(), None, &clock).await;
    let r = referrals(any_port(), r_db.url(), Some(l.url()), &clock, |_| {}).await;
    let mut rc = ReferralsServiceClient::new(channel(r.addr, Role::Marketing));
    let mut rules = rc
        .get_programme(rpb::GetProgrammeRequest { programme_id: "default".into(), version: 0 })
        .await
        .unwrap()
        .into_inner()
        .programme
        .unwrap()
        .rules
        .unwrap();
    rules.approval_delay_days = 0;
    rules.active_from = None;
    rc.update_programme(rpb::UpdateProgrammeRequest {
        request_id: "u".into(),
        programme_id: "default".into(),
        rules: Some(rules),
    })
    .await
    .unwrap();
    let code = issue_code(r.addr, "amb", "default", "").await;
    ReferralsServiceClient::new(channel(r.addr, Role::Agent))
        .attribute_signup(rpb::AttributeSignupRequest {
            request_id: "s".into(),
            code,
            referee_id: "friend".into(),
            signals: None,
        })
        .await
        .unwrap();
    let bought = purchase_event("buy", "friend", "o", 40, T0);
    EventSinkServiceClient::new(channel(r.addr, Role::Loyalty))
        .deliver_events(DeliverEventsRequest { events: vec![bought] })
        .await
        .unwrap();
    eventually(30, "loyalty's span under the reward's payment", || async {
        let spans = exp.get_finished_spans().unwrap();
        spans.iter().filter(|p| p.name == "referrals.payout").any(|p| {
            spans.iter().any(|l| {
                l.name == "rapport.loyalty.v1.LoyaltyService/EarnPoints"
                    && l.span_context.trace_id() == p.span_context.trace_id()
                    && l.parent_span_id == p.span_context.span_id()
            })
        })
    })
    .await;
    r.stop().await;
    l.stop().await;
}
