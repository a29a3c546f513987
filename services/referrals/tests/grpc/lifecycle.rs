//! The lifecycle: pending → approved → rewarded through a real loyalty server, flagged → cleared by an agent,
//! voided by an agent or by a return (rewards clawed back), payouts waiting while loyalty is down, and two
//! replicas paying each reward once.
use rapport_kit::auth::Role;
use rapport_proto::{loyalty::v1 as lpb, referrals::v1 as pb};
use tonic::Code;

use crate::support::*;

on_both!(
    a_conversion_pays_both_sides_once,
    payouts_wait_while_loyalty_is_down,
    a_return_inside_the_window_voids_and_claws_back,
    agents_clear_or_void_flagged_referrals,
    a_signup_programme_converts_at_once_and_milestones_pay_a_bonus,
    two_replicas_pay_each_reward_once,
    a_void_while_a_payment_is_on_its_way_claws_it_back,
    every_purchase_pays_each_and_a_minimum_order_must_be_met,
    a_conversion_earning_nothing_and_an_erasure_still_settle
);

fn earns(entries: &[lpb::LedgerEntry]) -> Vec<i64> {
    entries.iter().filter(|e| e.kind() == lpb::EntryKind::Earn).map(|e| e.points).collect()
}

async fn a_conversion_pays_both_sides_once(db: Db) {
    let app = spawn_with_loyalty(db).await;
    app.programme("friends", rules(pb::QualifyingEvent::FirstPurchase, 14)).await.unwrap();
    let code = app.code("amb-1", "friends", "").await.unwrap();
    let r = app.signup(&code.code, "new-1", None).await.unwrap();
    assert_eq!(r.state(), pb::ReferralState::Pending);
    assert!(r.signals.is_empty());
    // The same sign-up again (a retry): the same referral.
    assert_eq!(app.signup(&code.code, "new-1", None).await.unwrap().referral_id, r.referral_id);
    // The purchase event arrives three times (redelivery): one conversion.
    app.clock.advance_days(1);
    let buy = purchase("ev-1", "new-1", "ord-1", 80, T0 + DAY);
    for _ in 0..3 {
        app.deliver(vec![buy.clone()]).await.unwrap();
    }
    let r = app.referral(&r.referral_id).await;
    assert_eq!(r.state(), pb::ReferralState::Pending, "converted, waiting for the approval delay");
    assert_eq!(r.converted_order_id, "ord-1");
    assert_eq!(r.rewards.len(), 2);
    assert!(r.rewards.iter().all(|w| w.state() == pb::RewardState::Held));
    // A second purchase does not convert a first-purchase programme again.
    app.deliver(vec![purchase("ev-2", "new-1", "ord-2", 50, T0 + DAY)]).await.unwrap();
    assert_eq!(app.referral(&r.referral_id).await.rewards.len(), 2);
    // The delay is over: approved, paid, rewarded.
    app.clock.advance_days(15);
    let done = app.until_state(&r.referral_id, pb::ReferralState::Rewarded).await;
    assert!(done.approved_at.is_some());
    assert!(done.rewards.iter().all(|w| w.state() == pb::RewardState::Paid && !w.entry_id.is_empty()));
    assert_eq!(app.points("amb-1").await, 500);
    assert_eq!(app.points("new-1").await, 200);
    assert_eq!(earns(&app.ledger("amb-1").await), [500]);
    assert_eq!(earns(&app.ledger("new-1").await), [200]);
    app.stop().await;
}

async fn payouts_wait_while_loyalty_is_down(db: Db) {
    let mut app = spawn_with_loyalty(db).await;
    app.programme("friends", rules(pb::QualifyingEvent::FirstPurchase, 0)).await.unwrap();
    let code = app.code("amb-1", "friends", "").await.unwrap();
    let r = app.signup(&code.code, "new-1", None).await.unwrap();
    app.stop_loyalty().await;
    app.deliver(vec![purchase("ev-1", "new-1", "ord-1", 80, T0)]).await.unwrap();
    // Approved, its rewards due, each with the reason it was not paid yet.
    eventually(20, "a failed payout recorded", || async {
        let r = app.referral(&r.referral_id).await;
        r.state() == pb::ReferralState::Approved && r.rewards.iter().any(|w| !w.last_error.is_empty())
    })
    .await;
    let waiting = app.referral(&r.referral_id).await;
    // Due, or sent and unanswered (sent again under the same request id).
    assert!(waiting.rewards.iter().all(|w| matches!(w.state(), pb::RewardState::Due | pb::RewardState::Paying)));
    app.start_loyalty().await;
    app.until_state(&r.referral_id, pb::ReferralState::Rewarded).await;
    assert_eq!(earns(&app.ledger("amb-1").await), [500]);
    assert_eq!(earns(&app.ledger("new-1").await), [200]);
    app.stop().await;
}

