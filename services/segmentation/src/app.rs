//! Wires the segmentation service: configuration, database, store, the event sink for other services' outboxes,
//! training jobs, the campaign worker (grants through loyalty), the scheduled refresh, the outbox relays and the
//! server. Background work runs under leases, so it runs once however many replicas there are.
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
    loyalty::v1::loyalty_service_client::LoyaltyServiceClient,
    segmentation::v1::segmentation_service_server::SegmentationServiceServer,
};
use sea_orm::DatabaseConnection;
use tokio::{net::TcpListener, sync::Notify};
use tonic::service::Routes;

use crate::{
    api::{DOMAIN, SegmentationApi},
    campaigns,
    events::Handler,
    migration::Migrator,
    store::{Store, TrainParams},
};

/// Full name of the gRPC service.
pub const SERVICE_NAME: &str = "rapport.segmentation.v1.SegmentationService";
/// Full name of the event sink.
pub const SINK_NAME: &str = rapport_outbox::sink::SERVICE_NAME;

/// The role × RPC matrix of segmentation (its service, its event sink and its outbox's operator API).
pub fn policy() -> Result<Policy, String> {
    rapport_outbox::wiring::policy(
        SERVICE_NAME,
        include_str!("../authz.txt"),
        Some(include_str!("../authz-events.txt")),
    )
}

/// Segmentation's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address (`RAPPORT_SEGMENTATION_LISTEN`, default 127.0.0.1:50051), database, limits, pseudonym key
    /// (tombstones and anonymised campaign targets).
    pub common: Common,
    /// Loyalty's address, for campaigns (`RAPPORT_LOYALTY_URL`, default http://127.0.0.1:50052).
    pub loyalty_url: String,
    /// How often windows are aged and segments refreshed (`RAPPORT_SEGMENTATION_REFRESH_MS`, default 1 h).
    pub refresh_interval: Duration,
    /// How often the campaign worker looks for work when not woken (default 2 s).
    pub campaign_poll: Duration,
    /// Who receives segmentation's events — membership changes, erasures (`RAPPORT_SEGMENTATION_SUBSCRIBERS`,
    /// default `feedback`; each one's address from `RAPPORT_<NAME>_URL`).
    pub subscribers: Vec<Subscriber>,
    /// How far in the future an event may be dated (`RAPPORT_MAX_CLOCK_SKEW_MS`, default 5 minutes).
    pub max_clock_skew: Duration,
}

impl Config {
    /// From the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            common: Common::from_env("segmentation", 50051)?,
            loyalty_url: config::var("RAPPORT_LOYALTY_URL").unwrap_or_else(|| "http://127.0.0.1:50052".into()),
            refresh_interval: config::millis("RAPPORT_SEGMENTATION_REFRESH_MS", Duration::from_secs(3600))?,
            campaign_poll: Duration::from_secs(2),
            subscribers: rapport_outbox::subscribers_from_env("RAPPORT_SEGMENTATION_SUBSCRIBERS", &["feedback"])?,
            max_clock_skew: rapport_outbox::sink::max_skew_from_env()?,
        })
    }

    /// Defaults for a service on an ephemeral loopback port over `database_url` (tests, benchmarks): loyalty at
    /// `loyalty_url`, no subscribers, the development pseudonym key.
    pub fn local(database_url: &str, loyalty_url: &str) -> Self {
        Self {
            common: Common::local(database_url),
            loyalty_url: loyalty_url.into(),
            refresh_interval: Duration::from_secs(3600),
            campaign_poll: Duration::from_secs(2),
            subscribers: Vec::new(),
            max_clock_skew: Duration::from_secs(300),
        }
    }
}

/// Long work started by requests: training jobs and the campaign worker's wake-up.
#[derive(Clone)]
pub struct Background {
    store: Store,
    campaigns: Arc<Notify>,
}

impl Background {
    /// Runs a training job on its own task.
    pub fn train(&self, job_id: String, params: TrainParams) {
        let store = self.store.clone();
        tokio::spawn(async move { store.run_training(&job_id, params).await });
    }

    /// Tells the campaign worker there is work.
    pub fn wake_campaigns(&self) {
        self.campaigns.notify_one();
    }
}

/// A built segmentation service: bound, migrated, not yet serving.
pub struct Segmentation {
    listener: TcpListener,
    addr: SocketAddr,
    store: Store,
    config: Config,
    auth: Arc<Authenticator>,
    clock: Arc<dyn Clock>,
    outbox: Outbox,
}

