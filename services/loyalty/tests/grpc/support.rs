//! `spawn_app()`: a loyalty server on an ephemeral port with a fresh database and a manual clock.
use std::{sync::Arc, time::Duration};

use rapport_kit::{
    auth::{Authenticator, Role},
    client::{self, Outgoing, OutgoingChannel},
    clock::ManualClock,
    db::testing::{Backend, TestDb, fresh_database},
    serve::ServeConfig,
    testing::TestServer,
};
use rapport_loyalty::app::{Config, Loyalty};
use rapport_proto::loyalty::v1::{self as pb, loyalty_service_client::LoyaltyServiceClient};
use sea_orm::DatabaseConnection;
use tonic::{Code, Status};

pub use rapport_kit::db::testing::Backend as Db;

/// 2026-01-01T00:00:00Z.
pub const T0: i64 = 1_767_225_600_000;

pub type Client = LoyaltyServiceClient<OutgoingChannel>;

pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub client: Client,
    pub auth: Arc<Authenticator>,
    pub clock: ManualClock,
    pub db: DatabaseConnection,
    pub database_url: String,
    server: TestServer,
    _database: TestDb,
}

pub struct Options {
    pub serve: ServeConfig,
    pub segmentation_url: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            serve: ServeConfig { drain_delay: Duration::from_millis(50), ..ServeConfig::default() },
            segmentation_url: None,
        }
    }
}

pub fn authenticator() -> Arc<Authenticator> {
    rapport_kit::testing::authenticator()
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_with(backend, Options::default()).await
}

pub async fn spawn_with(backend: Backend, opts: Options) -> TestApp {
    let database = fresh_database(backend).await.expect("fresh database");
    let database_url = database.url().to_string();
    let mut config = Config::local(&database_url);
    config.common.serve = opts.serve;
    config.set_subscriber_url("segmentation", opts.segmentation_url);
    config.sweep_interval = Duration::from_secs(3600);
    let auth = authenticator();
    let clock = ManualClock::new(T0);
    let server = TestServer::start::<Loyalty>(config, auth.clone(), Arc::new(clock.clone())).await.expect("loyalty");
    let (addr, db) = (server.addr, server.db.clone());
    let client = client_as(addr, &auth, Role::Sre);
    TestApp { addr, client, auth, clock, db, database_url, server, _database: database }
}

pub fn client_as(addr: std::net::SocketAddr, auth: &Authenticator, role: Role) -> Client {
    with_token(addr, Some(auth.issue("test", role, 600).unwrap()))
}

pub fn with_token(addr: std::net::SocketAddr, token: Option<String>) -> Client {
    let ch = client::channel(&format!("http://{addr}"), Outgoing::new(token, Duration::from_secs(30))).unwrap();
    LoyaltyServiceClient::new(ch)
}

impl TestApp {
    /// Stops the server and waits until it has drained.
    pub async fn stop(self) {
        self.server.stop().await;
    }

    pub async fn enrol(&self, id: &str) -> pb::Member {
        self.client
            .clone()
            .enrol_member(pb::EnrolMemberRequest {
                request_id: format!("enrol-{id}"),
                customer_id: id.into(),
                display_name: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .member
            .unwrap()
    }

    pub async fn earn(&self, rid: &str, id: &str, points: i64) -> Result<pb::EarnPointsResponse, Status> {
        self.client
            .clone()
            .earn_points(pb::EarnPointsRequest {
                request_id: rid.into(),
                customer_id: id.into(),
                points,
                reason: "test".into(),
                reference: String::new(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn redeem(&self, rid: &str, id: &str, points: i64) -> Result<pb::RedeemPointsResponse, Status> {
        self.client
            .clone()
            .redeem_points(pb::RedeemPointsRequest {
                request_id: rid.into(),
                customer_id: id.into(),
                points,
                reason: "test".into(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn member(&self, id: &str) -> pb::Member {
        self.client
            .clone()
            .get_member(pb::GetMemberRequest { customer_id: id.into() })
            .await
            .unwrap()
            .into_inner()
            .member
            .unwrap()
    }

    pub async fn purchase(
        &self,
        rid: &str,
        id: &str,
        order: &str,
        units: i64,
        recurring: bool,
    ) -> pb::RecordPurchaseResponse {
        self.client
            .clone()
            .record_purchase(pb::RecordPurchaseRequest {
                request_id: rid.into(),
                customer_id: id.into(),
                order_id: order.into(),
                amount: Some(eur(units)),
                channel: rapport_proto::common::v1::Channel::Web.into(),
                recurring,
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// Runs the sweeper's work once, as the service's sweeper would: writes what time has done.
    pub async fn settle(&self) -> usize {
        self.store().settle_due(500).await.expect("settle")
    }

    /// A store over the service's database and clock, with the service's default rules.
    pub fn store(&self) -> rapport_loyalty::store::Store {
        rapport_loyalty::store::Store::new(
            self.db.clone(),
            Arc::new(self.clock.clone()),
            Arc::new(rapport_loyalty::domain::Rules::default()),
            rapport_outbox::Outbox::new("loyalty", ["segmentation".to_string()]),
            rapport_kit::pseudonym::Pseudonyms::development(),
        )
    }

    /// The one-statement member read and the step-by-step one agree (lots, expiry, qualifying points, the tier).
    pub async fn assert_reads_agree(&self, id: &str) {
        use rapport_kit::clock::Clock as _;
        let store = self.store();
        let fast = store.member(id).await.expect("member");
        let step = store.member_in_snapshot(id, self.clock.now_ms()).await.expect("member step by step");
        assert_eq!(fast, step, "the one-statement read of {id} agrees with the step-by-step read");
    }

    /// Every ledger entry of a member, newest first, walking all pages.
    pub async fn all_entries(&self, id: &str) -> Vec<pb::LedgerEntry> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let r = self
                .client
                .clone()
                .list_transactions(pb::ListTransactionsRequest {
                    customer_id: id.into(),
                    page_size: 100,
                    page_token: token,
                })
                .await
                .unwrap()
                .into_inner();
            out.extend(r.entries);
            if r.next_page_token.is_empty() {
                return out;
            }
            token = r.next_page_token;
        }
    }
}

pub fn eur(units: i64) -> rapport_proto::common::v1::Money {
    rapport_proto::common::v1::Money { currency_code: "EUR".into(), units, nanos: 0 }
}

pub fn balance(m: &pb::Member) -> pb::Balance {
    m.balance.unwrap_or_default()
}

pub(crate) use rapport_kit::on_both;

pub use rapport_kit::testing::eventually;

/// Asserts a loyalty error: code, reason, violated field.
pub fn assert_status(s: &Status, code: Code, reason: &str, field: Option<&str>) {
    rapport_kit::testing::assert_status(s, code, reason, "loyalty", field);
}