async fn a_return_inside_the_window_voids_and_claws_back(db: Db) {
    let app = spawn_with_loyalty(db).await;
    // Paid at once, returns voiding for 14 days.
    app.programme("instant", rules(pb::QualifyingEvent::FirstPurchase, 0)).await.unwrap();
    let code = app.code("amb-1", "instant", "").await.unwrap();
    let a = app.signup(&code.code, "new-1", None).await.unwrap();
    let b = app.signup(&code.code, "new-2", None).await.unwrap();
    app.deliver(vec![purchase("ev-1", "new-1", "ord-1", 80, T0), purchase("ev-2", "new-2", "ord-2", 90, T0)])
        .await
        .unwrap();
    app.until_state(&a.referral_id, pb::ReferralState::Rewarded).await;
    app.until_state(&b.referral_id, pb::ReferralState::Rewarded).await;
    assert_eq!(app.points("amb-1").await, 1_000);
    // A partial return leaves the order converting; a full one inside the window voids and claws back.
    app.clock.advance_days(3);
    app.deliver(vec![returned("rt-1", "new-1", "ord-1", 10, false, T0 + 3 * DAY)]).await.unwrap();
    assert_eq!(app.referral(&a.referral_id).await.state(), pb::ReferralState::Rewarded);
    app.deliver(vec![returned("rt-2", "new-1", "ord-1", 70, true, T0 + 3 * DAY)]).await.unwrap();
    let voided = app.referral(&a.referral_id).await;
    assert_eq!(voided.state(), pb::ReferralState::Voided);
    assert_eq!(
        (voided.voided_by.as_str(), voided.void_reason.as_str()),
        ("returns", "the converting order was returned")
    );
    eventually(20, "clawbacks", || async {
        app.referral(&a.referral_id).await.rewards.iter().all(|w| w.state() == pb::RewardState::ClawedBack)
    })
    .await;
    // Both ledgers show the reward and its reversing entry; nothing was deleted.
    assert_eq!(app.points("amb-1").await, 500);
    assert_eq!(app.points("new-1").await, 0);
    for who in ["amb-1", "new-1"] {
        let entries = app.ledger(who).await;
        assert!(entries.iter().any(|e| e.kind() == lpb::EntryKind::Reverse), "{who}: {entries:?}");
    }
    // A return after the window leaves the referral alone.
    app.clock.advance_days(20);
    app.deliver(vec![returned("rt-3", "new-2", "ord-2", 90, true, T0 + 23 * DAY)]).await.unwrap();
    assert_eq!(app.referral(&b.referral_id).await.state(), pb::ReferralState::Rewarded);
    app.stop().await;
}

