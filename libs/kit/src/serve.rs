//! Serving a set of gRPC services: health (NOT_SERVING while draining), reflection v1 and v1alpha, the guard
//! (auth, admission, deadline, server span), and a graceful drain: health NOT_SERVING → drain delay → stop
//! accepting, let in-flight calls finish → forced stop after a deadline.
use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tonic::{service::Routes, transport::Server};
use tonic_health::ServingStatus;

use crate::{
    auth::{Authenticator, Policy},
    config::{self, ConfigError},
    guard::{GuardConfig, GuardLayer},
    tls::{self, Tls},
};

/// Limits and timings of a server.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The longest one request may run (`RAPPORT_REQUEST_TIMEOUT_MS`, default 10 s).
    pub request_timeout: Duration,
    /// The longest a long-running call (a client stream) may run (`RAPPORT_STREAM_TIMEOUT_MS`, default 1 h).
    pub stream_timeout: Duration,
    /// Requests served at once before shedding (`RAPPORT_MAX_CONCURRENCY`, default 256).
    pub concurrency: usize,
    /// Largest message accepted, in bytes (`RAPPORT_MAX_MESSAGE_BYTES`, default 4 MiB).
    pub max_message_bytes: usize,
    /// How long health says NOT_SERVING before the listener closes (`RAPPORT_DRAIN_DELAY_MS`, default 5 s), so
    /// load balancers stop sending new calls first.
    pub drain_delay: Duration,
    /// How long in-flight calls may still run after that (`RAPPORT_DRAIN_DEADLINE_MS`, default 20 s).
    pub drain_deadline: Duration,
    /// Mutual TLS (`RAPPORT_TLS_CERT`, `RAPPORT_TLS_KEY`, `RAPPORT_TLS_CA`; off by default).
    pub tls: Option<Tls>,
    /// Where health is also served in plaintext while TLS is on (`RAPPORT_HEALTH_LISTEN`), for probes.
    pub health_listen: Option<SocketAddr>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            stream_timeout: Duration::from_secs(3600),
            concurrency: 256,
            max_message_bytes: 4 * 1024 * 1024,
            drain_delay: Duration::from_secs(5),
            drain_deadline: Duration::from_secs(20),
            tls: None,
            health_listen: None,
        }
    }
}

impl ServeConfig {
    /// From the environment, with the defaults above.
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            request_timeout: config::millis("RAPPORT_REQUEST_TIMEOUT_MS", d.request_timeout)?,
            stream_timeout: config::millis("RAPPORT_STREAM_TIMEOUT_MS", d.stream_timeout)?,
            concurrency: config::parse("RAPPORT_MAX_CONCURRENCY", d.concurrency)?,
            max_message_bytes: config::parse("RAPPORT_MAX_MESSAGE_BYTES", d.max_message_bytes)?,
            drain_delay: config::millis("RAPPORT_DRAIN_DELAY_MS", d.drain_delay)?,
            drain_deadline: config::millis("RAPPORT_DRAIN_DEADLINE_MS", d.drain_deadline)?,
            tls: Tls::from_env()?,
            health_listen: tls::health_listen_from_env()?,
        })
    }
}

/// What a server is made of.
pub struct ServeParts {
    /// The bound listener (bind first, so tests can use port 0 and read the address back).
    pub listener: TcpListener,
    /// Limits and timings.
    pub config: ServeConfig,
    /// Verifies tokens.
    pub auth: Arc<Authenticator>,
    /// Role × RPC matrix of every service in `routes`.
    pub policy: Policy,
    /// Full names of the services in `routes`, reported by health.
    pub service_names: Vec<&'static str>,
    /// Paths (`/package.Service/Method`) of long-running calls, capped by `stream_timeout` instead.
    pub long_running: Vec<&'static str>,
    /// The services.
    pub routes: Routes,
    /// `ErrorInfo` domain of the guard's own errors.
    pub domain: String,
}

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The transport failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Reflection could not be built.
    #[error("reflection: {0}")]
    Reflection(String),
    /// The plaintext health listener could not be bound.
    #[error("binding the health listener {addr}: {source}")]
    HealthBind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// What every server serves besides its own services.
pub const INFRASTRUCTURE: [&str; 3] =
    ["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];

/// Serves until `shutdown` resolves, then drains.
pub async fn serve(parts: ServeParts, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServeError> {
    let ServeParts { listener, config, auth, policy, service_names, long_running, routes, domain } = parts;
    let (reporter, health) = tonic_health::server::health_reporter();
    for name in service_names.iter().copied().chain([""]) {
        reporter.set_service_status(name, ServingStatus::Serving).await;
    }
    // Reflection lists what this port serves, not every service the descriptors know.
    let reflection = || {
        let mut b = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(rapport_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
        for name in service_names.iter().copied().chain(INFRASTRUCTURE) {
            b = b.with_service_name(name);
        }
        b
    };
    let reflection_v1 = reflection().build_v1().map_err(|e| ServeError::Reflection(e.to_string()))?;
    let reflection_v1alpha = reflection().build_v1alpha().map_err(|e| ServeError::Reflection(e.to_string()))?;
    // Kubelet's gRPC probes speak no TLS: with TLS on, health alone is also served in plaintext where asked.
    let plain_health = match (&config.tls, config.health_listen) {
        (Some(_), Some(addr)) => {
            let listener = TcpListener::bind(addr).await.map_err(|source| ServeError::HealthBind { addr, source })?;
            let incoming = accepted(listener);
            let health = health.clone();
            Some(tokio::spawn(async move { Server::builder().add_service(health).serve_with_incoming(incoming).await }))
        }
        _ => None,
    };
    let routes = routes.add_service(health).add_service(reflection_v1).add_service(reflection_v1alpha);
    let guard = GuardLayer::new(GuardConfig {
        auth,
        policy,
        served: service_names.iter().copied().chain(INFRASTRUCTURE).map(String::from).collect(),
        concurrency: config.concurrency,
        request_timeout: config.request_timeout,
        long_running: (long_running.iter().map(|p| p.to_string()).collect(), config.stream_timeout),
        domain,
    });

    let draining = Arc::new(tokio::sync::Notify::new());
    let signal = {
        let draining = draining.clone();
        let names = service_names.clone();
        let delay = config.drain_delay;
        async move {
            shutdown.await;
            tracing::info!(delay_ms = delay.as_millis() as u64, "draining: health not serving");
            for name in names.iter().copied().chain([""]) {
                reporter.set_service_status(name, ServingStatus::NotServing).await;
            }
            draining.notify_one();
            tokio::time::sleep(delay).await;
            tracing::info!("draining: no longer accepting calls");
        }
    };
    let incoming = accepted(listener);
    let mut builder = Server::builder();
    if let Some(tls) = &config.tls {
        builder = builder.tls_config(tls.server())?;
    }
    let server = builder.layer(guard).add_routes(routes).serve_with_incoming_shutdown(incoming, signal);
    let forced = async {
        draining.notified().await;
        tokio::time::sleep(config.drain_delay + config.drain_deadline).await;
    };
    tokio::select! {
        r = server => { r?; tracing::info!("drained"); }
        () = forced => tracing::warn!("drain deadline passed: stopping with calls in flight"),
    }
    if let Some(h) = plain_health {
        h.abort();
    }
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// The connections `listener` accepts, with `TCP_NODELAY` set as tonic sets it on the listeners it binds itself:
/// without it a response of more than one segment waits for the client's delayed ACK (40 ms on Linux).
pub fn accepted(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}
