//! SLA clocks on cases: targets by severity and tier (VIPs tighter), business hours and holidays on a fixed clock,
//! the wait for the customer stopping the clocks, and the sweeper recording each warning and breach once and
//! escalating — with two replicas sweeping.
use std::time::Duration;

use rapport_feedback::domain::sla::Calendar;
use rapport_kit::{auth::Role, clock::timestamp, testing::eventually};
use rapport_proto::feedback::v1 as pb;

use crate::support::{DAY, Db, T0, on_both, spawn_with, tier_event};

const H: i64 = 3_600_000;

/// Mon-Fri 09:00-18:00 UTC; 2026-01-01 (a Thursday, T0) is a holiday.
fn office() -> Calendar {
    Calendar::parse("mon-fri 09:00-18:00", &["2026-01-01"], 0).unwrap()
}

async fn vips_get_the_tight_sla_in_business_hours(db: Db) {
    let app = spawn_with(db, |c| c.calendar = office()).await;
    app.deliver(Role::Loyalty, vec![tier_event("v-1", "vip")]).await;
    // Opened on the holiday at 00:00: the clocks start on Friday 09:00.
    let v = app.open_case("o-1", "v-1", pb::CaseKind::Complaint, "my parcel is late").await.unwrap();
    let r = app.open_case("o-2", "r-1", pb::CaseKind::Complaint, "my parcel is late").await.unwrap();
    assert_eq!((v.tier.as_str(), r.tier.as_str()), ("vip", "unknown"));
    let (vf, rf) = (v.first_response.unwrap(), r.first_response.unwrap());
    assert_eq!((vf.target_ms, rf.target_ms), (H, 4 * H));
    let friday_9 = T0 + DAY + 9 * H;
    assert_eq!(vf.due_time, Some(timestamp(friday_9 + H)));
    assert_eq!(rf.due_time, Some(timestamp(friday_9 + 4 * H)));
    // Resolution: 16 business hours for the VIP, from Friday 09:00: 9 on Friday, 7 on Monday → Monday 16:00.
    assert_eq!(v.resolution_clock.unwrap().due_time, Some(timestamp(T0 + 4 * DAY + 16 * H)));

    // Friday 10:00 to 12:00 the regular case waits for the customer: its first answer falls due two hours later.
    app.clock.advance_ms(DAY + 10 * H);
    let w = set_waiting(&app, "w-1", &r.case_id, true).await;
    assert!(w.waiting);
    assert_eq!(w.first_response.unwrap().state(), pb::SlaState::Paused);
    app.clock.advance_ms(2 * H);
    let w = set_waiting(&app, "w-2", &r.case_id, false).await;
    let f = w.first_response.unwrap();
    assert_eq!((f.state(), f.due_time), (pb::SlaState::Running, Some(timestamp(friday_9 + 6 * H))));
    assert_eq!(f.elapsed_ms, H, "09:00-10:00 ran, 10:00-12:00 stood still");
    // Answered at 12:30: met, and the clock stops.
    app.clock.advance_ms(H / 2);
    let answered = app.respond("a-1", &r.case_id, "on it").await.unwrap().first_response.unwrap();
    assert_eq!((answered.state(), answered.elapsed_ms, answered.due_time), (pb::SlaState::Met, H + H / 2, None));
    app.stop().await;
}

async fn set_waiting(app: &crate::support::TestApp, rid: &str, case_id: &str, waiting: bool) -> pb::Case {
    app.client
        .clone()
        .set_case_waiting(pb::SetCaseWaitingRequest { request_id: rid.into(), case_id: case_id.into(), waiting })
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap()
}

