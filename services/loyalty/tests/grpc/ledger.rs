//! The ledger operations, their balances and their idempotency.
use rapport_proto::loyalty::v1 as pb;
use tonic::Code;

use crate::support::{Db, assert_status, balance, on_both, spawn_app};

on_both!(earn_redeem_adjust_reverse_transfer, retries_return_the_first_result, forget_anonymises_the_ledger);

async fn earn_redeem_adjust_reverse_transfer(db: Db) {
    let app = spawn_app(db).await;
    app.enrol("alice").await;
    app.enrol("bob").await;
    let mut c = app.client.clone();

    let earned = app.earn("e1", "alice", 500).await.unwrap();
    assert_eq!(earned.balance.unwrap().active, 500);
    let redeemed = app.redeem("r1", "alice", 120).await.unwrap();
    assert_eq!(redeemed.entry.as_ref().unwrap().points, -120);
    assert_eq!(redeemed.balance.unwrap().active, 380);

    let adj = c
        .adjust_points(pb::AdjustPointsRequest {
            request_id: "a1".into(),
            customer_id: "alice".into(),
            points: -30,
            reason: "duplicate credit".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(adj.balance.unwrap().active, 350);

    // Reverse part of the earn, then the rest; a third reversal finds nothing left.
    let earn_id = earned.entry.unwrap().entry_id;
    let rev = |rid: &str, points: i64| pb::ReversePointsRequest {
        request_id: rid.into(),
        customer_id: "alice".into(),
        entry_id: earn_id.clone(),
        points,
        reason: "refund".into(),
    };
    let r = c.reverse_points(rev("v1", 100)).await.unwrap().into_inner();
    assert_eq!(r.entry.as_ref().unwrap().reverses_entry_id, earn_id);
    assert_eq!(r.balance.unwrap().active, 250);
    // The rest of the earn (400) was partly spent: reversing it all would go below zero.
    let err = c.reverse_points(rev("v2", 0)).await.unwrap_err();
    assert_status(&err, Code::FailedPrecondition, "INSUFFICIENT_POINTS", None);
    let r = c.reverse_points(rev("v3", 250)).await.unwrap().into_inner();
    assert_eq!(r.entry.unwrap().points, -250);
    assert_eq!(r.balance.unwrap().active, 0);
    // A fully reversed entry has nothing left.
    let small = app.earn("e-small", "bob", 50).await.unwrap().entry.unwrap().entry_id;
    let full = pb::ReversePointsRequest {
        request_id: "v5".into(),
        customer_id: "bob".into(),
        entry_id: small.clone(),
        points: 0,
        reason: String::new(),
    };
    assert_eq!(c.reverse_points(full).await.unwrap().into_inner().entry.unwrap().points, -50);
    let again = pb::ReversePointsRequest {
        request_id: "v6".into(),
        customer_id: "bob".into(),
        entry_id: small,
        points: 0,
        reason: String::new(),
    };
    let err = c.reverse_points(again).await.unwrap_err();
    assert_status(&err, Code::FailedPrecondition, "NOTHING_LEFT_TO_REVERSE", None);

    // Reversing a redemption gives the points back.
    let e2 = app.earn("e2", "alice", 1000).await.unwrap();
    assert_eq!(e2.balance.unwrap().active, 1000);
    let red = app.redeem("r2", "alice", 200).await.unwrap();
    let before = red.balance.unwrap().active;
    let back = c
        .reverse_points(pb::ReversePointsRequest {
            request_id: "v4".into(),
            customer_id: "alice".into(),
            entry_id: red.entry.unwrap().entry_id,
            points: 0,
            reason: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(back.balance.unwrap().active, before + 200);

    let t = c
        .transfer_points(pb::TransferPointsRequest {
            request_id: "t1".into(),
            from_customer_id: "alice".into(),
            to_customer_id: "bob".into(),
            points: 300,
            reason: "gift".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.debit.unwrap().points, -300);
    assert_eq!(t.credit.as_ref().unwrap().points, 300);
    assert_eq!(t.credit.unwrap().counterparty_customer_id, "alice");
    assert_eq!(balance(&app.member("bob").await).active, 300);

    // The ledger adds up to the balance.
    for who in ["alice", "bob"] {
        let m = app.member(who).await;
        let sum: i64 = app.all_entries(who).await.iter().map(|e| e.points).sum();
        assert_eq!(sum, balance(&m).active + balance(&m).pending, "{who}");
    }
    app.stop().await;
}

async fn retries_return_the_first_result(db: Db) {
    let app = spawn_app(db).await;
    app.enrol("carol").await;
    let first = app.earn("same", "carol", 40).await.unwrap();
    let again = app.earn("same", "carol", 40).await.unwrap();
    assert_eq!(first, again, "a retry returns the stored response");
    assert_eq!(app.all_entries("carol").await.len(), 1);
    let err = app.earn("same", "carol", 41).await.unwrap_err();
    assert_status(&err, Code::AlreadyExists, "REQUEST_ID_REUSED", None);
    let err = app.redeem("same", "carol", 40).await.unwrap_err();
    assert_status(&err, Code::AlreadyExists, "REQUEST_ID_REUSED", None);
    // a failed request is not stored: the same id succeeds once the precondition holds
    let err = app.redeem("later", "carol", 100).await.unwrap_err();
    assert_status(&err, Code::FailedPrecondition, "INSUFFICIENT_POINTS", None);
    app.earn("more", "carol", 100).await.unwrap();
    assert_eq!(app.redeem("later", "carol", 100).await.unwrap().balance.unwrap().active, 40);
    app.stop().await;
}

async fn forget_anonymises_the_ledger(db: Db) {
    let app = spawn_app(db).await;
    let mut c = app.client.clone();
    c.enrol_member(pb::EnrolMemberRequest {
        request_id: "en".into(),
        customer_id: "dave".into(),
        display_name: "Dave Example".into(),
    })
    .await
    .unwrap();
    assert_eq!(app.member("dave").await.display_name, "Dave Example");
    app.earn("e", "dave", 10).await.unwrap();
    app.redeem("r", "dave", 5).await.unwrap();
    let f = c
        .forget_member(pb::ForgetMemberRequest { request_id: "f".into(), customer_id: "dave".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(f.anonymised_entries, 2);
    let err = c.get_member(pb::GetMemberRequest { customer_id: "dave".into() }).await.unwrap_err();
    assert_status(&err, Code::NotFound, "MEMBER_NOT_FOUND", None);
    assert_eq!(rapport_loyalty::store::count_entries(&app.db, "dave").await.unwrap(), 0);
    // re-keyed under the keyed pseudonym of the id and its enrolment, which no dictionary of ids reverses
    let anon = rapport_kit::pseudonym::Pseudonyms::development().of(&format!("dave/{}", crate::support::T0));
    assert_eq!(rapport_loyalty::store::count_entries(&app.db, &anon).await.unwrap(), 2);
    // a pseudonym is no member: its ledger is not listed, as the erased member's is not
    let req = pb::ListTransactionsRequest { customer_id: anon, page_size: 10, page_token: String::new() };
    let err = c.list_transactions(req).await.unwrap_err();
    assert_status(&err, Code::NotFound, "MEMBER_NOT_FOUND", None);
    // the customer may enrol again, from scratch
    let m = app.enrol("dave").await;
    assert_eq!(balance(&m).active, 0);
    app.stop().await;
}

on_both!(returns_reverse_the_orders_points_in_proportion_and_are_published);

async fn returns_reverse_the_orders_points_in_proportion_and_are_published(db: Db) {
    use rapport_outbox::entities::outbox_event;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let app = spawn_app(db).await;
    app.enrol("rae").await;
    app.enrol("sam").await;
    let p = app.purchase("p-1", "rae", "o-1", 100, false).await;
    assert_eq!(p.points, 100);
    let ret = |rid: &str, customer: &str, order: &str, units: Option<i64>| {
        let mut c = app.client.clone();
        let req = pb::RecordReturnRequest {
            request_id: rid.into(),
            customer_id: customer.into(),
            order_id: order.into(),
            amount: units.map(crate::support::eur),
            reason: String::new(),
        };
        async move { c.record_return(req).await.map(|r| r.into_inner()) }
    };
    // 40 of 100 back: 40 points reversed (pending ones: still in the returns window), a reversing entry.
    let r = ret("r-1", "rae", "o-1", Some(40)).await.unwrap();
    assert_eq!((r.points_reversed, r.fully_returned), (40, false));
    let entry = r.entry.unwrap();
    assert_eq!((entry.kind, entry.points), (i32::from(pb::EntryKind::Reverse), -40));
    assert_eq!(balance(r.member.as_ref().unwrap()).pending, 60);
    // A retry is the same answer; the rest of the order (no amount) reverses the rest.
    assert_eq!(ret("r-1", "rae", "o-1", Some(40)).await.unwrap().points_reversed, 40);
    let r = ret("r-2", "rae", "o-1", None).await.unwrap();
    assert_eq!((r.points_reversed, r.fully_returned, r.returned.unwrap().units), (60, true, 100));
    assert_eq!(balance(r.member.as_ref().unwrap()).pending, 0);
    // Nothing left; another member's order and an unknown one are not found.
    let e = ret("r-3", "rae", "o-1", Some(1)).await.unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "NOTHING_LEFT_TO_RETURN", None);
    for (customer, order) in [("sam", "o-1"), ("rae", "o-404")] {
        let e = ret(&format!("r-{customer}-{order}"), customer, order, None).await.unwrap_err();
        assert_status(&e, Code::NotFound, "ORDER_NOT_FOUND", None);
    }
    let e = ret("", "rae", "o-1", Some(0)).await.unwrap_err();
    assert_status(&e, Code::InvalidArgument, "INVALID_ARGUMENT", Some("request_id"));
    assert_status(&e, Code::InvalidArgument, "INVALID_ARGUMENT", Some("amount"));
    // Points of an order already reversed by hand are not reversed again by its return.
    let p = app.purchase("p-2", "sam", "o-2", 100, false).await;
    app.client
        .clone()
        .reverse_points(pb::ReversePointsRequest {
            request_id: "rev".into(),
            customer_id: "sam".into(),
            entry_id: p.entry.unwrap().entry_id,
            points: 30,
            reason: "goodwill correction".into(),
        })
        .await
        .unwrap();
    let r = ret("r-sam", "sam", "o-2", None).await.unwrap();
    assert_eq!((r.points_reversed, r.fully_returned), (70, true));
    assert_eq!(balance(r.member.as_ref().unwrap()).pending, 0);
    // Both of rae's returns were published for the subscribers.
    let kinds: Vec<String> = outbox_event::Entity::find()
        .filter(outbox_event::Column::PartitionKey.eq("rae"))
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| {
            use prost::Message;
            let ev = rapport_proto::events::v1::Event::decode(e.payload.as_slice()).ok()?;
            Some(rapport_outbox::kind(ev.payload.as_ref()).to_string())
        })
        .collect();
    assert_eq!(kinds.iter().filter(|k| *k == "purchase_returned").count(), 2, "{kinds:?}");
    app.stop().await;
}
