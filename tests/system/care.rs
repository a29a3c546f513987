//! Care across services: a VIP's complaint goes to the VIP desk with the tight SLA, its tier asked of loyalty at
//! intake; with loyalty stopped, cases are still routed, with the tier loyalty's events gave feedback, or unknown.
use std::{sync::Arc, time::Duration};

use rapport_kit::{auth::Role, clock::ManualClock, db::testing::fresh_database, testing::TestServer};
use rapport_proto::{
    common::v1::{Channel, Money},
    feedback::v1::{self as fpb, feedback_service_client::FeedbackServiceClient},
    loyalty::v1::{self as lpb, loyalty_service_client::LoyaltyServiceClient},
};

use crate::support::{Db, T0, any_port, auth, channel, eventually, free_port, loyalty_tuned, serve_config};

rapport_kit::on_both!(a_vips_complaint_reaches_the_vip_desk_even_with_loyalty_down);

async fn a_vips_complaint_reaches_the_vip_desk_even_with_loyalty_down(db: Db) {
    let clock = ManualClock::new(T0);
    let (loyalty_db, fb_db) = (fresh_database(db).await.unwrap(), fresh_database(db).await.unwrap());
    // Feedback's address first: loyalty delivers its events there, and feedback asks loyalty for tiers.
    let fb_addr = free_port();
    let l = loyalty_tuned(any_port(), loyalty_db.url(), None, &clock, auth(), |c| {
        c.set_subscriber_url("feedback", Some(format!("http://{fb_addr}")));
    })
    .await;
    let mut config = rapport_feedback::app::Config::local(fb_db.url());
    config.common.listen = fb_addr;
    config.common.serve = serve_config();
    config.loyalty_url = Some(l.url());
    config.tier_deadline = Duration::from_millis(300);
    let f = TestServer::start::<rapport_feedback::app::Feedback>(config, auth(), Arc::new(clock.clone()))
        .await
        .expect("feedback");
    // Loyalty's events reach feedback too (tiers for when loyalty cannot answer).
    let mut lc = LoyaltyServiceClient::new(channel(l.addr, Role::Sre));
    for (id, units) in [("vip-1", 20_000), ("reg-1", 50)] {
        lc.enrol_member(lpb::EnrolMemberRequest {
            request_id: format!("e-{id}"),
            customer_id: id.into(),
            display_name: String::new(),
        })
        .await
        .unwrap();
        lc.record_purchase(lpb::RecordPurchaseRequest {
            request_id: format!("p-{id}"),
            customer_id: id.into(),
            order_id: format!("o-{id}"),
            amount: Some(Money { currency_code: "EUR".into(), units, nanos: 0 }),
            channel: 1,
            recurring: false,
        })
        .await
        .unwrap();
    }
    let mut fc = FeedbackServiceClient::new(channel(f.addr, Role::Agent));
    fc.put_queue(fpb::PutQueueRequest {
        request_id: "q".into(),
        queue: Some(fpb::Queue { queue_id: "vip-desk".into(), ..Default::default() }),
    })
    .await
    .unwrap();
    fc.set_routing_rules(fpb::SetRoutingRulesRequest {
        request_id: "r".into(),
        rules: vec![fpb::RoutingRule {
            rule_id: "vips".into(),
            tiers: vec!["vip".into()],
            queue_id: "vip-desk".into(),
            ..Default::default()
        }],
    })
    .await
    .unwrap();
    let open = |rid: &str, customer: &str| {
        let mut fc = fc.clone();
        let (rid, customer) = (rid.to_string(), customer.to_string());
        async move {
            fc.open_case(fpb::OpenCaseRequest {
                request_id: rid,
                kind: fpb::CaseKind::Complaint.into(),
                customer_id: customer,
                channel: Channel::Email.into(),
                severity: fpb::Severity::Medium.into(),
                order_id: String::new(),
                text: "my parcel never arrived".into(),
                theme: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .case
            .unwrap()
        }
    };
    let vip = open("c-1", "vip-1").await;
    assert_eq!((vip.tier.as_str(), vip.tier_source.as_str(), vip.queue_id.as_str()), ("vip", "loyalty", "vip-desk"));
    assert_eq!(vip.first_response.unwrap().target_ms, 3_600_000, "a VIP is answered within the hour");
    let reg = open("c-2", "reg-1").await;
    assert_eq!((reg.tier.as_str(), reg.queue_id.as_str()), ("bronze", "general"));
    assert_eq!(reg.first_response.unwrap().target_ms, 4 * 3_600_000);

    // Feedback has heard of the VIP from loyalty's events before loyalty stops.
    eventually(30, "the VIP's tier in feedback", || async {
        use rapport_feedback::entities::customer_tiers;
        use sea_orm::EntityTrait;
        customer_tiers::Entity::find_by_id("vip-1".to_string())
            .one(&f.db)
            .await
            .unwrap()
            .is_some_and(|t| t.tier == "vip")
    })
    .await;
    l.stop().await;
    let vip = open("c-3", "vip-1").await;
    assert_eq!((vip.tier.as_str(), vip.tier_source.as_str(), vip.queue_id.as_str()), ("vip", "events", "vip-desk"));
    let stranger = open("c-4", "new-1").await;
    assert_eq!((stranger.tier.as_str(), stranger.tier_source.as_str()), ("unknown", "unknown"));
    assert_eq!(stranger.queue_id, "general");
    f.stop().await;
}
