//! SIGTERM to the real binary: health turns NOT_SERVING first, the call in flight finishes, the process exits 0.
use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use rapport_kit::{auth::Role, db};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

use crate::support::{SECRET, authenticator, client_as, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_calls() {
    let url = db::testing::fresh_database(db::testing::Backend::Sqlite).await.unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rapport-loyalty"))
        .env("RAPPORT_LOYALTY_LISTEN", "127.0.0.1:0")
        .env("DATABASE_URL", &url)
        .env("RAPPORT_AUTH_SECRET", SECRET)
        .env("RAPPORT_DRAIN_DELAY_MS", "1000")
        .env("RAPPORT_DRAIN_DEADLINE_MS", "20000")
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
    let auth = authenticator();
    let addr: std::net::SocketAddr = addr.parse().unwrap();
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
    let blocker = db::connect(&url).await.unwrap();
    let lock = db::begin_write(&blocker).await.unwrap();
    let in_flight = {
        let mut c = client.clone();
        tokio::spawn(async move {
            c.earn_points(rapport_proto::loyalty::v1::EarnPointsRequest {
                request_id: "in-flight".into(),
                customer_id: "drain".into(),
                points: 7,
                reason: String::new(),
                reference: String::new(),
            })
            .await
        })
    };
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());

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

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "the process did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(code.success(), "exit status {code}");
    assert_eq!(rapport_loyalty::store::count_entries(&blocker, "drain").await.unwrap(), 1);
}
