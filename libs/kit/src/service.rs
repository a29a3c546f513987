//! The skeleton a service fills in rather than copies: the settings every service has ([`Common`]), the errors of
//! starting and serving ([`AppError`]), binding and migrating ([`bind`]), the stop signal its background workers
//! watch ([`Stop`]), and the binary's `main` ([`main`]: `rapport-<name>` serves, `rapport-<name> migrate` brings the
//! database up to date and exits, for a Kubernetes Job).
use std::{future::Future, net::SocketAddr, pin::Pin, process::ExitCode, sync::Arc};

use sea_orm::DatabaseConnection;
use sea_orm_migration::MigratorTrait;
use secrecy::{ExposeSecret, SecretString};
use tokio::{net::TcpListener, sync::watch};

use crate::{
    auth::{Authenticator, Role},
    clock::{Clock, SystemClock},
    config::{self, ConfigError},
    db,
    pseudonym::Pseudonyms,
    serve::{ServeConfig, ServeError},
};

/// What every service reads from the environment, whatever else it needs.
#[derive(Debug, Clone)]
pub struct Common {
    /// Listen address (`RAPPORT_<NAME>_LISTEN`).
    pub listen: SocketAddr,
    /// Database (`DATABASE_URL`, default SQLite under `./data/<name>.db`); kept secret (it may hold a password).
    pub database_url: SecretString,
    /// Server limits.
    pub serve: ServeConfig,
    /// Keyed pseudonyms (`RAPPORT_PSEUDONYM_KEY`; a development key only on loopback).
    pub pseudonyms: Pseudonyms,
    /// Most PostgreSQL connections of the pool (`RAPPORT_DB_POOL_SIZE`, default 16).
    pub db_pool: u32,
    /// How events travel between services (`RAPPORT_EVENTS`).
    pub events: EventBus,
}

/// How events travel from a producer's outbox to its subscribers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum EventBus {
    /// Each relay calls its subscriber's `EventSinkService` over gRPC: the embedded default, no broker
    /// (`RAPPORT_EVENTS=grpc` or unset).
    #[default]
    Direct,
    /// Through NATS JetStream (`RAPPORT_EVENTS=jetstream`): relays publish, subscribers consume.
    JetStream(Nats),
}

/// Where NATS is and how Rapport names its streams there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nats {
    /// The server (`RAPPORT_NATS_URL`, default `nats://127.0.0.1:4222`).
    pub url: String,
    /// First token of every subject and of every stream's name (`RAPPORT_NATS_PREFIX`, default `rapport`): several
    /// installations can share one NATS.
    pub prefix: String,
    /// How long a subscriber has to acknowledge an event before JetStream delivers it again
    /// (`RAPPORT_NATS_ACK_WAIT_MS`, default 30 s).
    pub ack_wait: std::time::Duration,
}

impl Nats {
    /// The server at `url` with the default prefix and acknowledgement wait.
    pub fn new(url: &str) -> Self {
        Self { url: url.into(), prefix: "rapport".into(), ack_wait: std::time::Duration::from_secs(30) }
    }

    /// Whether `prefix` can name subjects and streams: lowercase letters, digits and `-`, not empty.
    pub fn valid_prefix(prefix: &str) -> bool {
        !prefix.is_empty() && prefix.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    }
}

impl EventBus {
    /// From `RAPPORT_EVENTS`, `RAPPORT_NATS_URL`, `RAPPORT_NATS_PREFIX` and `RAPPORT_NATS_ACK_WAIT_MS`.
    pub fn from_env() -> Result<Self, ConfigError> {
        match config::var("RAPPORT_EVENTS").as_deref() {
            None | Some("grpc") => Ok(Self::Direct),
            Some("jetstream") => {
                let d = Nats::new("nats://127.0.0.1:4222");
                let prefix = config::var("RAPPORT_NATS_PREFIX").unwrap_or(d.prefix);
                if !Nats::valid_prefix(&prefix) {
                    return Err(ConfigError {
                        name: "RAPPORT_NATS_PREFIX".into(),
                        problem: "lowercase letters, digits and '-' only".into(),
                    });
                }
                Ok(Self::JetStream(Nats {
                    url: config::var("RAPPORT_NATS_URL").unwrap_or(d.url),
                    prefix,
                    ack_wait: config::at_least(
                        "RAPPORT_NATS_ACK_WAIT_MS",
                        config::millis("RAPPORT_NATS_ACK_WAIT_MS", d.ack_wait)?,
                        std::time::Duration::from_millis(100),
                    )?,
                }))
            }
            Some(other) => Err(ConfigError {
                name: "RAPPORT_EVENTS".into(),
                problem: format!("{other:?} is neither \"grpc\" nor \"jetstream\""),
            }),
        }
    }
}

impl Common {
    /// From the environment, for the service `name` listening by default on `127.0.0.1:<port>`.
    pub fn from_env(name: &str, port: u16) -> Result<Self, ConfigError> {
        let var = format!("RAPPORT_{}_LISTEN", name.to_uppercase());
        let listen = config::addr(&var, SocketAddr::from(([127, 0, 0, 1], port)))?;
        Ok(Self {
            listen,
            database_url: config::var("DATABASE_URL").unwrap_or_else(|| db::default_url(name)).into(),
            serve: ServeConfig::from_env()?,
            pseudonyms: Pseudonyms::from_env(listen.ip().is_loopback())?,
            db_pool: {
                // Read by every frame; checked here so that a bad value stops the start.
                crate::idempotency::retention_from_env()?;
                config::parse("RAPPORT_DB_POOL_SIZE", db::DEFAULT_POOL)?
            },
            events: EventBus::from_env()?,
        })
    }

