//! [`TestServer`]: any [`Service`] running on its own task for a test, with its address and database, stopped (and
//! drained) on demand.
use std::net::SocketAddr;

use sea_orm::DatabaseConnection;
use tokio::{sync::oneshot, task::JoinHandle};

use crate::{
    auth::Authenticator,
    clock::Clock,
    service::{AppError, EventBus, Nats, Service},
};

/// The transport a test run asks for: `RAPPORT_TEST_EVENTS=jetstream` runs the same tests over JetStream (on
/// [`crate::db::testing::nats_server`]), the services of one test under a prefix of their own
/// (from the test's name, which names the thread it runs on: start test servers from the test's own body), so that
/// tests running at once never share a stream. `None`: the services' own setting (gRPC).
pub fn test_bus() -> Option<EventBus> {
    use std::hash::BuildHasher;
    if std::env::var("RAPPORT_TEST_EVENTS").ok().as_deref() != Some("jetstream") {
        return None;
    }
    // Per process, so that a later run never meets an earlier one's streams.
    static RUN: std::sync::LazyLock<std::collections::hash_map::RandomState> =
        std::sync::LazyLock::new(std::collections::hash_map::RandomState::new);
    let thread = std::thread::current();
    let test = thread.name().unwrap_or_default();
    assert!(
        !test.is_empty() && test != "main" && !test.starts_with("tokio-"),
        "under RAPPORT_TEST_EVENTS=jetstream, start test servers from the test's own body (thread {test:?})"
    );
    let url = crate::db::testing::nats_server().unwrap_or_else(|e| panic!("{e}"));
    let mut nats = Nats::new(&url);
    nats.prefix = format!("t{:016x}", RUN.hash_one(test));
    nats.ack_wait = std::time::Duration::from_secs(2);
    Some(EventBus::JetStream(nats))
}

/// A service serving on loopback for a test.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its database.
    pub db: DatabaseConnection,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), AppError>>>,
}

impl TestServer {
    /// Builds `S` from `config` (bind, migrate) and serves it on a task; with `RAPPORT_TEST_EVENTS=jetstream` its
    /// events travel over JetStream ([`test_bus`]).
    pub async fn start<S: Service>(
        mut config: S::Config,
        auth: std::sync::Arc<Authenticator>,
        clock: std::sync::Arc<dyn Clock>,
    ) -> Result<Self, AppError> {
        if let Some(bus) = test_bus() {
            S::common_mut(&mut config).events = bus;
        }
        let service = S::build(config, auth, clock).await?;
        Ok(Self::serve(service))
    }

    /// Serves an already built `service` on a task.
    pub fn serve<S: Service>(service: S) -> Self {
        let (addr, db) = (service.addr(), service.db().clone());
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(service.run(async {
            let _ = rx.await;
        }));
        Self { addr, db, stop: Some(tx), handle: Some(handle) }
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops it and waits until it has drained; panics if it failed while serving.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            match h.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("the service failed: {e}"),
                Err(e) => panic!("the service task failed: {e}"),
            }
        }
    }
}
