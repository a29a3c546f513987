//! Wires the feedback service: configuration, database, store, the event sink (erasures from other services), the
//! outbox relays and the server.
use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use rapport_kit::{
    auth::{Authenticator, Policy, Role},
    client::{self, Outgoing},
    clock::Clock,
    config::{self, ConfigError},
    lease::Worker,
    serve::{self, ServeParts},
    service::{self, AppError, Bound, Common, Service, Stop},
};
use rapport_outbox::{
    Outbox, Subscriber,
    wiring::{self, SinkSettings},
};
use rapport_proto::{
    feedback::v1::feedback_service_server::FeedbackServiceServer,
    loyalty::v1::loyalty_service_client::LoyaltyServiceClient,
    segmentation::v1::segmentation_service_client::SegmentationServiceClient,
};
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tonic::service::Routes;

use crate::{
    api::{DOMAIN, FeedbackApi},
    domain::sla::Calendar,
    events::Handler,
    gauges::Metrics,
    migration::Migrator,
    peers::Peers,
    store::Store,
};

/// Full name of the gRPC service.
pub const SERVICE_NAME: &str = "rapport.feedback.v1.FeedbackService";
/// The checked-in role × RPC matrix.
pub const AUTHZ: &str = include_str!("../authz.txt");

/// Full name of the event sink feedback serves.
pub const SINK_NAME: &str = rapport_outbox::sink::SERVICE_NAME;

/// The role × RPC matrix of feedback.
pub fn policy() -> Result<Policy, String> {
    rapport_outbox::wiring::policy(SERVICE_NAME, AUTHZ, Some(include_str!("../authz-events.txt")))
}

/// Feedback's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address (`RAPPORT_FEEDBACK_LISTEN`, default 127.0.0.1:50054), database, limits, pseudonym key.
    pub common: Common,
    /// Who receives feedback's events — answers, promoters, cases, theme signals (`RAPPORT_FEEDBACK_SUBSCRIBERS`,
    /// default `segmentation,referrals,improvement`; each one's address from `RAPPORT_<NAME>_URL`; without an address
    /// its events wait, so promoters wait for referrals and theme signals for improvement until they exist).
    pub subscribers: Vec<Subscriber>,
    /// The NPS target reports compare against (`RAPPORT_FEEDBACK_NPS_TARGET`, default 50).
    pub nps_target: f64,
    /// How far in the future a delivered event may be dated (`RAPPORT_MAX_CLOCK_SKEW_MS`, default 5 minutes).
    pub max_clock_skew: Duration,
    /// When SLA clocks run: `RAPPORT_FEEDBACK_BUSINESS_HOURS` (default `mon-sat 08:00-20:00`),
    /// `RAPPORT_FEEDBACK_HOLIDAYS` (comma-separated `YYYY-MM-DD`), `RAPPORT_FEEDBACK_UTC_OFFSET_MINUTES` (default 0).
    pub calendar: Calendar,
    /// How often the SLA sweeper looks for warnings and breaches (`RAPPORT_FEEDBACK_SLA_SWEEP_MS`, default 60 s).
    pub sla_sweep_interval: Duration,
    /// How often one replica records the business gauges — NPS, first-response median, SLA attainment of the
    /// last 24 hours (`RAPPORT_FEEDBACK_GAUGES_MS`, default 60 s; only when telemetry exports metrics).
    pub gauge_interval: Duration,
    /// How often the assigner looks for waiting cases besides being woken by each commit
    /// (`RAPPORT_FEEDBACK_ASSIGN_MS`, default 1 s).
    pub assign_interval: Duration,
    /// Where loyalty listens, to ask a case's tier at intake (`RAPPORT_LOYALTY_URL`; unset: the tier comes from
    /// loyalty's events only).
    pub loyalty_url: Option<String>,
    /// How long intake waits for loyalty's answer (`RAPPORT_FEEDBACK_TIER_DEADLINE_MS`, default 300).
    pub tier_deadline: Duration,
    /// The longest `GetCustomerContext` waits for loyalty's and segmentation's parts
    /// (`RAPPORT_FEEDBACK_CONTEXT_WAIT_MS`, default 800; never past three quarters of the caller's deadline).
    /// Segmentation is asked where its events go (`RAPPORT_SEGMENTATION_URL`).
    pub context_wait: Duration,
}

