//! NPS over a window, by hand: overall, grouped, daily, with the interval; and the matrix.
use rapport_kit::{auth::Role, clock::timestamp};
use rapport_proto::{
    common::v1::Channel,
    events::v1::{Event, SegmentMembershipChanged, TierChanged, event::Payload},
    feedback::v1 as pb,
};
use tonic::Code;

use crate::support::*;

on_both!(nps_of_a_window_by_hand, nps_by_tier_and_segment_from_the_other_services_events);

async fn nps_of_a_window_by_hand(db: Db) {
    let app = spawn_app(db).await;
    // Day 1: 9, 10, 7, 6 by email at delivery (NPS 25). Day 2: 0 and 3 by phone after-sales (NPS -100).
    let day1 = [
        (9, Channel::Email, "delivery"),
        (10, Channel::Email, "delivery"),
        (7, Channel::Email, "delivery"),
        (6, Channel::Email, "delivery"),
    ];
    for (i, (score, channel, tp)) in day1.into_iter().enumerate() {
        let s = app.schedule_with(&format!("s1-{i}"), &format!("c1-{i}"), tp, channel, 0).await.unwrap();
        app.answer(&format!("a1-{i}"), &s.survey_id, score, "").await.unwrap();
    }
    app.clock.advance_days(1);
    for (i, score) in [0, 3].into_iter().enumerate() {
        let s =
            app.schedule_with(&format!("s2-{i}"), &format!("c2-{i}"), "after-sales", Channel::Phone, 0).await.unwrap();
        app.answer(&format!("a2-{i}"), &s.survey_id, score, "").await.unwrap();
    }
    // A survey never answered counts nowhere.
    app.schedule("s3", "c3", "delivery").await.unwrap();
    let nps = |group_by: pb::NpsGrouping, start: i64, end: i64| {
        let mut c = app.client.clone();
        async move {
            c.get_nps(pb::GetNpsRequest {
                start_time: Some(timestamp(start)),
                end_time: Some(timestamp(end)),
                group_by: group_by.into(),
            })
            .await
            .map(|r| r.into_inner())
        }
    };
    let r = nps(pb::NpsGrouping::Channel, T0, T0 + 3 * DAY).await.unwrap();
    let o = r.overall.clone().unwrap();
    // 2 promoters, 1 passive, 3 detractors of 6: (2 - 3) / 6 = -16.67.
    assert_eq!((o.promoters, o.passives, o.detractors, o.responses), (2, 1, 3, 6));
    assert!((o.score + 100.0 / 6.0).abs() < 1e-9, "{}", o.score);
    assert!(o.ci_low < o.score && o.score < o.ci_high);
    assert_eq!(r.target, 50.0);
    let groups: Vec<(String, f64)> = r.groups.iter().map(|g| (g.key.clone(), g.score)).collect();
    assert_eq!(groups, [("email".to_string(), 25.0), ("phone".to_string(), -100.0)]);
    let daily: Vec<(String, i64)> = r.daily.iter().map(|g| (g.key.clone(), g.responses)).collect();
    assert_eq!(daily, [("2026-01-01".to_string(), 4), ("2026-01-02".to_string(), 2)]);
    let by_touchpoint = nps(pb::NpsGrouping::Touchpoint, T0, T0 + 3 * DAY).await.unwrap();
    let keys: Vec<&str> = by_touchpoint.groups.iter().map(|g| g.key.as_str()).collect();
    assert_eq!(keys, ["after-sales", "delivery"]);
    // The window's end is exclusive: day 1 alone.
    let first = nps(pb::NpsGrouping::Unspecified, T0, T0 + DAY).await.unwrap();
    assert_eq!(first.overall.unwrap().score, 25.0);
    assert!(first.groups.is_empty());
    // An empty window is a zero score over the whole range, not an error.
    let empty = nps(pb::NpsGrouping::Day, T0 - 10 * DAY, T0 - 9 * DAY).await.unwrap().overall.unwrap();
    assert_eq!((empty.responses, empty.score, empty.ci_low, empty.ci_high), (0, 0.0, -100.0, 100.0));
    // Windows must be ordered and at most 400 days.
    let e = nps(pb::NpsGrouping::Day, T0, T0).await.unwrap_err();
    assert_status(&e, Code::InvalidArgument, "INVALID_ARGUMENT", Some("end_time"));
    let e = nps(pb::NpsGrouping::Day, T0, T0 + 401 * DAY).await.unwrap_err();
    assert_status(&e, Code::InvalidArgument, "INVALID_ARGUMENT", Some("end_time"));
    app.stop().await;
}

