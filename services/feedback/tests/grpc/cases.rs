//! Cases: opened once per request and classified with their explanation, answered (first-response time), resolved
//! (a claim needs its root cause and corrective action); the taxonomy edited and retrained, the new version used
//! by another replica; erasure; bad input.
use rapport_proto::{common::v1::Channel, feedback::v1 as pb};
use tonic::Code;

use crate::support::{Db, assert_status, kinds, on_both, spawn_app};

async fn a_complaint_from_intake_to_resolution(db: Db) {
    let app = spawn_app(db).await;
    let text = "Mon colis n'est jamais arrivé et le livreur ne répond pas";
    let c = app.open_case("o-1", "c-1", pb::CaseKind::Complaint, text).await.unwrap();
    let theme = c.theme.clone().unwrap();
    assert_eq!(theme.theme, "delivery");
    assert!(theme.keywords.contains(&"colis".to_string()), "explained by its keywords: {theme:?}");
    assert_eq!(theme.taxonomy_version, 1);
    assert_eq!((c.state(), c.severity()), (pb::CaseState::Open, pb::Severity::Medium));
    // A retry is the same case, published once.
    let again = app.open_case("o-1", "c-1", pb::CaseKind::Complaint, text).await.unwrap();
    assert_eq!(again.case_id, c.case_id);
    // Segmentation counts the complaint; the customer's words go to the improvement service only.
    assert_eq!(kinds(&app.events("segmentation").await), vec!["case"]);
    assert_eq!(kinds(&app.events("improvement").await), vec!["theme"]);
    assert!(app.events("referrals").await.iter().all(|e| kinds(std::slice::from_ref(e)) != ["theme"]));

    // The first answer sets the first-response time; a later one does not move it.
    app.clock.advance_ms(3_600_000);
    let answered = app.respond("r-1", &c.case_id, "we are looking into it").await.unwrap();
    let first = answered.first_response_time.unwrap();
    assert_eq!(first.seconds - c.create_time.unwrap().seconds, 3_600);
    app.clock.advance_ms(60_000);
    let later = app.respond("r-2", &c.case_id, "a new parcel leaves today").await.unwrap();
    assert_eq!(later.first_response_time.unwrap(), first);
    let done = app.resolve("x-1", &c.case_id, "", "").await.unwrap();
    assert_eq!(done.state(), pb::CaseState::Resolved);
    let e = app.respond("r-3", &c.case_id, "one more thing").await.unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "CASE_RESOLVED", None);

    let shown = app.client.clone().get_case(pb::GetCaseRequest { case_id: c.case_id.clone() }).await.unwrap();
    let shown = shown.into_inner().case.unwrap();
    let authors: Vec<&str> = shown.messages.iter().map(|m| m.author.as_str()).collect();
    assert_eq!(authors, vec!["customer", "t", "t"]);
    assert_eq!(shown.messages[0].text, text);
    let e = app.client.clone().get_case(pb::GetCaseRequest { case_id: "case-nope".into() }).await.unwrap_err();
    assert_status(&e, Code::NotFound, "CASE_NOT_FOUND", None);
    app.stop().await;
}

async fn a_claim_needs_its_root_cause_and_corrective_action(db: Db) {
    let app = spawn_app(db).await;
    let c = app.open_case("o-1", "c-1", pb::CaseKind::Claim, "I was charged twice for order 77").await.unwrap();
    assert_eq!(c.theme.unwrap().theme, "billing");
    let e = app.resolve("x-1", &c.case_id, "", "").await.unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "CLAIM_NEEDS_ROOT_CAUSE", Some("root_cause"));
    assert_status(&e, Code::FailedPrecondition, "CLAIM_NEEDS_ROOT_CAUSE", Some("corrective_action"));
    let e = app.resolve("x-2", &c.case_id, "payment retried by the shop", "").await.unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "CLAIM_NEEDS_ROOT_CAUSE", Some("corrective_action"));
    let done = app.resolve("x-3", &c.case_id, "payment retried by the shop", "idempotent payments").await.unwrap();
    assert_eq!((done.state(), done.root_cause.as_str()), (pb::CaseState::Resolved, "payment retried by the shop"));
    app.stop().await;
}

