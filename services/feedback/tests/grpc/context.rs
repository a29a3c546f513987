//! The customer in front of an agent, feedback alone: its own cases and answers, the parts of services it has no
//! address for marked "not deployed", suggestions only from facts it has; the action rules are validated field by
//! field and replaced idempotently.
use rapport_proto::feedback::v1 as pb;
use tonic::Code;

use crate::support::{Db, TestApp, assert_status, on_both, spawn_app};

on_both!(a_detractor_waiting_on_a_case_is_called_back_without_any_other_service);
on_both!(action_rules_are_validated_and_replaced_once);
on_both!(a_silent_loyalty_is_waited_for_within_the_callers_deadline_only);
on_both!(an_erased_customer_has_no_context);

async fn a_silent_loyalty_is_waited_for_within_the_callers_deadline_only(db: Db) {
    // Loyalty "listens" but never answers: only the deadline ends the wait for its part.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = silent.local_addr().unwrap();
    let app = crate::support::spawn_with(db, |c| {
        c.loyalty_url = Some(format!("http://{nowhere}"));
        c.context_wait = std::time::Duration::from_secs(10);
    })
    .await;
    let s = app.schedule("s-1", "ann", "delivery").await.unwrap();
    app.answer("a-1", &s.survey_id, 2, "late again").await.unwrap();
    let deadline = std::time::Duration::from_millis(600);
    let mut req = tonic::Request::new(pb::GetCustomerContextRequest { customer_id: "ann".into() });
    req.set_timeout(deadline);
    let started = std::time::Instant::now();
    let c = app.client.clone().get_customer_context(req).await.expect("an answer, not DEADLINE_EXCEEDED").into_inner();
    assert!(started.elapsed() < deadline, "answered in {:?}", started.elapsed());
    let a = c.loyalty.unwrap().availability.unwrap();
    assert_eq!((a.available, a.reason.as_str()), (false, "deadline exceeded"));
    // What feedback holds itself is there, and the callback rests on it alone.
    assert_eq!(c.open_cases.len(), 1, "the follow-up of the detractor's answer");
    assert_eq!(c.suggestions.iter().map(|s| s.rule_id.as_str()).collect::<Vec<_>>(), ["callback_today"]);
    drop(silent);
    app.stop().await;
}

async fn an_erased_customer_has_no_context(db: Db) {
    let app = spawn_app(db).await;
    let case = app.open_case("c-1", "eve", pb::CaseKind::Complaint, "my parcel never arrived").await.unwrap();
    app.client
        .clone()
        .forget_customer(pb::ForgetCustomerRequest { request_id: "f-1".into(), customer_id: "eve".into() })
        .await
        .unwrap();
    let ask = |id: String| {
        let mut c = app.client.clone();
        async move { c.get_customer_context(pb::GetCustomerContextRequest { customer_id: id }).await }
    };
    let e = ask("eve".into()).await.unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "CUSTOMER_ERASED", None);
    // Nor by the pseudonym her kept records are filed under.
    let kept = app.client.clone().get_case(pb::GetCaseRequest { case_id: case.case_id }).await.unwrap();
    let pseudonym = kept.into_inner().case.unwrap().customer_id;
    let e = ask(pseudonym).await.unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "CUSTOMER_ERASED", None);
    app.stop().await;
}

async fn context(app: &TestApp, customer: &str) -> pb::GetCustomerContextResponse {
    app.client
        .clone()
        .get_customer_context(pb::GetCustomerContextRequest { customer_id: customer.into() })
        .await
        .unwrap()
        .into_inner()
}

