//! Wires the improvement service: configuration, database, store, the event sink (feedback's theme signals, answers
//! and erasures), the outbox relays (accepted themes and shipped improvements to feedback), the discovery and
//! valuation workers, and the server.
use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use rapport_kit::{
    auth::{Authenticator, Policy, Role},
    client::{self, Outgoing},
    clock::Clock,
    config::{self, ConfigError},
    frame::Key,
    lease::Worker,
    serve::{self, ServeParts},
    service::{self, AppError, Bound, Common, Service, Stop},
};
use rapport_outbox::{
    Outbox, Subscriber,
    wiring::{self, SinkSettings},
};
use rapport_proto::{
    improvement::v1::improvement_service_server::ImprovementServiceServer,
    segmentation::v1::segmentation_service_client::SegmentationServiceClient,
};
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tonic::service::Routes;

use crate::{
    api::{DOMAIN, ImprovementApi},
    domain::{DAY_MS, discovery},
    error::ImprovementError,
    events::Handler,
    migration::Migrator,
    peers::Segmentation,
    store::{DiscoverCmd, Settings, Store},
};

/// Full name of the gRPC service.
pub const SERVICE_NAME: &str = "rapport.improvement.v1.ImprovementService";
/// The checked-in role × RPC matrix.
pub const AUTHZ: &str = include_str!("../authz.txt");
/// Full name of the event sink improvement serves.
pub const SINK_NAME: &str = rapport_outbox::sink::SERVICE_NAME;

/// The role × RPC matrix of improvement.
pub fn policy() -> Result<Policy, String> {
    rapport_outbox::wiring::policy(SERVICE_NAME, AUTHZ, Some(include_str!("../authz-events.txt")))
}

/// Improvement's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address (`RAPPORT_IMPROVEMENT_LISTEN`, default 127.0.0.1:50055), database, limits, pseudonym key.
    pub common: Common,
    /// Who receives improvement's events — accepted themes and shipped improvements (`RAPPORT_IMPROVEMENT_SUBSCRIBERS`,
    /// default `feedback`; each one's address from `RAPPORT_<NAME>_URL`).
    pub subscribers: Vec<Subscriber>,
    /// How far in the future a delivered event may be dated (`RAPPORT_MAX_CLOCK_SKEW_MS`, default 5 minutes).
    pub max_clock_skew: Duration,
    /// Where segmentation listens, for pilots' segments and customers' spend (`RAPPORT_SEGMENTATION_URL`; unset:
    /// pilots cannot start and spend stays unknown).
    pub segmentation_url: Option<String>,
    /// How long one call to segmentation may take (`RAPPORT_IMPROVEMENT_SEGMENTATION_DEADLINE_MS`, default 2 s).
    pub segmentation_deadline: Duration,
    /// How often the discovery worker looks for new unclassified texts (`RAPPORT_IMPROVEMENT_DISCOVERY_MS`, default
    /// 6 hours).
    pub discovery_interval: Duration,
    /// New unclassified texts since the last run that make the worker discover again
    /// (`RAPPORT_IMPROVEMENT_DISCOVERY_MIN_TEXTS`, default 50; 0: the worker never runs one).
    pub discovery_min_texts: u64,
    /// How often the valuation worker asks segmentation for wanted customers' spend besides being woken by new
    /// signals (`RAPPORT_IMPROVEMENT_VALUATION_MS`, default 60 s).
    pub valuation_interval: Duration,
    /// The 365-day spend of a high-value customer (`RAPPORT_IMPROVEMENT_HIGH_VALUE`, default 500 units), and how
    /// far back resolved cases are recent when an improvement ships (`RAPPORT_IMPROVEMENT_RECENT_DAYS`, default 30).
    pub settings: Settings,
}

