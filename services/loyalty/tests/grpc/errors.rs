//! Every bad input gets the right code, a stable reason and the violated field (table-driven).
use futures::future::BoxFuture;
use rapport_proto::loyalty::v1 as pb;
use tonic::{Code, Status};

use crate::support::{Client, Db, assert_status, eur, on_both, spawn_app};

on_both!(bad_inputs);

type Call = Box<dyn FnOnce(Client) -> BoxFuture<'static, Result<(), Status>>>;

fn earn(customer: &str, points: i64, rid: &str) -> Call {
    let r = pb::EarnPointsRequest {
        request_id: rid.into(),
        customer_id: customer.into(),
        points,
        reason: "x".into(),
        reference: String::new(),
    };
    Box::new(move |mut c| Box::pin(async move { c.earn_points(r).await.map(|_| ()) }))
}

async fn bad_inputs(db: Db) {
    let app = spawn_app(db).await;
    app.enrol("m1").await;
    app.enrol("m2").await;
    app.earn("seed", "m1", 100).await.unwrap();
    let seed_entry = app.all_entries("m1").await[0].entry_id.clone();
    app.redeem("seed-r", "m1", 10).await.unwrap();

    let purchase = |order: &str, money: Option<rapport_proto::common::v1::Money>, channel: i32| -> Call {
        let r = pb::RecordPurchaseRequest {
            request_id: format!("p-{order}"),
            customer_id: "m1".into(),
            order_id: order.into(),
            amount: money,
            channel,
            recurring: false,
        };
        Box::new(move |mut c| Box::pin(async move { c.record_purchase(r).await.map(|_| ()) }))
    };
    let page = |size: i32, token: &str| -> Call {
        let r = pb::ListTransactionsRequest { customer_id: "m1".into(), page_size: size, page_token: token.into() };
        Box::new(move |mut c| Box::pin(async move { c.list_transactions(r).await.map(|_| ()) }))
    };
    let reverse = |entry: &str, points: i64| -> Call {
        let r = pb::ReversePointsRequest {
            request_id: format!("rv-{entry}-{points}"),
            customer_id: "m1".into(),
            entry_id: entry.into(),
            points,
            reason: String::new(),
        };
        Box::new(move |mut c| Box::pin(async move { c.reverse_points(r).await.map(|_| ()) }))
    };
    let transfer = |from: &str, to: &str, points: i64| -> Call {
        let r = pb::TransferPointsRequest {
            request_id: format!("t-{from}-{to}-{points}"),
            from_customer_id: from.into(),
            to_customer_id: to.into(),
            points,
            reason: String::new(),
        };
        Box::new(move |mut c| Box::pin(async move { c.transfer_points(r).await.map(|_| ()) }))
    };
    let adjust = |points: i64, reason: &str| -> Call {
        let r = pb::AdjustPointsRequest {
            request_id: format!("adj-{points}"),
            customer_id: "m1".into(),
            points,
            reason: reason.into(),
        };
        Box::new(move |mut c| Box::pin(async move { c.adjust_points(r).await.map(|_| ()) }))
    };
    let enrol_again: Call = Box::new(|mut c| {
        Box::pin(async move {
            c.enrol_member(pb::EnrolMemberRequest {
                request_id: "enrol-again".into(),
                customer_id: "m1".into(),
                display_name: String::new(),
            })
            .await
            .map(|_| ())
        })
    });
    let grant = |customers: Vec<String>| -> Call {
        let r = pb::GrantOffersRequest {
            request_id: format!("g-{}", customers.len()),
            offer_id: "nope".into(),
            campaign_id: "c".into(),
            customer_ids: customers,
        };
        Box::new(move |mut c| Box::pin(async move { c.grant_offers(r).await.map(|_| ()) }))
    };
    let dollars = rapport_proto::common::v1::Money { currency_code: "USD".into(), units: 10, nanos: 0 };
    let bad_nanos = rapport_proto::common::v1::Money { currency_code: "EUR".into(), units: 1, nanos: -5 };

    let cases: Vec<(&str, Call, Code, &str, Option<&str>)> = vec![
        ("empty customer", earn("", 1, "x1"), Code::InvalidArgument, "INVALID_ARGUMENT", Some("customer_id")),
        ("bad customer chars", earn("a b", 1, "x2"), Code::InvalidArgument, "INVALID_ARGUMENT", Some("customer_id")),
        (
            "long customer",
            earn(&"c".repeat(129), 1, "x3"),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            Some("customer_id"),
        ),
        ("zero points", earn("m1", 0, "x4"), Code::InvalidArgument, "INVALID_ARGUMENT", Some("points")),
        ("negative points", earn("m1", -5, "x5"), Code::InvalidArgument, "INVALID_ARGUMENT", Some("points")),
        ("huge points", earn("m1", 1_000_000_001, "x6"), Code::InvalidArgument, "INVALID_ARGUMENT", Some("points")),
        ("missing request id", earn("m1", 1, ""), Code::InvalidArgument, "INVALID_ARGUMENT", Some("request_id")),
        ("unknown member", earn("ghost", 1, "x7"), Code::NotFound, "MEMBER_NOT_FOUND", None),
        (
            "overdraft",
            Box::new(|mut c: Client| {
                Box::pin(async move {
                    c.redeem_points(pb::RedeemPointsRequest {
                        request_id: "od".into(),
                        customer_id: "m1".into(),
                        points: 1000,
                        reason: String::new(),
                    })
                    .await
                    .map(|_| ())
                })
            }),
            Code::FailedPrecondition,
            "INSUFFICIENT_POINTS",
            None,
        ),
        ("enrol twice", enrol_again, Code::AlreadyExists, "MEMBER_EXISTS", None),
        ("adjust zero", adjust(0, "r"), Code::InvalidArgument, "INVALID_ARGUMENT", Some("points")),
        ("adjust without reason", adjust(5, " "), Code::InvalidArgument, "INVALID_ARGUMENT", Some("reason")),
        ("adjust below zero", adjust(-10_000, "fix"), Code::FailedPrecondition, "INSUFFICIENT_POINTS", None),
        ("reverse bad id", reverse("abc", 0), Code::InvalidArgument, "INVALID_ARGUMENT", Some("entry_id")),
        ("reverse unknown entry", reverse("999999", 0), Code::NotFound, "ENTRY_NOT_FOUND", None),
        ("reverse too much", reverse(&seed_entry, 101), Code::FailedPrecondition, "NOTHING_LEFT_TO_REVERSE", None),
        ("reverse negative", reverse(&seed_entry, -1), Code::InvalidArgument, "INVALID_ARGUMENT", Some("points")),
        ("transfer to self", transfer("m1", "m1", 1), Code::InvalidArgument, "SAME_MEMBER", None),
        ("transfer overdraft", transfer("m1", "m2", 5000), Code::FailedPrecondition, "INSUFFICIENT_POINTS", None),
        ("transfer to stranger", transfer("m1", "ghost", 1), Code::NotFound, "MEMBER_NOT_FOUND", None),
        ("purchase no amount", purchase("o1", None, 1), Code::InvalidArgument, "INVALID_ARGUMENT", Some("amount")),
        (
            "purchase other currency",
            purchase("o2", Some(dollars), 1),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            Some("amount.currency_code"),
        ),
        (
            "purchase bad nanos",
            purchase("o3", Some(bad_nanos), 1),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            Some("amount.nanos"),
        ),
        (
            "purchase negative",
            purchase("o4", Some(eur(-3)), 1),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            Some("amount"),
        ),
        (
            "purchase unknown channel",
            purchase("o5", Some(eur(3)), 99),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            Some("channel"),
        ),
        ("page size negative", page(-1, ""), Code::InvalidArgument, "INVALID_ARGUMENT", Some("page_size")),
        (
            "page token garbage",
            page(10, "not-a-token"),
            Code::InvalidArgument,
            "INVALID_PAGE_TOKEN",
            Some("page_token"),
        ),
        ("grant nobody", grant(vec![]), Code::InvalidArgument, "INVALID_ARGUMENT", Some("customer_ids")),
        (
            "grant too many",
            grant((0..1001).map(|i| format!("c{i}")).collect()),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            Some("customer_ids"),
        ),
        ("grant unknown offer", grant(vec!["m1".into()]), Code::NotFound, "OFFER_NOT_FOUND", None),
    ];
    for (name, call, code, reason, field) in cases {
        let err = call(app.client.clone()).await.expect_err(name);
        eprintln!("{name}: {:?} {}", err.code(), err.message());
        assert_status(&err, code, reason, field);
    }
    // the same order twice
    app.purchase("po-1", "m1", "order-1", 20, false).await;
    let err = app
        .client
        .clone()
        .record_purchase(pb::RecordPurchaseRequest {
            request_id: "po-2".into(),
            customer_id: "m1".into(),
            order_id: "order-1".into(),
            amount: Some(eur(20)),
            channel: 1,
            recurring: false,
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::AlreadyExists, "ORDER_ALREADY_RECORDED", None);
    // nothing of the refused calls reached the ledger: seed earn, seed redeem, the purchase
    assert_eq!(app.all_entries("m1").await.len(), 3);
    app.stop().await;
}
