//! Rule segments: materialised at creation, updated incrementally as events arrive, refreshed as time passes,
//! explained, protected from deletion while in use; changes are published.
use rapport_proto::segmentation::v1::{self as pb, condition::Node};
use sea_orm::{EntityTrait, PaginatorTrait};
use tonic::Code;

use crate::support::{DAY, Db, T0, assert_status, cond, feature, on_both, purchase, spawn_app};

on_both!(segments_update_explain_and_protect);

async fn segments_update_explain_and_protect(db: Db) {
    let app = spawn_app(db).await;
    let mut c = app.client.clone();
    app.ingest(vec![purchase("a1", "amy", T0 - DAY, 30), purchase("b1", "bob", T0 - 2 * DAY, 500)]).await.unwrap();

    let big = app.segment("big", feature("monetary_365d", pb::Comparison::Ge, 100.0)).await.unwrap();
    assert_eq!(big.size, 1, "materialised at creation");
    assert!(app.is_member("big", "bob").await && !app.is_member("big", "amy").await);
    // incremental: amy's next purchase puts her in
    app.ingest(vec![purchase("a2", "amy", T0, 80)]).await.unwrap();
    assert!(app.is_member("big", "amy").await);

    // time-based: nobody bought in 30 days → after a month, both are lapsed
    let lapsed = app
        .segment("lapsed", Node::EventAbsent(pb::EventAbsent { kind: pb::EventKind::Purchase.into(), days: 30 }))
        .await
        .unwrap();
    assert_eq!(lapsed.size, 0);
    app.clock.advance_days(31);
    let r = app.refresh().await;
    assert!(r.membership_changes >= 2);
    assert!(app.is_member("lapsed", "amy").await && app.is_member("lapsed", "bob").await);

    // a segment of segments, and attributes
    c.upsert_customer(pb::UpsertCustomerRequest {
        request_id: "u1".into(),
        customer_id: "bob".into(),
        attributes: [("country".to_string(), "FR".to_string())].into(),
        consent_marketing: true,
        consent_profiling: true,
    })
    .await
    .unwrap();
    let both = Node::All(pb::Conditions {
        conditions: vec![
            cond(Node::InSegment("big".into())),
            cond(Node::InSegment("lapsed".into())),
            cond(Node::Attribute(pb::AttributeEquals { name: "country".into(), value: "FR".into() })),
        ],
    });
    assert_eq!(app.segment("big-lapsed-fr", both).await.unwrap().size, 1);
    let segs = c
        .list_customer_segments(pb::ListCustomerSegmentsRequest { customer_id: "bob".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(segs.segment_ids, vec!["big", "big-lapsed-fr", "lapsed"]);

    // explanations
    let e = c
        .explain_membership(pb::ExplainMembershipRequest {
            customer_id: "amy".into(),
            segment_id: "big-lapsed-fr".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!e.member);
    let attr = e.conditions.iter().find(|s| s.path == "condition.all[2]").unwrap();
    assert_eq!((attr.actual.as_str(), attr.held), ("\"\"", false));
    let e = c
        .explain_membership(pb::ExplainMembershipRequest { customer_id: "amy".into(), segment_id: "big".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(e.member);
    assert_eq!(e.conditions[0].actual, "110.00");

    // deletion is refused while another segment or a running campaign uses the segment
    let del = |id: &str, rid: &str| pb::DeleteSegmentRequest { request_id: rid.into(), segment_id: id.into() };
    assert_status(
        &c.delete_segment(del("big", "d1")).await.unwrap_err(),
        Code::FailedPrecondition,
        "SEGMENT_IN_USE",
        None,
    );
    // amy opts out of marketing: the campaign leaves her out
    c.upsert_customer(pb::UpsertCustomerRequest {
        request_id: "u2".into(),
        customer_id: "amy".into(),
        attributes: Default::default(),
        consent_marketing: false,
        consent_profiling: true,
    })
    .await
    .unwrap();
    let camp = c
        .trigger_campaign(pb::TriggerCampaignRequest {
            request_id: "camp".into(),
            campaign_id: String::new(),
            segment_id: "lapsed".into(),
            offer_id: "o".into(),
            holdout_percent: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .campaign
        .unwrap();
    assert_eq!(camp.targeted, 1, "only bob consents to offers");
    c.delete_segment(del("big-lapsed-fr", "d2")).await.unwrap();
    assert_status(
        &c.delete_segment(del("lapsed", "d3")).await.unwrap_err(),
        Code::FailedPrecondition,
        "SEGMENT_IN_USE",
        None,
    );
    c.delete_segment(del("big", "d4")).await.unwrap();
    assert_status(
        &c.get_segment(pb::GetSegmentRequest { segment_id: "big".into() }).await.unwrap_err(),
        Code::NotFound,
        "SEGMENT_NOT_FOUND",
        None,
    );

    // entering and leaving were recorded and published
    let published = rapport_outbox::entities::outbox_event::Entity::find().count(&app.db).await.unwrap();
    assert_eq!(published, 5, "bob and amy entered big and lapsed, bob big-lapsed-fr");
    app.stop().await;
}
