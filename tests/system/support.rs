//! Starting and stopping real services on loopback, sharing one key and one manual clock.
use std::{
    net::SocketAddr,
    sync::{Arc, OnceLock},
    time::Duration,
};

use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};

use rapport_proto::{
    common::v1::{Channel, Money},
    events::v1::{Event, PurchaseRecorded, event},
};

use rapport_kit::{
    auth::{Authenticator, Role},
    client::{self, Outgoing, OutgoingChannel},
    clock::ManualClock,
    lease::Round,
    serve::ServeConfig,
    testing::TestServer,
};

pub use rapport_kit::db::testing::Backend as Db;

/// 2026-06-01T00:00:00Z.
pub const T0: i64 = 1_780_272_000_000;

pub fn auth() -> Arc<Authenticator> {
    rapport_kit::testing::authenticator()
}

pub fn serve_config() -> ServeConfig {
    ServeConfig { drain_delay: Duration::from_millis(20), ..ServeConfig::default() }
}

/// Whether every event `producer`'s outbox holds for `destination` has been applied by it (`receiver` is its
/// database): none waiting in the outbox, each one in the receiver's inbox. Over JetStream an event leaves the
/// outbox when the stream has it, before the subscriber applies it: waiting for the outbox alone is not enough.
pub async fn applied(
    producer: &sea_orm::DatabaseConnection,
    destination: &str,
    receiver: &sea_orm::DatabaseConnection,
) -> bool {
    use prost::Message;
    use rapport_outbox::entities::{inbox_event, outbox_event};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    if rapport_outbox::pending(producer, destination).await.unwrap() > 0 {
        return false;
    }
    let sent = outbox_event::Entity::find()
        .filter(outbox_event::Column::Destination.eq(destination))
        .all(producer)
        .await
        .unwrap();
    let seen: std::collections::HashSet<String> =
        inbox_event::Entity::find().all(receiver).await.unwrap().into_iter().map(|r| r.event_id).collect();
    sent.iter().all(|row| Event::decode(row.payload.as_slice()).is_ok_and(|e| seen.contains(&e.event_id)))
}

/// A running service and the way to stop it.
pub type Running = TestServer;

pub async fn loyalty(
    listen: SocketAddr,
    database_url: &str,
    segmentation: Option<String>,
    clock: &ManualClock,
) -> Running {
    loyalty_with_auth(listen, database_url, segmentation, clock, auth()).await
}

/// Loyalty verifying tokens with `auth` (another key than the suite's: every caller is refused).
pub async fn loyalty_with_auth(
    listen: SocketAddr,
    database_url: &str,
    segmentation: Option<String>,
    clock: &ManualClock,
    auth: Arc<Authenticator>,
) -> Running {
    loyalty_tuned(listen, database_url, segmentation, clock, auth, |_| {}).await
}

/// Loyalty with its configuration adjusted by `tune` after the suite's settings.
pub async fn loyalty_tuned(
    listen: SocketAddr,
    database_url: &str,
    segmentation: Option<String>,
    clock: &ManualClock,
    auth: Arc<Authenticator>,
    tune: impl FnOnce(&mut rapport_loyalty::app::Config),
) -> Running {
    let mut config = rapport_loyalty::app::Config::local(database_url);
    config.common.listen = listen;
    config.common.serve = serve_config();
    config.set_subscriber_url("segmentation", segmentation);
    config.sweep_interval = Duration::from_secs(3600);
    tune(&mut config);
    TestServer::start::<rapport_loyalty::app::Loyalty>(config, auth, Arc::new(clock.clone())).await.expect("loyalty")
}

pub async fn segmentation(listen: SocketAddr, database_url: &str, loyalty: SocketAddr, clock: &ManualClock) -> Running {
    segmentation_tuned(listen, database_url, loyalty, clock, |_| {}).await
}

/// Segmentation with its configuration adjusted by `tune` after the suite's settings.
pub async fn segmentation_tuned(
    listen: SocketAddr,
    database_url: &str,
    loyalty: SocketAddr,
    clock: &ManualClock,
    tune: impl FnOnce(&mut rapport_segmentation::app::Config),
) -> Running {
    let mut config = rapport_segmentation::app::Config::local(database_url, &format!("http://{loyalty}"));
    config.common.listen = listen;
    config.common.serve = serve_config();
    config.campaign_poll = Duration::from_millis(100);
    tune(&mut config);
    TestServer::start::<rapport_segmentation::app::Segmentation>(config, auth(), Arc::new(clock.clone()))
        .await
        .expect("segmentation")
}

/// The in-memory span exporter of this test process (installed once, shared by every test in it); the log lines
/// go to stdout and to a buffer that [`logs`] reads.
pub fn exporter() -> &'static InMemorySpanExporter {
    static E: OnceLock<(InMemorySpanExporter, rapport_telemetry::TelemetryGuard)> = OnceLock::new();
    &E.get_or_init(|| {
        let e = InMemorySpanExporter::default();
        let g = rapport_telemetry::init_with_exporter_and_logs("system-test", e.clone(), || LogTee);
        (e, g)
    })
    .0
}

/// Every log line written in this process since [`exporter`] installed the subscriber.
pub fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

static LOGS: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

/// Writes a log line to stdout and keeps it in [`LOGS`].
struct LogTee;

impl std::io::Write for LogTee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        std::io::stdout().write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

