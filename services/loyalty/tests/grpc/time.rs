//! What time does: pending points activate, lots expire (oldest first), tiers go up at once and down at period end.
use rapport_kit::clock::Clock;
use rapport_proto::loyalty::v1 as pb;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::support::{Db, balance, on_both, spawn_app};

on_both!(
    pending_then_active_then_expired,
    tiers_up_at_once_down_at_period_end,
    sweeper_settles_idle_members,
    reads_answer_while_a_writer_holds_the_member,
    programme_stats_count_members_per_tier_and_repeat_buyers
);

async fn programme_stats_count_members_per_tier_and_repeat_buyers(db: Db) {
    let app = spawn_app(db).await;
    let day = 86_400_000;
    let t0 = app.clock.now_ms();
    for id in ["ann", "bob", "cat"] {
        app.enrol(id).await;
    }
    // ann buys twice in the window, bob once in it and once before, cat never; bob's first order makes him gold
    app.purchase("p-b0", "bob", "o-b0", 5_000, false).await;
    app.clock.advance_days(10);
    app.purchase("p-a1", "ann", "o-a1", 20, false).await;
    app.purchase("p-a2", "ann", "o-a2", 30, false).await;
    app.purchase("p-b1", "bob", "o-b1", 40, false).await;
    let window = |start: i64, end: i64| pb::GetProgrammeStatsRequest {
        start_time: Some(rapport_kit::clock::timestamp(start)),
        end_time: Some(rapport_kit::clock::timestamp(end)),
    };
    let s = app.client.clone().get_programme_stats(window(t0 + 5 * day, t0 + 11 * day)).await.unwrap().into_inner();
    assert_eq!((s.members, s.buyers, s.repeat_buyers, s.purchases), (3, 2, 1, 3));
    assert_eq!((s.members_by_tier["bronze"], s.members_by_tier["gold"]), (2, 1));
    let s = app.client.clone().get_programme_stats(window(t0, t0 + 11 * day)).await.unwrap().into_inner();
    assert_eq!((s.buyers, s.repeat_buyers, s.purchases), (2, 2, 4));
    let e = app.client.clone().get_programme_stats(window(t0, t0)).await.unwrap_err();
    crate::support::assert_status(&e, tonic::Code::InvalidArgument, "INVALID_ARGUMENT", Some("end_time"));
    app.stop().await;
}

async fn pending_then_active_then_expired(db: Db) {
    let app = spawn_app(db).await;
    app.enrol("ann").await;
    let p = app.purchase("p1", "ann", "o-1", 120, false).await;
    assert_eq!(p.points, 120);
    let m = p.member.unwrap();
    assert_eq!((balance(&m).pending, balance(&m).active), (120, 0));
    app.assert_reads_agree("ann").await;
    // not spendable during the returns window
    assert!(app.redeem("r0", "ann", 1).await.is_err());
    app.clock.advance_days(14);
    let m = app.member("ann").await;
    assert_eq!((balance(&m).pending, balance(&m).active), (0, 120));

    // a second lot a month later; redemption takes from the soonest-expiring (the first) lot
    app.clock.advance_days(30);
    app.earn("e2", "ann", 50).await.unwrap();
    app.redeem("r1", "ann", 100).await.unwrap();
    // the first lot expires 365 days after it became available: 20 left in it expire
    app.clock.advance_days(365 - 30);
    let m = app.member("ann").await;
    assert_eq!(balance(&m).expired, 20);
    assert_eq!(balance(&m).active, 50);
    assert_eq!(balance(&m).spent, 100);
    app.assert_reads_agree("ann").await;
    // the read worked the expiry out without writing it; the sweeper writes it, and the view stays the same
    assert!(app.all_entries("ann").await.iter().all(|e| e.kind != i32::from(pb::EntryKind::Expire)));
    assert_eq!(app.settle().await, 1);
    assert_eq!(app.member("ann").await, m);
    let entries = app.all_entries("ann").await;
    assert_eq!(entries[0].kind, i32::from(pb::EntryKind::Expire));
    assert_eq!(entries[0].points, -20);
    let sum: i64 = entries.iter().map(|e| e.points).sum();
    assert_eq!(sum, 50);
    // expiring soon: the 50 lot expires within 30 days of its end
    app.clock.advance_days(20);
    assert_eq!(balance(&app.member("ann").await).expiring_soon, 50);
    app.assert_reads_agree("ann").await;
    app.stop().await;
}

