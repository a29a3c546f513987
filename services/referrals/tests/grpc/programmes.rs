//! Programmes (versions kept by referrals), codes (generated, vanity, one per customer), ambassadors (once per
//! customer, from a person or a promoter's answer) and review invitations.
use rapport_kit::auth::Role;
use rapport_proto::{
    events::v1::{Event, PromoterIdentified, event::Payload},
    referrals::v1 as pb,
};
use tonic::Code;

use crate::support::*;

on_both!(
    programmes_are_versioned_and_referrals_keep_theirs,
    bad_rules_name_every_field,
    codes_are_readable_unique_and_one_per_customer,
    promoters_become_ambassadors_once
);

async fn programmes_are_versioned_and_referrals_keep_theirs(db: Db) {
    let app = spawn_app(db).await;
    let mkt = app.as_role(Role::Marketing);
    let p = app.programme("spring", rules(pb::QualifyingEvent::FirstPurchase, 14)).await.unwrap();
    assert_eq!(p.version, 1);
    let e = app
        .as_role(Role::Sre)
        .create_programme(pb::CreateProgrammeRequest {
            request_id: "other".into(),
            programme_id: "spring".into(),
            rules: Some(rules(pb::QualifyingEvent::SignUp, 0)),
        })
        .await
        .unwrap_err();
    assert_status(&e, Code::AlreadyExists, "PROGRAMME_EXISTS", None);
    let code = app.code("amb-1", "spring", "").await.unwrap();
    let made = app.signup(&code.code, "ref-1", None).await.unwrap();
    assert_eq!(made.programme_version, 1);
    let mut v2 = rules(pb::QualifyingEvent::FirstPurchase, 14);
    v2.referrer_reward = Some(pb::Reward { points: 900, share_bps: 0 });
    let updated = mkt
        .clone()
        .update_programme(pb::UpdateProgrammeRequest {
            request_id: "u-1".into(),
            programme_id: "spring".into(),
            rules: Some(v2),
        })
        .await
        .unwrap()
        .into_inner()
        .programme
        .unwrap();
    assert_eq!(updated.version, 2);
    let later = app.signup(&code.code, "ref-2", None).await.unwrap();
    assert_eq!(later.programme_version, 2);
    assert_eq!(app.referral(&made.referral_id).await.programme_version, 1, "a referral keeps its version");
    let get = |version| {
        let mut c = mkt.clone();
        async move {
            c.get_programme(pb::GetProgrammeRequest { programme_id: "spring".into(), version })
                .await
                .map(|r| r.into_inner().programme.unwrap())
        }
    };
    assert_eq!(get(0).await.unwrap().rules.unwrap().referrer_reward.unwrap().points, 900);
    assert_eq!(get(1).await.unwrap().rules.unwrap().referrer_reward.unwrap().points, 500);
    assert_status(&get(3).await.unwrap_err(), Code::NotFound, "PROGRAMME_NOT_FOUND", None);
    let all = mkt.clone().list_programmes(pb::ListProgrammesRequest {}).await.unwrap().into_inner().programmes;
    let ids: Vec<(String, i32)> = all.iter().map(|p| (p.programme_id.clone(), p.version)).collect();
    assert_eq!(ids, [("default".to_string(), 1), ("spring".to_string(), 2)]);
    app.stop().await;
}

async fn bad_rules_name_every_field(db: Db) {
    let app = spawn_app(db).await;
    let mut r = rules(pb::QualifyingEvent::MinOrderValue, 400);
    r.name = " ".into();
    r.attribution_window_days = 0;
    r.flag_threshold = 1.5;
    r.referee_reward = Some(pb::Reward { points: -1, share_bps: 20_000 });
    r.milestones = vec![pb::Milestone { count: 5, bonus_points: 10 }, pb::Milestone { count: 5, bonus_points: 20 }];
    let e = app.programme("Bad Id", r).await.unwrap_err();
    for field in [
        "programme_id",
        "rules.name",
        "rules.min_order",
        "rules.attribution_window_days",
        "rules.approval_delay_days",
        "rules.flag_threshold",
        "rules.referee_reward.points",
        "rules.referee_reward.share_bps",
        "rules.milestones[1].count",
    ] {
        assert_status(&e, Code::InvalidArgument, "INVALID_ARGUMENT", Some(field));
    }
    let e = app
        .as_role(Role::Marketing)
        .update_programme(pb::UpdateProgrammeRequest {
            request_id: "u".into(),
            programme_id: "nope".into(),
            rules: Some(rules(pb::QualifyingEvent::SignUp, 0)),
        })
        .await
        .unwrap_err();
    assert_status(&e, Code::NotFound, "PROGRAMME_NOT_FOUND", None);
    app.stop().await;
}