    /// An ephemeral loopback port over `database_url`, default limits, the development pseudonym key (tests,
    /// benchmarks, `rapport up`).
    pub fn local(database_url: &str) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: database_url.to_string().into(),
            serve: ServeConfig::default(),
            pseudonyms: Pseudonyms::development(),
            // Small: tests run many servers on one PostgreSQL.
            db_pool: 6,
            events: EventBus::Direct,
        }
    }
}

/// Why a service could not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// Binding the listener.
    #[error("binding {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The database.
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    /// Opening the service's state (e.g. loading a model).
    #[error("starting: {0}")]
    Start(String),
    /// Serving.
    #[error("serving: {0}")]
    Serve(#[from] ServeError),
}

impl From<ConfigError> for AppError {
    fn from(e: ConfigError) -> Self {
        Self::Config(e.to_string())
    }
}

/// A bound listener and a migrated database: what every service's `build` starts from.
pub struct Bound {
    /// The listener.
    pub listener: TcpListener,
    /// Its address (the real port when 0 was asked).
    pub addr: SocketAddr,
    /// The database, migrated.
    pub db: DatabaseConnection,
}

/// Binds `common.listen`, connects to the database and migrates it (under the migrations lease), and sets the page
/// token key from the pseudonym key.
pub async fn bind<M: MigratorTrait>(common: &Common) -> Result<Bound, AppError> {
    let listener =
        TcpListener::bind(common.listen).await.map_err(|source| AppError::Bind { addr: common.listen, source })?;
    let addr = listener.local_addr().map_err(|source| AppError::Bind { addr: common.listen, source })?;
    let db = db::connect_and_migrate_with::<M>(common.database_url.expose_secret(), common.db_pool).await?;
    crate::page::set_key(common.pseudonyms.derive("page-tokens"));
    Ok(Bound { listener, addr, db })
}

/// The stop signal of a service's background workers: [`Stop::signal`] gives a future per worker that resolves
/// once [`Stop::stop`] is called.
pub struct Stop {
    tx: watch::Sender<bool>,
}

impl Default for Stop {
    fn default() -> Self {
        Self { tx: watch::channel(false).0 }
    }
}

impl Stop {
    /// Not stopped yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A function that makes a future resolving at the stop (one per worker).
    pub fn signal(&self) -> impl Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Clone + Send + Sync + 'static {
        let rx = self.tx.subscribe();
        move || {
            let mut rx = rx.clone();
            Box::pin(async move {
                let _ = rx.wait_for(|s| *s).await;
            })
        }
    }

    /// Stops every worker.
    pub fn stop(&self) {
        self.tx.send_replace(true);
    }
}

/// A service as its binary and its tests drive it.
pub trait Service: Sized + Send + 'static {
    /// Its short name (`loyalty`): the binary is `rapport-<name>`.
    const NAME: &'static str;
    /// Its configuration.
    type Config: Send;
    /// Its migrations.
    type Migrator: MigratorTrait;

    /// The configuration from the environment.
    fn config_from_env() -> Result<Self::Config, ConfigError>;

    /// The settings every service has.
    fn common(config: &Self::Config) -> &Common;

    /// The same, to adjust (tests choose the event transport through it).
    fn common_mut(config: &mut Self::Config) -> &mut Common;

    /// Binds, migrates and opens its state, ready to [`Service::run`].
    fn build(
        config: Self::Config,
        auth: Arc<Authenticator>,
        clock: Arc<dyn Clock>,
    ) -> impl Future<Output = Result<Self, AppError>> + Send;

    /// The bound address.
    fn addr(&self) -> SocketAddr;

    /// Its database.
    fn db(&self) -> &DatabaseConnection;

    /// Serves until `shutdown`, with its background workers beside it.
    fn run(self, shutdown: impl Future<Output = ()> + Send) -> impl Future<Output = Result<(), AppError>> + Send;
}

/// The whole `main` of a service binary: telemetry, configuration, then `migrate` or serve until SIGTERM/ctrl-c.
/// Errors are printed for people (`rapport-<name>: <error>`) with a failing exit code.
pub async fn main<S: Service>() -> ExitCode {
    let binary = format!("rapport-{}", S::NAME);
    config::exit_code(&binary, run::<S>(&binary).await)
}

async fn run<S: Service>(binary: &str) -> Result<(), Box<dyn std::error::Error>> {
    let _telemetry = rapport_telemetry::init(binary)?;
    let config = S::config_from_env()?;
    let common = S::common(&config);
    if std::env::args().nth(1).as_deref() == Some("migrate") {
        db::connect_and_migrate::<S::Migrator>(common.database_url.expose_secret()).await?;
        println!("{} database is up to date", S::NAME);
        return Ok(());
    }
    // A process's outgoing calls share its TLS (set here, not by `build`: tests run several services in one process).
    if let Some(tls) = &common.serve.tls {
        crate::tls::set_client(tls.clone());
    }
    let role = S::NAME.parse::<Role>()?;
    let (auth, dev) = crate::auth::from_env(Some(role), common.listen.ip().is_loopback())?;
    let auth = Arc::new(auth);
    // Rotation without a restart: the trusted key sets are read again as their files change.
    tokio::spawn(auth.clone().watch(crate::auth::reload_interval_from_env()?));
    let service = S::build(config, auth.clone(), Arc::new(SystemClock)).await?;
    println!("{binary} listening on {}", service.addr());
    if dev {
        println!("development token (sre, 12 h): {}", auth.issue("developer", Role::Sre, 12 * 3600)?);
    }
    service.run(crate::serve::shutdown_signal()).await?;
    Ok(())
}
