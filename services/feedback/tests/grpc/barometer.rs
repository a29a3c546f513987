//! The satisfaction barometer: criteria fed by feedback's own measures against the company's targets, the staff's
//! assessment beside the customers' point of view, priorities furthest from target first, the trend between two
//! periods, re-prioritised weights that leave earlier readings as they were, and one reading per period even with
//! two replicas asked at once.
use rapport_kit::auth::Role;
use rapport_proto::feedback::v1 as pb;
use tonic::Code;

use crate::support::{DAY, Db, TestApp, assert_status, on_both, spawn_app};

on_both!(a_reading_compares_targets_customers_and_staff_and_ranks_priorities);
on_both!(two_replicas_take_one_reading_of_a_period);

const HOUR: i64 = 3_600_000;

async fn answer(app: &TestApp, customer: &str, score: i32) {
    let s = app.schedule(&format!("s-{customer}"), customer, "delivery").await.unwrap();
    app.answer(&format!("a-{customer}"), &s.survey_id, score, "").await.unwrap();
}

async fn assess(
    app: &TestApp,
    rid: &str,
    agent: &str,
    period: &str,
    scores: &[(pb::BarometerAxis, i32)],
) -> Result<i32, tonic::Status> {
    app.as_role(Role::Sre)
        .record_staff_assessment(pb::RecordStaffAssessmentRequest {
            request_id: rid.into(),
            agent_id: agent.into(),
            period: period.into(),
            scores: scores.iter().map(|(a, s)| pb::AxisScore { axis: (*a).into(), score: *s }).collect(),
            comment: format!("as {agent} sees it"),
        })
        .await
        .map(|r| r.into_inner().answers)
}

async fn take(app: &TestApp, rid: &str, period: &str, replace: bool) -> Result<pb::BarometerReading, tonic::Status> {
    app.as_role(Role::Marketing)
        .take_barometer_reading(pb::TakeBarometerReadingRequest {
            request_id: rid.into(),
            period: period.into(),
            replace,
        })
        .await
        .map(|r| r.into_inner().reading.unwrap())
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

fn criterion<'a>(r: &'a pb::BarometerReading, id: &str) -> &'a pb::CriterionReading {
    r.criteria.iter().find(|c| c.criterion.as_ref().unwrap().criterion_id == id).unwrap()
}