async fn a_retrained_taxonomy_reaches_every_replica(db: Db) {
    let app = spawn_app(db).await;
    let (other, mut oc) = app.replica().await;
    let mut c = app.client.clone();
    // The other replica has loaded version 1 already: it must notice version 2.
    let text = "vos prix sont devenus beaucoup trop cher";
    let d = oc.classify_text(pb::ClassifyTextRequest { text: text.into() }).await.unwrap().into_inner();
    assert_eq!(d.decision.unwrap().taxonomy_version, 1);
    let themes = c.list_themes(pb::ListThemesRequest {}).await.unwrap().into_inner();
    assert_eq!((themes.themes.len(), themes.taxonomy_version, themes.retrain_needed), (8, 1, false));
    let pricing = pb::Theme {
        theme_id: "pricing".into(),
        keywords: vec!["too expensive".into(), "trop cher".into(), "price".into(), "prix".into()],
        examples: vec![
            "your prices went up again, far too expensive".into(),
            "the same jacket is cheaper everywhere else".into(),
            "les prix ont augmenté de vingt pour cent".into(),
            "beaucoup trop cher pour ce que c'est".into(),
        ],
    };
    c.put_theme(pb::PutThemeRequest { request_id: "t-1".into(), theme: Some(pricing) }).await.unwrap();
    assert!(c.list_themes(pb::ListThemesRequest {}).await.unwrap().into_inner().retrain_needed);
    // Until it is retrained, cases are classified with version 1, which has no pricing theme.
    let e = app
        .client
        .clone()
        .open_case(pb::OpenCaseRequest {
            request_id: "o-1".into(),
            kind: pb::CaseKind::Complaint.into(),
            customer_id: "c-1".into(),
            channel: Channel::Web.into(),
            severity: pb::Severity::Low.into(),
            order_id: String::new(),
            text: "far too expensive".into(),
            theme: "pricing".into(),
        })
        .await
        .unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "UNKNOWN_THEME", Some("theme"));
    let r = c.train_classifier(pb::TrainClassifierRequest { request_id: "tr-1".into() }).await.unwrap().into_inner();
    assert_eq!((r.taxonomy_version, r.themes), (2, 9));
    // The other replica classifies with the new version.
    let d = oc.classify_text(pb::ClassifyTextRequest { text: text.into() }).await.unwrap().into_inner();
    let d = d.decision.unwrap();
    assert_eq!((d.theme.as_str(), d.taxonomy_version), ("pricing", 2), "{d:?}");
    assert!(!c.list_themes(pb::ListThemesRequest {}).await.unwrap().into_inner().retrain_needed);
    other.stop().await;
    app.stop().await;
}

async fn erasure_keeps_the_case_and_drops_the_words(db: Db) {
    let app = spawn_app(db).await;
    let c = app.open_case("o-1", "dana-42", pb::CaseKind::Complaint, "Dana here, my parcel is late").await.unwrap();
    app.respond("r-1", &c.case_id, "sorry Dana").await.unwrap();
    app.client
        .clone()
        .forget_customer(pb::ForgetCustomerRequest { request_id: "f-1".into(), customer_id: "dana-42".into() })
        .await
        .unwrap();
    let got = app.client.clone().get_case(pb::GetCaseRequest { case_id: c.case_id.clone() }).await.unwrap();
    let got = got.into_inner().case.unwrap();
    assert!(got.customer_id.starts_with("anon-"), "{}", got.customer_id);
    assert!(got.messages.is_empty() && got.order_id.is_empty());
    assert_eq!(got.state(), pb::CaseState::Erased);
    assert_eq!(got.theme.unwrap().theme, "delivery", "the statistics stay");
    // Closed to any change: nothing about the customer is written again.
    let e = app.respond("r-2", &c.case_id, "sorry Dana, one more thing").await.unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "CUSTOMER_ERASED", None);
    // Only the erasure waits for the improvement service: the theme signal with the words went.
    assert_eq!(kinds(&app.events("improvement").await), vec!["other"]);
    let e = app.open_case("o-2", "dana-42", pb::CaseKind::Complaint, "again").await.unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "CUSTOMER_ERASED", None);
    app.stop().await;
}

