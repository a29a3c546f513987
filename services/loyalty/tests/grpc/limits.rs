//! Load shedding never starves health checks; a request past its deadline gets DEADLINE_EXCEEDED and leaves nothing
//! behind. A held SQLite write lock keeps requests in flight for as long as the test needs.
use std::time::Duration;

use rapport_kit::{db, serve::ServeConfig};
use rapport_proto::loyalty::v1 as pb;
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

use crate::support::{Db, Options, assert_status, spawn_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_shed_but_health_still_answers() {
    let serve = ServeConfig { concurrency: 1, drain_delay: Duration::from_millis(10), ..ServeConfig::default() };
    let app = spawn_with(Db::Sqlite, Options { serve, ..Options::default() }).await;
    app.enrol("busy").await;
    let blocker = db::connect(&app.database_url).await.unwrap();
    let lock = db::begin_write(&blocker).await.unwrap();
    let spawn_slow = || {
        let mut c = app.client.clone();
        tokio::spawn(async move {
            c.earn_points(pb::EarnPointsRequest {
                request_id: "slow".into(),
                customer_id: "busy".into(),
                points: 5,
                reason: String::new(),
                reference: String::new(),
            })
            .await
        })
    };
    // The blocked earn holds the only slot; a probe that arrives while it does is shed. The probe may also win the
    // slot first, and then the earn is the one shed: send it again.
    let mut slow = spawn_slow();
    let mut c = app.client.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        assert!(tokio::time::Instant::now() < deadline, "no request was shed");
        if slow.is_finished() {
            let shed = slow.await.unwrap().unwrap_err();
            assert_status(&shed, Code::ResourceExhausted, "OVERLOADED", None);
            slow = spawn_slow();
        }
        let probe = pb::ListTransactionsRequest { customer_id: "busy".into(), page_size: 1, page_token: String::new() };
        match c.list_transactions(probe).await {
            Err(s) => {
                assert_status(&s, Code::ResourceExhausted, "OVERLOADED", None);
                break;
            }
            Ok(_) => tokio::task::yield_now().await,
        }
    }
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{}", app.addr)).unwrap().connect().await.unwrap();
    let h = HealthClient::new(ch).check(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
    assert_eq!(h.status, ServingStatus::Serving as i32);
    lock.commit().await.unwrap();
    assert_eq!(slow.await.unwrap().unwrap().into_inner().balance.unwrap().active, 5);
    c.get_member(pb::GetMemberRequest { customer_id: "busy".into() }).await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_deadline_is_deadline_exceeded_and_rolled_back() {
    let serve = ServeConfig {
        request_timeout: Duration::from_millis(300),
        drain_delay: Duration::from_millis(10),
        ..ServeConfig::default()
    };
    let app = spawn_with(Db::Sqlite, Options { serve, ..Options::default() }).await;
    app.enrol("late").await;
    let blocker = db::connect(&app.database_url).await.unwrap();
    let lock = db::begin_write(&blocker).await.unwrap();
    let err = app.earn("too-late", "late", 5).await.unwrap_err();
    assert_status(&err, Code::DeadlineExceeded, "DEADLINE_EXCEEDED", None);
    lock.commit().await.unwrap();
    assert_eq!(rapport_loyalty::store::count_entries(&app.db, "late").await.unwrap(), 0, "nothing half-written");
    // the same request id can be used again: the timed-out attempt left no claim
    assert_eq!(app.earn("too-late", "late", 5).await.unwrap().balance.unwrap().active, 5);
    app.stop().await;
}