async fn breaches_are_recorded_once_and_escalate(db: Db) {
    let app = spawn_with(db, |c| {
        c.calendar = Calendar::always();
        c.sla_sweep_interval = Duration::from_millis(20);
    })
    .await;
    let (other, _) = app.replica().await;
    let c = app.open_case("o-1", "c-1", pb::CaseKind::Complaint, "my parcel is late").await.unwrap();
    let events = |id: String| {
        let db = app.db.clone();
        async move {
            use rapport_feedback::entities::sla_events as e;
            use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
            e::Entity::find()
                .filter(e::Column::CaseId.eq(id))
                .order_by_asc(e::Column::Id)
                .all(&db)
                .await
                .unwrap()
                .into_iter()
                .map(|r| format!("{}:{}", r.clock, r.kind))
                .collect::<Vec<_>>()
        }
    };
    // 80 % of the 4 h first-response target: a warning.
    app.clock.advance_ms(4 * H * 8 / 10);
    eventually(30, "a warning", || async { events(c.case_id.clone()).await == ["first_response:warning"] }).await;
    // Past it: a breach, and the case escalated once, whatever the sweeps that follow.
    app.clock.advance_ms(H);
    eventually(30, "a breach", || async { events(c.case_id.clone()).await.len() == 2 }).await;
    let get = || async {
        app.client.clone().get_case(pb::GetCaseRequest { case_id: c.case_id.clone() }).await.unwrap().into_inner()
    };
    let got = get().await.case.unwrap();
    assert_eq!(got.escalation_level, 1);
    assert_eq!(got.first_response.unwrap().state(), pb::SlaState::Breached);
    // A day and a half later the resolution clock (48 h) warns too; the first-response breach is not repeated.
    app.clock.advance_ms(36 * H);
    eventually(30, "the resolution warning", || async { events(c.case_id.clone()).await.len() == 3 }).await;
    assert_eq!(
        events(c.case_id.clone()).await,
        ["first_response:warning", "first_response:breach", "resolution:warning"]
    );
    assert_eq!(get().await.case.unwrap().escalation_level, 1);
    other.stop().await;
    app.stop().await;
}

on_both!(vips_get_the_tight_sla_in_business_hours, breaches_are_recorded_once_and_escalate);
on_both!(the_policy_is_edited_and_a_late_next_answer_moves_the_case_to_the_escalation_queue);
on_both!(a_next_answer_given_late_between_sweeps_keeps_its_breach);

async fn a_next_answer_given_late_between_sweeps_keeps_its_breach(db: Db) {
    // The sweeper's rounds are an hour apart: it does not run while the test moves its clock.
    let app = spawn_with(db, |c| c.calendar = Calendar::always()).await;
    let case = app.open_case("o-1", "c-1", pb::CaseKind::Complaint, "my parcel is late").await.unwrap();
    app.respond("r-1", &case.case_id, "on its way").await.unwrap();
    let write = |rid: &str| {
        let mut c = app.client.clone();
        let req = pb::AddCustomerMessageRequest {
            request_id: rid.into(),
            case_id: case.case_id.clone(),
            text: "and?".into(),
        };
        async move { c.add_customer_message(req).await.unwrap().into_inner().case.unwrap() }
    };
    write("m-1").await;
    // Answered after 9 hours (the medium target is 8), then the customer writes again before any sweep.
    app.clock.advance_ms(9 * H);
    let late = app.respond("r-2", &case.case_id, "sorry for the wait").await.unwrap();
    assert_eq!(late.next_response.unwrap().state(), pb::SlaState::Breached);
    let again = write("m-2").await;
    assert_eq!((again.next_responses, again.next_response.unwrap().state()), (2, pb::SlaState::Running));
    assert_eq!(sla_events_of(&app, &case.case_id).await, ["next_response#1:warning", "next_response#1:breach"]);
    assert_eq!((again.escalation_level, again.queue_id.as_str()), (0, "general"), "recorded, not escalated");
    app.stop().await;
}

async fn sla_events_of(app: &crate::support::TestApp, case_id: &str) -> Vec<String> {
    use rapport_feedback::entities::sla_events as e;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    e::Entity::find()
        .filter(e::Column::CaseId.eq(case_id))
        .order_by_asc(e::Column::Id)
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| format!("{}:{}", r.clock, r.kind))
        .collect()
}

