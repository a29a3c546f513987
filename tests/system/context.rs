//! The customer in front of an agent: feedback gathers loyalty's and segmentation's parts beside its own cases and
//! NPS history, and suggests next best actions with the facts that made them fire; with loyalty stopped it still
//! answers within the caller's deadline, loyalty's part marked unavailable and no suggestion resting on it.
use std::{sync::Arc, time::Duration};

use rapport_kit::{
    auth::Role,
    clock::{ManualClock, timestamp},
    db::testing::fresh_database,
    testing::TestServer,
};
use rapport_proto::{
    common::v1::{Channel, Money},
    feedback::v1::{self as fpb, feedback_service_client::FeedbackServiceClient},
    loyalty::v1::{self as lpb, loyalty_service_client::LoyaltyServiceClient},
    segmentation::v1::{self as spb, segmentation_service_client::SegmentationServiceClient},
};

use crate::support::{
    Db, T0, answer_survey, any_port, auth, channel, eventually, free_port, loyalty, segmentation, serve_config,
};

rapport_kit::on_both!(the_agent_sees_the_customer_and_what_to_do_even_with_loyalty_down);

fn suggested(c: &fpb::GetCustomerContextResponse) -> Vec<&str> {
    c.suggestions.iter().map(|s| s.rule_id.as_str()).collect()
}

fn fact<'a>(s: &'a fpb::NextBestAction, name: &str) -> &'a str {
    s.facts.iter().find(|f| f.name == name).map_or("", |f| f.value.as_str())
}

