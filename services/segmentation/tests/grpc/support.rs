//! `spawn_app()`: a segmentation server on an ephemeral port with a fresh database and a manual clock.
use std::{sync::Arc, time::Duration};

use rapport_kit::{
    auth::{Authenticator, Role},
    client::{self, Outgoing, OutgoingChannel},
    clock::{ManualClock, timestamp},
    db::testing::{TestDb, fresh_database},
    serve::ServeConfig,
    testing::TestServer,
};
use rapport_proto::segmentation::v1::{self as pb, segmentation_service_client::SegmentationServiceClient};
use rapport_segmentation::app::{Config, Segmentation};
use tonic::{Code, Status};

pub use rapport_kit::db::testing::Backend as Db;

/// 2026-06-01T00:00:00Z.
pub const T0: i64 = 1_780_272_000_000;
pub const DAY: i64 = 86_400_000;

pub type Client = SegmentationServiceClient<OutgoingChannel>;

pub struct TestApp {
    pub client: Client,
    pub addr: std::net::SocketAddr,
    pub auth: Arc<Authenticator>,
    pub clock: ManualClock,
    pub db: sea_orm::DatabaseConnection,
    server: TestServer,
    _database: TestDb,
}

pub async fn spawn_app(backend: Db) -> TestApp {
    let database = fresh_database(backend).await.unwrap();
    let url = database.url();
    // Loyalty is not running here: campaigns stay pending.
    let nowhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut config = Config::local(url, &format!("http://{nowhere}"));
    config.common.serve = ServeConfig { drain_delay: Duration::from_millis(10), ..ServeConfig::default() };
    config.campaign_poll = Duration::from_secs(3600);
    // A subscriber with no address: membership events are written and wait, so tests can count them.
    config.subscribers = vec![rapport_outbox::Subscriber { name: "audience".into(), url: None }];
    let auth = rapport_kit::testing::authenticator();
    let clock = ManualClock::new(T0);
    let server = TestServer::start::<Segmentation>(config, auth.clone(), Arc::new(clock.clone())).await.unwrap();
    let (addr, db) = (server.addr, server.db.clone());
    let ch = client::channel(
        &format!("http://{addr}"),
        Outgoing::new(Some(auth.issue("t", Role::Sre, 600).unwrap()), Duration::from_secs(120)),
    )
    .unwrap();
    TestApp { client: SegmentationServiceClient::new(ch), addr, auth, clock, db, server, _database: database }
}

impl TestApp {
    pub async fn stop(self) {
        self.server.stop().await;
    }

    /// Records the synthetic customers' consent (customers first seen through events consent to nothing).
    pub async fn consent(&self, customers: &[rapport_synth::Customer]) {
        for c in customers {
            self.client.clone().upsert_customer(rapport_synth::consent(c)).await.unwrap();
        }
    }

    pub async fn ingest(&self, events: Vec<pb::BehaviourEvent>) -> Result<pb::IngestEventBatchResponse, Status> {
        self.client
            .clone()
            .ingest_event_batch(pb::IngestEventBatchRequest { events })
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn features(&self, id: &str) -> pb::CustomerFeatures {
        self.client
            .clone()
            .get_customer_features(pb::GetCustomerFeaturesRequest { customer_id: id.into() })
            .await
            .unwrap()
            .into_inner()
            .features
            .unwrap()
    }

    pub async fn segment(&self, id: &str, node: pb::condition::Node) -> Result<pb::Segment, Status> {
        self.client
            .clone()
            .create_segment(pb::CreateSegmentRequest {
                request_id: format!("create-{id}"),
                segment: Some(pb::Segment {
                    segment_id: id.into(),
                    display_name: id.into(),
                    condition: Some(pb::Condition { node: Some(node) }),
                    size: 0,
                    create_time: None,
                }),
            })
            .await
            .map(|r| r.into_inner().segment.unwrap())
    }

    pub async fn is_member(&self, segment: &str, customer: &str) -> bool {
        self.client
            .clone()
            .check_membership(pb::CheckMembershipRequest { segment_id: segment.into(), customer_id: customer.into() })
            .await
            .unwrap()
            .into_inner()
            .member
    }

    pub async fn refresh(&self) -> pb::RefreshFeaturesResponse {
        self.client.clone().refresh_features(pb::RefreshFeaturesRequest {}).await.unwrap().into_inner()
    }
}

pub fn event(id: &str, customer: &str, kind: pb::EventKind, at_ms: i64) -> pb::BehaviourEvent {
    pb::BehaviourEvent {
        event_id: id.into(),
        customer_id: customer.into(),
        kind: kind.into(),
        occurred_at: Some(timestamp(at_ms)),
        channel: rapport_proto::common::v1::Channel::Mobile.into(),
        amount: None,
        score: 0,
        tier: String::new(),
    }
}

pub fn purchase(id: &str, customer: &str, at_ms: i64, units: i64) -> pb::BehaviourEvent {
    pb::BehaviourEvent {
        amount: Some(rapport_proto::common::v1::Money { currency_code: "EUR".into(), units, nanos: 0 }),
        ..event(id, customer, pb::EventKind::Purchase, at_ms)
    }
}

pub fn feature(name: &str, op: pb::Comparison, value: f64) -> pb::condition::Node {
    pb::condition::Node::Feature(pb::FeatureCompare { name: name.into(), op: op.into(), value })
}

pub fn cond(node: pb::condition::Node) -> pb::Condition {
    pb::Condition { node: Some(node) }
}

pub(crate) use rapport_kit::on_both;

pub use rapport_kit::testing::eventually;

/// Asserts a segmentation error: code, reason, violated field.
pub fn assert_status(s: &Status, code: Code, reason: &str, field: Option<&str>) {
    rapport_kit::testing::assert_status(s, code, reason, "segmentation", field);
}