async fn tiers_up_at_once_down_at_period_end(db: Db) {
    let app = spawn_app(db).await;
    app.enrol("tim").await;
    app.earn("e1", "tim", 1_500).await.unwrap();
    let m = app.member("tim").await;
    assert_eq!(m.tier, i32::from(pb::Tier::Silver), "upgrade at once");
    assert_eq!(m.next_tier, i32::from(pb::Tier::Gold));
    assert_eq!(m.points_to_next_tier, 3_500);
    // the points that made silver stop qualifying when its period ends: all 1,000 of silver's are still to earn
    assert_eq!(m.points_to_keep_tier, 1_000);
    app.assert_reads_agree("tim").await;
    // a purchase at silver earns 125 %
    app.clock.advance_days(1);
    let p = app.purchase("p1", "tim", "o-9", 4_000, false).await;
    assert_eq!(p.points, 5_000);
    assert_eq!(p.member.unwrap().tier, i32::from(pb::Tier::Gold));
    assert_eq!(app.member("tim").await.points_to_keep_tier, 5_000, "gold is not secured for the next period");
    app.assert_reads_agree("tim").await;
    // 400 days later nothing qualifies any more; the downgrade waits for the end of the gold period (365 days
    // after the upgrade), and goes to the tier the remaining qualifying points hold (none: bronze)
    app.clock.advance_days(364);
    assert_eq!(app.member("tim").await.tier, i32::from(pb::Tier::Gold));
    app.clock.advance_days(2);
    let m = app.member("tim").await;
    assert_eq!(m.tier, i32::from(pb::Tier::Bronze));
    // the read wrote nothing; the sweeper records and publishes the downgrade, and the view stays the same
    use rapport_outbox::entities::outbox_event;
    let events = || outbox_event::Entity::find().filter(outbox_event::Column::PartitionKey.eq("tim")).count(&app.db);
    assert_eq!(events().await.unwrap(), 3, "silver, purchase, gold");
    assert_eq!(app.settle().await, 1);
    assert_eq!(app.member("tim").await, m);
    // every change was recorded and published for segmentation
    assert_eq!(events().await.unwrap(), 4, "silver, purchase, gold, bronze");
    app.stop().await;
}

async fn sweeper_settles_idle_members(db: Db) {
    let app = spawn_app(db).await;
    app.enrol("ida").await;
    app.earn("e1", "ida", 30).await.unwrap();
    app.clock.advance_days(400);
    let store = app.store();
    assert_eq!(store.settle_due(100).await.unwrap(), 1);
    assert_eq!(rapport_loyalty::store::count_entries(&app.db, "ida").await.unwrap(), 2, "earn and expiry");
    assert_eq!(store.settle_due(100).await.unwrap(), 0, "nothing left to settle");
    app.stop().await;
}

/// A read never writes: GetMember and ListTransactions answer while another transaction holds the write lock on
/// SQLite and the member's row on PostgreSQL (a read that settled expiry would wait for it), even for a member whose
/// points have expired since the last write.
async fn reads_answer_while_a_writer_holds_the_member(db: Db) {
    use rapport_loyalty::entities::members;
    use sea_orm::QuerySelect;
    let app = spawn_app(db).await;
    app.enrol("kim").await;
    app.earn("e1", "kim", 40).await.unwrap();
    app.clock.advance_days(400);
    let writer = rapport_kit::db::begin_write(&app.db).await.unwrap();
    let row = members::Entity::find_by_id("kim".to_string()).lock_exclusive().one(&writer).await.unwrap();
    assert!(row.is_some());
    // a deadline, not a speed check: a read that needed the lock would wait for the writer until this fails
    let deadline = std::time::Duration::from_secs(20);
    let m = tokio::time::timeout(deadline, app.member("kim")).await.expect("GetMember waited for the writer");
    assert_eq!((balance(&m).active, balance(&m).expired), (0, 40));
    let page = tokio::time::timeout(
        deadline,
        app.client.clone().list_transactions(pb::ListTransactionsRequest {
            customer_id: "kim".into(),
            page_size: 10,
            page_token: String::new(),
        }),
    )
    .await
    .expect("ListTransactions waited for the writer")
    .unwrap();
    assert_eq!(page.into_inner().entries.len(), 1, "the earn; the expiry is not written by a read");
    writer.rollback().await.unwrap();
    assert_eq!(app.settle().await, 1);
    assert_eq!(app.member("kim").await, m, "the sweeper writes what the read worked out");
    app.stop().await;
}
