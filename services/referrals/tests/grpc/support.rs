//! `spawn_app()`: a referrals server on an ephemeral port with a fresh database and a manual clock, and, when asked,
//! a loyalty server it pays rewards through.
use std::{sync::Arc, time::Duration};

use rapport_kit::{
    auth::{Authenticator, Role},
    client::{self, Outgoing, OutgoingChannel},
    clock::{ManualClock, timestamp},
    serve::ServeConfig,
    testing::{TestDb, TestServer, fresh_database},
};
use rapport_proto::{
    common::v1::Money,
    events::v1::{
        DeliverEventsRequest, Event, PurchaseRecorded, PurchaseReturned, event::Payload,
        event_sink_service_client::EventSinkServiceClient,
    },
    loyalty::v1::{self as lpb, loyalty_service_client::LoyaltyServiceClient},
    referrals::v1::{self as pb, referrals_service_client::ReferralsServiceClient},
};
use rapport_referrals::app::{Config, Referrals};
use tonic::{Code, Status};

pub use rapport_kit::testing::{Backend as Db, eventually};

/// 2026-01-01T00:00:00Z.
pub const T0: i64 = 1_767_225_600_000;
pub const DAY: i64 = 86_400_000;

pub type Client = ReferralsServiceClient<OutgoingChannel>;

pub struct TestApp {
    pub client: Client,
    pub auth: Arc<Authenticator>,
    pub clock: ManualClock,
    pub db: sea_orm::DatabaseConnection,
    pub loyalty: Option<LoyaltyServiceClient<OutgoingChannel>>,
    config: Config,
    server: TestServer,
    loyalty_server: Option<TestServer>,
    loyalty_config: Option<rapport_loyalty::app::Config>,
    _databases: Vec<TestDb>,
}

fn auth() -> Arc<Authenticator> {
    rapport_kit::testing::authenticator()
}

/// Referrals alone: rewards are approved and wait, due.
pub async fn spawn_app(backend: Db) -> TestApp {
    spawn(backend, false).await
}

/// Referrals paying through a loyalty server of its own.
pub async fn spawn_with_loyalty(backend: Db) -> TestApp {
    spawn(backend, true).await
}

async fn spawn(backend: Db, with_loyalty: bool) -> TestApp {
    let auth = auth();
    let clock = ManualClock::new(T0);
    let serve = ServeConfig { drain_delay: Duration::from_millis(10), ..ServeConfig::default() };
    let mut databases = vec![fresh_database(backend).await.unwrap()];
    let mut loyalty_server = None;
    let mut loyalty = None;
    let mut loyalty_config = None;
    let mut config = Config::local(databases[0].url());
    config.common.serve = serve.clone();
    config.payout_interval = Duration::from_millis(50);
    if with_loyalty {
        let db = fresh_database(backend).await.unwrap();
        let mut lc = rapport_loyalty::app::Config::local(db.url());
        lc.common.serve = serve;
        let server =
            TestServer::start::<rapport_loyalty::app::Loyalty>(lc.clone(), auth.clone(), Arc::new(clock.clone()))
                .await
                .unwrap();
        lc.common.listen = server.addr;
        loyalty_config = Some(lc);
        config.loyalty_url = Some(server.url());
        let out = Outgoing::new(Some(auth.issue("t", Role::Sre, 600).unwrap()), Duration::from_secs(30));
        loyalty = Some(LoyaltyServiceClient::new(client::channel(&server.url(), out).unwrap()));
        loyalty_server = Some(server);
        databases.push(db);
    }
    let server = TestServer::start::<Referrals>(config.clone(), auth.clone(), Arc::new(clock.clone())).await.unwrap();
    let out = Outgoing::new(Some(auth.issue("t", Role::Agent, 600).unwrap()), Duration::from_secs(30));
    TestApp {
        client: ReferralsServiceClient::new(client::channel(&server.url(), out).unwrap()),
        auth,
        clock,
        db: server.db.clone(),
        loyalty,
        config,
        server,
        loyalty_server,
        loyalty_config,
        _databases: databases,
    }
}

