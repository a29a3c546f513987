//! Each port lists exactly what it serves, and a call to a service served elsewhere is UNIMPLEMENTED, not refused.
use std::collections::BTreeSet;

use rapport_kit::{auth::Role, clock::ManualClock, db::testing::fresh_database, testing::Backend};
use rapport_proto::loyalty::v1::{GetMemberRequest, loyalty_service_client::LoyaltyServiceClient};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

use crate::support::{T0, any_port, channel, loyalty, segmentation};

async fn listed(addr: std::net::SocketAddr) -> BTreeSet<String> {
    let ch = tonic::transport::Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let mut c = ServerReflectionClient::new(ch);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = c.server_reflection_info(tokio_stream::iter([req])).await.unwrap().into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) = answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("no list of services");
    };
    list.service.into_iter().map(|s| s.name).collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names
        .iter()
        .chain(&[
            "grpc.health.v1.Health",
            "rapport.audit.v1.AuditService",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ])
        .map(|s| s.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_port_lists_what_it_serves() {
    let clock = ManualClock::new(T0);
    let (loyalty_db, seg_db, fb_db) = (
        fresh_database(Backend::Sqlite).await.unwrap(),
        fresh_database(Backend::Sqlite).await.unwrap(),
        fresh_database(Backend::Sqlite).await.unwrap(),
    );
    let l = loyalty(any_port(), loyalty_db.url(), None, &clock).await;
    let s = segmentation(any_port(), seg_db.url(), l.addr, &clock).await;
    assert_eq!(listed(l.addr).await, set(&["rapport.loyalty.v1.LoyaltyService", "rapport.events.v1.OutboxService"]));
    assert_eq!(
        listed(s.addr).await,
        set(&[
            "rapport.segmentation.v1.SegmentationService",
            "rapport.events.v1.EventSinkService",
            "rapport.events.v1.OutboxService"
        ])
    );
    let f = crate::support::feedback(any_port(), fb_db.url(), &[], &clock, |_| {}).await;
    assert_eq!(
        listed(f.addr).await,
        set(&[
            "rapport.feedback.v1.FeedbackService",
            "rapport.events.v1.EventSinkService",
            "rapport.events.v1.OutboxService"
        ])
    );
    f.stop().await;
    let mut wrong = LoyaltyServiceClient::new(channel(s.addr, Role::Sre));
    let e = wrong.get_member(GetMemberRequest { customer_id: "alice".into() }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unimplemented, "{e:?}");
    s.stop().await;
    l.stop().await;
}
