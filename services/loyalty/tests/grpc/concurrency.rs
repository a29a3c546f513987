//! 64 concurrent identical earn requests with one request id create exactly one ledger entry.
use crate::support::{Db, balance, on_both, spawn_app};

on_both!(one_request_id_one_entry);

async fn one_request_id_one_entry(db: Db) {
    let app = spawn_app(db).await;
    app.enrol("conc").await;
    let calls = (0..64).map(|_| {
        let app = &app;
        async move { app.earn("the-one", "conc", 25).await }
    });
    let results = futures::future::join_all(calls).await;
    let ids: std::collections::HashSet<String> =
        results.into_iter().map(|r| r.expect("every retry succeeds").entry.unwrap().entry_id).collect();
    assert_eq!(ids.len(), 1, "every caller sees the same entry");
    assert_eq!(rapport_loyalty::store::count_entries(&app.db, "conc").await.unwrap(), 1);
    assert_eq!(balance(&app.member("conc").await).active, 25);
    app.stop().await;
}