impl Service for Segmentation {
    const NAME: &'static str = "segmentation";
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
        let outbox = Outbox::new("segmentation", config.subscribers.iter().map(|s| s.name.clone()));
        let store = Store::open(db, clock.clone(), outbox.clone(), config.common.pseudonyms.clone())
            .await
            .map_err(|e| AppError::Start(e.to_string()))?;
        Ok(Self { listener, addr, store, config, auth, clock, outbox })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn db(&self) -> &DatabaseConnection {
        self.store.db()
    }

    /// Serves until `shutdown`, with the campaign worker, the scheduled refresh and a relay per subscriber beside
    /// it, each under its lease.
    async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), AppError> {
        let stop = Stop::new();
        let stopped = stop.signal();
        let db = self.store.db().clone();
        let outgoing =
            Outgoing::as_service(self.auth.clone(), "segmentation", Role::Segmentation, Duration::from_secs(10));
        let loyalty = client::channel(&self.config.loyalty_url, outgoing.clone())
            .map_err(|e| AppError::Config(format!("{}: {e}", self.config.loyalty_url)))?;
        let campaigns = Arc::new(Notify::new());
        let worker = Worker::new("segmentation.campaigns", self.config.campaign_poll).with_wake(campaigns.clone());
        tokio::spawn(campaigns::run(
            worker,
            db.clone(),
            self.store.clone(),
            LoyaltyServiceClient::new(loyalty),
            stopped(),
        ));
        let refresher = {
            let store = self.store.clone();
            Worker::new("segmentation.refresher", self.config.refresh_interval).run(db.clone(), stopped(), move || {
                let store = store.clone();
                async move {
                    match store.refresh().await {
                        Ok((aged, changes)) => tracing::info!(aged, changes, "features aged and segments refreshed"),
                        Err(e) => tracing::error!(error = %e, "refresh failed"),
                    }
                    false
                }
            })
        };
        tokio::spawn(refresher);
        rapport_outbox::spawn_relays(
            &db,
            &self.outbox,
            &self.config.subscribers,
            &self.config.common.events,
            &outgoing,
            &self.clock,
            &stopped,
        )
        .map_err(AppError::Config)?;
        let background = Background { store: self.store.clone(), campaigns };
        let api = SegmentationServiceServer::new(SegmentationApi::new(
            self.store.clone(),
            background,
            self.config.max_clock_skew,
        ))
        .max_decoding_message_size(self.config.common.serve.max_message_bytes);
        let outbox = self.outbox.clone();
        let sink = wiring::sink_service(
            db.clone(),
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
        let routes = Routes::new(api).add_service(sink);
        let routes = wiring::operator_routes(
            routes,
            &db,
            &self.clock,
            &self.outbox,
            &self.config.common.pseudonyms,
            DOMAIN,
            self.config.common.serve.max_message_bytes,
        );
        let parts = ServeParts {
            listener: self.listener,
            config: self.config.common.serve.clone(),
            auth: self.auth,
            policy: policy().map_err(AppError::Config)?,
            service_names: [&[SERVICE_NAME, SINK_NAME][..], &wiring::OPERATOR_SERVICES].concat(),
            // A client stream carries a whole data set, creating a segment evaluates everyone, a refresh ages
            // everyone: they may outlive the per-request cap.
            long_running: vec![
                "/rapport.segmentation.v1.SegmentationService/IngestEvents",
                "/rapport.segmentation.v1.SegmentationService/CreateSegment",
                "/rapport.segmentation.v1.SegmentationService/RefreshFeatures",
            ],
            routes,
            domain: DOMAIN.into(),
        };
        tracing::info!(addr = %self.addr, "segmentation serving");
        let r = serve::serve(parts, shutdown).await;
        stop.stop();
        Ok(r?)
    }
}

impl Segmentation {
    /// Where campaigns grant offers, when loyalty was bound after segmentation (`rapport up` on any free ports).
    pub fn set_loyalty_url(&mut self, url: String) {
        self.config.loyalty_url = url;
    }

    /// Where the subscriber `name` listens, when it was bound after segmentation (`rapport up`). A subscriber not
    /// configured at build gets no events.
    pub fn set_subscriber_url(&mut self, name: &str, url: String) {
        if let Some(s) = self.config.subscribers.iter_mut().find(|s| s.name == name) {
            s.url = Some(url);
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }
}
