//! `spawn_app()`: an improvement server on an ephemeral port with a fresh database and a manual clock, and, when
//! asked, a segmentation server its pilots take segments from; feedback's events delivered as feedback's relay would.
use std::{sync::Arc, time::Duration};

use prost::Message;
use rapport_improvement::app::{Config, Improvement};
use rapport_kit::{
    auth::{Authenticator, Role},
    client::{self, Outgoing, OutgoingChannel},
    clock::{ManualClock, timestamp},
    serve::ServeConfig,
    testing::{TestDb, TestServer, fresh_database},
};
use rapport_outbox::entities::outbox_event;
use rapport_proto::{
    events::v1::{
        CustomerForgotten, DeliverEventsRequest, Event, SurveyAnswered, ThemeSignal, event::Payload,
        event_sink_service_client::EventSinkServiceClient,
    },
    improvement::v1::{self as pb, improvement_service_client::ImprovementServiceClient},
    segmentation::v1::{self as spb, segmentation_service_client::SegmentationServiceClient},
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use tonic::{Code, Status};

pub use rapport_kit::testing::Backend as Db;

/// 2026-01-01T00:00:00Z.
pub const T0: i64 = 1_767_225_600_000;
pub const DAY: i64 = 86_400_000;

pub type Client = ImprovementServiceClient<OutgoingChannel>;

pub struct TestApp {
    pub client: Client,
    pub auth: Arc<Authenticator>,
    pub clock: ManualClock,
    pub db: sea_orm::DatabaseConnection,
    pub segmentation: Option<SegmentationServiceClient<OutgoingChannel>>,
    pub config: Config,
    server: TestServer,
    segmentation_server: Option<TestServer>,
    _databases: Vec<TestDb>,
}

fn auth() -> Arc<Authenticator> {
    rapport_kit::testing::authenticator()
}

/// Improvement alone.
pub async fn spawn_app(backend: Db) -> TestApp {
    spawn(backend, false).await
}

/// Improvement with a segmentation server of its own.
pub async fn spawn_with_segmentation(backend: Db) -> TestApp {
    spawn(backend, true).await
}

async fn spawn(backend: Db, with_segmentation: bool) -> TestApp {
    let auth = auth();
    let clock = ManualClock::new(T0);
    let serve = ServeConfig { drain_delay: Duration::from_millis(10), ..ServeConfig::default() };
    let mut databases = vec![fresh_database(backend).await.unwrap()];
    let mut config = Config::local(databases[0].url());
    config.common.serve = serve.clone();
    let (mut segmentation, mut segmentation_server) = (None, None);
    if with_segmentation {
        let db = fresh_database(backend).await.unwrap();
        let mut sc = rapport_segmentation::app::Config::local(db.url(), "http://127.0.0.1:9");
        sc.common.serve = serve;
        let server =
            TestServer::start::<rapport_segmentation::app::Segmentation>(sc, auth.clone(), Arc::new(clock.clone()))
                .await
                .unwrap();
        config.segmentation_url = Some(server.url());
        let out = Outgoing::new(Some(auth.issue("t", Role::Sre, 600).unwrap()), Duration::from_secs(60));
        segmentation = Some(SegmentationServiceClient::new(client::channel(&server.url(), out).unwrap()));
        segmentation_server = Some(server);
        databases.push(db);
    }
    let server = TestServer::start::<Improvement>(config.clone(), auth.clone(), Arc::new(clock.clone())).await.unwrap();
    let out = Outgoing::new(Some(auth.issue("pat", Role::Marketing, 600).unwrap()), Duration::from_secs(60));
    TestApp {
        client: ImprovementServiceClient::new(client::channel(&server.url(), out).unwrap()),
        auth,
        clock,
        db: server.db.clone(),
        segmentation,
        config,
        server,
        segmentation_server,
        _databases: databases,
    }
}

impl TestApp {
    pub async fn stop(self) {
        self.server.stop().await;
        if let Some(s) = self.segmentation_server {
            s.stop().await;
        }
    }

    /// Stops segmentation: pilots cannot start.
    pub async fn stop_segmentation(&mut self) {
        if let Some(s) = self.segmentation_server.take() {
            s.stop().await;
        }
    }

    /// A client calling as `role` with subject `who`.
    pub fn as_role(&self, role: Role, who: &str) -> Client {
        self.client_of(&self.server, role, who)
    }

    /// A client of `server` (this one or a replica).
    pub fn client_of(&self, server: &TestServer, role: Role, who: &str) -> Client {
        let out = Outgoing::new(Some(self.auth.issue(who, role, 600).unwrap()), Duration::from_secs(60));
        ImprovementServiceClient::new(client::channel(&server.url(), out).unwrap())
    }

    /// A second replica on the same database.
    pub async fn replica(&self) -> TestServer {
        TestServer::start::<Improvement>(self.config.clone(), self.auth.clone(), Arc::new(self.clock.clone()))
            .await
            .unwrap()
    }

    /// Delivers `events` as feedback's relay would.
    pub async fn deliver(&self, events: Vec<Event>) -> Result<(), Status> {
        let ch = client::channel(
            &self.server.url(),
            Outgoing::new(Some(self.auth.issue("feedback", Role::Feedback, 600).unwrap()), Duration::from_secs(60)),
        )
        .unwrap();
        let mut c = EventSinkServiceClient::new(ch);
        for chunk in events.chunks(500) {
            c.deliver_events(DeliverEventsRequest { events: chunk.to_vec() }).await?;
        }
        Ok(())
    }

    /// The events improvement wrote for `destination`, in order.
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

    /// Discovers themes over everything so far (k chosen by silhouette).
    pub async fn discover(&self, request_id: &str) -> Result<pb::DiscoverThemesResponse, Status> {
        self.client
            .clone()
            .discover_themes(pb::DiscoverThemesRequest {
                request_id: request_id.into(),
                start_time: Some(timestamp(T0 - 365 * DAY)),
                end_time: Some(timestamp(self.clock_now() + DAY)),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner())
    }

    pub fn clock_now(&self) -> i64 {
        use rapport_kit::clock::Clock;
        self.clock.now_ms()
    }

    /// Creates an improvement as marketing.
    pub async fn improvement(&self, title: &str, themes: &[&str], confidence: f64, effort: f64) -> pb::Improvement {
        self.client
            .clone()
            .create_improvement(pb::CreateImprovementRequest {
                request_id: format!("imp-{}", title.replace(' ', "-")),
                title: title.into(),
                description: String::new(),
                theme_ids: themes.iter().map(|t| t.to_string()).collect(),
                confidence,
                effort_weeks: effort,
            })
            .await
            .unwrap()
            .into_inner()
            .improvement
            .unwrap()
    }

    /// Moves an improvement to `status`.
    pub async fn move_to(
        &self,
        id: &str,
        status: pb::ImprovementStatus,
        note: &str,
    ) -> Result<pb::Improvement, Status> {
        self.client
            .clone()
            .change_improvement_status(pb::ChangeImprovementStatusRequest {
                request_id: format!("st-{id}-{status:?}-{}", note.replace(' ', "-")),
                improvement_id: id.into(),
                status: status.into(),
                note: note.into(),
                duplicate_of: String::new(),
                resurvey: false,
            })
            .await
            .map(|r| r.into_inner().improvement.unwrap())
    }
}

/// Feedback's theme signal of a case.
pub fn signal(id: &str, customer: &str, theme: &str, text: &str, at: i64) -> Event {
    signal_with(id, customer, theme, text, at, "medium", "silver")
}

/// Feedback's theme signal of a case with a severity and a tier.
pub fn signal_with(id: &str, customer: &str, theme: &str, text: &str, at: i64, severity: &str, tier: &str) -> Event {
    Event {
        event_id: id.into(),
        source: "feedback".into(),
        customer_id: customer.into(),
        occurred_at: Some(timestamp(at)),
        traceparent: String::new(),
        payload: Some(Payload::ThemeSignal(ThemeSignal {
            origin: "case".into(),
            reference: format!("case-{id}"),
            theme: theme.into(),
            confidence: 0.4,
            text: text.into(),
            severity: severity.into(),
            channel: 1,
            nps: None,
            tier: tier.into(),
            segments: vec![],
            kind: "complaint".into(),
        })),
    }
}

/// Feedback's event of an NPS answer.
pub fn answer(id: &str, customer: &str, score: i32, at: i64) -> Event {
    Event {
        event_id: id.into(),
        source: "feedback".into(),
        customer_id: customer.into(),
        occurred_at: Some(timestamp(at)),
        traceparent: String::new(),
        payload: Some(Payload::SurveyAnswered(SurveyAnswered {
            survey_id: format!("srv-{id}"),
            score,
            touchpoint: "delivery".into(),
            channel: 1,
        })),
    }
}

/// Feedback's erasure event.
pub fn forgotten(id: &str, customer: &str) -> Event {
    Event {
        event_id: id.into(),
        source: "feedback".into(),
        customer_id: customer.into(),
        occurred_at: Some(timestamp(T0)),
        traceparent: String::new(),
        payload: Some(Payload::CustomerForgotten(CustomerForgotten {})),
    }
}

/// The labelled corpus of complaints (theme, text), in its order.
pub fn corpus() -> Vec<(String, String)> {
    rapport_improvement::domain::discovery::labelled(include_str!("../data/discovery.tsv"))
}

/// The corpus as unclassified theme signals of customers `c-<n>`, a minute apart, the last just before T0.
pub fn corpus_signals(prefix: &str) -> Vec<Event> {
    corpus()
        .iter()
        .enumerate()
        .map(|(i, (_, text))| {
            signal(&format!("{prefix}-{i}"), &format!("c-{i}"), "unclassified", text, T0 - (640 - i as i64) * 60_000)
        })
        .collect()
}

/// Upserts customers in segmentation with an attribute and creates a segment of those that have it.
pub async fn segment_of(app: &TestApp, segment: &str, customers: &[String]) {
    let mut s = app.segmentation.clone().expect("segmentation");
    for c in customers {
        s.upsert_customer(spb::UpsertCustomerRequest {
            request_id: format!("up-{c}"),
            customer_id: c.clone(),
            attributes: [("pilot".to_string(), segment.to_string())].into(),
            consent_marketing: true,
            consent_profiling: true,
        })
        .await
        .unwrap();
    }
    let condition = spb::Condition {
        node: Some(spb::condition::Node::Attribute(spb::AttributeEquals {
            name: "pilot".into(),
            value: segment.into(),
        })),
    };
    s.create_segment(spb::CreateSegmentRequest {
        request_id: format!("seg-{segment}"),
        segment: Some(spb::Segment {
            segment_id: segment.into(),
            display_name: segment.into(),
            condition: Some(condition),
            size: 0,
            create_time: None,
        }),
    })
    .await
    .unwrap();
}

pub(crate) use rapport_kit::on_both;

/// Asserts an improvement error: code, reason, violated field.
pub fn assert_status(s: &Status, code: Code, reason: &str, field: Option<&str>) {
    rapport_kit::testing::assert_status(s, code, reason, "improvement", field);
}

impl TestApp {
    /// The event sink, called as `role`.
    pub fn clone_sink_as(&self, role: Role) -> EventSinkServiceClient<OutgoingChannel> {
        let out = Outgoing::new(Some(self.auth.issue(role.as_str(), role, 600).unwrap()), Duration::from_secs(60));
        EventSinkServiceClient::new(client::channel(&self.server.url(), out).unwrap())
    }
}