impl TestApp {
    pub async fn stop(self) {
        self.server.stop().await;
        if let Some(l) = self.loyalty_server {
            l.stop().await;
        }
    }

    /// The server's address.
    pub fn client_addr(&self) -> std::net::SocketAddr {
        self.server.addr
    }

    /// A client calling as `role`.
    pub fn as_role(&self, role: Role) -> Client {
        self.client_of(&self.server, role)
    }

    /// A client of `server` (this one or a replica) calling as `role`.
    pub fn client_of(&self, server: &TestServer, role: Role) -> Client {
        let out = Outgoing::new(Some(self.auth.issue("t", role, 600).unwrap()), Duration::from_secs(30));
        ReferralsServiceClient::new(client::channel(&server.url(), out).unwrap())
    }

    /// A second replica on the same database.
    pub async fn replica(&self) -> TestServer {
        TestServer::start::<Referrals>(self.config.clone(), self.auth.clone(), Arc::new(self.clock.clone()))
            .await
            .unwrap()
    }

    /// Stops the loyalty server: payouts must wait.
    pub async fn stop_loyalty(&mut self) {
        if let Some(l) = self.loyalty_server.take() {
            l.stop().await;
        }
    }

    /// Starts loyalty again on its address and database.
    pub async fn start_loyalty(&mut self) {
        let lc = self.loyalty_config.clone().expect("loyalty");
        let server =
            TestServer::start::<rapport_loyalty::app::Loyalty>(lc, self.auth.clone(), Arc::new(self.clock.clone()))
                .await
                .unwrap();
        self.loyalty_server = Some(server);
    }

    /// Creates a programme as marketing.
    pub async fn programme(&self, id: &str, rules: pb::ProgrammeRules) -> Result<pb::Programme, Status> {
        self.as_role(Role::Marketing)
            .create_programme(pb::CreateProgrammeRequest {
                request_id: format!("p-{id}"),
                programme_id: id.into(),
                rules: Some(rules),
            })
            .await
            .map(|r| r.into_inner().programme.unwrap())
    }

    /// Issues a code (generated unless `vanity` is given).
    pub async fn code(&self, customer: &str, programme: &str, vanity: &str) -> Result<pb::Code, Status> {
        self.code_with(customer, programme, vanity, 0, None, None).await
    }

    pub async fn code_with(
        &self,
        customer: &str,
        programme: &str,
        vanity: &str,
        usage_limit: i32,
        valid_until: Option<i64>,
        signals: Option<pb::Signals>,
    ) -> Result<pb::Code, Status> {
        self.client
            .clone()
            .issue_code(pb::IssueCodeRequest {
                request_id: format!("code-{customer}-{programme}-{vanity}"),
                customer_id: customer.into(),
                programme_id: programme.into(),
                vanity: vanity.into(),
                valid_from: None,
                valid_until: valid_until.map(timestamp),
                usage_limit,
                signals,
            })
            .await
            .map(|r| r.into_inner().code.unwrap())
    }

    /// A sign-up of `referee` with `code`.
    pub async fn signup(
        &self,
        code: &str,
        referee: &str,
        signals: Option<pb::Signals>,
    ) -> Result<pb::Referral, Status> {
        self.client
            .clone()
            .attribute_signup(pb::AttributeSignupRequest {
                request_id: format!("su-{referee}-{}", code.replace(' ', "")),
                code: code.into(),
                referee_id: referee.into(),
                signals,
            })
            .await
            .map(|r| r.into_inner().referral.unwrap())
    }

    pub async fn referral(&self, id: &str) -> pb::Referral {
        self.client
            .clone()
            .get_referral(pb::GetReferralRequest { referral_id: id.into() })
            .await
            .unwrap()
            .into_inner()
            .referral
            .unwrap()
    }

    /// Waits until the referral is in `state`.
    pub async fn until_state(&self, id: &str, state: pb::ReferralState) -> pb::Referral {
        eventually(20, &format!("referral {id} {state:?}"), || async { self.referral(id).await.state() == state })
            .await;
        self.referral(id).await
    }