async fn cases_are_listed_newest_first_by_page_and_filter(db: Db) {
    let app = spawn_app(db).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let text = if i % 2 == 0 { "the app crashes at checkout" } else { "I am still waiting for my refund" };
        ids.push(
            app.open_case(&format!("o-{i}"), &format!("c-{i}"), pb::CaseKind::Complaint, text).await.unwrap().case_id,
        );
    }
    app.resolve("x-1", &ids[4], "", "").await.unwrap();
    let mut c = app.client.clone();
    let list = |state: pb::CaseState, theme: &str, token: String| pb::ListCasesRequest {
        state: state.into(),
        theme: theme.into(),
        customer_id: String::new(),
        page_size: 2,
        page_token: token,
    };
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let r = c.list_cases(list(pb::CaseState::Unspecified, "", token)).await.unwrap().into_inner();
        seen.extend(r.cases.into_iter().map(|c| c.case_id));
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    assert_eq!(seen, ids.iter().rev().cloned().collect::<Vec<_>>());
    let open_app = c.list_cases(list(pb::CaseState::Open, "website_app", String::new())).await.unwrap().into_inner();
    assert_eq!(
        open_app.cases.iter().map(|c| c.case_id.clone()).collect::<Vec<_>>(),
        vec![ids[2].clone(), ids[0].clone()]
    );
    // A token belongs to its query.
    let first = c.list_cases(list(pb::CaseState::Unspecified, "", String::new())).await.unwrap().into_inner();
    let e = c.list_cases(list(pb::CaseState::Open, "", first.next_page_token)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    app.stop().await;
}

async fn bad_input_names_every_field(db: Db) {
    let app = spawn_app(db).await;
    let e = app
        .client
        .clone()
        .open_case(pb::OpenCaseRequest {
            request_id: String::new(),
            kind: 9,
            customer_id: "has space".into(),
            channel: 0,
            severity: 42,
            order_id: "bad order".into(),
            text: "  ".into(),
            theme: "Not A Theme".into(),
        })
        .await
        .unwrap_err();
    for f in ["request_id", "kind", "customer_id", "channel", "severity", "order_id", "text", "theme"] {
        assert_status(&e, Code::InvalidArgument, "INVALID_ARGUMENT", Some(f));
    }
    let e = app
        .client
        .clone()
        .put_theme(pb::PutThemeRequest {
            request_id: "t-1".into(),
            theme: Some(pb::Theme { theme_id: "unclassified".into(), keywords: vec![String::new()], examples: vec![] }),
        })
        .await
        .unwrap_err();
    assert_status(&e, Code::InvalidArgument, "INVALID_ARGUMENT", Some("theme.theme_id"));
    assert_status(&e, Code::InvalidArgument, "INVALID_ARGUMENT", Some("theme.keywords[0]"));
    app.stop().await;
}

async fn a_detractors_comment_is_a_theme_signal(db: Db) {
    let app = spawn_app(db).await;
    let s = app.schedule("s-1", "c-1", "delivery").await.unwrap();
    app.answer("a-1", &s.survey_id, 2, "the parcel arrived broken and the courier was rude").await.unwrap();
    let p = app.schedule("s-2", "c-2", "delivery").await.unwrap();
    app.answer("a-2", &p.survey_id, 10, "great").await.unwrap();
    let signals: Vec<_> = app
        .events("improvement")
        .await
        .into_iter()
        .filter_map(|e| match e.payload {
            Some(rapport_proto::events::v1::event::Payload::ThemeSignal(t)) => Some((e.customer_id, t)),
            _ => None,
        })
        .collect();
    assert_eq!(signals.len(), 1, "only the detractor's comment: {signals:?}");
    assert_eq!((signals[0].0.as_str(), signals[0].1.origin.as_str()), ("c-1", "survey_comment"));
    assert_eq!(signals[0].1.reference, s.survey_id);
    app.stop().await;
}

