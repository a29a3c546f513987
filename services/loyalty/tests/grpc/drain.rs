//! SIGTERM to the real binary: health turns NOT_SERVING first and the call in flight finishes; a call that outlives
//! the drain deadline is cut off; the process exits 0 either way.
use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::Duration,
};

use rapport_kit::{auth::Role, db};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

use crate::support::{authenticator, client_as, eventually};

/// Starts the real binary on an ephemeral port with the given drain delay and deadline (ms).
fn start(url: &str, delay_ms: &str, deadline_ms: &str) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rapport-loyalty"))
        .env("RAPPORT_LOYALTY_LISTEN", "127.0.0.1:0")
        .env("DATABASE_URL", url)
        .env("RAPPORT_AUTH_DIR", rapport_kit::testing::key_dir())
        .env("RAPPORT_DRAIN_DELAY_MS", delay_ms)
        .env("RAPPORT_DRAIN_DEADLINE_MS", deadline_ms)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let addr = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("rapport-loyalty listening on ").map(str::to_string))
        .expect("the listening line");
    (child, addr.parse().unwrap())
}

fn sigterm(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

/// Waits (polling, with a deadline) for the process to exit.
async fn exited(child: &mut Child) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(std::time::Instant::now() < deadline, "the process did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn earn_request(rid: &str, customer: &str, points: i64) -> rapport_proto::loyalty::v1::EarnPointsRequest {
    rapport_proto::loyalty::v1::EarnPointsRequest {
        request_id: rid.into(),
        customer_id: customer.into(),
        points,
        reason: String::new(),
        reference: String::new(),
    }
}

/// A call still running when the drain deadline passes is cut off: the process stops anyway, and the call's
/// transaction never commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_outlives_the_drain_deadline_is_cut_off() {
    let database = db::testing::fresh_database(db::testing::Backend::Sqlite).await.unwrap();
    let url = database.url();
    let (mut child, addr) = start(url, "10", "300");
    let client = client_as(addr, &authenticator(), Role::Sre);
    let mut c = client.clone();
    c.enrol_member(rapport_proto::loyalty::v1::EnrolMemberRequest {
        request_id: "e".into(),
        customer_id: "stuck".into(),
        display_name: String::new(),
    })
    .await
    .unwrap();
    let blocker = db::connect(url).await.unwrap();
    let lock = db::begin_write(&blocker).await.unwrap();
    let stuck = {
        let mut c = client.clone();
        tokio::spawn(async move { c.earn_points(earn_request("stuck", "stuck", 1)).await })
    };
    sigterm(&child);
    // The lock is held for as long as the process lives: only the forced stop can end it.
    let code = exited(&mut child).await;
    assert!(code.success(), "exit status {code}");
    assert!(stuck.await.unwrap().is_err(), "the cut-off call fails");
    lock.rollback().await.unwrap();
    assert_eq!(rapport_loyalty::store::count_entries(&blocker, "stuck").await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_calls() {
    let database = db::testing::fresh_database(db::testing::Backend::Sqlite).await.unwrap();
    let url = database.url();
    let (mut child, addr) = start(url, "1000", "20000");
    let auth = authenticator();
    let client = client_as(addr, &auth, Role::Sre);
    let mut c = client.clone();
    c.enrol_member(rapport_proto::loyalty::v1::EnrolMemberRequest {
        request_id: "e".into(),
        customer_id: "drain".into(),
        display_name: String::new(),
    })
    .await
    .unwrap();

    // Hold the write lock: the earn below stays in flight until it is released.
    let blocker = db::connect(url).await.unwrap();
    let lock = db::begin_write(&blocker).await.unwrap();
    let in_flight = {
        let mut c = client.clone();
        tokio::spawn(async move { c.earn_points(earn_request("in-flight", "drain", 7)).await })
    };
    sigterm(&child);

    let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let health = HealthClient::new(ch);
    eventually(10, "health NOT_SERVING", || {
        let mut h = health.clone();
        async move {
            h.check(HealthCheckRequest { service: rapport_loyalty::app::SERVICE_NAME.into() })
                .await
                .is_ok_and(|r| r.into_inner().status == ServingStatus::NotServing as i32)
        }
    })
    .await;
    assert!(!in_flight.is_finished(), "the call is still in flight when health turns");
    lock.commit().await.unwrap();
    let done = in_flight.await.unwrap().expect("the in-flight call finishes");
    assert_eq!(done.into_inner().balance.unwrap().active, 7);

    let code = exited(&mut child).await;
    assert!(code.success(), "exit status {code}");
    assert_eq!(rapport_loyalty::store::count_entries(&blocker, "drain").await.unwrap(), 1);
}