/// The rounds of the background worker `worker` on the database `namespace`, from their spans.
pub fn worker_rounds(worker: &str, namespace: &str) -> Vec<Round> {
    let attr = |s: &SpanData, key: &str| {
        s.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.as_str().to_string())
    };
    exporter()
        .get_finished_spans()
        .unwrap()
        .iter()
        .filter(|s| {
            s.name == "worker.round"
                && attr(s, "worker.name").as_deref() == Some(worker)
                && attr(s, "db.namespace").as_deref() == Some(namespace)
        })
        .map(|s| Round {
            instance: attr(s, "worker.instance").unwrap_or_default(),
            start: s.start_time,
            end: s.end_time,
        })
        .collect()
}

pub fn channel(addr: SocketAddr, role: Role) -> OutgoingChannel {
    channel_as(addr, role, "test")
}

/// A channel to `addr` with a token for `subject` in `role` (a person, or a customer acting on its own data).
pub fn channel_as(addr: SocketAddr, role: Role, subject: &str) -> OutgoingChannel {
    let token = auth().issue(subject, role, 600).unwrap();
    client::channel(&format!("http://{addr}"), Outgoing::new(Some(token), Duration::from_secs(60))).unwrap()
}

/// Any port on loopback: the service binds port 0 and reports the address it got.
pub fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A free port on loopback, for a service that must come back on the same address after a restart (the only
/// case where the address must be known before binding).
pub fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

pub use rapport_kit::testing::eventually;

/// Referrals on `listen` over `database_url`, paying through `loyalty` when given, adjusted by `tune`.
pub async fn referrals(
    listen: SocketAddr,
    database_url: &str,
    loyalty: Option<String>,
    clock: &ManualClock,
    tune: impl FnOnce(&mut rapport_referrals::app::Config),
) -> Running {
    let mut config = rapport_referrals::app::Config::local(database_url);
    config.common.listen = listen;
    config.common.serve = serve_config();
    config.loyalty_url = loyalty;
    tune(&mut config);
    TestServer::start::<rapport_referrals::app::Referrals>(config, auth(), Arc::new(clock.clone()))
        .await
        .expect("referrals")
}

/// Issues `customer`'s code in `programme` (a vanity code when given) through referrals at `addr`; the code.
pub async fn issue_code(addr: SocketAddr, customer: &str, programme: &str, vanity: &str) -> String {
    use rapport_proto::referrals::v1::{IssueCodeRequest, referrals_service_client::ReferralsServiceClient};
    ReferralsServiceClient::new(channel(addr, Role::Agent))
        .issue_code(IssueCodeRequest {
            request_id: format!("code-{customer}-{programme}"),
            customer_id: customer.into(),
            programme_id: programme.into(),
            vanity: vanity.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .code
        .unwrap()
        .code
}

/// Loyalty's event of `customer`'s purchase of `order` for `euros` at `at`.
pub fn purchase_event(id: &str, customer: &str, order: &str, euros: i64, at: i64) -> Event {
    Event {
        event_id: id.into(),
        source: "loyalty".into(),
        customer_id: customer.into(),
        occurred_at: Some(rapport_kit::clock::timestamp(at)),
        traceparent: String::new(),
        payload: Some(event::Payload::PurchaseRecorded(PurchaseRecorded {
            order_id: order.into(),
            amount: Some(Money { currency_code: "EUR".into(), units: euros, nanos: 0 }),
            channel: 1,
            recurring: false,
            points: euros,
        })),
    }
}

/// Schedules a survey of `customer` through feedback at `addr` and records its answer; the survey's id.
pub async fn answer_survey(addr: SocketAddr, customer: &str, score: i32, comment: &str) -> String {
    use rapport_proto::feedback::v1::{
        RecordResponseRequest, ScheduleSurveyRequest, feedback_service_client::FeedbackServiceClient,
    };
    let mut fc = FeedbackServiceClient::new(channel(addr, Role::Agent));
    let survey = fc
        .schedule_survey(ScheduleSurveyRequest {
            request_id: format!("s-{customer}"),
            customer_id: customer.into(),
            touchpoint: "delivery".into(),
            channel: Channel::Email.into(),
            min_days_between_surveys: 0,
            valid_days: 0,
            after_case_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .survey
        .unwrap();
    fc.record_response(RecordResponseRequest {
        request_id: format!("a-{customer}"),
        survey_id: survey.survey_id.clone(),
        score,
        comment: comment.into(),
    })
    .await
    .unwrap();
    survey.survey_id
}

/// Feedback on `listen` delivering its events to `subscribers` (name, address), its configuration adjusted by
/// `tune` after the suite's settings.
pub async fn feedback(
    listen: SocketAddr,
    database_url: &str,
    subscribers: &[(&str, String)],
    clock: &ManualClock,
    tune: impl FnOnce(&mut rapport_feedback::app::Config),
) -> Running {
    let mut config = rapport_feedback::app::Config::local(database_url);
    config.common.listen = listen;
    config.common.serve = serve_config();
    for (name, url) in subscribers {
        config.set_subscriber_url(name, Some(url.clone()));
    }
    tune(&mut config);
    TestServer::start::<rapport_feedback::app::Feedback>(config, auth(), Arc::new(clock.clone()))
        .await
        .expect("feedback")
}

/// Improvement on `listen` delivering to feedback at `feedback` (when known).
pub async fn improvement(
    listen: SocketAddr,
    database_url: &str,
    feedback: Option<String>,
    clock: &ManualClock,
) -> Running {
    let mut config = rapport_improvement::app::Config::local(database_url);
    config.common.listen = listen;
    config.common.serve = serve_config();
    config.set_subscriber_url("feedback", feedback);
    TestServer::start::<rapport_improvement::app::Improvement>(config, auth(), Arc::new(clock.clone()))
        .await
        .expect("improvement")
}