fn event(id: &str, source: &str, customer: &str, payload: Payload) -> Event {
    Event {
        event_id: id.into(),
        source: source.into(),
        customer_id: customer.into(),
        occurred_at: Some(timestamp(T0)),
        traceparent: String::new(),
        payload: Some(payload),
    }
}

async fn nps_by_tier_and_segment_from_the_other_services_events(db: Db) {
    let app = spawn_app(db).await;
    let tier = |to: &str| {
        Payload::TierChanged(TierChanged { from_tier: "bronze".into(), to_tier: to.into(), reason: "qualified".into() })
    };
    let seg = |id: &str, entered| {
        Payload::SegmentMembershipChanged(SegmentMembershipChanged { segment_id: id.into(), entered })
    };
    // c-1: gold, in "fans" then out of it and into "lapsing"; c-2: vip, in "fans"; c-3: nothing known.
    let r = app
        .deliver(
            Role::Loyalty,
            vec![event("l-1", "loyalty", "c-1", tier("gold")), event("l-2", "loyalty", "c-2", tier("vip"))],
        )
        .await;
    assert_eq!(r.applied, 2);
    let r = app
        .deliver(
            Role::Segmentation,
            vec![
                event("s-1", "segmentation", "c-1", seg("fans", true)),
                event("s-2", "segmentation", "c-2", seg("fans", true)),
                event("s-3", "segmentation", "c-1", seg("fans", false)),
                event("s-4", "segmentation", "c-1", seg("lapsing", true)),
            ],
        )
        .await;
    assert_eq!(r.applied, 4);
    for (i, (customer, score)) in [("c-1", 4), ("c-2", 10), ("c-3", 8)].into_iter().enumerate() {
        let s = app.schedule(&format!("s-{i}"), customer, "delivery").await.unwrap();
        app.answer(&format!("a-{i}"), &s.survey_id, score, "").await.unwrap();
    }
    let nps = |group_by: pb::NpsGrouping| {
        let mut c = app.client.clone();
        async move {
            let r = c
                .get_nps(pb::GetNpsRequest {
                    start_time: Some(timestamp(T0)),
                    end_time: Some(timestamp(T0 + DAY)),
                    group_by: group_by.into(),
                })
                .await
                .unwrap()
                .into_inner();
            r.groups.into_iter().map(|g| (g.key, g.responses, g.score)).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        nps(pb::NpsGrouping::Tier).await,
        [("gold".to_string(), 1, -100.0), ("unknown".to_string(), 1, 0.0), ("vip".to_string(), 1, 100.0)]
    );
    assert_eq!(
        nps(pb::NpsGrouping::Segment).await,
        [("fans".to_string(), 1, 100.0), ("lapsing".to_string(), 1, -100.0)]
    );
    app.stop().await;
}

#[test]
fn matrix_covers_every_rpc_and_names_no_other() {
    let policy = rapport_feedback::app::policy().unwrap();
    let service = rapport_feedback::app::SERVICE_NAME;
    for svc in [service, rapport_feedback::app::SINK_NAME] {
        let (missing, unknown) = policy.coverage(rapport_proto::FILE_DESCRIPTOR_SET, svc).unwrap();
        assert!(missing.is_empty(), "{svc}: RPCs missing from the matrix: {missing:?}");
        assert!(unknown.is_empty(), "{svc}: the matrix names RPCs that do not exist: {unknown:?}");
    }
    assert!(!policy.allows(&format!("/{}/DeliverEvents", rapport_feedback::app::SINK_NAME), Role::Sre));
    let p = |m: &str| format!("/{service}/{m}");
    assert!(policy.allows(&p("RecordResponse"), Role::Agent));
    assert!(!policy.allows(&p("RecordResponse"), Role::Reader));
    assert!(!policy.allows(&p("ScheduleSurvey"), Role::Marketing));
    assert!(policy.allows(&p("GetNps"), Role::Marketing));
}