async fn the_policy_is_edited_and_a_late_next_answer_moves_the_case_to_the_escalation_queue(db: Db) {
    const MIN: i64 = 60_000;
    let app = spawn_with(db, |c| {
        c.calendar = Calendar::always();
        c.sla_sweep_interval = Duration::from_millis(20);
    })
    .await;
    let mut c = app.client.clone();
    c.put_queue(pb::PutQueueRequest {
        request_id: "q".into(),
        queue: Some(pb::Queue { queue_id: "escalations".into(), ..Default::default() }),
    })
    .await
    .unwrap();
    for (id, queue) in [("ann", "general"), ("boss", "escalations")] {
        c.put_agent(pb::PutAgentRequest {
            request_id: format!("a-{id}"),
            agent: Some(pb::Agent {
                agent_id: id.into(),
                queue_ids: vec![queue.into()],
                capacity: 5,
                online: true,
                open_cases: 0,
            }),
        })
        .await
        .unwrap();
    }
    let line = |severity: &str, tier: &str, first: i64, next: i64, resolution: i64| pb::SlaPolicyRule {
        severity: severity.into(),
        tier: tier.into(),
        first_response_ms: first,
        next_response_ms: next,
        resolution_ms: resolution,
    };
    let set = |rid: &str, policy: pb::SlaPolicy| {
        let mut c = app.client.clone();
        let rid = rid.to_string();
        async move { c.set_sla_policy(pb::SetSlaPolicyRequest { request_id: rid, policy: Some(policy) }).await }
    };
    // Refused: a queue that does not exist; lines that do not end with a catch-all or have no target.
    let nowhere = pb::SlaPolicy { rules: vec![line("*", "*", H, H, H)], escalation_queue_id: "nowhere".into() };
    let e = set("p-0", nowhere).await.unwrap_err();
    crate::support::assert_status(&e, tonic::Code::FailedPrecondition, "QUEUE_NOT_FOUND", None);
    let bad = pb::SlaPolicy { rules: vec![line("urgent", "vip", 0, H, H)], escalation_queue_id: String::new() };
    let e = set("p-1", bad).await.unwrap_err();
    for f in ["policy.rules[0].severity", "policy.rules[0].first_response_ms", "policy.rules[0]"] {
        crate::support::assert_status(&e, tonic::Code::InvalidArgument, "INVALID_ARGUMENT", Some(f));
    }
    // One hour to answer, half an hour to answer again, breaches to the escalations queue.
    let policy =
        pb::SlaPolicy { rules: vec![line("*", "*", H, 30 * MIN, 10 * H)], escalation_queue_id: "escalations".into() };
    assert_eq!(set("p-2", policy.clone()).await.unwrap().into_inner().policy.unwrap(), policy);
    assert_eq!(c.get_sla_policy(pb::GetSlaPolicyRequest {}).await.unwrap().into_inner().policy.unwrap(), policy);

    let case = app.open_case("o-1", "c-1", pb::CaseKind::Complaint, "my parcel is late").await.unwrap();
    assert_eq!(case.first_response.unwrap().target_ms, H, "the new policy's target");
    assert_eq!((case.next_response, case.next_responses), (None, 0));
    let get = || async {
        app.client
            .clone()
            .get_case(pb::GetCaseRequest { case_id: case.case_id.clone() })
            .await
            .unwrap()
            .into_inner()
            .case
            .unwrap()
    };
    eventually(30, "ann takes the case", || async { get().await.assigned_agent == "ann" }).await;
    let write = |rid: &str| {
        let mut c = app.client.clone();
        let req = pb::AddCustomerMessageRequest {
            request_id: rid.into(),
            case_id: case.case_id.clone(),
            text: "any news?".into(),
        };
        async move { c.add_customer_message(req).await.unwrap().into_inner().case.unwrap() }
    };
    // Answered in 10 minutes; the customer writes again 10 minutes later: a next-response clock of 30 minutes.
    app.clock.advance_ms(10 * MIN);
    app.respond("r-1", &case.case_id, "it left the warehouse").await.unwrap();
    app.clock.advance_ms(10 * MIN);
    let w = write("m-1").await;
    let next = w.next_response.unwrap();
    assert_eq!((next.target_ms, next.state(), w.next_responses), (30 * MIN, pb::SlaState::Running, 1));
    assert_eq!(write("m-1").await.next_responses, 1, "a retried message starts nothing more");
    // Answered in 10 minutes: met. The customer writes once more, and this time nobody answers for 31 minutes.
    app.clock.advance_ms(10 * MIN);
    let answered = app.respond("r-2", &case.case_id, "tomorrow").await.unwrap();
    assert_eq!(answered.next_response.unwrap().state(), pb::SlaState::Met);
    app.clock.advance_ms(5 * MIN);
    assert_eq!(write("m-2").await.next_responses, 2);
    app.clock.advance_ms(31 * MIN);
    eventually(30, "the breach", || async { sla_events_of(&app, &case.case_id).await.len() == 2 }).await;
    assert_eq!(sla_events_of(&app, &case.case_id).await, ["next_response#2:warning", "next_response#2:breach"]);
    // The breach escalated the case and moved it to the escalation queue, where the assigner gives it to boss.
    eventually(30, "boss takes the escalated case", || async { get().await.assigned_agent == "boss" }).await;
    let got = get().await;
    assert_eq!((got.queue_id.as_str(), got.escalation_level), ("escalations", 1));
    assert_eq!(got.next_response.unwrap().state(), pb::SlaState::Breached);
    assert_eq!(got.first_response.unwrap().state(), pb::SlaState::Met);
    app.stop().await;
}

