//! `spawn_app()`: a feedback server on an ephemeral port with a fresh database and a manual clock.
use std::{sync::Arc, time::Duration};

use prost::Message;
use rapport_feedback::app::{Config, Feedback};
use rapport_kit::{
    auth::{Authenticator, Role},
    client::{self, Outgoing, OutgoingChannel},
    clock::ManualClock,
    serve::ServeConfig,
    testing::{TestDb, TestServer, fresh_database},
};
use rapport_outbox::entities::outbox_event;
use rapport_proto::{
    common::v1::Channel,
    events::v1::{Event, event::Payload},
    feedback::v1::{self as pb, feedback_service_client::FeedbackServiceClient},
};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use tonic::{Code, Status};

pub use rapport_kit::testing::Backend as Db;

/// 2026-01-01T00:00:00Z.
pub const T0: i64 = 1_767_225_600_000;
pub const DAY: i64 = 86_400_000;

pub type Client = FeedbackServiceClient<OutgoingChannel>;

pub struct TestApp {
    pub client: Client,
    pub auth: Arc<Authenticator>,
    pub addr: std::net::SocketAddr,
    pub clock: ManualClock,
    pub db: DatabaseConnection,
    config: Config,
    server: TestServer,
    _database: TestDb,
}

pub async fn spawn_app(backend: Db) -> TestApp {
    spawn_with(backend, |_| {}).await
}

/// A server whose configuration `tune` adjusts (replicas get the same).
pub async fn spawn_with(backend: Db, tune: impl FnOnce(&mut Config)) -> TestApp {
    let database = fresh_database(backend).await.unwrap();
    let mut config = Config::local(database.url());
    config.common.serve = ServeConfig { drain_delay: Duration::from_millis(10), ..ServeConfig::default() };
    tune(&mut config);
    let auth = rapport_kit::testing::authenticator();
    let clock = ManualClock::new(T0);
    let server = TestServer::start::<Feedback>(config.clone(), auth.clone(), Arc::new(clock.clone())).await.unwrap();
    let ch = client::channel(
        &server.url(),
        Outgoing::new(Some(auth.issue("t", Role::Agent, 600).unwrap()), Duration::from_secs(30)),
    )
    .unwrap();
    TestApp {
        client: FeedbackServiceClient::new(ch),
        auth,
        addr: server.addr,
        clock,
        db: server.db.clone(),
        config,
        server,
        _database: database,
    }
}

impl TestApp {
    pub async fn stop(self) {
        self.server.stop().await;
    }

    /// A client of this server calling as `role`.
    pub fn as_role(&self, role: Role) -> Client {
        self.client_of(&self.server, role)
    }

    /// A client of `server` (this one or a replica) calling as `role`.
    pub fn client_of(&self, server: &TestServer, role: Role) -> Client {
        let out = Outgoing::new(Some(self.auth.issue("t", role, 600).unwrap()), Duration::from_secs(30));
        FeedbackServiceClient::new(client::channel(&server.url(), out).unwrap())
    }

    /// A second replica on the same database, and a client of it.
    pub async fn replica(&self) -> (TestServer, Client) {
        let server =
            TestServer::start::<Feedback>(self.config.clone(), self.auth.clone(), Arc::new(self.clock.clone()))
                .await
                .unwrap();
        let ch = client::channel(
            &server.url(),
            Outgoing::new(Some(self.auth.issue("t", Role::Agent, 600).unwrap()), Duration::from_secs(30)),
        )
        .unwrap();
        (server, FeedbackServiceClient::new(ch))
    }

    pub async fn open_case(
        &self,
        rid: &str,
        customer: &str,
        kind: pb::CaseKind,
        text: &str,
    ) -> Result<pb::Case, Status> {
        self.client
            .clone()
            .open_case(pb::OpenCaseRequest {
                request_id: rid.into(),
                kind: kind.into(),
                customer_id: customer.into(),
                channel: Channel::Email.into(),
                severity: pb::Severity::Unspecified.into(),
                order_id: "ord-1".into(),
                text: text.into(),
                theme: String::new(),
            })
            .await
            .map(|r| r.into_inner().case.unwrap())
    }

    pub async fn respond(&self, rid: &str, case_id: &str, text: &str) -> Result<pb::Case, Status> {
        self.client
            .clone()
            .respond_to_case(pb::RespondToCaseRequest {
                request_id: rid.into(),
                case_id: case_id.into(),
                text: text.into(),
            })
            .await
            .map(|r| r.into_inner().case.unwrap())
    }

