//! AIP-158 pagination edge cases.
use base64::Engine;
use rapport_proto::loyalty::v1 as pb;
use tonic::Code;

use crate::support::{Db, assert_status, on_both, spawn_app};

on_both!(pages);

async fn pages(db: Db) {
    let app = spawn_app(db).await;
    app.enrol("p").await;
    app.enrol("q").await;
    for i in 0..120 {
        app.earn(&format!("e{i}"), "p", i + 1).await.unwrap();
    }
    app.earn("q1", "q", 1).await.unwrap();
    let list = |size: i32, token: String| {
        let mut c = app.client.clone();
        async move {
            c.list_transactions(pb::ListTransactionsRequest {
                customer_id: "p".into(),
                page_size: size,
                page_token: token,
            })
            .await
        }
    };
    // 0 means the default (50)
    let first = list(0, String::new()).await.unwrap().into_inner();
    assert_eq!(first.entries.len(), 50);
    assert_eq!(first.entries[0].points, 120, "newest first");
    // huge is served as the maximum (500): everything fits
    let all = list(i32::MAX, String::new()).await.unwrap().into_inner();
    assert_eq!(all.entries.len(), 120);
    assert!(all.next_page_token.is_empty());
    // walking pages of 50: 50, 50, 20, each entry once
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut sizes = Vec::new();
    loop {
        let r = list(50, token).await.unwrap().into_inner();
        sizes.push(r.entries.len());
        seen.extend(r.entries.into_iter().map(|e| e.points));
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    assert_eq!(sizes, vec![50, 50, 20]);
    assert_eq!(seen, (1..=120).rev().collect::<Vec<i64>>());
    // exactly one page of 120 has no next token
    let exact = list(120, String::new()).await.unwrap().into_inner();
    assert!(exact.next_page_token.is_empty());
    // negative
    assert_status(
        &list(-1, String::new()).await.unwrap_err(),
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
        Some("page_size"),
    );
    // a tampered token
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut bytes = engine.decode(&first.next_page_token).unwrap();
    bytes[7] ^= 0x01;
    let tampered = engine.encode(bytes);
    assert_status(
        &list(50, tampered).await.unwrap_err(),
        Code::InvalidArgument,
        "INVALID_PAGE_TOKEN",
        Some("page_token"),
    );
    // a token of another customer's listing
    let err = app
        .client
        .clone()
        .list_transactions(pb::ListTransactionsRequest {
            customer_id: "q".into(),
            page_size: 10,
            page_token: first.next_page_token.clone(),
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::InvalidArgument, "INVALID_PAGE_TOKEN", Some("page_token"));
    app.stop().await;
}