impl Config {
    /// From the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            common: Common::from_env("improvement", 50055)?,
            subscribers: rapport_outbox::subscribers_from_env("RAPPORT_IMPROVEMENT_SUBSCRIBERS", &["feedback"])?,
            max_clock_skew: rapport_outbox::sink::max_skew_from_env()?,
            segmentation_url: config::var("RAPPORT_SEGMENTATION_URL"),
            segmentation_deadline: config::millis(
                "RAPPORT_IMPROVEMENT_SEGMENTATION_DEADLINE_MS",
                Duration::from_secs(2),
            )?,
            discovery_interval: config::millis("RAPPORT_IMPROVEMENT_DISCOVERY_MS", Duration::from_secs(6 * 3600))?,
            discovery_min_texts: config::parse("RAPPORT_IMPROVEMENT_DISCOVERY_MIN_TEXTS", 50)?,
            valuation_interval: config::millis("RAPPORT_IMPROVEMENT_VALUATION_MS", Duration::from_secs(60))?,
            settings: Settings {
                high_value: config::parse("RAPPORT_IMPROVEMENT_HIGH_VALUE", 500.0)?,
                recent_days: config::parse("RAPPORT_IMPROVEMENT_RECENT_DAYS", 30)?,
            },
        })
    }

    /// Defaults for a service on an ephemeral loopback port over `database_url` (tests, benchmarks): feedback
    /// subscribes without an address, no segmentation, no automatic discovery, the development pseudonym key.
    pub fn local(database_url: &str) -> Self {
        Self {
            common: Common::local(database_url),
            subscribers: vec![Subscriber { name: "feedback".into(), url: None }],
            max_clock_skew: Duration::from_secs(300),
            segmentation_url: None,
            segmentation_deadline: Duration::from_secs(2),
            discovery_interval: Duration::from_secs(3600),
            discovery_min_texts: 0,
            valuation_interval: Duration::from_millis(200),
            settings: Settings::default(),
        }
    }

    /// Sets where the subscriber `name` listens (adding it when missing).
    pub fn set_subscriber_url(&mut self, name: &str, url: Option<String>) {
        rapport_outbox::set_subscriber_url(&mut self.subscribers, name, url);
    }
}

/// A built improvement service: bound, migrated, not yet serving.
pub struct Improvement {
    listener: TcpListener,
    addr: SocketAddr,
    store: Store,
    config: Config,
    auth: Arc<Authenticator>,
    clock: Arc<dyn Clock>,
    outbox: Outbox,
}

impl Service for Improvement {
    const NAME: &'static str = "improvement";
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
        let outbox = Outbox::new("improvement", config.subscribers.iter().map(|s| s.name.clone()));
        let store = Store::new(db, clock.clone(), outbox.clone(), &config.common.pseudonyms, config.settings.clone());
        Ok(Self { listener, addr, store, config, auth, clock, outbox })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn db(&self) -> &DatabaseConnection {
        self.store.db()
    }

    /// Serves until `shutdown`, with a relay per subscriber and the discovery and valuation workers beside it, each
    /// under its lease.
    async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), AppError> {
        let stop = Stop::new();
        let stopped = stop.signal();
        let outgoing =
            Outgoing::as_service(self.auth.clone(), "improvement", Role::Improvement, Duration::from_secs(5));
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
        let client = match &self.config.segmentation_url {
            Some(url) => {
                let out = Outgoing::as_service(
                    self.auth.clone(),
                    "improvement",
                    Role::Improvement,
                    self.config.segmentation_deadline,
                );
                let ch = client::channel(url, out)
                    .map_err(|e| AppError::Config(format!("RAPPORT_SEGMENTATION_URL: {e}")))?;
                Some(SegmentationServiceClient::new(ch))
            }
            None => {
                tracing::warn!("no segmentation address: pilots cannot start and customers' spend stays unknown");
                None
            }
        };
        let segmentation = Segmentation::new(client, self.config.segmentation_deadline);
        spawn_valuation(&self.store, &segmentation, self.config.valuation_interval, stopped());
        if self.config.discovery_min_texts > 0 {
            spawn_discovery(&self.store, self.config.discovery_interval, self.config.discovery_min_texts, stopped());
        }
        let serve = &self.config.common.serve;
        let api = ImprovementApi::new(self.store.clone(), segmentation);
        let api = ImprovementServiceServer::new(api).max_decoding_message_size(serve.max_message_bytes);
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
            // Clustering a large window of texts, or taking a large segment's members, may outlive the per-request cap.
            long_running: vec![
                "/rapport.improvement.v1.ImprovementService/DiscoverThemes",
                "/rapport.improvement.v1.ImprovementService/StartPilot",
            ],
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
        tracing::info!(addr = %self.addr, "improvement serving");
        let r = serve::serve(parts, shutdown).await;
        stop.stop();
        Ok(r?)
    }
}