    pub async fn resolve(&self, rid: &str, case_id: &str, root_cause: &str, action: &str) -> Result<pb::Case, Status> {
        self.client
            .clone()
            .resolve_case(pb::ResolveCaseRequest {
                request_id: rid.into(),
                case_id: case_id.into(),
                resolution: "reshipped".into(),
                root_cause: root_cause.into(),
                corrective_action: action.into(),
            })
            .await
            .map(|r| r.into_inner().case.unwrap())
    }

    pub async fn schedule(&self, rid: &str, customer: &str, touchpoint: &str) -> Result<pb::Survey, Status> {
        self.schedule_with(rid, customer, touchpoint, Channel::Email, 0).await
    }

    pub async fn schedule_with(
        &self,
        rid: &str,
        customer: &str,
        touchpoint: &str,
        channel: Channel,
        wait_days: i32,
    ) -> Result<pb::Survey, Status> {
        self.client
            .clone()
            .schedule_survey(pb::ScheduleSurveyRequest {
                request_id: rid.into(),
                customer_id: customer.into(),
                touchpoint: touchpoint.into(),
                channel: channel.into(),
                min_days_between_surveys: wait_days,
                valid_days: 0,
                after_case_id: String::new(),
            })
            .await
            .map(|r| r.into_inner().survey.unwrap())
    }

    pub async fn answer(&self, rid: &str, survey_id: &str, score: i32, comment: &str) -> Result<pb::Survey, Status> {
        self.client
            .clone()
            .record_response(pb::RecordResponseRequest {
                request_id: rid.into(),
                survey_id: survey_id.into(),
                score,
                comment: comment.into(),
            })
            .await
            .map(|r| r.into_inner().survey.unwrap())
    }

    /// Delivers `events` to feedback's sink as the service `role` (its outbox relay would).
    pub async fn deliver(&self, role: Role, events: Vec<Event>) -> rapport_proto::events::v1::DeliverEventsResponse {
        let ch = client::channel(
            &format!("http://{}", self.addr),
            Outgoing::new(Some(self.auth.issue(role.as_str(), role, 600).unwrap()), Duration::from_secs(30)),
        )
        .unwrap();
        rapport_proto::events::v1::event_sink_service_client::EventSinkServiceClient::new(ch)
            .deliver_events(rapport_proto::events::v1::DeliverEventsRequest { events })
            .await
            .unwrap()
            .into_inner()
    }

    /// The events feedback wrote for `destination`, in order.
    pub async fn events(&self, destination: &str) -> Vec<Event> {
        outbox_event::Entity::find()
            .filter(outbox_event::Column::Destination.eq(destination))
            .order_by_asc(outbox_event::Column::Id)
            .all(&self.db)
            .await
            .unwrap()
            .into_iter()
            .map(|r| Event::decode(r.payload.as_slice()).unwrap())
            .collect()
    }
}

/// Loyalty's event that `customer` moved to `tier`.
pub fn tier_event(customer: &str, tier: &str) -> Event {
    Event {
        event_id: format!("tier-{customer}"),
        source: "loyalty".into(),
        customer_id: customer.into(),
        occurred_at: Some(rapport_kit::clock::timestamp(T0)),
        traceparent: String::new(),
        payload: Some(Payload::TierChanged(rapport_proto::events::v1::TierChanged {
            from_tier: "gold".into(),
            to_tier: tier.into(),
            reason: "qualified".into(),
        })),
    }
}

/// The kinds of `events`.
pub fn kinds(events: &[Event]) -> Vec<&'static str> {
    events
        .iter()
        .map(|e| match e.payload {
            Some(Payload::SurveyAnswered(_)) => "answered",
            Some(Payload::PromoterIdentified(_)) => "promoter",
            Some(Payload::CaseOpened(_)) => "case",
            Some(Payload::ThemeSignal(_)) => "theme",
            _ => "other",
        })
        .collect()
}

pub(crate) use rapport_kit::on_both;

/// Asserts a feedback error: code, reason, violated field.
pub fn assert_status(s: &Status, code: Code, reason: &str, field: Option<&str>) {
    rapport_kit::testing::assert_status(s, code, reason, "feedback", field);
}