async fn a_detractor_waiting_on_a_case_is_called_back_without_any_other_service(db: Db) {
    let app = spawn_app(db).await;
    let c = context(&app, "ann").await;
    assert!(c.open_cases.is_empty() && c.nps_history.is_empty() && c.suggestions.is_empty());
    for part in
        [c.loyalty.unwrap().availability, c.segmentation.unwrap().availability, c.referrals.unwrap().availability]
    {
        let a = part.unwrap();
        assert_eq!((a.available, a.reason.as_str()), (false, "not deployed"));
    }
    assert_eq!(c.facts["nps.class"], "none");
    assert_eq!(c.facts["loyalty.tier"], "unknown");

    // A passive with an open complaint: no callback yet.
    let s = app.schedule("s-1", "ann", "delivery").await.unwrap();
    app.answer("a-1", &s.survey_id, 7, "").await.unwrap();
    let case = app.open_case("c-1", "ann", pb::CaseKind::Complaint, "my parcel never arrived").await.unwrap();
    let c = context(&app, "ann").await;
    assert_eq!(c.facts["nps.class"], "passive");
    assert_eq!(c.open_cases.len(), 1);
    assert!(c.suggestions.is_empty(), "{:?}", c.suggestions);

    // Her next answer is a 2: a detractor with open cases (the complaint and the follow-up) is called back today.
    app.clock.advance_days(8);
    let s = app.schedule("s-2", "ann", "support").await.unwrap();
    app.answer("a-2", &s.survey_id, 2, "still nothing").await.unwrap();
    let c = context(&app, "ann").await;
    assert_eq!(c.nps_history.len(), 2);
    assert_eq!(c.nps_history[0].answer.as_ref().unwrap().score, 2, "newest first");
    assert_eq!(c.open_cases.len(), 2);
    assert_eq!(c.suggestions.len(), 1);
    let s = &c.suggestions[0];
    assert_eq!((s.rule_id.as_str(), s.action.as_str()), ("callback_today", "call back today"));
    let facts: Vec<(&str, &str, &str)> =
        s.facts.iter().map(|f| (f.name.as_str(), f.value.as_str(), f.condition.as_str())).collect();
    assert_eq!(facts, [("nps.class", "detractor", "nps.class = detractor"), ("cases.open", "2", "cases.open ≥ 1")]);

    // Both resolved: nothing to call back about.
    for (i, case) in c.open_cases.iter().enumerate() {
        app.resolve(&format!("r-{i}"), &case.case_id, "", "").await.unwrap();
    }
    let c = context(&app, "ann").await;
    assert!(c.open_cases.is_empty() && c.suggestions.is_empty());
    assert_eq!(c.recent_cases.len(), 2);
    assert_eq!(c.facts["cases.recent"], "2");
    assert!(c.recent_cases.iter().any(|x| x.case_id == case.case_id));

    let e = app
        .client
        .clone()
        .get_customer_context(pb::GetCustomerContextRequest { customer_id: String::new() })
        .await
        .unwrap_err();
    assert_status(&e, Code::InvalidArgument, "INVALID_ARGUMENT", Some("customer_id"));
    app.stop().await;
}

fn condition(fact: &str, op: pb::ActionOp, value: &str) -> pb::ActionCondition {
    pb::ActionCondition { fact: fact.into(), op: op.into(), value: value.into() }
}

async fn action_rules_are_validated_and_replaced_once(db: Db) {
    let app = spawn_app(db).await;
    let listed = app.client.clone().list_action_rules(pb::ListActionRulesRequest {}).await.unwrap().into_inner();
    let ids: Vec<&str> = listed.rules.iter().map(|r| r.rule_id.as_str()).collect();
    assert_eq!(ids, ["callback_today", "retention_offer", "ambassador_invitation", "win_back_offer"], "the defaults");
    assert!(listed.facts.iter().any(|f| f.name == "loyalty.tier_drops_at_period_end"));

    let set = |rid: &str, rules: Vec<pb::ActionRule>| {
        let mut c = app.client.clone();
        let rid = rid.to_string();
        async move { c.set_action_rules(pb::SetActionRulesRequest { request_id: rid, rules }).await }
    };
    let rule = |id: &str, conditions: Vec<pb::ActionCondition>| pb::ActionRule {
        rule_id: id.into(),
        action: "call back".into(),
        description: String::new(),
        conditions,
    };
    for (bad, field) in [
        (rule("x", vec![condition("mood", pb::ActionOp::Eq, "sad")]), "rules[0].conditions[0].fact"),
        (rule("x", vec![condition("cases.open", pb::ActionOp::Gte, "many")]), "rules[0].conditions[0].value"),
        (rule("x", vec![condition("cases.open", pb::ActionOp::Unspecified, "1")]), "rules[0].conditions[0].op"),
        (rule("x", vec![]), "rules[0].conditions"),
        (rule("", vec![condition("cases.open", pb::ActionOp::Gte, "1")]), "rules[0].rule_id"),
    ] {
        let e = set("bad", vec![bad]).await.unwrap_err();
        assert_status(&e, Code::InvalidArgument, "INVALID_ARGUMENT", Some(field));
    }
    let ok = rule("busy", vec![condition("cases.open", pb::ActionOp::Gte, "3")]);
    let e = set("dup", vec![ok.clone(), ok.clone()]).await.unwrap_err();
    assert_status(&e, Code::InvalidArgument, "INVALID_ARGUMENT", Some("rules[1].rule_id"));

    let stored = set("r-1", vec![ok.clone()]).await.unwrap().into_inner();
    assert_eq!(stored.rules, std::slice::from_ref(&ok));
    // The same request again is the same answer; the request id with other rules is refused.
    assert_eq!(set("r-1", vec![ok.clone()]).await.unwrap().into_inner(), stored);
    let e = set("r-1", vec![]).await.unwrap_err();
    assert_status(&e, Code::AlreadyExists, "REQUEST_ID_REUSED", None);
    let listed = app.client.clone().list_action_rules(pb::ListActionRulesRequest {}).await.unwrap().into_inner();
    assert_eq!(listed.rules, [ok]);
    app.stop().await;
}
