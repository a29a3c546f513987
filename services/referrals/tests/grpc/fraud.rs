//! Screening and refusals: every refusal with its code and reason, the signals and their weights, and a burst of
//! sign-ups from one fingerprint throttled and flagged with exact counts.
use rapport_kit::{auth::Role, clock::timestamp};
use rapport_proto::referrals::v1 as pb;
use tonic::Code;

use crate::support::*;

on_both!(
    every_refusal_names_its_reason,
    signals_fire_with_their_weights,
    one_referee_signing_up_at_once_through_many_codes_is_referred_once,
    a_burst_from_one_fingerprint_is_throttled_flagged_and_paid_nothing
);

async fn every_refusal_names_its_reason(db: Db) {
    let app = spawn_app(db).await;
    let mut r = rules(pb::QualifyingEvent::FirstPurchase, 14);
    r.active_until = Some(timestamp(T0 + 100 * DAY));
    app.programme("friends", r).await.unwrap();
    let code = app.code_with("amb-1", "friends", "", 1, Some(T0 + 10 * DAY), None).await.unwrap();
    let e = app.signup("NOPE0-NOPE0", "new-1", None).await.unwrap_err();
    assert_status(&e, Code::NotFound, "CODE_NOT_FOUND", None);
    let e = app.signup(&code.code, "amb-1", None).await.unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "SELF_REFERRAL", None);
    let late = pb::Signals { first_seen_at: Some(timestamp(T0 - 31 * DAY)), ..Default::default() };
    let e = app.signup(&code.code, "new-1", Some(late)).await.unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "ATTRIBUTION_EXPIRED", None);
    app.signup(&code.code, "new-1", None).await.unwrap();
    let e = app.signup(&code.code, "new-2", None).await.unwrap_err();
    assert_status(&e, Code::ResourceExhausted, "CODE_USAGE_LIMIT", None);
    let other = app.code("amb-2", "friends", "").await.unwrap();
    let e = app.signup(&other.code, "new-1", None).await.unwrap_err();
    assert_status(&e, Code::AlreadyExists, "DUPLICATE_REFEREE", None);
    app.clock.advance_days(11);
    let limited = app.code_with("amb-3", "friends", "", 0, Some(T0 + 5 * DAY), None).await;
    assert_status(&limited.unwrap_err(), Code::InvalidArgument, "INVALID_ARGUMENT", Some("valid_until"));
    let e = app.signup(&code.code, "new-3", None).await.unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "CODE_EXPIRED", None);
    // A day limit: 3 sign-ups a day, spread over hours.
    let mut busy = rules(pb::QualifyingEvent::FirstPurchase, 14);
    busy.limits = Some(pb::Limits { max_signups_per_day: 3, ..Default::default() });
    app.programme("busy", busy).await.unwrap();
    let daily = app.code("amb-6", "busy", "").await.unwrap();
    for i in 0..3 {
        app.signup(&daily.code, &format!("day-{i}"), None).await.unwrap();
        app.clock.advance_ms(2 * 3_600_000);
    }
    let e = app.signup(&daily.code, "day-3", None).await.unwrap_err();
    assert_status(&e, Code::ResourceExhausted, "VELOCITY_LIMIT", None);
    assert!(e.message().contains("day"), "{}", e.message());
    app.clock.advance_days(100);
    let e = app.signup(&other.code, "new-4", None).await.unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "PROGRAMME_NOT_ACTIVE", None);
    // Erased customers: a referee, and the owner of a code.
    let forget = |who: &str| {
        let mut c = app.client.clone();
        let req = pb::ForgetCustomerRequest { request_id: format!("f-{who}"), customer_id: who.into() };
        async move { c.forget_customer(req).await.unwrap() }
    };
    let open = app.code("amb-5", "default", "").await.unwrap();
    forget("gone-1").await;
    let e = app.signup(&open.code, "gone-1", None).await.unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "CUSTOMER_ERASED", None);
    forget("amb-5").await;
    let e = app.signup(&open.code, "new-5", None).await.unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "CODE_OWNER_ERASED", None);
    let e = app.client.clone().get_code(pb::GetCodeRequest { code: open.code.clone() }).await.unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "CODE_OWNER_ERASED", None);
    // Bad input names its fields.
    let bad = pb::Signals { email: "not-an-address".into(), device_hash: "xyz".into(), ..Default::default() };
    let e = app.signup("", "", Some(bad)).await.unwrap_err();
    for f in ["code", "referee_id", "signals.email", "signals.device_hash"] {
        assert_status(&e, Code::InvalidArgument, "INVALID_ARGUMENT", Some(f));
    }
    app.stop().await;
}