async fn agents_clear_or_void_flagged_referrals(db: Db) {
    let app = spawn_app(db).await;
    app.programme("friends", rules(pb::QualifyingEvent::FirstPurchase, 0)).await.unwrap();
    let code = app.code_with("amb-1", "friends", "", 0, None, device("a1")).await.unwrap();
    // The ambassador's own device: flagged, with the signal and its weight.
    let flagged = app.signup(&code.code, "new-1", device("a1")).await.unwrap();
    assert_eq!(flagged.state(), pb::ReferralState::Flagged);
    assert_eq!(flagged.signals[0].name, "same_device");
    assert!((flagged.fraud_score - 0.8).abs() < 1e-9);
    // A flagged referral converts but pays nothing until cleared.
    app.deliver(vec![purchase("ev-1", "new-1", "ord-1", 80, T0)]).await.unwrap();
    app.clock.advance_days(1);
    let still = app.referral(&flagged.referral_id).await;
    assert_eq!(still.state(), pb::ReferralState::Flagged);
    assert!(still.rewards.iter().all(|w| w.state() == pb::RewardState::Held));
    let approve = |id: String, rid: &str| {
        let mut c = app.client.clone();
        let req = pb::ApproveReferralRequest { request_id: rid.into(), referral_id: id, reason: "known family".into() };
        async move { c.approve_referral(req).await.map(|r| r.into_inner().referral.unwrap()) }
    };
    let cleared = approve(flagged.referral_id.clone(), "ap-1").await.unwrap();
    assert_eq!(cleared.state(), pb::ReferralState::Pending);
    assert_eq!((cleared.reviewed_by.as_str(), cleared.reason.as_str()), ("t", "known family"));
    // Approved by the worker (no loyalty here: its rewards are due and wait).
    app.until_state(&flagged.referral_id, pb::ReferralState::Approved).await;
    let e = approve(flagged.referral_id.clone(), "ap-2").await.unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "NOT_FLAGGED", None);
    let void = |id: String, rid: &str| {
        let mut c = app.client.clone();
        let req =
            pb::VoidReferralRequest { request_id: rid.into(), referral_id: id, reason: "duplicate account".into() };
        async move { c.void_referral(req).await.map(|r| r.into_inner().referral.unwrap()) }
    };
    let voided = void(flagged.referral_id.clone(), "v-1").await.unwrap();
    assert_eq!(voided.state(), pb::ReferralState::Voided);
    assert!(voided.rewards.iter().all(|w| w.state() == pb::RewardState::Cancelled), "nothing was paid");
    assert_status(
        &void(flagged.referral_id.clone(), "v-2").await.unwrap_err(),
        Code::FailedPrecondition,
        "REFERRAL_VOIDED",
        None,
    );
    // A pending referral may be voided too; an unknown one is not found.
    let other = app.signup(&code.code, "new-2", device("b2")).await.unwrap();
    assert_eq!(other.state(), pb::ReferralState::Pending);
    assert_eq!(void(other.referral_id.clone(), "v-3").await.unwrap().state(), pb::ReferralState::Voided);
    assert_status(&void("ref-nope".into(), "v-4").await.unwrap_err(), Code::NotFound, "REFERRAL_NOT_FOUND", None);
    // Flagged ones are listed for review.
    let third = app.signup(&code.code, "new-3", device("a1")).await.unwrap();
    let listed = app
        .client
        .clone()
        .list_referrals(pb::ListReferralsRequest { state: pb::ReferralState::Flagged.into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .referrals;
    assert_eq!(listed.iter().map(|r| r.referral_id.clone()).collect::<Vec<_>>(), [third.referral_id]);
    app.stop().await;
}

async fn a_signup_programme_converts_at_once_and_milestones_pay_a_bonus(db: Db) {
    let app = spawn_with_loyalty(db).await;
    let mut r = rules(pb::QualifyingEvent::SignUp, 0);
    r.referee_reward = Some(pb::Reward { points: 0, share_bps: 0 });
    r.milestones = vec![pb::Milestone { count: 2, bonus_points: 1_000 }];
    app.programme("signup", r).await.unwrap();
    let code = app.code("amb-1", "signup", "").await.unwrap();
    let first = app.signup(&code.code, "new-1", None).await.unwrap();
    assert!(first.converted_at.is_some());
    assert_eq!(first.rewards.len(), 1, "only the referrer is rewarded");
    app.until_state(&first.referral_id, pb::ReferralState::Rewarded).await;
    // The first is voided (clawed back): it no longer counts towards the milestone.
    app.client
        .clone()
        .void_referral(pb::VoidReferralRequest {
            request_id: "v-1".into(),
            referral_id: first.referral_id.clone(),
            reason: "account closed".into(),
        })
        .await
        .unwrap();
    let second = app.signup(&code.code, "new-2", None).await.unwrap();
    let done = app.until_state(&second.referral_id, pb::ReferralState::Rewarded).await;
    assert_eq!(done.rewards.len(), 1, "one approved referral that stands: no milestone yet");
    let third = app.signup(&code.code, "new-3", None).await.unwrap();
    let done = app.until_state(&third.referral_id, pb::ReferralState::Rewarded).await;
    let sides: Vec<&str> = done.rewards.iter().map(|w| w.side.as_str()).collect();
    assert_eq!(sides, ["referrer", "milestone"], "the second approved referral that stands reaches the milestone");
    eventually(20, "the first clawed back", || async {
        app.referral(&first.referral_id).await.rewards.iter().all(|w| w.state() == pb::RewardState::ClawedBack)
    })
    .await;
    assert_eq!(app.points("amb-1").await, 2_000);
    assert_eq!(app.points("new-1").await, 0);
    app.stop().await;
}

async fn two_replicas_pay_each_reward_once(db: Db) {
    let app = spawn_with_loyalty(db).await;
    let replica = app.replica().await;
    app.programme("friends", rules(pb::QualifyingEvent::FirstPurchase, 1)).await.unwrap();
    let code = app.code("amb-1", "friends", "").await.unwrap();
    let mut ids = Vec::new();
    for i in 0..10 {
        let r = app.signup(&code.code, &format!("new-{i}"), None).await.unwrap();
        ids.push(r.referral_id);
    }
    let events =
        (0..10).map(|i| purchase(&format!("ev-{i}"), &format!("new-{i}"), &format!("o-{i}"), 40, T0)).collect();
    app.deliver(events).await.unwrap();
    // Both replicas' workers are woken and run rounds; each reward is paid once.
    app.clock.advance_days(2);
    let _ =
        app.client_of(&replica, Role::Agent).get_referral(pb::GetReferralRequest { referral_id: ids[0].clone() }).await;
    for id in &ids {
        app.until_state(id, pb::ReferralState::Rewarded).await;
    }
    assert_eq!(earns(&app.ledger("amb-1").await), vec![500; 10]);
    for i in 0..10 {
        assert_eq!(earns(&app.ledger(&format!("new-{i}")).await), [200]);
    }
    replica.stop().await;
    app.stop().await;
}

async fn a_void_while_a_payment_is_on_its_way_claws_it_back(db: Db) {
    use sea_orm::{ConnectionTrait, Statement};
    let app = spawn_with_loyalty(db).await;
    app.programme("instant", rules(pb::QualifyingEvent::FirstPurchase, 0)).await.unwrap();
    let code = app.code("amb-1", "instant", "").await.unwrap();
    let r = app.signup(&code.code, "new-1", None).await.unwrap();
    app.deliver(vec![purchase("ev-1", "new-1", "ord-1", 80, T0)]).await.unwrap();
    app.until_state(&r.referral_id, pb::ReferralState::Rewarded).await;
    // Loyalty paid, but its answer never came back: the rewards are as the worker left them before recording it.
    for sql in [
        format!("UPDATE rewards SET state = 'paying', entry_id = '' WHERE referral_id = '{}'", r.referral_id),
        format!("UPDATE referrals SET state = 'approved' WHERE referral_id = '{}'", r.referral_id),
    ] {
        app.db.execute_raw(Statement::from_string(app.db.get_database_backend(), sql)).await.unwrap();
    }
    let voided = app
        .client
        .clone()
        .void_referral(pb::VoidReferralRequest {
            request_id: "v".into(),
            referral_id: r.referral_id.clone(),
            reason: "fraud found later".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    let clawing =
        |w: &pb::ReferralReward| matches!(w.state(), pb::RewardState::ClawbackDue | pb::RewardState::ClawedBack);
    assert!(voided.rewards.iter().all(clawing), "it may have been paid: {:?}", voided.rewards);
    // The worker learns the payment's entry from loyalty (the same request id: replayed, not paid again) and
    // reverses it.
    eventually(20, "clawed back", || async {
        app.referral(&r.referral_id).await.rewards.iter().all(|w| w.state() == pb::RewardState::ClawedBack)
    })
    .await;
    for who in ["amb-1", "new-1"] {
        let entries = app.ledger(who).await;
        assert_eq!(earns(&entries).len(), 1, "{who}: paid once");
        assert_eq!(entries.iter().filter(|e| e.kind() == lpb::EntryKind::Reverse).count(), 1, "{who}: reversed once");
        assert_eq!(app.points(who).await, 0);
    }
    app.stop().await;
}

async fn every_purchase_pays_each_and_a_minimum_order_must_be_met(db: Db) {
    let app = spawn_with_loyalty(db).await;
    // Every purchase: 10 % of each order to the referrer, 50 points to the referee.
    let mut every = rules(pb::QualifyingEvent::EveryPurchase, 0);
    every.referrer_reward = Some(pb::Reward { points: 0, share_bps: 1_000 });
    every.referee_reward = Some(pb::Reward { points: 50, share_bps: 0 });
    app.programme("every", every).await.unwrap();
    let code = app.code("amb-1", "every", "").await.unwrap();
    let r = app.signup(&code.code, "new-1", None).await.unwrap();
    app.deliver(vec![purchase("ev-1", "new-1", "o-1", 80, T0)]).await.unwrap();
    app.until_state(&r.referral_id, pb::ReferralState::Rewarded).await;
    // A later purchase brings new rewards: approved again until they are paid, then rewarded.
    app.clock.advance_days(1);
    app.deliver(vec![purchase("ev-2", "new-1", "o-2", 120, T0 + DAY)]).await.unwrap();
    eventually(20, "the second purchase paid", || async {
        let now = app.referral(&r.referral_id).await;
        now.state() == pb::ReferralState::Rewarded && now.rewards.len() == 4
    })
    .await;
    assert_eq!(earns(&app.ledger("amb-1").await).iter().sum::<i64>(), 8 + 12);
    assert_eq!(earns(&app.ledger("new-1").await), [50, 50]);
    // A full return of the second order inside the window takes back its rewards only.
    app.deliver(vec![returned("rt-2", "new-1", "o-2", 120, true, T0 + DAY)]).await.unwrap();
    eventually(20, "the second order's rewards clawed back", || async {
        let now = app.referral(&r.referral_id).await;
        let back: Vec<&str> = now
            .rewards
            .iter()
            .filter(|w| w.state() == pb::RewardState::ClawedBack)
            .map(|w| w.order_id.as_str())
            .collect();
        now.state() == pb::ReferralState::Rewarded && back == ["o-2", "o-2"]
    })
    .await;
    assert_eq!(app.points("amb-1").await, 8);

    // A minimum order of 50 euros: a smaller first order does not convert, a large enough one does.
    let mut min = rules(pb::QualifyingEvent::MinOrderValue, 0);
    min.min_order = Some(rapport_proto::common::v1::Money { currency_code: "EUR".into(), units: 50, nanos: 0 });
    app.programme("min", min).await.unwrap();
    let code = app.code("amb-2", "min", "").await.unwrap();
    let r = app.signup(&code.code, "new-2", None).await.unwrap();
    app.deliver(vec![purchase("ev-3", "new-2", "o-3", 30, T0 + DAY)]).await.unwrap();
    assert!(app.referral(&r.referral_id).await.converted_at.is_none());
    app.deliver(vec![purchase("ev-4", "new-2", "o-4", 60, T0 + DAY)]).await.unwrap();
    let done = app.until_state(&r.referral_id, pb::ReferralState::Rewarded).await;
    assert_eq!(done.converted_order_id, "o-4");
    // A partial return leaving the order under the minimum voids it.
    app.deliver(vec![returned("rt-4", "new-2", "o-4", 20, false, T0 + DAY)]).await.unwrap();
    assert_eq!(app.referral(&r.referral_id).await.state(), pb::ReferralState::Voided);
    app.stop().await;
}

async fn a_conversion_earning_nothing_and_an_erasure_still_settle(db: Db) {
    let app = spawn_app(db).await;
    // 1 % of the order to the referrer, nothing to the referee: a 40-euro order earns 0 points.
    let mut tiny = rules(pb::QualifyingEvent::FirstPurchase, 0);
    tiny.referrer_reward = Some(pb::Reward { points: 0, share_bps: 100 });
    tiny.referee_reward = Some(pb::Reward { points: 0, share_bps: 0 });
    app.programme("tiny", tiny).await.unwrap();
    let code = app.code("amb-1", "tiny", "").await.unwrap();
    let r = app.signup(&code.code, "new-1", None).await.unwrap();
    app.deliver(vec![purchase("ev-1", "new-1", "ord-1", 40, T0)]).await.unwrap();
    let done = app.until_state(&r.referral_id, pb::ReferralState::Rewarded).await;
    assert!(done.rewards.is_empty() && done.converted_at.is_some());

    // No loyalty here: an approved referral's rewards wait, due; erasing both sides cancels them and settles it.
    app.programme("friends", rules(pb::QualifyingEvent::FirstPurchase, 0)).await.unwrap();
    let code = app.code("amb-2", "friends", "").await.unwrap();
    let r = app.signup(&code.code, "new-2", None).await.unwrap();
    app.deliver(vec![purchase("ev-2", "new-2", "ord-2", 40, T0)]).await.unwrap();
    app.until_state(&r.referral_id, pb::ReferralState::Approved).await;
    let forget = |who: &str| {
        let mut c = app.client.clone();
        let req = pb::ForgetCustomerRequest { request_id: format!("f-{who}"), customer_id: who.into() };
        async move { c.forget_customer(req).await.unwrap().into_inner() }
    };
    assert_eq!(forget("amb-2").await.rewards_cancelled, 1);
    let half = app.referral(&r.referral_id).await;
    assert_eq!(half.state(), pb::ReferralState::Approved, "the referee's reward still waits");
    assert_eq!(forget("new-2").await.rewards_cancelled, 1);
    let settled = app.referral(&r.referral_id).await;
    assert_eq!(settled.state(), pb::ReferralState::Rewarded, "nothing is left to pay");
    assert!(settled.rewards.iter().all(|w| w.state() == pb::RewardState::Cancelled));
    assert!(settled.referrer_id.starts_with("anon-") && settled.referee_id.starts_with("anon-"));
    app.stop().await;
}
