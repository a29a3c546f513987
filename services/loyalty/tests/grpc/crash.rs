//! A retry storm while the real binary is SIGKILLed: 10,000 earns over 50 members, 30 % sent twice at once under
//! the same request id, 10 % cancelled by the client before they return, the process killed and restarted 3 times;
//! every request id is retried until it has a definite answer. Afterwards each member's balance is the sum of its
//! unique earns and its ledger has one entry per unique request: nothing doubled, nothing lost.
use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures::StreamExt;
use rapport_kit::{auth::Role, db};
use rapport_proto::loyalty::v1::{EarnPointsRequest, EnrolMemberRequest, GetMemberRequest};
use tonic::Code;

use crate::support::{Db, authenticator, client_as};

const MEMBERS: usize = 50;
const EARNS: usize = 10_000;

fn start(url: &str, listen: &str) -> (Child, std::net::SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rapport-loyalty"))
        .env("RAPPORT_LOYALTY_LISTEN", listen)
        .env("DATABASE_URL", url)
        .env("RAPPORT_AUTH_DIR", rapport_kit::testing::key_dir())
        .env("RAPPORT_LOYALTY_SUBSCRIBERS", "segmentation")
        .env("RUST_LOG", "error")
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

fn earn(k: usize) -> EarnPointsRequest {
    EarnPointsRequest {
        request_id: format!("storm-{k}"),
        customer_id: format!("m{}", k % MEMBERS),
        points: 1 + (k % 7) as i64,
        reason: "storm".into(),
        reference: String::new(),
    }
}

/// Whether a failure leaves the outcome unknown (the call may or may not have been applied): retry it.
fn unknown_outcome(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded | Code::ResourceExhausted
    )
}

async fn storm_with_kills(backend: Db) {
    let database = db::testing::fresh_database(backend).await.unwrap();
    let url = database.url().to_string();
    let (child, addr) = start(&url, "127.0.0.1:0");
    let child = Arc::new(std::sync::Mutex::new(child));
    let client = client_as(addr, &authenticator(), Role::Sre);
    for m in 0..MEMBERS {
        client
            .clone()
            .enrol_member(EnrolMemberRequest {
                request_id: format!("enrol-{m}"),
                customer_id: format!("m{m}"),
                display_name: String::new(),
            })
            .await
            .unwrap();
    }

    let done = Arc::new(AtomicUsize::new(0));
    let killer = {
        let (done, child, url) = (done.clone(), child.clone(), url.clone());
        tokio::spawn(async move {
            for kill in 1..=3 {
                while done.load(Ordering::SeqCst) < kill * EARNS / 4 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let mut c = child.lock().unwrap();
                c.kill().unwrap();
                c.wait().unwrap();
                // Back on the same address: the clients reconnect by themselves.
                *c = start(&url, &addr.to_string()).0;
            }
        })
    };

    futures::stream::iter(0..EARNS)
        .for_each_concurrent(16, |k| {
            let (client, done) = (client.clone(), done.clone());
            async move {
                let req = earn(k);
                let mut first = true;
                loop {
                    let mut c = client.clone();
                    let answer = if first && k % 10 == 0 {
                        // Cancelled by the client: the server may or may not have applied it.
                        match tokio::time::timeout(Duration::from_micros(300), c.earn_points(req.clone())).await {
                            Ok(a) => a.map(|_| ()),
                            Err(_) => Err(tonic::Status::cancelled("cancelled by the client")),
                        }
                    } else if first && k % 10 < 4 {
                        // The same request twice at once.
                        let mut c2 = client.clone();
                        let (a, b) = tokio::join!(c.earn_points(req.clone()), c2.earn_points(req.clone()));
                        a.and(b).map(|_| ())
                    } else {
                        c.earn_points(req.clone()).await.map(|_| ())
                    };
                    first = false;
                    match answer {
                        Ok(()) => break,
                        Err(s) if unknown_outcome(s.code()) => tokio::time::sleep(Duration::from_millis(10)).await,
                        Err(s) => panic!("request {} got a definite refusal: {s:?}", req.request_id),
                    }
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
        })
        .await;
    killer.await.unwrap();

    let conn = db::connect(&url).await.unwrap();
    for m in 0..MEMBERS {
        let customer = format!("m{m}");
        let (mut points, mut requests) = (0i64, 0u64);
        for k in (m..EARNS).step_by(MEMBERS) {
            points += earn(k).points;
            requests += 1;
        }
        let member = client
            .clone()
            .get_member(GetMemberRequest { customer_id: customer.clone() })
            .await
            .unwrap()
            .into_inner()
            .member
            .unwrap();
        let b = member.balance.unwrap();
        assert_eq!(b.active + b.pending, points, "{customer}: balance is the sum of its unique earns");
        let entries = rapport_loyalty::store::count_entries(&conn, &customer).await.unwrap();
        assert_eq!(entries, requests, "{customer}: one ledger entry per unique request");
    }
    let mut c = child.lock().unwrap();
    let _ = c.kill();
    let _ = c.wait();
}

rapport_kit::on_both!(storm_with_kills);