async fn signals_fire_with_their_weights(db: Db) {
    let app = spawn_app(db).await;
    app.programme("friends", rules(pb::QualifyingEvent::FirstPurchase, 14)).await.unwrap();
    let own = pb::Signals { email: "John.Doe+promo@gmail.com".into(), ..Default::default() };
    let code = app.code_with("amb-1", "friends", "", 0, None, Some(own)).await.unwrap();
    // The same mailbox once normalised.
    let same = pb::Signals { email: "johndoe@googlemail.com".into(), ..Default::default() };
    let r = app.signup(&code.code, "new-1", Some(same)).await.unwrap();
    assert_eq!(r.state(), pb::ReferralState::Flagged);
    assert_eq!(r.signals.iter().map(|s| (s.name.as_str(), s.weight)).collect::<Vec<_>>(), [("same_email", 1.0)]);
    // A blocked payment instrument.
    let pay = format!("{:0>32}", "bad");
    let mut c = app.client.clone();
    let list = c
        .set_block_list(pb::SetBlockListRequest {
            request_id: "bl-1".into(),
            block_list: Some(pb::BlockList { payment_hashes: vec![pay.clone()], ..Default::default() }),
            emails: vec!["fraud@example.com".into()],
        })
        .await
        .unwrap()
        .into_inner()
        .block_list
        .unwrap();
    assert_eq!(list.payment_hashes, std::slice::from_ref(&pay));
    assert_eq!(list.email_hashes.len(), 1, "e-mails are kept as hashes");
    assert!(!list.email_hashes[0].contains("example"));
    let r =
        app.signup(&code.code, "new-2", Some(pb::Signals { payment_hash: pay, ..Default::default() })).await.unwrap();
    assert_eq!(r.state(), pb::ReferralState::Flagged);
    assert_eq!(r.signals[0].name, "blocked");
    assert!(r.signals[0].detail.contains("payment"), "{}", r.signals[0].detail);
    let r = app
        .signup(&code.code, "new-3", Some(pb::Signals { email: "Fraud@Example.com".into(), ..Default::default() }))
        .await
        .unwrap();
    assert_eq!(r.signals[0].name, "blocked");
    // A clean sign-up is pending with no signal.
    let r = app.signup(&code.code, "new-4", device("c4")).await.unwrap();
    assert_eq!((r.state(), r.signals.len()), (pb::ReferralState::Pending, 0));
    app.stop().await;
}

async fn a_burst_from_one_fingerprint_is_throttled_flagged_and_paid_nothing(db: Db) {
    let app = spawn_with_loyalty(db).await;
    app.programme("friends", rules(pb::QualifyingEvent::FirstPurchase, 0)).await.unwrap();
    // A fraudster's own account and device bring 1,000 "friends" in one go.
    let code = app.code_with("amb-x", "friends", "", 0, None, device("f00d")).await.unwrap();
    let (mut flagged, mut throttled, mut other) = (Vec::new(), 0, 0);
    for i in 0..1_000 {
        match app.signup(&code.code, &format!("bot-{i}"), device("f00d")).await {
            Ok(r) if r.state() == pb::ReferralState::Flagged => flagged.push(r),
            Err(e) if e.code() == Code::ResourceExhausted => {
                assert_status(&e, Code::ResourceExhausted, "VELOCITY_LIMIT", None);
                throttled += 1;
            }
            _ => other += 1,
        }
    }
    // The default limit of 20 sign-ups per code per hour: 20 made, every one flagged, 980 refused.
    assert_eq!((flagged.len(), throttled, other), (20, 980, 0));
    let names = |r: &pb::Referral| r.signals.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&flagged[0]), ["same_device"]);
    assert_eq!(names(&flagged[1]), ["same_device", "device_reused"]);
    assert_eq!(names(&flagged[19]), ["same_device", "device_reused", "velocity"]);
    assert!(flagged[19].signals.iter().all(|s| s.weight > 0.0 && !s.detail.is_empty()));
    // Every bot buys: nothing is paid.
    let buys = (0..20).map(|i| purchase(&format!("ev-{i}"), &format!("bot-{i}"), &format!("o-{i}"), 30, T0)).collect();
    app.deliver(buys).await.unwrap();
    app.clock.advance_days(1);
    // A clean referral of another ambassador goes through meanwhile: the worker ran.
    let clean = app.code("amb-ok", "friends", "").await.unwrap();
    let ok = app.signup(&clean.code, "friend-1", None).await.unwrap();
    app.deliver(vec![purchase("ev-ok", "friend-1", "o-ok", 30, T0 + DAY)]).await.unwrap();
    app.until_state(&ok.referral_id, pb::ReferralState::Rewarded).await;
    for r in &flagged {
        let now = app.referral(&r.referral_id).await;
        assert_eq!(now.state(), pb::ReferralState::Flagged);
        assert!(now.rewards.iter().all(|w| w.state() == pb::RewardState::Held));
    }
    assert_eq!(app.points("amb-x").await, 0);
    let metrics = app
        .as_role(Role::Marketing)
        .get_programme_metrics(pb::GetProgrammeMetricsRequest {
            programme_id: "friends".into(),
            start_time: Some(timestamp(T0)),
            end_time: Some(timestamp(T0 + 2 * DAY)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((metrics.signups, metrics.points_paid), (21, 700));
    assert!((metrics.flagged_share - 20.0 / 21.0).abs() < 1e-9);
    app.stop().await;
}

async fn one_referee_signing_up_at_once_through_many_codes_is_referred_once(db: Db) {
    let app = spawn_app(db).await;
    let mut codes = Vec::new();
    for i in 0..8 {
        codes.push(app.code(&format!("amb-{i}"), "default", "").await.unwrap().code);
    }
    // Eight sign-ups of one customer at once, each with another ambassador's code: one referral, the rest told it
    // is a duplicate (never INTERNAL).
    let attempts = codes.into_iter().map(|code| {
        let mut c = app.client.clone();
        async move {
            c.attribute_signup(pb::AttributeSignupRequest {
                request_id: format!("su-{code}"),
                code,
                referee_id: "popular".into(),
                signals: None,
            })
            .await
        }
    });
    let results = futures::future::join_all(attempts).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_status(e, Code::AlreadyExists, "DUPLICATE_REFEREE", None);
    }
    app.stop().await;
}
