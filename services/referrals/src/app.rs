//! Wires the referrals service: configuration, database, store, the event sink (loyalty's purchases, returns and
//! erasures, feedback's promoters), the outbox relays, the payout worker and the server.
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
    referrals::v1::referrals_service_server::ReferralsServiceServer,
};
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tonic::service::Routes;

use crate::{
    api::{DOMAIN, ReferralsApi},
    events::Handler,
    migration::Migrator,
    payouts::Payouts,
    store::Store,
};

/// Full name of the gRPC service.
pub const SERVICE_NAME: &str = "rapport.referrals.v1.ReferralsService";
/// The checked-in role × RPC matrix.
pub const AUTHZ: &str = include_str!("../authz.txt");
/// Full name of the event sink referrals serves.
pub const SINK_NAME: &str = rapport_outbox::sink::SERVICE_NAME;

/// The role × RPC matrix of referrals.
pub fn policy() -> Result<Policy, String> {
    rapport_outbox::wiring::policy(SERVICE_NAME, AUTHZ, Some(include_str!("../authz-events.txt")))
}

/// Referrals' configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address (`RAPPORT_REFERRALS_LISTEN`, default 127.0.0.1:50053), database, limits, pseudonym key.
    pub common: Common,
    /// Who receives referrals' events — referrals made and converted (`RAPPORT_REFERRALS_SUBSCRIBERS`, default
    /// `segmentation`; each one's address from `RAPPORT_<NAME>_URL`).
    pub subscribers: Vec<Subscriber>,
    /// How far in the future a delivered event may be dated (`RAPPORT_MAX_CLOCK_SKEW_MS`, default 5 minutes).
    pub max_clock_skew: Duration,
    /// Where loyalty listens, to pay and claw back rewards (`RAPPORT_LOYALTY_URL`; unset: rewards are approved and
    /// wait, due).
    pub loyalty_url: Option<String>,
    /// How often the payout worker looks for due rewards besides being woken by each commit
    /// (`RAPPORT_REFERRALS_PAYOUT_MS`, default 5 s; also how soon payouts resume after loyalty comes back).
    pub payout_interval: Duration,
    /// How long one call to loyalty may take (`RAPPORT_REFERRALS_LOYALTY_DEADLINE_MS`, default 2 s).
    pub loyalty_deadline: Duration,
}

impl Config {
    /// From the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            common: Common::from_env("referrals", 50053)?,
            subscribers: rapport_outbox::subscribers_from_env("RAPPORT_REFERRALS_SUBSCRIBERS", &["segmentation"])?,
            max_clock_skew: rapport_outbox::sink::max_skew_from_env()?,
            loyalty_url: config::var("RAPPORT_LOYALTY_URL"),
            payout_interval: config::millis("RAPPORT_REFERRALS_PAYOUT_MS", Duration::from_secs(5))?,
            loyalty_deadline: config::millis("RAPPORT_REFERRALS_LOYALTY_DEADLINE_MS", Duration::from_secs(2))?,
        })
    }

    /// Defaults for a service on an ephemeral loopback port over `database_url` (tests, benchmarks): segmentation
    /// subscribes without an address, no loyalty, the development pseudonym key.
    pub fn local(database_url: &str) -> Self {
        Self {
            common: Common::local(database_url),
            subscribers: vec![Subscriber { name: "segmentation".into(), url: None }],
            max_clock_skew: Duration::from_secs(300),
            loyalty_url: None,
            payout_interval: Duration::from_millis(200),
            loyalty_deadline: Duration::from_secs(2),
        }
    }

    /// Sets where the subscriber `name` listens (adding it when missing).
    pub fn set_subscriber_url(&mut self, name: &str, url: Option<String>) {
        rapport_outbox::set_subscriber_url(&mut self.subscribers, name, url);
    }
}

/// A built referrals service: bound, migrated, not yet serving.
pub struct Referrals {
    listener: TcpListener,
    addr: SocketAddr,
    store: Store,
    config: Config,
    auth: Arc<Authenticator>,
    clock: Arc<dyn Clock>,
    outbox: Outbox,
}

impl Service for Referrals {
    const NAME: &'static str = "referrals";
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
        let outbox = Outbox::new("referrals", config.subscribers.iter().map(|s| s.name.clone()));
        let store = Store::new(db, clock.clone(), outbox.clone(), &config.common.pseudonyms);
        Ok(Self { listener, addr, store, config, auth, clock, outbox })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn db(&self) -> &DatabaseConnection {
        self.store.db()
    }

    /// Serves until `shutdown`, with a relay per subscriber and the payout worker beside it, each under its lease.
    async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), AppError> {
        let stop = Stop::new();
        let stopped = stop.signal();
        let outgoing = Outgoing::as_service(self.auth.clone(), "referrals", Role::Referrals, Duration::from_secs(5));
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
        let loyalty = match &self.config.loyalty_url {
            Some(url) => {
                let out =
                    Outgoing::as_service(self.auth.clone(), "referrals", Role::Referrals, self.config.loyalty_deadline);
                let ch =
                    client::channel(url, out).map_err(|e| AppError::Config(format!("RAPPORT_LOYALTY_URL: {e}")))?;
                Some(LoyaltyServiceClient::new(ch))
            }
            None => {
                tracing::warn!("no loyalty address: rewards are approved and wait until one is configured");
                None
            }
        };
        let payouts = Payouts::new(self.store.clone(), loyalty);
        let worker = Worker::new("referrals.payouts", self.config.payout_interval).with_wake(self.store.payout_waker());
        tokio::spawn(worker.run(self.store.db().clone(), stopped(), move || {
            let payouts = payouts.clone();
            async move {
                match payouts.round().await {
                    Ok(r) => {
                        if r.paid + r.clawed_back + r.approved > 0 {
                            tracing::debug!(
                                approved = r.approved,
                                paid = r.paid,
                                clawed_back = r.clawed_back,
                                "payout round"
                            );
                        }
                        r.more && r.failed == 0
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "payout round failed");
                        false
                    }
                }
            }
        }));
        let serve = &self.config.common.serve;
        let api = ReferralsApi::new(self.store.clone(), self.config.common.pseudonyms.clone());
        let api = ReferralsServiceServer::new(api).max_decoding_message_size(serve.max_message_bytes);
        let outbox = self.outbox.clone();
        let payouts_wake = self.store.payout_waker();
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
            move || {
                outbox.notify();
                payouts_wake.notify_one();
            },
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
        tracing::info!(addr = %self.addr, "referrals serving");
        let r = serve::serve(parts, shutdown).await;
        stop.stop();
        Ok(r?)
    }
}

impl Referrals {
    /// Sets where loyalty listens, to pay rewards (`rapport up` builds loyalty after referrals).
    pub fn set_loyalty_url(&mut self, url: String) {
        self.config.loyalty_url = Some(url);
    }

    /// The store (tests reach the database through it).
    pub fn store(&self) -> &Store {
        &self.store
    }
}