/// A case opened while an erasure of the same customer is under way (its transaction open): the intake waits for
/// the erasure and is refused, instead of writing the customer's words under a tombstone it could not yet see.
async fn intake_during_an_erasure_waits_and_is_refused(db: Db) {
    use rapport_kit::{clock::ManualClock, db::begin_write, pseudonym::Pseudonyms};
    use rapport_outbox::Outbox;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let app = spawn_app(db).await;
    // The erasure, in a transaction this test holds open.
    let pseudonyms = Pseudonyms::development();
    let store = rapport_feedback::store::Store::new(
        app.db.clone(),
        std::sync::Arc::new(ManualClock::new(crate::support::T0)),
        Outbox::new("feedback", ["segmentation".to_string()]),
        &pseudonyms,
    );
    let txn = begin_write(&app.db).await.unwrap();
    store.forget_in(&txn, "race-1", crate::support::T0).await.unwrap();
    rapport_outbox::sink::bury(&txn, &pseudonyms, "race-1", crate::support::T0).await.unwrap();
    let a = app.client.clone();
    let mut intake = tokio::spawn(async move {
        let mut a = a;
        a.open_case(pb::OpenCaseRequest {
            request_id: "o-race".into(),
            kind: pb::CaseKind::Complaint.into(),
            customer_id: "race-1".into(),
            channel: rapport_proto::common::v1::Channel::Email.into(),
            severity: 0,
            order_id: String::new(),
            text: "race-1 here: my parcel is late".into(),
            theme: String::new(),
        })
        .await
    });
    // It must not get through while the erasure is under way (without the lock it does, at once, on PostgreSQL).
    let early = tokio::time::timeout(std::time::Duration::from_secs(2), &mut intake).await;
    assert!(early.is_err(), "the intake went through during the erasure: {early:?}");
    txn.commit().await.unwrap();
    let e = intake.await.unwrap().unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "CUSTOMER_ERASED", None);
    let cases = rapport_feedback::entities::cases::Entity::find()
        .filter(rapport_feedback::entities::cases::Column::CustomerId.eq("race-1"))
        .count(&app.db)
        .await
        .unwrap();
    assert_eq!(cases, 0);
    app.stop().await;
}

on_both!(
    a_detractors_comment_is_a_theme_signal,
    intake_during_an_erasure_waits_and_is_refused,
    a_complaint_from_intake_to_resolution,
    a_claim_needs_its_root_cause_and_corrective_action,
    a_retrained_taxonomy_reaches_every_replica,
    erasure_keeps_the_case_and_drops_the_words,
    cases_are_listed_newest_first_by_page_and_filter,
    bad_input_names_every_field,
);

