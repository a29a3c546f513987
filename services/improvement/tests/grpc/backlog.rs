//! The backlog over real gRPC: scores by hand and their ranking, the lifecycle with the actor of every change and
//! its refusals, shipping (feedback is told, with the cases of discovered themes) and the before/after.
use rapport_kit::auth::Role;
use rapport_proto::{events::v1::event::Payload, improvement::v1 as pb};
use tonic::Code;

use crate::support::*;

on_both!(scores_rank_and_show_their_parts, the_lifecycle_keeps_its_actors, shipping_tells_feedback_and_is_measured);

async fn scores_rank_and_show_their_parts(db: Db) {
    let app = spawn_app(db).await;
    let mut events = Vec::new();
    // delivery: 12 customers, 6 high and 6 medium (mean 1.5), 3 VIPs (a quarter).
    for i in 0..12 {
        let severity = if i < 6 { "high" } else { "medium" };
        let tier = if i < 3 { "vip" } else { "silver" };
        events.push(signal_with(&format!("d{i}"), &format!("cd{i}"), "delivery", "late", T0 + i, severity, tier));
    }
    // billing: 5 customers, critical, one VIP.
    for i in 0..5 {
        let tier = if i == 0 { "vip" } else { "gold" };
        events.push(signal_with(
            &format!("b{i}"),
            &format!("cb{i}"),
            "billing",
            "charged twice",
            T0 + i,
            "critical",
            tier,
        ));
    }
    // Older than 13 weeks: out of reach.
    events.push(signal_with("old", "cold", "delivery", "late", T0 - 100 * DAY, "critical", "vip"));
    app.deliver(events).await.unwrap();
    app.clock.advance_days(1);
    let a = app.improvement("reliable couriers", &["delivery"], 0.8, 4.0).await;
    let b = app.improvement("clear invoices", &["billing"], 0.5, 1.0).await;
    // delivery: impact 1.5 × 1.25 = 1.875; 12 × 1.875 × 0.8 ÷ 4 = 4.5.
    let s = a.score.unwrap();
    assert_eq!((s.reach, s.mean_severity, s.vip_share, s.impact), (12, 1.5, 0.25, 1.875));
    assert!((s.score - 4.5).abs() < 1e-9, "{s:?}");
    // billing: 3 × 1.2 = 3.6, capped at 3; 5 × 3 × 0.5 ÷ 1 = 7.5.
    let s = b.score.unwrap();
    assert_eq!((s.reach, s.impact), (5, 3.0));
    assert!((s.score - 7.5).abs() < 1e-9, "{s:?}");
    let listed = app
        .client
        .clone()
        .list_improvements(pb::ListImprovementsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .improvements;
    let order: Vec<&str> = listed.iter().map(|i| i.title.as_str()).collect();
    assert_eq!(order, vec!["clear invoices", "reliable couriers"]);
    // People re-estimate: more effort lowers it.
    let updated = app
        .client
        .clone()
        .update_improvement(pb::UpdateImprovementRequest {
            request_id: "u-1".into(),
            improvement_id: b.improvement_id.clone(),
            effort_weeks: Some(5.0),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .improvement
        .unwrap();
    assert!((updated.score.unwrap().score - 1.5).abs() < 1e-9);
    // Unknown themes are refused.
    let e = app
        .client
        .clone()
        .create_improvement(pb::CreateImprovementRequest {
            request_id: "x".into(),
            title: "x".into(),
            theme_ids: vec!["nowhere".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_status(&e, Code::NotFound, "THEME_NOT_FOUND", None);
    app.stop().await;
}

async fn the_lifecycle_keeps_its_actors(db: Db) {
    let app = spawn_app(db).await;
    app.deliver(vec![signal("d1", "c1", "delivery", "late", T0)]).await.unwrap();
    let a = app.improvement("reliable couriers", &["delivery"], 0.0, 0.0).await;
    let s = a.score.unwrap();
    assert_eq!((s.confidence, s.effort_weeks), (0.5, 1.0), "the defaults");
    let id = a.improvement_id.clone();
    let mut sam = app.as_role(Role::Sre, "sam");
    sam.change_improvement_status(pb::ChangeImprovementStatusRequest {
        request_id: "plan".into(),
        improvement_id: id.clone(),
        status: pb::ImprovementStatus::Planned.into(),
        note: "next quarter".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let e = app.move_to(&id, pb::ImprovementStatus::Planned, "again").await.unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "INVALID_TRANSITION", None);
    app.move_to(&id, pb::ImprovementStatus::Shipped, "live").await.unwrap();
    let got = app
        .client
        .clone()
        .get_improvement(pb::GetImprovementRequest { improvement_id: id.clone(), impact_window_days: 0 })
        .await
        .unwrap()
        .into_inner();
    let history: Vec<(pb::ImprovementStatus, pb::ImprovementStatus, &str, &str)> =
        got.history.iter().map(|c| (c.from(), c.to(), c.actor.as_str(), c.note.as_str())).collect();
    use pb::ImprovementStatus as S;
    assert_eq!(
        history,
        vec![
            (S::Unspecified, S::Proposed, "pat", "proposed"),
            (S::Proposed, S::Planned, "sam", "next quarter"),
            (S::Planned, S::Shipped, "pat", "live"),
        ]
    );
    assert!(got.improvement.unwrap().shipped_at.is_some());
    // Closed: no more moves, no more changes.
    let e = app.move_to(&id, pb::ImprovementStatus::Declined, "no").await.unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "IMPROVEMENT_CLOSED", None);
    let e = app
        .client
        .clone()
        .update_improvement(pb::UpdateImprovementRequest {
            request_id: "u".into(),
            improvement_id: id.clone(),
            title: Some("y".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "IMPROVEMENT_CLOSED", None);
    // A duplicate names what it duplicates, which must exist.
    let b = app.improvement("faster couriers", &["delivery"], 0.5, 1.0).await;
    let dup = |of: &str| pb::ChangeImprovementStatusRequest {
        request_id: format!("dup-{of}"),
        improvement_id: b.improvement_id.clone(),
        status: pb::ImprovementStatus::Duplicate.into(),
        duplicate_of: of.into(),
        ..Default::default()
    };
    let e = app.client.clone().change_improvement_status(dup("")).await.unwrap_err();
    assert_status(&e, Code::InvalidArgument, "INVALID_ARGUMENT", Some("duplicate_of"));
    let e = app.client.clone().change_improvement_status(dup("imp-nope")).await.unwrap_err();
    assert_status(&e, Code::NotFound, "IMPROVEMENT_NOT_FOUND", None);
    let done = app.client.clone().change_improvement_status(dup(&id)).await.unwrap().into_inner().improvement.unwrap();
    assert_eq!((done.status(), done.duplicate_of.as_str()), (pb::ImprovementStatus::Duplicate, id.as_str()));
    // PROPOSED is where improvements start, never where they go.
    let e = app.move_to(&b.improvement_id, pb::ImprovementStatus::Proposed, "back").await.unwrap_err();
    assert_status(&e, Code::InvalidArgument, "INVALID_ARGUMENT", Some("status"));
    app.stop().await;
}

async fn shipping_tells_feedback_and_is_measured(db: Db) {
    let app = spawn_app(db).await;
    // A discovered theme (from the corpus) and feedback's delivery.
    app.deliver(corpus_signals("s")).await.unwrap();
    let themes = app.discover("d-1").await.unwrap().themes;
    let found = &themes[0];
    let ship = T0 + 20 * DAY;
    // Seven days before shipping: 100 delivery-or-other signals, 30 of delivery (from d0..d29, who answer 2); after:
    // 100, 10 of delivery, and the same customers answer 9.
    let mut events = Vec::new();
    for i in 0..100 {
        let theme = if i < 30 { "delivery" } else { "billing" };
        events.push(signal(&format!("b{i}"), &format!("d{i}"), theme, "x", ship - DAY + i));
    }
    for i in 0..10 {
        events.push(answer(&format!("ab{i}"), &format!("d{i}"), 2, ship - DAY));
    }
    app.clock.advance_days(20);
    app.deliver(events).await.unwrap();
    let imp = app.improvement("couriers and crashes", &["delivery", &found.theme_id], 0.9, 2.0).await;
    let shipped = app
        .client
        .clone()
        .change_improvement_status(pb::ChangeImprovementStatusRequest {
            request_id: "ship".into(),
            improvement_id: imp.improvement_id.clone(),
            status: pb::ImprovementStatus::Shipped.into(),
            note: "new courier partner".into(),
            resurvey: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .improvement
        .unwrap();
    assert_eq!(shipped.shipped_at.map(|t| t.seconds * 1000), Some(ship));
    let sent = app.events("feedback").await;
    let Some(Payload::ImprovementShipped(s)) = &sent.last().unwrap().payload else { panic!("{sent:?}") };
    assert_eq!(s.theme_ids, vec!["delivery".to_string()]);
    assert_eq!(s.case_ids.len() as i32, found.size, "the discovered theme's cases, for feedback has them unclassified");
    assert!(s.case_ids.iter().all(|c| c.starts_with("case-s-")));
    assert!(s.resurvey && s.note == "new courier partner" && s.recent_days == 30);
    // Too early for a before/after.
    let get =
        |days: i32| pb::GetImprovementRequest { improvement_id: imp.improvement_id.clone(), impact_window_days: days };
    assert!(app.client.clone().get_improvement(get(7)).await.unwrap().into_inner().impact.is_none());
    let mut after = Vec::new();
    for i in 0..100 {
        let theme = if i < 10 { "delivery" } else { "billing" };
        after.push(signal(&format!("a{i}"), &format!("n{i}"), theme, "x", ship + i));
    }
    for i in 0..10 {
        after.push(answer(&format!("aa{i}"), &format!("d{i}"), 9, ship + DAY));
    }
    app.clock.advance_days(8);
    app.deliver(after).await.unwrap();
    let impact = app.client.clone().get_improvement(get(7)).await.unwrap().into_inner().impact.unwrap();
    assert_eq!(
        (
            impact.window_days,
            impact.theme_signals_before,
            impact.all_signals_before,
            impact.theme_signals_after,
            impact.all_signals_after
        ),
        (7, 30, 100, 10, 100)
    );
    let change = impact.complaint_rate_change.unwrap();
    assert!((change.value + 0.2).abs() < 1e-12 && change.significant);
    assert_eq!((impact.nps_before.unwrap().score, impact.nps_after.unwrap().score), (-100.0, 100.0));
    app.stop().await;
}
