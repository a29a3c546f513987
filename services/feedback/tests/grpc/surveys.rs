//! Surveys: scheduling with anti-fatigue, answers recorded once with their events, refusals with their reasons.
use rapport_proto::{common::v1::Channel, feedback::v1 as pb};
use tonic::Code;

use crate::support::*;

on_both!(
    fatigue_keeps_customers_from_being_surveyed_too_often,
    answers_are_recorded_once_and_published,
    refusals_name_their_reason,
    erasure_keeps_the_score_and_drops_the_person
);

async fn fatigue_keeps_customers_from_being_surveyed_too_often(db: Db) {
    let app = spawn_app(db).await;
    let first = app.schedule("s-1", "c-1", "delivery").await.unwrap();
    assert_eq!(first.state(), pb::SurveyState::Scheduled);
    assert_eq!(first.question, "Would you recommend us to a friend or relative?");
    // The same request again: the same survey, nothing new.
    assert_eq!(app.schedule("s-1", "c-1", "delivery").await.unwrap().survey_id, first.survey_id);
    // Another survey within 7 days is refused with the time it is allowed from.
    app.clock.advance_days(6);
    let e = app.schedule("s-2", "c-1", "after-sales").await.unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "SURVEY_FATIGUE", None);
    assert!(e.message().contains("2026-01-08T00:00:00"), "{}", e.message());
    // Another customer is not affected; a shorter waiting time for this survey lets it through.
    app.schedule("s-3", "c-2", "after-sales").await.unwrap();
    app.schedule_with("s-4", "c-1", "after-sales", Channel::Phone, 5).await.unwrap();
    // After the waiting time, surveys are allowed again.
    app.clock.advance_days(7);
    app.schedule("s-5", "c-1", "delivery").await.unwrap();
    app.stop().await;
}

async fn answers_are_recorded_once_and_published(db: Db) {
    let app = spawn_app(db).await;
    let promoter = app.schedule("s-1", "c-1", "delivery").await.unwrap();
    let detractor = app.schedule("s-2", "c-2", "delivery").await.unwrap();
    app.clock.advance_ms(3_600_000);
    let answered = app.answer("a-1", &promoter.survey_id, 9, "quick and kind").await.unwrap();
    assert_eq!(answered.state(), pb::SurveyState::Answered);
    let a = answered.answer.clone().unwrap();
    assert_eq!((a.score, a.class(), a.comment.as_str()), (9, pb::NpsClass::Promoter, "quick and kind"));
    // A retry (even three times) returns the same answer and publishes nothing more.
    for _ in 0..3 {
        assert_eq!(app.answer("a-1", &promoter.survey_id, 9, "quick and kind").await.unwrap(), answered);
    }
    app.answer("a-2", &detractor.survey_id, 4, "").await.unwrap();
    // Segmentation gets every answer (and the detractor's follow-up case); referrals gets them and the promoter,
    // waiting until it exists.
    assert_eq!(kinds(&app.events("segmentation").await), ["answered", "promoter", "answered", "case"]);
    let to_referrals = app.events("referrals").await;
    assert_eq!(kinds(&to_referrals), ["answered", "promoter", "answered"]);
    assert_eq!(to_referrals[1].customer_id, "c-1");
    // Reading the survey shows the answer.
    let got = app
        .client
        .clone()
        .get_survey(pb::GetSurveyRequest { survey_id: promoter.survey_id.clone() })
        .await
        .unwrap()
        .into_inner()
        .survey
        .unwrap();
    assert_eq!(got, answered);
    app.stop().await;
}

async fn refusals_name_their_reason(db: Db) {
    let app = spawn_app(db).await;
    let s = app.schedule("s-1", "c-1", "delivery").await.unwrap();
    app.answer("a-1", &s.survey_id, 10, "").await.unwrap();
    // Answered by another request.
    let e = app.answer("a-2", &s.survey_id, 3, "").await.unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "SURVEY_ANSWERED", None);
    // The same request id with another score.
    let e = app.answer("a-1", &s.survey_id, 3, "").await.unwrap_err();
    assert_status(&e, Code::AlreadyExists, "REQUEST_ID_REUSED", None);
    // Unknown, then expired (14 days by default).
    let e = app.answer("a-3", "srv-nope", 3, "").await.unwrap_err();
    assert_status(&e, Code::NotFound, "SURVEY_NOT_FOUND", None);
    let late = app.schedule("s-2", "c-2", "delivery").await.unwrap();
    app.clock.advance_days(14);
    let e = app.answer("a-4", &late.survey_id, 8, "").await.unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "SURVEY_EXPIRED", None);
    let got = app.client.clone().get_survey(pb::GetSurveyRequest { survey_id: late.survey_id }).await.unwrap();
    assert_eq!(got.into_inner().survey.unwrap().state(), pb::SurveyState::Expired);
    // Bad input: every field at fault named.
    let e = app.answer("", "has space", 11, "").await.unwrap_err();
    assert_status(&e, Code::InvalidArgument, "INVALID_ARGUMENT", Some("score"));
    assert_status(&e, Code::InvalidArgument, "INVALID_ARGUMENT", Some("survey_id"));
    assert_status(&e, Code::InvalidArgument, "INVALID_ARGUMENT", Some("request_id"));
    let e = app.schedule_with("s-9", "c-9", "", Channel::Unspecified, -1).await.unwrap_err();
    for f in ["touchpoint", "channel", "min_days_between_surveys"] {
        assert_status(&e, Code::InvalidArgument, "INVALID_ARGUMENT", Some(f));
    }
    app.stop().await;
}

async fn erasure_keeps_the_score_and_drops_the_person(db: Db) {
    let app = spawn_app(db).await;
    let s = app.schedule("s-1", "dana-42", "delivery").await.unwrap();
    app.answer("a-1", &s.survey_id, 3, "Dana here, call me").await.unwrap();
    let r = app
        .client
        .clone()
        .forget_customer(pb::ForgetCustomerRequest { request_id: "f-1".into(), customer_id: "dana-42".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.anonymised_surveys, 1);
    let got = app.client.clone().get_survey(pb::GetSurveyRequest { survey_id: s.survey_id.clone() }).await.unwrap();
    let got = got.into_inner().survey.unwrap();
    assert!(got.customer_id.starts_with("anon-"), "{}", got.customer_id);
    assert_eq!(got.answer.as_ref().map(|a| (a.score, a.comment.as_str())), Some((3, "")));
    // A retry of the answer: its stored reply went with the customer.
    let e = app.answer("a-1", &s.survey_id, 3, "Dana here, call me").await.unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "CUSTOMER_ERASED", None);
    // Nothing new is taken about the customer.
    let e = app.schedule("s-2", "dana-42", "delivery").await.unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "CUSTOMER_ERASED", None);
    // The erasure waits for segmentation; the answer it had not received yet is gone.
    assert_eq!(app.events("segmentation").await.len(), 1);
    app.stop().await;
}