async fn a_reading_compares_targets_customers_and_staff_and_ranks_priorities(db: Db) {
    use pb::BarometerAxis as A;
    let app = spawn_app(db).await;
    // January: answers 10, 7, 7, 8 (NPS 25); two complaints, answered after 2 h and after 6 h (past the 4 h target).
    app.clock.advance_ms(HOUR);
    for (c, s) in [("c1", 10), ("c2", 7), ("c3", 7), ("c4", 8)] {
        answer(&app, c, s).await;
    }
    let fast = app.open_case("k-1", "c1", pb::CaseKind::Complaint, "my parcel never arrived").await.unwrap();
    let slow = app.open_case("k-2", "c2", pb::CaseKind::Complaint, "the product broke after a day").await.unwrap();
    app.clock.advance_ms(2 * HOUR);
    app.respond("r-1", &fast.case_id, "a new one leaves today").await.unwrap();
    app.clock.advance_ms(4 * HOUR);
    app.respond("r-2", &slow.case_id, "we refund you").await.unwrap();
    for (rid, case) in [("z-1", &fast), ("z-2", &slow)] {
        app.resolve(rid, &case.case_id, "", "").await.unwrap();
    }

    // The staff's own view: ann and bob answer; an unknown agent and bad scores are refused.
    app.client
        .clone()
        .put_agent(pb::PutAgentRequest {
            request_id: "ag".into(),
            agent: Some(pb::Agent { agent_id: "ann".into(), capacity: 5, online: true, ..Default::default() }),
        })
        .await
        .unwrap();
    app.client
        .clone()
        .put_agent(pb::PutAgentRequest {
            request_id: "ag2".into(),
            agent: Some(pb::Agent { agent_id: "bob".into(), capacity: 5, online: true, ..Default::default() }),
        })
        .await
        .unwrap();
    assert_eq!(
        assess(&app, "st-1", "ann", "2026-01", &[(A::QualityOfService, 9), (A::CustomerSatisfaction, 6)])
            .await
            .unwrap(),
        1
    );
    assert_eq!(assess(&app, "st-2", "bob", "2026-01", &[(A::QualityOfService, 7)]).await.unwrap(), 2);
    // An agent answers for itself only (the test client's token is agent "t").
    let e = app
        .client
        .clone()
        .record_staff_assessment(pb::RecordStaffAssessmentRequest {
            request_id: "st-x".into(),
            agent_id: "ann".into(),
            period: "2026-01".into(),
            scores: vec![pb::AxisScore { axis: A::Profit.into(), score: 2 }],
            comment: String::new(),
        })
        .await
        .unwrap_err();
    assert_status(&e, Code::PermissionDenied, "NOT_YOUR_ASSESSMENT", None);
    let listed = app
        .as_role(Role::Marketing)
        .list_staff_assessments(pb::ListStaffAssessmentsRequest { period: "2026-01".into() })
        .await
        .unwrap()
        .into_inner()
        .assessments;
    assert_eq!(
        listed.iter().map(|a| (a.agent_id.as_str(), a.scores.len())).collect::<Vec<_>>(),
        [("ann", 2), ("bob", 1)]
    );
    assert_eq!(listed[1].comment, "as bob sees it");
    let e = assess(&app, "st-3", "zed", "2026-01", &[(A::Profit, 5)]).await.unwrap_err();
    assert_status(&e, Code::NotFound, "AGENT_NOT_FOUND", None);
    let e = assess(&app, "st-4", "ann", "2026-13", &[(A::Profit, 11), (A::Unspecified, 1)]).await.unwrap_err();
    for f in ["period", "scores[0].score", "scores[1].axis"] {
        assert_status(&e, Code::InvalidArgument, "INVALID_ARGUMENT", Some(f));
    }

    // January is read once it is over.
    let e = take(&app, "b-early", "2026-01", false).await.unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "PERIOD_NOT_OVER", None);
    app.clock.advance_ms(31 * DAY);
    let jan = take(&app, "b-jan", "2026-01", false).await.unwrap();
    // Each criterion's value from feedback's own data, its score against the default targets.
    let v = |id: &str| criterion(&jan, id).value;
    assert!(close(v("nps"), 25.0) && close(v("first_response"), 2.0) && close(v("sla"), 50.0));
    assert!(close(v("complaints"), 50.0), "2 complaints per 4 answers");
    for id in ["repeat_purchase", "premium_tiers"] {
        let c = criterion(&jan, id);
        assert_eq!((c.available, c.unavailable_reason.as_str()), (false, "loyalty: not deployed"));
    }
    let (sla, nps) = (100.0 * 50.0 / 95.0, 100.0 * 125.0 / 150.0);
    assert!(close(criterion(&jan, "sla").score, sla));
    assert!(close(criterion(&jan, "nps").score, nps), "NPS scores from -100 to its target");
    assert!(close(jan.index, (2.0 * 100.0 + 2.0 * sla + 3.0 * nps + 10.0) / 8.0), "{}", jan.index);
    // The three points of view per axis: targets (the scores), customers, staff.
    let axis = |r: &pb::BarometerReading, a: A| *r.axes.iter().find(|x| x.axis == i32::from(a)).unwrap();
    let q = axis(&jan, A::QualityOfService);
    assert!(close(q.customers, (200.0 + 2.0 * sla) / 4.0) && close(q.staff, 80.0) && q.staff_answers == 2);
    assert!(close(q.perception_gap, 80.0 - q.customers));
    let s = axis(&jan, A::CustomerSatisfaction);
    assert!(close(s.customers, 65.0) && close(s.staff, 60.0) && close(s.perception_gap, -5.0));
    assert_eq!((axis(&jan, A::Loyalty).customers, axis(&jan, A::Loyalty).staff), (-1.0, -1.0));
    assert!(!jan.has_trend && jan.previous_period.is_empty());
    // Furthest from target first: SLA (2 × 47.4), complaints (1 × 90), NPS (3 × 16.7).
    assert_eq!(jan.priorities, ["sla", "complaints", "nps"]);
    assert_eq!(jan.priority_axes, [i32::from(A::QualityOfService), i32::from(A::CustomerSatisfaction)]);

    // One reading per period: the same request again is the same reading, another is refused unless it replaces.
    assert_eq!(take(&app, "b-jan", "2026-01", false).await.unwrap(), jan);
    let e = take(&app, "b-jan-2", "2026-01", false).await.unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "READING_EXISTS", None);

    // Re-prioritised: NPS weighs 10 now. February: two promoters, no case.
    let mut criteria = app
        .client
        .clone()
        .get_barometer_criteria(pb::GetBarometerCriteriaRequest {})
        .await
        .unwrap()
        .into_inner()
        .criteria;
    criteria.iter_mut().filter(|c| c.criterion_id == "nps").for_each(|c| c.weight = 10.0);
    app.as_role(Role::Marketing)
        .set_barometer_criteria(pb::SetBarometerCriteriaRequest {
            request_id: "crit".into(),
            criteria: criteria.clone(),
        })
        .await
        .unwrap();
    for c in ["d1", "d2"] {
        answer(&app, c, 10).await;
    }
    app.clock.advance_ms(28 * DAY);
    let feb = take(&app, "b-feb", "2026-02", false).await.unwrap();
    assert!(close(feb.index, 100.0), "NPS and complaints met, the rest unmeasured: {}", feb.index);
    assert!(feb.has_trend && close(feb.trend, 100.0 - jan.index));
    assert_eq!(feb.previous_period, "2026-01");
    assert_eq!(criterion(&feb, "first_response").unavailable_reason, "no cases in the period");
    assert!(feb.priorities.is_empty());
    let listed = app
        .client
        .clone()
        .list_barometer_readings(pb::ListBarometerReadingsRequest { limit: 0 })
        .await
        .unwrap()
        .into_inner()
        .readings;
    assert_eq!(listed.iter().map(|r| r.period.as_str()).collect::<Vec<_>>(), ["2026-02", "2026-01"]);
    let weight = |r: &pb::BarometerReading| criterion(r, "nps").criterion.as_ref().unwrap().weight;
    assert_eq!((weight(&listed[0]), weight(&listed[1])), (10.0, 3.0), "each reading keeps its weights");
    assert_eq!(listed[1], jan);

    // Bad criteria are refused field by field.
    let mut bad = criteria;
    bad[0].weight = 0.0;
    bad[1].axis = 0;
    bad[2].criterion_id = bad[3].criterion_id.clone();
    let e = app
        .as_role(Role::Marketing)
        .set_barometer_criteria(pb::SetBarometerCriteriaRequest { request_id: "bad".into(), criteria: bad })
        .await
        .unwrap_err();
    for f in ["criteria[0].weight", "criteria[1].axis", "criteria[3].criterion_id"] {
        assert_status(&e, Code::InvalidArgument, "INVALID_ARGUMENT", Some(f));
    }
    app.stop().await;
}

async fn two_replicas_take_one_reading_of_a_period(db: Db) {
    let app = spawn_app(db).await;
    answer(&app, "c1", 9).await;
    let (other, _) = app.replica().await;
    let mut second = app.client_of(&other, Role::Sre);
    let first = take(&app, "one", "2025-12", false);
    let req = pb::TakeBarometerReadingRequest { request_id: "two".into(), period: "2025-12".into(), replace: false };
    let (a, b) = tokio::join!(first, second.take_barometer_reading(req));
    let outcomes = [a.is_ok(), b.is_ok()];
    assert_eq!(outcomes.iter().filter(|ok| **ok).count(), 1, "exactly one reading: {outcomes:?}");
    let e = if let Err(e) = a { e } else { b.unwrap_err() };
    assert_status(&e, Code::FailedPrecondition, "READING_EXISTS", None);
    other.stop().await;
    app.stop().await;
}
