//! Pilots over real gRPC with a real segmentation server: a segment split into the pilot group and a holdout,
//! compared on complaints and NPS on hand-checked numbers, ended; and what stops a pilot from starting.
use rapport_improvement::domain::pilot::{Group, group_of};
use rapport_kit::clock::timestamp;
use rapport_proto::{common::v1::Money, improvement::v1 as pb, segmentation::v1 as spb};
use tonic::Code;

use crate::support::*;

on_both!(a_pilot_is_compared_with_its_holdout, pilots_need_their_segment, the_revenue_at_risk_comes_from_segmentation);

fn start(improvement: &str, segment: &str, holdout: i32) -> pb::StartPilotRequest {
    pb::StartPilotRequest {
        request_id: format!("pilot-{improvement}-{segment}"),
        improvement_id: improvement.into(),
        segment_id: segment.into(),
        holdout_percent: holdout,
    }
}

async fn a_pilot_is_compared_with_its_holdout(db: Db) {
    let app = spawn_with_segmentation(db).await;
    let customers: Vec<String> = (0..400).map(|i| format!("p-{i}")).collect();
    segment_of(&app, "paris", &customers).await;
    app.deliver(vec![signal("seed", "someone", "delivery", "late", T0 - DAY)]).await.unwrap();
    let imp = app.improvement("lockers in paris", &["delivery"], 0.7, 3.0).await;
    let mut c = app.client.clone();
    let pilot = c.start_pilot(start(&imp.improvement_id, "paris", 50)).await.unwrap().into_inner().pilot.unwrap();
    let (p, h) = (pilot.pilot.unwrap(), pilot.holdout.unwrap());
    assert_eq!(p.customers + h.customers, 400);
    let groups: Vec<(String, Group)> =
        customers.iter().map(|c| (c.clone(), group_of(&pilot.pilot_id, c, 50))).collect();
    let in_pilot = groups.iter().filter(|(_, g)| *g == Group::Pilot).count() as i64;
    assert_eq!(p.customers, in_pilot);
    // The improvement is piloting now.
    let got = c
        .get_improvement(pb::GetImprovementRequest {
            improvement_id: imp.improvement_id.clone(),
            impact_window_days: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.improvement.unwrap().status(), pb::ImprovementStatus::Piloting);
    assert_eq!(got.pilots.len(), 1);
    // Who is where, for the product to switch the improvement on.
    for (customer, group) in groups.iter().take(20) {
        let r = c
            .check_pilot_group(pb::CheckPilotGroupRequest {
                pilot_id: pilot.pilot_id.clone(),
                customer_id: customer.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let want = if *group == Group::Pilot { pb::PilotGroupKind::Pilot } else { pb::PilotGroupKind::Holdout };
        assert_eq!((r.group(), r.running), (want, true));
    }
    let outsider = c
        .check_pilot_group(pb::CheckPilotGroupRequest {
            pilot_id: pilot.pilot_id.clone(),
            customer_id: "nobody".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(outsider.group(), pb::PilotGroupKind::NotInPilot);
    // During the pilot: the first 10 % of each group's members complain about delivery in the pilot, 30 % in the
    // holdout; billing complaints do not count.
    let pilot_members: Vec<&String> = groups.iter().filter(|(_, g)| *g == Group::Pilot).map(|(c, _)| c).collect();
    let holdout_members: Vec<&String> = groups.iter().filter(|(_, g)| *g == Group::Holdout).map(|(c, _)| c).collect();
    let (np, nh) = (pilot_members.len(), holdout_members.len());
    let (xp, xh) = (np / 10, nh * 3 / 10);
    let mut events = Vec::new();
    for (i, m) in pilot_members.iter().take(xp).enumerate() {
        events.push(signal(&format!("pp{i}"), m, "delivery", "late", T0 + DAY));
    }
    for (i, m) in holdout_members.iter().take(xh).enumerate() {
        events.push(signal(&format!("hh{i}"), m, "delivery", "late", T0 + DAY));
    }
    events.push(signal("bill", pilot_members[np - 1], "billing", "charged twice", T0 + DAY));
    app.clock.advance_days(14);
    app.deliver(events).await.unwrap();
    let got = c
        .get_pilot(pb::GetPilotRequest { pilot_id: pilot.pilot_id.clone() })
        .await
        .unwrap()
        .into_inner()
        .pilot
        .unwrap();
    let (p, h) = (got.pilot.unwrap(), got.holdout.unwrap());
    assert_eq!((p.complainers, h.complainers), (xp as i64, xh as i64));
    let (rp, rh) = (xp as f64 / np as f64, xh as f64 / nh as f64);
    assert!((p.complaint_rate - rp).abs() < 1e-12 && (h.complaint_rate - rh).abs() < 1e-12);
    let d = got.complaint_rate_difference.unwrap();
    let se = (rp * (1.0 - rp) / np as f64 + rh * (1.0 - rh) / nh as f64).sqrt();
    assert!((d.value - (rp - rh)).abs() < 1e-12 && (d.ci_low - (rp - rh - 1.959_963_984_540_054 * se)).abs() < 1e-9);
    assert!(d.significant, "{d:?}");
    assert!(got.verdict.ends_with("the roll-out is supported"), "{}", got.verdict);
    // Ended: frozen; a later complaint does not count.
    let ended = c
        .end_pilot(pb::EndPilotRequest { request_id: "end".into(), pilot_id: pilot.pilot_id.clone() })
        .await
        .unwrap()
        .into_inner()
        .pilot
        .unwrap();
    assert!(ended.ended_at.is_some());
    app.clock.advance_days(7);
    app.deliver(vec![signal("late-1", pilot_members[0].as_str(), "delivery", "late", T0 + 20 * DAY)]).await.unwrap();
    let frozen = c
        .get_pilot(pb::GetPilotRequest { pilot_id: pilot.pilot_id.clone() })
        .await
        .unwrap()
        .into_inner()
        .pilot
        .unwrap();
    assert_eq!(frozen.pilot.unwrap().complainers, xp as i64);
    let e = c
        .end_pilot(pb::EndPilotRequest { request_id: "end-2".into(), pilot_id: pilot.pilot_id.clone() })
        .await
        .unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "PILOT_ENDED", None);
    let listed = c
        .list_pilots(pb::ListPilotsRequest { improvement_id: imp.improvement_id.clone() })
        .await
        .unwrap()
        .into_inner()
        .pilots;
    assert_eq!(listed.len(), 1);
    app.stop().await;
}

async fn pilots_need_their_segment(db: Db) {
    let mut app = spawn_with_segmentation(db).await;
    app.deliver(vec![signal("seed", "someone", "delivery", "late", T0)]).await.unwrap();
    let imp = app.improvement("lockers", &["delivery"], 0.7, 3.0).await;
    let mut c = app.client.clone();
    let e = c.start_pilot(start(&imp.improvement_id, "nowhere", 20)).await.unwrap_err();
    assert_status(&e, Code::NotFound, "SEGMENT_NOT_FOUND", None);
    let e = c.start_pilot(start("imp-nope", "paris", 20)).await.unwrap_err();
    assert_status(&e, Code::NotFound, "IMPROVEMENT_NOT_FOUND", None);
    let e = c.start_pilot(start(&imp.improvement_id, "paris", 95)).await.unwrap_err();
    assert_status(&e, Code::InvalidArgument, "INVALID_ARGUMENT", Some("holdout_percent"));
    app.stop_segmentation().await;
    let e = c.start_pilot(start(&imp.improvement_id, "paris", 20)).await.unwrap_err();
    assert_status(&e, Code::Unavailable, "SEGMENTATION_UNAVAILABLE", None);
    // Without segmentation configured at all, the same answer.
    let alone = spawn_app(db).await;
    alone.deliver(vec![signal("seed", "someone", "delivery", "late", T0)]).await.unwrap();
    let imp = alone.improvement("lockers", &["delivery"], 0.7, 3.0).await;
    let e = alone.client.clone().start_pilot(start(&imp.improvement_id, "paris", 20)).await.unwrap_err();
    assert_status(&e, Code::Unavailable, "SEGMENTATION_UNAVAILABLE", None);
    alone.stop().await;
    app.stop().await;
}

async fn the_revenue_at_risk_comes_from_segmentation(db: Db) {
    let app = spawn_with_segmentation(db).await;
    // Spend in segmentation: 900 and 120 over the year; a third customer segmentation does not know.
    let mut s = app.segmentation.clone().unwrap();
    let purchase = |id: &str, customer: &str, units: i64| spb::BehaviourEvent {
        event_id: id.into(),
        customer_id: customer.into(),
        kind: spb::EventKind::Purchase.into(),
        occurred_at: Some(timestamp(T0 - 10 * DAY)),
        channel: 1,
        amount: Some(Money { currency_code: "EUR".into(), units, nanos: 0 }),
        score: 0,
        tier: String::new(),
    };
    s.ingest_event_batch(spb::IngestEventBatchRequest {
        events: vec![purchase("p1", "rich", 600), purchase("p2", "rich", 300), purchase("p3", "modest", 120)],
    })
    .await
    .unwrap();
    app.deliver(vec![
        signal("s1", "rich", "delivery", "late", T0 - DAY),
        signal("s2", "modest", "delivery", "late", T0 - DAY),
        signal("s3", "stranger", "delivery", "late", T0 - DAY),
    ])
    .await
    .unwrap();
    // The valuation worker asks segmentation for each of them.
    let figures = || {
        let mut c = app.client.clone();
        async move {
            c.get_theme_analytics(pb::GetThemeAnalyticsRequest {
                theme_ids: vec!["delivery".into()],
                end_time: None,
                weeks: 2,
            })
            .await
            .unwrap()
            .into_inner()
        }
    };
    rapport_kit::testing::eventually(30, "the spend of the theme's customers", || async {
        figures().await.themes[0].customers_valued == 2
    })
    .await;
    let r = figures().await;
    let f = &r.themes[0];
    // The stranger is unknown to segmentation, so not valued: 900 + 120 at risk, one of the two valued is high-value.
    assert_eq!((r.high_value_threshold, f.customers), (500.0, 3));
    assert!((f.revenue_at_risk - 1_020.0).abs() < 1e-9, "{f:?}");
    assert!((f.high_value_share - 0.5).abs() < 1e-9, "{f:?}");
    app.stop().await;
}
