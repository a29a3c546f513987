//! Wires the loyalty service: configuration, database, store, outbox relay, the expiry sweeper and the server.
use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use rapport_kit::{
    auth::{Authenticator, Policy, Role},
    client::Outgoing,
    clock::Clock,
    config::{self, ConfigError},
    lease::Worker,
    serve::{self, ServeParts},
    service::{self, AppError, Bound, Common, Service, Stop},
};
use rapport_outbox::{Outbox, Subscriber};
use rapport_proto::loyalty::v1::loyalty_service_server::LoyaltyServiceServer;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tonic::service::Routes;

use crate::{
    api::{DOMAIN, LoyaltyApi},
    domain::{MICROS, Rules},
    migration::Migrator,
    store::Store,
};

/// Full name of the gRPC service.
pub const SERVICE_NAME: &str = "rapport.loyalty.v1.LoyaltyService";
/// The checked-in role × RPC matrix.
pub const AUTHZ: &str = include_str!("../authz.txt");

/// The role × RPC matrix of loyalty.
pub fn policy() -> Result<Policy, String> {
    rapport_outbox::wiring::policy(SERVICE_NAME, AUTHZ, None)
}

/// Loyalty's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address (`RAPPORT_LOYALTY_LISTEN`, default 127.0.0.1:50052), database, limits, pseudonym key.
    pub common: Common,
    /// Programme rules.
    pub rules: Rules,
    /// Who receives loyalty's events (`RAPPORT_LOYALTY_SUBSCRIBERS`, default `segmentation,feedback,referrals`; each one's
    /// address from `RAPPORT_<NAME>_URL`, e.g. `RAPPORT_SEGMENTATION_URL`; without an address its events wait).
    pub subscribers: Vec<Subscriber>,
    /// How often expired points and ended tier periods are settled (`RAPPORT_LOYALTY_SWEEP_MS`, default 60 s).
    pub sweep_interval: Duration,
}

impl Config {
    /// From the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Rules::default();
        let rules = Rules {
            validity_days: config::parse("RAPPORT_LOYALTY_VALIDITY_DAYS", d.validity_days)?,
            pending_days: config::parse("RAPPORT_LOYALTY_PENDING_DAYS", d.pending_days)?,
            points_per_unit: config::parse("RAPPORT_LOYALTY_POINTS_PER_UNIT", d.points_per_unit)?,
            min_order_micros: config::parse("RAPPORT_LOYALTY_MIN_ORDER_UNITS", d.min_order_micros / MICROS)? * MICROS,
            currency: config::parse("RAPPORT_LOYALTY_CURRENCY", d.currency.clone())?,
            ..d
        };
        Ok(Self {
            common: Common::from_env("loyalty", 50052)?,
            rules,
            subscribers: rapport_outbox::subscribers_from_env(
                "RAPPORT_LOYALTY_SUBSCRIBERS",
                &["segmentation", "feedback", "referrals"],
            )?,
            sweep_interval: config::millis("RAPPORT_LOYALTY_SWEEP_MS", Duration::from_secs(60))?,
        })
    }

    /// Defaults for a service on an ephemeral loopback port over `database_url` (tests, benchmarks): segmentation
    /// subscribes without an address, the development pseudonym key.
    pub fn local(database_url: &str) -> Self {
        Self {
            common: Common::local(database_url),
            rules: Rules::default(),
            subscribers: vec![Subscriber { name: "segmentation".into(), url: None }],
            sweep_interval: Duration::from_secs(60),
        }
    }

    /// Sets where the subscriber `name` listens (adding it when missing).
    pub fn set_subscriber_url(&mut self, name: &str, url: Option<String>) {
        rapport_outbox::set_subscriber_url(&mut self.subscribers, name, url);
    }
}

/// A built loyalty service: bound, migrated, not yet serving.
pub struct Loyalty {
    listener: TcpListener,
    addr: SocketAddr,
    store: Store,
    config: Config,
    auth: Arc<Authenticator>,
    clock: Arc<dyn Clock>,
    outbox: Outbox,
}

impl Service for Loyalty {
    const NAME: &'static str = "loyalty";
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
        let outbox = Outbox::new("loyalty", config.subscribers.iter().map(|s| s.name.clone()));
        let rules = Arc::new(config.rules.clone());
        let store = Store::new(db, clock.clone(), rules, outbox.clone(), config.common.pseudonyms.clone());
        Ok(Self { listener, addr, store, config, auth, clock, outbox })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn db(&self) -> &DatabaseConnection {
        self.store.db()
    }

    /// Serves until `shutdown`, with a relay per subscriber and the sweeper running beside it, each under its lease.
    async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), AppError> {
        let stop = Stop::new();
        let stopped = stop.signal();
        let outgoing = Outgoing::as_service(self.auth.clone(), "loyalty", Role::Loyalty, Duration::from_secs(5));
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
        let sweeper = {
            let store = self.store.clone();
            let worker = Worker::new("loyalty.sweeper", self.config.sweep_interval);
            worker.run(self.store.db().clone(), stopped(), move || {
                let store = store.clone();
                async move {
                    match store.settle_due(500).await {
                        Ok(0) => false,
                        Ok(n) => {
                            tracing::info!(members = n, "settled expired points and tier periods");
                            n >= 500
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "settling failed");
                            false
                        }
                    }
                }
            })
        };
        tokio::spawn(sweeper);
        let serve = &self.config.common.serve;
        let api = LoyaltyServiceServer::new(LoyaltyApi::new(self.store.clone()))
            .max_decoding_message_size(serve.max_message_bytes);
        let parts = ServeParts {
            listener: self.listener,
            config: serve.clone(),
            auth: self.auth,
            policy: policy().map_err(AppError::Config)?,
            service_names: [&[SERVICE_NAME][..], &rapport_outbox::wiring::OPERATOR_SERVICES].concat(),
            long_running: vec![],
            routes: rapport_outbox::wiring::operator_routes(
                Routes::new(api),
                self.store.db(),
                &self.clock,
                &self.outbox,
                &self.config.common.pseudonyms,
                DOMAIN,
                serve.max_message_bytes,
            ),
            domain: DOMAIN.into(),
        };
        tracing::info!(addr = %self.addr, "loyalty serving");
        let r = serve::serve(parts, shutdown).await;
        stop.stop();
        Ok(r?)
    }
}

impl Loyalty {
    /// The store (tests and the benchmark reach the database through it).
    pub fn store(&self) -> &Store {
        &self.store
    }
}