impl Config {
    /// From the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            common: Common::from_env("feedback", 50054)?,
            subscribers: rapport_outbox::subscribers_from_env(
                "RAPPORT_FEEDBACK_SUBSCRIBERS",
                &["segmentation", "referrals", "improvement"],
            )?,
            nps_target: config::parse("RAPPORT_FEEDBACK_NPS_TARGET", 50.0)?,
            max_clock_skew: rapport_outbox::sink::max_skew_from_env()?,
            calendar: calendar_from_env()?,
            sla_sweep_interval: config::millis("RAPPORT_FEEDBACK_SLA_SWEEP_MS", Duration::from_secs(60))?,
            assign_interval: config::millis("RAPPORT_FEEDBACK_ASSIGN_MS", Duration::from_secs(1))?,
            gauge_interval: config::millis("RAPPORT_FEEDBACK_GAUGES_MS", Duration::from_secs(60))?,
            loyalty_url: config::var("RAPPORT_LOYALTY_URL"),
            tier_deadline: config::millis("RAPPORT_FEEDBACK_TIER_DEADLINE_MS", Duration::from_millis(300))?,
            context_wait: config::millis("RAPPORT_FEEDBACK_CONTEXT_WAIT_MS", Duration::from_millis(800))?,
        })
    }

    /// Defaults for a service on an ephemeral loopback port over `database_url` (tests, benchmarks): segmentation,
    /// referrals and improvement subscribe without an address, the development pseudonym key.
    pub fn local(database_url: &str) -> Self {
        Self {
            common: Common::local(database_url),
            subscribers: ["segmentation", "referrals", "improvement"]
                .into_iter()
                .map(|name| Subscriber { name: name.into(), url: None })
                .collect(),
            nps_target: 50.0,
            max_clock_skew: Duration::from_secs(300),
            calendar: Calendar::always(),
            sla_sweep_interval: Duration::from_secs(3600),
            assign_interval: Duration::from_secs(1),
            gauge_interval: Duration::from_secs(60),
            loyalty_url: None,
            tier_deadline: Duration::from_millis(300),
            context_wait: Duration::from_millis(800),
        }
    }

    /// Sets where the subscriber `name` listens (adding it when missing).
    pub fn set_subscriber_url(&mut self, name: &str, url: Option<String>) {
        rapport_outbox::set_subscriber_url(&mut self.subscribers, name, url);
    }
}

/// The SLA calendar from the environment.
fn calendar_from_env() -> Result<Calendar, ConfigError> {
    let hours = config::var("RAPPORT_FEEDBACK_BUSINESS_HOURS").unwrap_or_else(|| "mon-sat 08:00-20:00".into());
    let holidays = config::var("RAPPORT_FEEDBACK_HOLIDAYS").unwrap_or_default();
    let offset = config::parse("RAPPORT_FEEDBACK_UTC_OFFSET_MINUTES", 0i64)?;
    let holidays: Vec<&str> = holidays.split(',').collect();
    Calendar::parse(&hours, &holidays, offset)
        .map_err(|e| ConfigError { name: "RAPPORT_FEEDBACK_BUSINESS_HOURS".into(), problem: e.to_string() })
}

/// A built feedback service: bound, migrated, not yet serving.
pub struct Feedback {
    listener: TcpListener,
    addr: SocketAddr,
    store: Store,
    config: Config,
    auth: Arc<Authenticator>,
    clock: Arc<dyn Clock>,
    outbox: Outbox,
}

impl Service for Feedback {
    const NAME: &'static str = "feedback";
    type Config = Config;
    type Migrator = Migrator;

    fn config_from_env() -> Result<Config, ConfigError> {
        Config::from_env()
    }

    fn common(config: &Config) -> &Common {
        &config.common
    }

    fn common_mut(config: &mut Config) -> &mut Common {
        &mut config.common
    }

