//! NPS over a window, by hand: overall, grouped, daily, with the interval; and the matrix.
use rapport_kit::{auth::Role, clock::timestamp};
use rapport_proto::{common::v1::Channel, feedback::v1 as pb};
use tonic::Code;

use crate::support::*;

on_both!(nps_of_a_window_by_hand);

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

#[test]
fn matrix_covers_every_rpc_and_names_no_other() {
    let policy = rapport_feedback::app::policy().unwrap();
    let service = rapport_feedback::app::SERVICE_NAME;
    let (missing, unknown) = policy.coverage(rapport_proto::FILE_DESCRIPTOR_SET, service).unwrap();
    assert!(missing.is_empty(), "RPCs missing from the matrix: {missing:?}");
    assert!(unknown.is_empty(), "the matrix names RPCs that do not exist: {unknown:?}");
    let p = |m: &str| format!("/{service}/{m}");
    assert!(policy.allows(&p("RecordResponse"), Role::Agent));
    assert!(!policy.allows(&p("RecordResponse"), Role::Reader));
    assert!(!policy.allows(&p("ScheduleSurvey"), Role::Marketing));
    assert!(policy.allows(&p("GetNps"), Role::Marketing));
}