/// The care report over cases with known times: percentiles, attainment, the half-day share, the distribution.
async fn the_care_report_adds_up(db: Db) {
    let app = spawn_with(db, |c| c.calendar = Calendar::always()).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            app.open_case(&format!("o-{i}"), &format!("c-{i}"), pb::CaseKind::Complaint, "parcel late")
                .await
                .unwrap()
                .case_id,
        );
    }
    app.clock.advance_ms(H / 2);
    app.respond("r-0", &ids[0], "on it").await.unwrap();
    app.clock.advance_ms(H + H / 2);
    app.resolve("x-0", &ids[0], "", "").await.unwrap();
    app.clock.advance_ms(H);
    app.respond("r-1", &ids[1], "on it").await.unwrap();
    app.clock.advance_ms(17 * H);
    app.respond("r-2", &ids[2], "sorry, late").await.unwrap();
    let r = app
        .client
        .clone()
        .get_care_report(pb::GetCareReportRequest {
            start_time: Some(timestamp(T0)),
            end_time: Some(timestamp(T0 + DAY)),
            group_by: pb::CareGrouping::Queue.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let o = r.overall.unwrap();
    assert_eq!((o.cases, o.answered, o.resolved), (4, 3, 1));
    assert_eq!((o.first_response_p50_ms, o.first_response_p90_ms), (3 * H, 20 * H));
    assert_eq!((o.resolution_p50_ms, o.resolution_p90_ms), (2 * H, 2 * H));
    // c-2 answered after its 4 h and c-3 not answered at all: two of four breached.
    assert_eq!((o.sla_attainment, o.within_half_day), (0.5, 0.5));
    assert_eq!(o.first_response_distribution, [1, 1, 0, 1, 0, 0, 1]);
    assert_eq!(r.groups.iter().map(|g| (g.key.as_str(), g.cases)).collect::<Vec<_>>(), [("general", 4)]);
    assert_eq!(r.target_ms, 12 * H);
    let e = app
        .client
        .clone()
        .get_care_report(pb::GetCareReportRequest { start_time: None, end_time: None, group_by: 42 })
        .await
        .unwrap_err();
    for f in ["start_time", "end_time", "group_by"] {
        crate::support::assert_status(&e, tonic::Code::InvalidArgument, "INVALID_ARGUMENT", Some(f));
    }
    app.stop().await;
}

on_both!(the_care_report_adds_up);