    /// Delivers `events` as loyalty's relay would.
    pub async fn deliver(&self, events: Vec<Event>) -> Result<(), Status> {
        let ch = client::channel(
            &self.server.url(),
            Outgoing::new(Some(self.auth.issue("loyalty", Role::Loyalty, 600).unwrap()), Duration::from_secs(30)),
        )
        .unwrap();
        EventSinkServiceClient::new(ch).deliver_events(DeliverEventsRequest { events }).await.map(|_| ())
    }

    /// The member's active points in loyalty (0 when not a member).
    pub async fn points(&self, customer: &str) -> i64 {
        let mut l = self.loyalty.clone().expect("loyalty");
        match l.get_member(lpb::GetMemberRequest { customer_id: customer.into() }).await {
            Ok(r) => r.into_inner().member.and_then(|m| m.balance).map_or(0, |b| b.active + b.pending),
            Err(s) if s.code() == Code::NotFound => 0,
            Err(s) => panic!("{s:?}"),
        }
    }

    /// The member's ledger entries in loyalty, newest first.
    pub async fn ledger(&self, customer: &str) -> Vec<lpb::LedgerEntry> {
        let mut l = self.loyalty.clone().expect("loyalty");
        let r = l
            .list_transactions(lpb::ListTransactionsRequest {
                customer_id: customer.into(),
                page_size: 100,
                page_token: String::new(),
            })
            .await
            .unwrap();
        r.into_inner().entries
    }
}

/// Rules: `qualifying`, 500 points to the referrer and 200 to the referee, windows of 30 days, `delay` days before
/// payment, 14 days of returns.
pub fn rules(qualifying: pb::QualifyingEvent, delay: i32) -> pb::ProgrammeRules {
    pb::ProgrammeRules {
        name: "Friends".into(),
        qualifying_event: qualifying.into(),
        min_order: None,
        referrer_reward: Some(pb::Reward { points: 500, share_bps: 0 }),
        referee_reward: Some(pb::Reward { points: 200, share_bps: 0 }),
        attribution_window_days: 30,
        approval_delay_days: delay,
        returns_window_days: 14,
        milestones: vec![],
        limits: None,
        flag_threshold: 0.0,
        active_from: Some(timestamp(T0)),
        active_until: None,
    }
}

/// Signals with a device hash made of `d`.
pub fn device(d: &str) -> Option<pb::Signals> {
    Some(pb::Signals { device_hash: format!("{d:0>32}"), ..pb::Signals::default() })
}

fn eur(units: i64) -> Money {
    Money { currency_code: "EUR".into(), units, nanos: 0 }
}

/// Loyalty's purchase event.
pub fn purchase(id: &str, customer: &str, order: &str, euros: i64, at: i64) -> Event {
    Event {
        event_id: id.into(),
        source: "loyalty".into(),
        customer_id: customer.into(),
        occurred_at: Some(timestamp(at)),
        traceparent: String::new(),
        payload: Some(Payload::PurchaseRecorded(PurchaseRecorded {
            order_id: order.into(),
            amount: Some(eur(euros)),
            channel: 1,
            recurring: false,
            points: euros,
        })),
    }
}

/// Loyalty's return event.
pub fn returned(id: &str, customer: &str, order: &str, euros: i64, full: bool, at: i64) -> Event {
    Event {
        event_id: id.into(),
        source: "loyalty".into(),
        customer_id: customer.into(),
        occurred_at: Some(timestamp(at)),
        traceparent: String::new(),
        payload: Some(Payload::PurchaseReturned(PurchaseReturned {
            order_id: order.into(),
            amount: Some(eur(euros)),
            points: euros,
            fully_returned: full,
        })),
    }
}

pub(crate) use rapport_kit::on_both;

/// Asserts a referrals error: code, reason, violated field.
pub fn assert_status(s: &Status, code: Code, reason: &str, field: Option<&str>) {
    rapport_kit::testing::assert_status(s, code, reason, "referrals", field);
}