/// A detractor is called back: the answer opens one follow-up case (high severity, routed), however often it is
/// retried; a passive's does not.
async fn a_detractors_answer_opens_one_follow_up(db: Db) {
    let app = spawn_app(db).await;
    let s = app.schedule("s-1", "c-1", "delivery").await.unwrap();
    let answer = || {
        let mut c = app.client.clone();
        let id = s.survey_id.clone();
        async move {
            c.record_response(pb::RecordResponseRequest {
                request_id: "a-1".into(),
                survey_id: id,
                score: 3,
                comment: "the courier threw my parcel over the fence".into(),
            })
            .await
            .unwrap()
            .into_inner()
        }
    };
    let first = answer().await;
    assert!(first.follow_up_case_id.starts_with("case-"));
    for _ in 0..3 {
        assert_eq!(answer().await.follow_up_case_id, first.follow_up_case_id);
    }
    let listed = app
        .client
        .clone()
        .list_cases(pb::ListCasesRequest { customer_id: "c-1".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .cases;
    assert_eq!(listed.len(), 1);
    let c = &listed[0];
    assert_eq!((c.kind(), c.severity()), (pb::CaseKind::FollowUp, pb::Severity::High));
    assert_eq!(c.theme.as_ref().unwrap().theme, "delivery");
    assert_eq!(c.first_response.unwrap().target_ms, 2 * 3_600_000);
    // The comment went to the improvement service once, as the survey's signal.
    let signals = kinds(&app.events("improvement").await).iter().filter(|k| **k == "theme").count();
    assert_eq!(signals, 1);
    let p = app.schedule("s-2", "c-2", "delivery").await.unwrap();
    app.answer("a-2", &p.survey_id, 7, "fine").await.unwrap();
    let none = app
        .client
        .clone()
        .list_cases(pb::ListCasesRequest { customer_id: "c-2".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .cases;
    assert!(none.is_empty());
    app.stop().await;
}

on_both!(a_detractors_answer_opens_one_follow_up);

/// After a resolved case the customer is surveyed again, whatever the waiting time, and GetNps shows how the
/// customers who complained feel now; a case not resolved yet, or another customer's, is refused.
async fn a_resolved_case_earns_a_recovery_survey(db: Db) {
    let app = spawn_app(db).await;
    let first = app.schedule("s-1", "c-1", "delivery").await.unwrap();
    app.answer("a-1", &first.survey_id, 2, "").await.unwrap();
    let case = app.open_case("o-1", "c-1", pb::CaseKind::Complaint, "my parcel is late").await.unwrap();
    let recovery = |rid: &str, customer: &str, case_id: &str| {
        let (mut c, rid, customer, case_id) =
            (app.client.clone(), rid.to_string(), customer.to_string(), case_id.to_string());
        async move {
            c.schedule_survey(pb::ScheduleSurveyRequest {
                request_id: rid,
                customer_id: customer,
                touchpoint: "after-sales".into(),
                channel: rapport_proto::common::v1::Channel::Email.into(),
                min_days_between_surveys: 0,
                valid_days: 0,
                after_case_id: case_id,
            })
            .await
            .map(|r| r.into_inner().survey.unwrap())
        }
    };
    let e = recovery("r-1", "c-1", &case.case_id).await.unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "CASE_NOT_RESOLVED", None);
    app.resolve("x-1", &case.case_id, "", "").await.unwrap();
    let e = recovery("r-2", "c-2", &case.case_id).await.unwrap_err();
    assert_status(&e, Code::NotFound, "CASE_NOT_FOUND", None);
    // The customer was surveyed today: only the recovery survey gets through.
    let e = app.schedule("s-2", "c-1", "delivery").await.unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "SURVEY_FATIGUE", None);
    let s = recovery("r-3", "c-1", &case.case_id).await.unwrap();
    assert_eq!(s.after_case_id, case.case_id);
    app.answer("a-2", &s.survey_id, 9, "much better").await.unwrap();
    let nps = app
        .client
        .clone()
        .get_nps(pb::GetNpsRequest {
            start_time: Some(rapport_kit::clock::timestamp(crate::support::T0)),
            end_time: Some(rapport_kit::clock::timestamp(crate::support::T0 + crate::support::DAY)),
            group_by: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let rec = nps.recovery.unwrap();
    assert_eq!((rec.responses, rec.promoters, rec.score), (1, 1, 100.0));
    assert_eq!(nps.overall.unwrap().responses, 2);
    app.stop().await;
}

on_both!(a_resolved_case_earns_a_recovery_survey);

on_both!(an_answer_racing_an_erasure_leaves_no_words_behind);

async fn an_answer_racing_an_erasure_leaves_no_words_behind(db: Db) {
    use rapport_feedback::entities::case_messages;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let app = spawn_app(db).await;
    for i in 0..6 {
        let customer = format!("eve-{i}");
        let case =
            app.open_case(&format!("o-{i}"), &customer, pb::CaseKind::Complaint, "my parcel is late").await.unwrap();
        let mut c = app.client.clone();
        let forget =
            c.forget_customer(pb::ForgetCustomerRequest { request_id: format!("f-{i}"), customer_id: customer });
        let rid = format!("r-{i}");
        let (answer, forgot) = tokio::join!(app.respond(&rid, &case.case_id, "a new parcel leaves today"), forget);
        forgot.unwrap();
        // Either the answer came first and went with the erasure, or it came after and found the case erased.
        if let Err(e) = answer {
            assert_status(&e, Code::FailedPrecondition, "CUSTOMER_ERASED", None);
        }
        let left = case_messages::Entity::find()
            .filter(case_messages::Column::CaseId.eq(case.case_id.as_str()))
            .count(&app.db)
            .await
            .unwrap();
        assert_eq!(left, 0, "round {i}: words left on an erased case");
    }
    app.stop().await;
}
