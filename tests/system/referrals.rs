//! Referrals with loyalty and segmentation: a friend's purchase recorded in loyalty reaches referrals through
//! loyalty's outbox, converts the referral, and both sides are paid in loyalty exactly once — with the purchase
//! event delivered three times and loyalty down when the payout is due; a return recorded in loyalty inside the
//! returns window voids the referral and the clawback shows in both ledgers; segmentation counts the referrals made.

use prost::Message;
use rapport_kit::{
    auth::Role,
    clock::{ManualClock, timestamp},
    db::testing::fresh_database,
};
use rapport_outbox::entities::outbox_event;
use rapport_proto::{
    common::v1::{Channel, Money},
    events::v1::{DeliverEventsRequest, Event, event_sink_service_client::EventSinkServiceClient},
    loyalty::v1::{self as lpb, loyalty_service_client::LoyaltyServiceClient},
    referrals::v1::{self as rpb, referrals_service_client::ReferralsServiceClient},
    segmentation::v1::{self as spb, segmentation_service_client::SegmentationServiceClient},
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::support::{
    Db, T0, any_port, auth, channel, eventually, free_port, issue_code, loyalty_tuned, purchase_event, referrals,
    segmentation,
};

rapport_kit::on_both!(a_referral_pays_once_through_loyalty_and_a_return_claws_it_back);

fn eur(units: i64) -> Option<Money> {
    Some(Money { currency_code: "EUR".into(), units, nanos: 0 })
}

/// The member's ledger, oldest first.
async fn ledger(
    l: &mut LoyaltyServiceClient<rapport_kit::client::OutgoingChannel>,
    who: &str,
) -> Vec<lpb::LedgerEntry> {
    let req = lpb::ListTransactionsRequest { customer_id: who.into(), page_size: 100, page_token: String::new() };
    let mut entries = l.list_transactions(req).await.unwrap().into_inner().entries;
    entries.reverse();
    entries
}

fn of_kind(entries: &[lpb::LedgerEntry], kind: lpb::EntryKind) -> Vec<&lpb::LedgerEntry> {
    entries.iter().filter(|e| e.kind() == kind).collect()
}

async fn a_referral_pays_once_through_loyalty_and_a_return_claws_it_back(db: Db) {
    let clock = ManualClock::new(T0);
    let (l_db, s_db, r_db) =
        (fresh_database(db).await.unwrap(), fresh_database(db).await.unwrap(), fresh_database(db).await.unwrap());
    let (l_addr, s_addr, r_addr) = (free_port(), free_port(), free_port());
    let loyalty_config = move |c: &mut rapport_loyalty::app::Config| {
        c.set_subscriber_url("referrals", Some(format!("http://{r_addr}")));
    };
    let l = loyalty_tuned(l_addr, l_db.url(), Some(format!("http://{s_addr}")), &clock, auth(), loyalty_config).await;
    let s = segmentation(s_addr, s_db.url(), l_addr, &clock).await;
    let r = referrals(r_addr, r_db.url(), Some(l.url()), &clock, |c| {
        c.payout_interval = std::time::Duration::from_millis(100);
        c.set_subscriber_url("segmentation", Some(s.url()));
    })
    .await;

    let mut refs = ReferralsServiceClient::new(channel(r.addr, Role::Agent));
    let mut mkt = ReferralsServiceClient::new(channel(r.addr, Role::Marketing));
    let mut lc = LoyaltyServiceClient::new(channel(l_addr, Role::Sre));
    // Paid 7 days after the purchase; a return within 14 days voids.
    mkt.create_programme(rpb::CreateProgrammeRequest {
        request_id: "p".into(),
        programme_id: "friends".into(),
        rules: Some(rpb::ProgrammeRules {
            name: "Friends".into(),
            qualifying_event: rpb::QualifyingEvent::FirstPurchase.into(),
            min_order: None,
            referrer_reward: Some(rpb::Reward { points: 500, share_bps: 0 }),
            referee_reward: Some(rpb::Reward { points: 100, share_bps: 1_000 }),
            attribution_window_days: 30,
            approval_delay_days: 7,
            returns_window_days: 14,
            milestones: vec![],
            limits: None,
            flag_threshold: 0.0,
            active_from: Some(timestamp(T0)),
            active_until: None,
        }),
    })
    .await
    .unwrap();
    let code = issue_code(r.addr, "amb-1", "friends", "MARIE-2026").await;
    let mut ids = Vec::new();
    for friend in ["new-1", "new-2"] {
        let made = refs
            .attribute_signup(rpb::AttributeSignupRequest {
                request_id: format!("s-{friend}"),
                code: "marie-2026".into(),
                referee_id: friend.into(),
                signals: None,
            })
            .await
            .unwrap()
            .into_inner()
            .referral
            .unwrap();
        assert_eq!(made.code, code, "the code as issued, whatever the case it was typed in");
        ids.push(made.referral_id);
    }
    // The friends buy in loyalty; loyalty's outbox tells referrals.
    for (friend, order) in [("new-1", "o-1"), ("new-2", "o-2")] {
        lc.enrol_member(lpb::EnrolMemberRequest {
            request_id: format!("e-{friend}"),
            customer_id: friend.into(),
            display_name: String::new(),
        })
        .await
        .unwrap();
        lc.record_purchase(lpb::RecordPurchaseRequest {
            request_id: format!("b-{friend}"),
            customer_id: friend.into(),
            order_id: order.into(),
            amount: eur(80),
            channel: Channel::Web.into(),
            recurring: false,
        })
        .await
        .unwrap();
    }
    let get = |id: String| {
        let mut c = refs.clone();
        async move {
            c.get_referral(rpb::GetReferralRequest { referral_id: id }).await.unwrap().into_inner().referral.unwrap()
        }
    };
    for id in &ids {
        eventually(30, "conversion from loyalty's event", || async { get(id.clone()).await.converted_at.is_some() })
            .await;
    }
    // The same purchase events delivered twice more (a relay retrying after a lost acknowledgement).
    let rows = outbox_event::Entity::find()
        .filter(outbox_event::Column::Destination.eq("referrals"))
        .order_by_asc(outbox_event::Column::Id)
        .all(&l.db)
        .await
        .unwrap();
    let again: Vec<Event> = rows.iter().map(|row| Event::decode(row.payload.as_slice()).unwrap()).collect();
    assert!(again.iter().any(|e| e.customer_id == "new-1"));
    let mut sink = EventSinkServiceClient::new(channel(r.addr, Role::Loyalty));
    for _ in 0..2 {
        sink.deliver_events(DeliverEventsRequest { events: again.clone() }).await.unwrap();
    }
    assert!(get(ids[0].clone()).await.rewards.iter().all(|w| w.state() == rpb::RewardState::Held));

    // Loyalty is down when the payout falls due: approved, the rewards wait, due, the first with the reason (a round
    // stops at the first call loyalty cannot answer).
    l.stop().await;
    clock.advance_days(8);
    eventually(30, "payout attempted while loyalty is down", || async {
        let (a, b) = (get(ids[0].clone()).await, get(ids[1].clone()).await);
        let approved = [&a, &b].iter().all(|r| r.state() == rpb::ReferralState::Approved);
        approved && a.rewards.iter().chain(&b.rewards).any(|w| !w.last_error.is_empty())
    })
    .await;
    for id in &ids {
        let waiting = get(id.clone()).await.rewards;
        assert!(waiting.iter().all(|w| matches!(w.state(), rpb::RewardState::Due | rpb::RewardState::Paying)));
    }
    // Loyalty comes back on its address: the payouts complete.
    let l = loyalty_tuned(l_addr, l_db.url(), Some(format!("http://{s_addr}")), &clock, auth(), loyalty_config).await;
    for id in &ids {
        eventually(30, "rewarded", || async { get(id.clone()).await.state() == rpb::ReferralState::Rewarded }).await;
    }
    let amb = ledger(&mut lc, "amb-1").await;
    assert_eq!(of_kind(&amb, lpb::EntryKind::Earn).iter().map(|e| e.points).collect::<Vec<_>>(), [500, 500]);
    for friend in ["new-1", "new-2"] {
        let entries = ledger(&mut lc, friend).await;
        // 100 points plus 10 % of 80 euros.
        assert_eq!(of_kind(&entries, lpb::EntryKind::Earn).iter().map(|e| e.points).collect::<Vec<_>>(), [108]);
    }

    // new-1 returns its order inside the returns window: the referral is voided and both rewards clawed back.
    lc.record_return(lpb::RecordReturnRequest {
        request_id: "rt-1".into(),
        customer_id: "new-1".into(),
        order_id: "o-1".into(),
        amount: None,
        reason: "changed my mind".into(),
    })
    .await
    .unwrap();
    eventually(30, "voided and clawed back", || async {
        let now = get(ids[0].clone()).await;
        now.state() == rpb::ReferralState::Voided
            && now.rewards.iter().all(|w| w.state() == rpb::RewardState::ClawedBack)
    })
    .await;
    let voided = get(ids[0].clone()).await;
    for w in &voided.rewards {
        let entries = ledger(&mut lc, &w.customer_id).await;
        let reversal =
            entries.iter().find(|e| e.kind() == lpb::EntryKind::Reverse && e.reverses_entry_id == w.entry_id);
        assert_eq!(reversal.map(|e| e.points), Some(-w.points), "{}: {entries:?}", w.customer_id);
    }
    // The other referral stands; the ambassador keeps its reward.
    assert_eq!(get(ids[1].clone()).await.state(), rpb::ReferralState::Rewarded);
    let balance = lc
        .get_member(lpb::GetMemberRequest { customer_id: "amb-1".into() })
        .await
        .unwrap()
        .into_inner()
        .member
        .unwrap()
        .balance
        .unwrap();
    assert_eq!(balance.active + balance.pending, 500);

    // Segmentation counted the two referrals the ambassador made.
    let sc = SegmentationServiceClient::new(channel(s_addr, Role::Sre));
    eventually(30, "referrals reach segmentation", || async {
        let f = sc.clone().get_customer_features(spb::GetCustomerFeaturesRequest { customer_id: "amb-1".into() }).await;
        f.ok().and_then(|f| f.into_inner().features).is_some_and(|f| f.referrals == 2.0)
    })
    .await;
    r.stop().await;
    s.stop().await;
    l.stop().await;
}

/// Two referrals replicas on one PostgreSQL: their payout workers take turns (rounds never overlap, counted from
/// their spans) and every reward is paid once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_payout_workers_take_turns() {
    crate::support::exporter();
    let clock = ManualClock::new(T0);
    let (l_db, r_db) = (fresh_database(Db::Postgres).await.unwrap(), fresh_database(Db::Postgres).await.unwrap());
    let l = loyalty_tuned(free_port(), l_db.url(), None, &clock, auth(), |_| {}).await;
    let replica = || {
        referrals(any_port(), r_db.url(), Some(l.url()), &clock, |c| {
            c.payout_interval = std::time::Duration::from_millis(50);
        })
    };
    let (r1, r2) = (replica().await, replica().await);
    let clients = [
        ReferralsServiceClient::new(channel(r1.addr, Role::Agent)),
        ReferralsServiceClient::new(channel(r2.addr, Role::Agent)),
    ];
    // The default programme pays after 14 days: sign-ups and purchases through alternating replicas.
    let code = issue_code(r1.addr, "amb", "default", "").await;
    let mut ids = Vec::new();
    for i in 0..40 {
        let mut c = clients[i % 2].clone();
        let made = c
            .attribute_signup(rpb::AttributeSignupRequest {
                request_id: format!("s-{i}"),
                code: code.clone(),
                referee_id: format!("f-{i}"),
                signals: None,
            })
            .await;
        match made {
            Ok(r) => ids.push(r.into_inner().referral.unwrap().referral_id),
            // The default limit of 20 sign-ups per code per hour: the next hour takes the rest.
            Err(e) if e.code() == tonic::Code::ResourceExhausted => {
                clock.advance_ms(3_600_001);
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(ids.len() >= 38, "{} referrals", ids.len());
    let mut sink = [
        EventSinkServiceClient::new(channel(r1.addr, Role::Loyalty)),
        EventSinkServiceClient::new(channel(r2.addr, Role::Loyalty)),
    ];
    for i in 0..40 {
        let now = rapport_kit::clock::Clock::now_ms(&clock);
        let e = purchase_event(&format!("buy-{i}"), &format!("f-{i}"), &format!("o-{i}"), 50, now);
        sink[i % 2].deliver_events(DeliverEventsRequest { events: vec![e] }).await.unwrap();
    }
    clock.advance_days(15);
    for id in &ids {
        eventually(60, "rewarded", || {
            let mut c = clients[0].clone();
            let id = id.clone();
            async move {
                let r = c.get_referral(rpb::GetReferralRequest { referral_id: id }).await.unwrap().into_inner();
                r.referral.unwrap().state() == rpb::ReferralState::Rewarded
            }
        })
        .await;
    }
    let mut lc = LoyaltyServiceClient::new(channel(l.addr, Role::Sre));
    let amb = ledger(&mut lc, "amb").await;
    // One reward per referral, and the default programme's bonus for the 5th.
    let earned: Vec<i64> = of_kind(&amb, lpb::EntryKind::Earn).iter().map(|e| e.points).collect();
    assert_eq!(earned.iter().filter(|p| **p == 500).count(), ids.len(), "{earned:?}");
    assert_eq!(earned.iter().filter(|p| **p == 1_000).count(), 1, "{earned:?}");
    assert_eq!(earned.len(), ids.len() + 1);
    r1.stop().await;
    r2.stop().await;
    l.stop().await;
    let rounds = crate::support::worker_rounds("referrals.payouts", r_db.name());
    assert!(rounds.len() >= 5, "{} rounds", rounds.len());
    let overlaps = rapport_kit::lease::overlapping(&rounds);
    assert!(overlaps.is_empty(), "payout workers of both replicas ran at the same time: {overlaps:?}");
}