/// The valuation worker (`improvement.valuation` lease): asks segmentation the 365-day spend of customers who raised
/// a theme, a batch per round; stops a round at the first call segmentation cannot answer.
fn spawn_valuation(
    store: &Store,
    segmentation: &Segmentation,
    every: Duration,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    if !segmentation.configured() {
        return;
    }
    let worker = Worker::new("improvement.valuation", every).with_wake(store.valuation_waker());
    let (store, segmentation) = (store.clone(), segmentation.clone());
    tokio::spawn(worker.run(store.db().clone(), stop, move || {
        let (store, segmentation) = (store.clone(), segmentation.clone());
        async move {
            let wanted = match store.to_value(200).await {
                Ok(w) => w,
                Err(e) => {
                    tracing::error!(error = %e, "valuation round failed");
                    return false;
                }
            };
            for customer in &wanted {
                match segmentation.spend(customer).await {
                    Ok(spend) => {
                        if let Err(e) = store.record_spend(customer, spend).await {
                            tracing::error!(error = %e, "recording a spend failed");
                            return false;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "segmentation gave no spend; valuing later");
                        return false;
                    }
                }
            }
            wanted.len() == 200
        }
    }));
}

/// The discovery worker (`improvement.discovery.auto` lease): discovers again over the default window when enough
/// unclassified texts came since the last run.
fn spawn_discovery(store: &Store, every: Duration, min_texts: u64, stop: impl Future<Output = ()> + Send + 'static) {
    let worker = Worker::new("improvement.discovery.auto", every);
    let store = store.clone();
    tokio::spawn(worker.run(store.db().clone(), stop, move || {
        let store = store.clone();
        async move {
            match store.texts_since_last_run().await {
                Ok(n) if n >= min_texts => {}
                Ok(_) => return false,
                Err(e) => {
                    tracing::error!(error = %e, "discovery check failed");
                    return false;
                }
            }
            let now = store.now();
            let cmd = DiscoverCmd { start: now - 180 * DAY_MS, end: now, config: discovery::Config::default() };
            let key = Key::new(format!("auto-discovery-{now}"), "auto", "improvement.discovery");
            match store.discover(&key, cmd).await {
                Ok(r) => tracing::info!(run_id = r.run.map(|r| r.run_id).unwrap_or(0), "automatic discovery ran"),
                Err(ImprovementError::TooFewTexts { .. }) => {}
                Err(e) => tracing::error!(error = %e, "automatic discovery failed"),
            }
            false
        }
    }));
}

impl Improvement {
    /// Sets where the subscriber `name` listens (`rapport up` builds improvement before feedback).
    pub fn set_subscriber_url(&mut self, name: &str, url: String) {
        self.config.set_subscriber_url(name, Some(url));
    }

    /// Sets where segmentation listens (`rapport up` builds segmentation first, but wires everything once bound).
    pub fn set_segmentation_url(&mut self, url: String) {
        self.config.segmentation_url = Some(url);
    }

    /// The store (tests reach the database through it).
    pub fn store(&self) -> &Store {
        &self.store
    }
}