async fn codes_are_readable_unique_and_one_per_customer(db: Db) {
    let app = spawn_app(db).await;
    let generated = app.code("amb-1", "default", "").await.unwrap();
    assert_eq!(generated.code.len(), 11);
    assert_eq!(&generated.code[5..6], "-");
    assert!(!generated.code.contains(['I', 'L', 'O', 'U']), "{}", generated.code);
    // The same request again: the same code.
    assert_eq!(app.code("amb-1", "default", "").await.unwrap().code, generated.code);
    let e = app.code("amb-1", "default", "ALICE").await.unwrap_err();
    assert_status(&e, Code::AlreadyExists, "CUSTOMER_HAS_CODE", None);
    let vanity = app.code("amb-2", "default", "Bob-2026").await.unwrap();
    assert!(vanity.vanity);
    let e = app.code("amb-3", "default", "bob-2026").await.unwrap_err();
    assert_status(&e, Code::AlreadyExists, "CODE_TAKEN", None);
    let e = app.code("amb-4", "default", "b!").await.unwrap_err();
    assert_status(&e, Code::InvalidArgument, "INVALID_ARGUMENT", Some("vanity"));
    // Found in any case.
    let found = app.client.clone().get_code(pb::GetCodeRequest { code: "bob-2026".into() }).await.unwrap();
    assert_eq!(found.into_inner().code.unwrap().customer_id, "amb-2");
    let e = app.client.clone().get_code(pb::GetCodeRequest { code: "NOPE-NOPE".into() }).await.unwrap_err();
    assert_status(&e, Code::NotFound, "CODE_NOT_FOUND", None);
    app.stop().await;
}

fn promoter(id: &str, customer: &str) -> Event {
    Event {
        event_id: id.into(),
        source: "feedback".into(),
        customer_id: customer.into(),
        occurred_at: Some(rapport_kit::clock::timestamp(T0)),
        traceparent: String::new(),
        payload: Some(Payload::PromoterIdentified(PromoterIdentified { survey_id: "s".into(), score: 10 })),
    }
}

async fn promoters_become_ambassadors_once(db: Db) {
    let app = spawn_app(db).await;
    // Feedback delivers two answers of the same promoter (two surveys): one invitation.
    let sink = |events| {
        let ch = rapport_kit::client::channel(
            &format!("http://{}", app.client_addr()),
            rapport_kit::client::Outgoing::new(
                Some(app.auth.issue("feedback", Role::Feedback, 600).unwrap()),
                std::time::Duration::from_secs(30),
            ),
        )
        .unwrap();
        async move {
            rapport_proto::events::v1::event_sink_service_client::EventSinkServiceClient::new(ch)
                .deliver_events(rapport_proto::events::v1::DeliverEventsRequest { events })
                .await
                .unwrap()
        }
    };
    sink(vec![promoter("e-1", "fan-1")]).await;
    app.clock.advance_days(1);
    sink(vec![promoter("e-2", "fan-1")]).await;
    let enrol = |rid: &str, site: &str| {
        let mut c = app.client.clone();
        let req = pb::EnrolAmbassadorRequest {
            request_id: rid.into(),
            customer_id: "fan-1".into(),
            programme_id: "default".into(),
            source: pb::AmbassadorSource::Manual.into(),
            review_site: site.into(),
            signals: None,
        };
        async move { c.enrol_ambassador(req).await.map(|r| r.into_inner()) }
    };
    let again = enrol("m-1", "").await.unwrap();
    assert!(!again.created, "the promoter was invited already");
    let a = again.ambassador.unwrap();
    assert_eq!(a.source(), pb::AmbassadorSource::Promoter);
    assert_eq!(a.invited_at.unwrap().seconds * 1000, T0, "the first invitation stands");
    // No review invitation went with the promoter's: its outcome cannot be recorded until one is sent.
    let review = |outcome: pb::ReviewOutcome, rating| {
        let mut c = app.client.clone();
        let req = pb::RecordReviewOutcomeRequest {
            request_id: format!("r-{rating}"),
            customer_id: "fan-1".into(),
            programme_id: "default".into(),
            outcome: outcome.into(),
            rating,
        };
        async move { c.record_review_outcome(req).await.map(|r| r.into_inner().ambassador.unwrap()) }
    };
    assert_status(
        &review(pb::ReviewOutcome::Posted, 5).await.unwrap_err(),
        Code::FailedPrecondition,
        "NO_REVIEW_INVITATION",
        None,
    );
    let invited = enrol("m-3", "trustpilot").await.unwrap();
    assert!(!invited.created);
    assert_eq!(invited.ambassador.unwrap().review_site, "trustpilot", "a later review invitation is recorded");
    let declined = review(pb::ReviewOutcome::Declined, 0).await.unwrap();
    assert_eq!(declined.review_outcome(), pb::ReviewOutcome::Declined);
    // A manual invitation with a review site, for another customer.
    let mut c = app.client.clone();
    let fresh = c
        .enrol_ambassador(pb::EnrolAmbassadorRequest {
            request_id: "m-2".into(),
            customer_id: "fan-2".into(),
            programme_id: "default".into(),
            source: pb::AmbassadorSource::Manual.into(),
            review_site: "trustpilot".into(),
            signals: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(fresh.created);
    let posted = c
        .record_review_outcome(pb::RecordReviewOutcomeRequest {
            request_id: "rv".into(),
            customer_id: "fan-2".into(),
            programme_id: "default".into(),
            outcome: pb::ReviewOutcome::Posted.into(),
            rating: 5,
        })
        .await
        .unwrap()
        .into_inner()
        .ambassador
        .unwrap();
    assert_eq!((posted.review_outcome(), posted.review_rating), (pb::ReviewOutcome::Posted, 5));
    app.stop().await;
}