    async fn build(config: Config, auth: Arc<Authenticator>, clock: Arc<dyn Clock>) -> Result<Self, AppError> {
        let Bound { listener, addr, db } = service::bind::<Migrator>(&config.common).await?;
        let outbox = Outbox::new("feedback", config.subscribers.iter().map(|s| s.name.clone()));
        let store = Store::new(db, clock.clone(), outbox.clone(), &config.common.pseudonyms)
            .with_calendar(config.calendar.clone());
        Ok(Self { listener, addr, store, config, auth, clock, outbox })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn db(&self) -> &DatabaseConnection {
        self.store.db()
    }

    /// Serves until `shutdown`, with a relay per subscriber beside it, each under its lease.
    async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), AppError> {
        let stop = Stop::new();
        let stopped = stop.signal();
        let outgoing = Outgoing::as_service(self.auth.clone(), "feedback", Role::Feedback, Duration::from_secs(5));
        rapport_outbox::spawn_relays(
            self.store.db(),
            &self.outbox,
            &self.config.subscribers,
            &self.config.common.events,
            &outgoing,
            &self.clock,
            &stopped,
        )
        .map_err(AppError::Config)?;
        let metrics = Metrics::new();
        let sweeper = {
            let (store, metrics) = (self.store.clone(), metrics.clone());
            let worker = Worker::new("feedback.sla", self.config.sla_sweep_interval);
            worker.run(self.store.db().clone(), stopped(), move || {
                let (store, metrics) = (store.clone(), metrics.clone());
                async move {
                    match store.sweep_sla().await {
                        Ok(swept) => {
                            metrics.count(&swept);
                            if swept.recorded() > 0 {
                                tracing::info!(recorded = swept.recorded(), "sla warnings and breaches recorded");
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "sla sweep failed"),
                    }
                    false
                }
            })
        };
        tokio::spawn(sweeper);
        if rapport_telemetry::exports_metrics() {
            let (store, target) = (self.store.clone(), self.config.nps_target);
            let worker = Worker::new("feedback.gauges", self.config.gauge_interval);
            tokio::spawn(worker.run(self.store.db().clone(), stopped(), move || {
                let (store, metrics) = (store.clone(), metrics.clone());
                async move {
                    if let Err(e) = metrics.report(&store, target).await {
                        tracing::warn!(error = %e, "business gauges not recorded");
                    }
                    false
                }
            }));
        }
        let assigner = {
            let store = self.store.clone();
            let worker =
                Worker::new("feedback.assigner", self.config.assign_interval).with_wake(self.store.assign_waker());
            worker.run(self.store.db().clone(), stopped(), move || {
                let store = store.clone();
                async move {
                    match store.assign_waiting().await {
                        Ok(n) => {
                            if n > 0 {
                                tracing::debug!(assigned = n, "waiting cases assigned");
                            }
                            n >= 100
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "assigning waiting cases failed");
                            false
                        }
                    }
                }
            })
        };
        tokio::spawn(assigner);
        let serve = &self.config.common.serve;
        let peer = |var: &str, url: &Option<String>| {
            let longest = self.config.tier_deadline.max(self.config.context_wait);
            let out = Outgoing::as_service(self.auth.clone(), "feedback", Role::Feedback, longest);
            url.as_deref()
                .map(|u| client::channel(u, out).map_err(|e| AppError::Config(format!("{var}: {e}"))))
                .transpose()
        };
        let segmentation_url =
            self.config.subscribers.iter().find(|s| s.name == "segmentation").and_then(|s| s.url.clone());
        let peers = Peers::new(
            peer("RAPPORT_LOYALTY_URL", &self.config.loyalty_url)?.map(LoyaltyServiceClient::new),
            peer("RAPPORT_SEGMENTATION_URL", &segmentation_url)?.map(SegmentationServiceClient::new),
            self.config.tier_deadline,
        );
        let api = FeedbackApi::new(self.store.clone(), self.config.nps_target, peers, self.config.context_wait);
        let api = FeedbackServiceServer::new(api).max_decoding_message_size(serve.max_message_bytes);
        let outbox = self.outbox.clone();
        let sink = wiring::sink_service(
            self.store.db().clone(),
            Handler::new(self.store.clone()),
            SinkSettings::of(
                &self.config.common,
                &self.clock,
                self.config.max_clock_skew,
                DOMAIN,
                include_str!("../authz-events.txt"),
            ),
            &stopped,
            move || outbox.notify(),
        );
        let parts = ServeParts {
            listener: self.listener,
            config: serve.clone(),
            auth: self.auth,
            policy: policy().map_err(AppError::Config)?,
            service_names: [&[SERVICE_NAME, SINK_NAME][..], &wiring::OPERATOR_SERVICES].concat(),
            long_running: vec![],
            routes: wiring::operator_routes(
                Routes::new(api).add_service(sink),
                self.store.db(),
                &self.clock,
                &self.outbox,
                &self.config.common.pseudonyms,
                DOMAIN,
                serve.max_message_bytes,
            ),
            domain: DOMAIN.into(),
        };
        tracing::info!(addr = %self.addr, "feedback serving");
        let r = serve::serve(parts, shutdown).await;
        stop.stop();
        Ok(r?)
    }
}

impl Feedback {
    /// Sets where loyalty listens, for the tier at intake (`rapport up` builds loyalty after feedback).
    pub fn set_loyalty_url(&mut self, url: String) {
        self.config.loyalty_url = Some(url);
    }

    /// The store (tests reach the database through it).
    pub fn store(&self) -> &Store {
        &self.store
    }
}
