//! [`TestServer`]: any [`Service`] running on its own task for a test, with its address and database, stopped (and
//! drained) on demand.
use std::net::SocketAddr;

use sea_orm::DatabaseConnection;
use tokio::{sync::oneshot, task::JoinHandle};

use crate::{
    auth::Authenticator,
    clock::Clock,
    service::{AppError, Service},
};

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
    /// Builds `S` from `config` (bind, migrate) and serves it on a task.
    pub async fn start<S: Service>(
        config: S::Config,
        auth: std::sync::Arc<Authenticator>,
        clock: std::sync::Arc<dyn Clock>,
    ) -> Result<Self, AppError> {
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
