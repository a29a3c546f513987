//! Calls to a peer whose name stands for several replicas are spread over them, and replicas that come and go are
//! followed: real tonic servers on two loopback addresses, the shared client in front.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures::future::BoxFuture;
use rapport_kit::client::{Outgoing, Resolve, channel, channel_with};
use tonic::{Request, Response, Status};
use tonic_health::pb::{
    HealthCheckRequest, HealthCheckResponse,
    health_check_response::ServingStatus,
    health_client::HealthClient,
    health_server::{Health, HealthServer},
};

/// A health service that counts the checks it answers.
struct Counted(Arc<AtomicUsize>);

#[tonic::async_trait]
impl Health for Counted {
    async fn check(&self, _: Request<HealthCheckRequest>) -> Result<Response<HealthCheckResponse>, Status> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(HealthCheckResponse { status: ServingStatus::Serving as i32 }))
    }

    type WatchStream = futures::stream::Empty<Result<HealthCheckResponse, Status>>;

    async fn watch(&self, _: Request<HealthCheckRequest>) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("watch"))
    }
}

/// A replica listening on `addr` (port 0: any free one), its address and its count of calls.
async fn replica(addr: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(HealthServer::new(Counted(calls.clone())))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (addr, calls)
}

/// A name whose addresses the test sets, as a headless Service's DNS answer changes with its pods.
#[derive(Clone, Default)]
struct Names(Arc<Mutex<Vec<SocketAddr>>>);

impl Names {
    fn set(&self, addrs: &[SocketAddr]) {
        *self.0.lock().unwrap() = addrs.to_vec();
    }
}

impl Resolve for Names {
    fn resolve(&self, host: &str, port: u16) -> BoxFuture<'_, std::io::Result<Vec<SocketAddr>>> {
        assert_eq!(host, "loyalty");
        let addrs: Vec<SocketAddr> = self.0.lock().unwrap().iter().map(|a| SocketAddr::new(a.ip(), port)).collect();
        Box::pin(async move { Ok(addrs) })
    }
}

async fn check(client: &mut HealthClient<rapport_kit::client::OutgoingChannel>) {
    let r = client.check(HealthCheckRequest { service: String::new() }).await.unwrap();
    assert_eq!(r.into_inner().status, ServingStatus::Serving as i32);
}

#[tokio::test]
async fn calls_spread_over_the_replicas_a_name_stands_for_and_follow_them() {
    // Two replicas on one port, as two pods behind a headless Service.
    let (a, a_calls) = replica("127.0.0.1:0".parse().unwrap()).await;
    let (b, b_calls) = replica(SocketAddr::new("127.0.0.2".parse().unwrap(), a.port())).await;
    let names = Names::default();
    names.set(&[a]);
    let outgoing = Outgoing::new(None, Duration::from_secs(5));
    let url = format!("http://loyalty:{}", a.port());
    let ch = channel_with(&url, outgoing, Arc::new(names.clone()), Duration::from_millis(20)).unwrap();
    let mut client = HealthClient::new(ch);
    for _ in 0..20 {
        check(&mut client).await;
    }
    assert_eq!((a_calls.load(Ordering::SeqCst), b_calls.load(Ordering::SeqCst)), (20, 0));

    // A second replica appears: calls reach it too.
    names.set(&[a, b]);
    rapport_kit::testing::eventually(30, "calls on the second replica", || {
        let mut client = client.clone();
        let b_calls = b_calls.clone();
        async move {
            for _ in 0..20 {
                check(&mut client).await;
            }
            b_calls.load(Ordering::SeqCst) > 0
        }
    })
    .await;
    let (before_a, before_b) = (a_calls.load(Ordering::SeqCst), b_calls.load(Ordering::SeqCst));
    for _ in 0..200 {
        check(&mut client).await;
    }
    let (spread_a, spread_b) = (a_calls.load(Ordering::SeqCst) - before_a, b_calls.load(Ordering::SeqCst) - before_b);
    assert!(spread_a > 0 && spread_b > 0, "200 calls went {spread_a} to a, {spread_b} to b");

    // The first one goes away: no call reaches it once the name no longer stands for it.
    names.set(&[b]);
    rapport_kit::testing::eventually(30, "the first replica dropped", || {
        let mut client = client.clone();
        let a_calls = a_calls.clone();
        async move {
            let before = a_calls.load(Ordering::SeqCst);
            for _ in 0..20 {
                check(&mut client).await;
            }
            a_calls.load(Ordering::SeqCst) == before
        }
    })
    .await;
}