async fn the_agent_sees_the_customer_and_what_to_do_even_with_loyalty_down(db: Db) {
    let clock = ManualClock::new(T0);
    let (l_db, s_db, f_db) =
        (fresh_database(db).await.unwrap(), fresh_database(db).await.unwrap(), fresh_database(db).await.unwrap());
    let (l_addr, s_addr) = (free_port(), free_port());
    let l = loyalty(l_addr, l_db.url(), Some(format!("http://{s_addr}")), &clock).await;
    let s = segmentation(s_addr, s_db.url(), l_addr, &clock).await;
    let mut config = rapport_feedback::app::Config::local(f_db.url());
    config.common.listen = any_port();
    config.common.serve = serve_config();
    config.loyalty_url = Some(l.url());
    config.set_subscriber_url("segmentation", Some(s.url()));
    config.context_wait = Duration::from_secs(2);
    let f = TestServer::start::<rapport_feedback::app::Feedback>(config, auth(), Arc::new(clock.clone()))
        .await
        .expect("feedback");

    // A VIP (20,000 units at T0) who bought nothing since; segmentation saw the purchase.
    let mut lc = LoyaltyServiceClient::new(channel(l.addr, Role::Sre));
    lc.enrol_member(lpb::EnrolMemberRequest {
        request_id: "e-vip".into(),
        customer_id: "vip-1".into(),
        display_name: String::new(),
    })
    .await
    .unwrap();
    lc.record_purchase(lpb::RecordPurchaseRequest {
        request_id: "p-vip".into(),
        customer_id: "vip-1".into(),
        order_id: "o-1".into(),
        amount: Some(Money { currency_code: "EUR".into(), units: 20_000, nanos: 0 }),
        channel: Channel::Web.into(),
        recurring: false,
    })
    .await
    .unwrap();
    let mut sc = SegmentationServiceClient::new(channel(s.addr, Role::Sre));
    sc.upsert_customer(spb::UpsertCustomerRequest {
        request_id: "consent".into(),
        customer_id: "vip-1".into(),
        attributes: Default::default(),
        consent_marketing: true,
        consent_profiling: true,
    })
    .await
    .unwrap();
    sc.ingest_event_batch(spb::IngestEventBatchRequest {
        events: vec![spb::BehaviourEvent {
            event_id: "buy-1".into(),
            customer_id: "vip-1".into(),
            kind: spb::EventKind::Purchase.into(),
            occurred_at: Some(timestamp(T0)),
            channel: Channel::Web.into(),
            amount: Some(Money { currency_code: "EUR".into(), units: 20_000, nanos: 0 }),
            score: 0,
            tier: String::new(),
        }],
    })
    .await
    .unwrap();

    // 300 days on, the VIP answers a survey with 3: a detractor, with the follow-up case that opens.
    clock.advance_days(300);
    let fc = FeedbackServiceClient::new(channel(f.addr, Role::Agent));
    answer_survey(f.addr, "vip-1", 3, "the parcel came broken").await;

    let ask = |deadline: Duration| {
        let mut fc = fc.clone();
        async move {
            let mut req = tonic::Request::new(fpb::GetCustomerContextRequest { customer_id: "vip-1".into() });
            req.set_timeout(deadline);
            let started = std::time::Instant::now();
            let c = fc.get_customer_context(req).await.expect("context within the deadline").into_inner();
            (c, started.elapsed())
        }
    };
    // Segmentation has the purchase once its events are in.
    eventually(30, "segmentation's part with the purchase", || async {
        let (c, _) = ask(Duration::from_secs(5)).await;
        c.segmentation.is_some_and(|s| s.monetary_365d >= 20_000.0)
    })
    .await;
    let (c, _) = ask(Duration::from_secs(5)).await;
    let lp = c.loyalty.clone().unwrap();
    assert!(lp.availability.unwrap().available);
    assert_eq!((lp.member, lp.tier.as_str(), lp.next_tier.as_str()), (true, "vip", ""));
    assert_eq!(lp.points, 20_000);
    assert_eq!(lp.points_to_keep_tier, 20_000, "the points that made VIP stop qualifying at period end");
    let sp = c.segmentation.clone().unwrap();
    assert!(sp.availability.unwrap().available);
    assert_eq!(sp.recency_days.round(), 300.0);
    let rp = c.referrals.clone().unwrap().availability.unwrap();
    assert_eq!((rp.available, rp.reason.as_str()), (false, "not deployed"));
    assert_eq!(c.open_cases.len(), 1, "the follow-up case");
    assert_eq!(c.open_cases[0].kind, i32::from(fpb::CaseKind::FollowUp));
    assert_eq!(c.nps_history.len(), 1);
    assert_eq!(c.facts["nps.class"], "detractor");
    // A detractor with an open case, a VIP whose tier drops in 65 days, a high-value customer gone quiet.
    assert_eq!(suggested(&c), ["callback_today", "retention_offer", "win_back_offer"]);
    let retention = &c.suggestions[1];
    assert_eq!(fact(retention, "loyalty.tier"), "vip");
    assert_eq!(fact(retention, "loyalty.tier_drops_at_period_end"), "true");
    assert_eq!(fact(retention, "loyalty.days_to_period_end"), "65");
    assert_eq!(fact(&c.suggestions[0], "cases.open"), "1");

    // The barometer of June reads loyalty's programme: the one member is a VIP, its only buyer bought once.
    let marketing = FeedbackServiceClient::new(channel(f.addr, Role::Marketing));
    let take = |period: &str| {
        let mut m = marketing.clone();
        let period = period.to_string();
        async move {
            let req = fpb::TakeBarometerReadingRequest { request_id: format!("b-{period}"), period, replace: false };
            m.take_barometer_reading(req).await.unwrap().into_inner().reading.unwrap()
        }
    };
    let value = |r: &fpb::BarometerReading, id: &str| {
        let c = r.criteria.iter().find(|c| c.criterion.as_ref().unwrap().criterion_id == id).unwrap();
        (c.available, c.value, c.unavailable_reason.clone())
    };
    let june = take("2026-06").await;
    assert_eq!(value(&june, "premium_tiers"), (true, 100.0, String::new()));
    assert_eq!(value(&june, "repeat_purchase"), (true, 0.0, String::new()));

    // Loyalty stops: the context still comes within the caller's deadline, loyalty's part marked unavailable and
    // the retention offer (which rests on loyalty's facts) no longer suggested.
    l.stop().await;
    let deadline = Duration::from_millis(1_500);
    let (c, took) = ask(deadline).await;
    assert!(took < deadline, "answered in {took:?}");
    let lp = c.loyalty.clone().unwrap();
    let a = lp.availability.unwrap();
    assert!(!a.available);
    assert!(["unavailable", "deadline exceeded"].contains(&a.reason.as_str()), "{}", a.reason);
    assert_eq!(c.facts["loyalty.tier"], "unknown");
    assert_eq!(suggested(&c), ["callback_today", "win_back_offer"]);
    assert!(c.segmentation.clone().unwrap().availability.unwrap().available);
    // and the barometer marks loyalty's measures unavailable instead of failing.
    let july = take("2026-07").await;
    let (available, _, why) = value(&july, "premium_tiers");
    assert!(!available && why.starts_with("loyalty: "), "{why}");

    // Rules are configurable: now a customer whose tier loyalty could not give is called back.
    fc.clone()
        .set_action_rules(fpb::SetActionRulesRequest {
            request_id: "rules".into(),
            rules: vec![fpb::ActionRule {
                rule_id: "unknown_tier_callback".into(),
                action: "call back".into(),
                description: "tier unknown: ask loyalty by phone".into(),
                conditions: vec![fpb::ActionCondition {
                    fact: "loyalty.tier".into(),
                    op: fpb::ActionOp::Eq.into(),
                    value: "unknown".into(),
                }],
            }],
        })
        .await
        .unwrap();
    let (c, _) = ask(deadline).await;
    assert_eq!(suggested(&c), ["unknown_tier_callback"]);
    f.stop().await;
    s.stop().await;
}