#[tokio::test]
async fn a_name_the_system_resolves_is_called_and_an_address_is_called_directly() {
    let (a, calls) = replica("127.0.0.1:0".parse().unwrap()).await;
    let outgoing = Outgoing::new(None, Duration::from_secs(5));
    // `localhost` goes through the system's resolver; whatever else it stands for, 127.0.0.1 answers.
    let by_name = channel(&format!("http://localhost:{}", a.port()), outgoing.clone()).unwrap();
    let client = HealthClient::new(by_name);
    rapport_kit::testing::eventually(30, "a call by name", || {
        let mut client = client.clone();
        async move { client.check(HealthCheckRequest { service: String::new() }).await.is_ok() }
    })
    .await;
    let by_addr = channel(&format!("http://{a}"), outgoing).unwrap();
    check(&mut HealthClient::new(by_addr)).await;
    assert!(calls.load(Ordering::SeqCst) >= 2);
}

#[tokio::test]
async fn an_address_that_does_not_answer_is_left_out_of_the_balance() {
    // One live replica and one address nothing listens on (a pod gone while the name still stands for it).
    let (a, a_calls) = replica("127.0.0.1:0".parse().unwrap()).await;
    let dead = {
        let l = std::net::TcpListener::bind(SocketAddr::new("127.0.0.3".parse().unwrap(), a.port())).unwrap();
        l.local_addr().unwrap()
    };
    let names = Names::default();
    names.set(&[dead, a]);
    let url = format!("http://loyalty:{}", a.port());
    let outgoing = Outgoing::new(None, Duration::from_secs(5));
    let mut client =
        HealthClient::new(channel_with(&url, outgoing, Arc::new(names.clone()), Duration::from_millis(20)).unwrap());
    // Every call succeeds: none is sent to the dead address, from the first resolution on.
    for _ in 0..20 {
        check(&mut client).await;
    }
    assert_eq!(a_calls.load(Ordering::SeqCst), 20);
}

#[tokio::test]
async fn a_name_that_stands_for_no_replica_fails_promptly_and_recovers() {
    let (a, _) = replica("127.0.0.1:0".parse().unwrap()).await;
    let names = Names::default();
    let url = format!("http://loyalty:{}", a.port());
    let outgoing = Outgoing::new(None, Duration::from_millis(300));
    let client =
        HealthClient::new(channel_with(&url, outgoing, Arc::new(names.clone()), Duration::from_millis(20)).unwrap());
    // No address: the call ends (UNAVAILABLE once the name is known to be empty, its deadline before) instead of
    // waiting in the channel's queue for ever. The outer bound only keeps a regression from hanging the test.
    let answer = tokio::time::timeout(
        Duration::from_secs(20),
        client.clone().check(HealthCheckRequest { service: String::new() }),
    )
    .await
    .expect("a call to a name with no replica returned");
    let code = answer.unwrap_err().code();
    assert!(matches!(code, tonic::Code::Unavailable | tonic::Code::DeadlineExceeded), "{code:?}");
    // The replica appears: calls reach it.
    names.set(&[a]);
    rapport_kit::testing::eventually(30, "a call once the name stands for a replica", || {
        let mut client = client.clone();
        async move { client.check(HealthCheckRequest { service: String::new() }).await.is_ok() }
    })
    .await;
    // The replica's address stops answering: calls fail at once with UNAVAILABLE (which callers retry).
    let dead = {
        let l = std::net::TcpListener::bind(SocketAddr::new("127.0.0.3".parse().unwrap(), a.port())).unwrap();
        l.local_addr().unwrap()
    };
    names.set(&[dead]);
    rapport_kit::testing::eventually(30, "UNAVAILABLE once no replica answers", || {
        let mut client = client.clone();
        async move {
            client.check(HealthCheckRequest { service: String::new() }).await.err().map(|s| s.code())
                == Some(tonic::Code::Unavailable)
        }
    })
    .await;
}
