//! Wires the segmentation service: configuration, database, store, the event sink for other services' outboxes,
//! training jobs, the campaign worker (grants through loyalty), the scheduled refresh and the server.
use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use rapport_kit::{
    auth::{Authenticator, Policy, Role},
    client::{self, Outgoing, OutgoingChannel, RetryBudget},
    clock::Clock,
    config::{self, ConfigError},
    db,
    serve::{self, ServeConfig, ServeParts},
};
use rapport_proto::{
    events::v1::{
        DeliverEventsRequest, DeliverEventsResponse, event,
        event_sink_service_server::{EventSinkService, EventSinkServiceServer},
    },
    loyalty::v1::{GrantOffersRequest, loyalty_service_client::LoyaltyServiceClient},
    segmentation::v1::segmentation_service_server::SegmentationServiceServer,
};
use tokio::{net::TcpListener, sync::Notify};
use tonic::service::Routes;
use tracing::Instrument;

use crate::{
    api::{DOMAIN, SegmentationApi},
    domain::features::{Event, Kind},
    migration::Migrator,
    store::{Store, TrainParams},
};

/// Full name of the gRPC service.
pub const SERVICE_NAME: &str = "rapport.segmentation.v1.SegmentationService";
/// Full name of the event sink.
pub const SINK_NAME: &str = "rapport.events.v1.EventSinkService";

/// The role × RPC matrix of segmentation (its service and its event sink).
pub fn policy() -> Result<Policy, String> {
    let mut p = Policy::parse(SERVICE_NAME, include_str!("../authz.txt"))?;
    p.extend(SINK_NAME, include_str!("../authz-events.txt"))?;
    Ok(p)
}

/// Segmentation's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address (`RAPPORT_SEGMENTATION_LISTEN`, default 127.0.0.1:50051).
    pub listen: SocketAddr,
    /// Database (`DATABASE_URL`, default SQLite under ./data).
    pub database_url: String,
    /// Server limits.
    pub serve: ServeConfig,
    /// Loyalty's address, for campaigns (`RAPPORT_LOYALTY_URL`, default http://127.0.0.1:50052).
    pub loyalty_url: String,
    /// How often windows are aged and segments refreshed (`RAPPORT_SEGMENTATION_REFRESH_MS`, default 1 h).
    pub refresh_interval: Duration,
    /// How often the campaign worker looks for work when not woken (default 2 s).
    pub campaign_poll: Duration,
}

impl Config {
    /// From the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            listen: config::addr("RAPPORT_SEGMENTATION_LISTEN", SocketAddr::from(([127, 0, 0, 1], 50051)))?,
            database_url: config::var("DATABASE_URL").unwrap_or_else(|| db::default_url("segmentation")),
            serve: ServeConfig::from_env()?,
            loyalty_url: config::var("RAPPORT_LOYALTY_URL").unwrap_or_else(|| "http://127.0.0.1:50052".into()),
            refresh_interval: config::millis("RAPPORT_SEGMENTATION_REFRESH_MS", Duration::from_secs(3600))?,
            campaign_poll: Duration::from_secs(2),
        })
    }
}

/// Why segmentation could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// Binding.
    #[error("binding {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// Database or store.
    #[error("store: {0}")]
    Store(#[from] crate::error::SegmentationError),
    /// Database.
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    /// Serving.
    #[error("serving: {0}")]
    Serve(#[from] serve::ServeError),
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

/// Receives other services' outbox events.
#[derive(Clone)]
pub struct Sink {
    store: Store,
}

#[tonic::async_trait]
impl EventSinkService for Sink {
    async fn deliver_events(
        &self,
        req: tonic::Request<DeliverEventsRequest>,
    ) -> Result<tonic::Response<DeliverEventsResponse>, tonic::Status> {
        let (mut applied, mut duplicates) = (0, 0);
        let mut batch = Vec::new();
        for e in req.into_inner().events {
            let at_ms = e.occurred_at.as_ref().map(rapport_kit::clock::millis).unwrap_or_else(|| self.store.now());
            let base = |kind: Kind| Event {
                event_id: e.event_id.clone(),
                customer_id: e.customer_id.clone(),
                kind,
                at_ms,
                channel: None,
                amount_micros: 0,
                score: None,
                tier: None,
            };
            match &e.payload {
                Some(event::Payload::PurchaseRecorded(p)) => {
                    let amount = p.amount.as_ref().map_or(0, |m| m.units * 1_000_000 + i64::from(m.nanos / 1000));
                    let channel = usize::try_from(p.channel).ok().filter(|c| (1..=7).contains(c)).map(|c| c - 1);
                    batch.push(Event { channel, amount_micros: amount.max(0), ..base(Kind::Purchase) });
                }
                Some(event::Payload::TierChanged(t)) => {
                    batch.push(Event { tier: Some(t.to_tier.clone()), ..base(Kind::TierChange) })
                }
                Some(event::Payload::CustomerForgotten(_)) => {
                    // The batch is in delivery order: what came before the erasure is applied first, so it is
                    // erased too instead of re-creating the customer afterwards.
                    if !batch.is_empty() {
                        let (a, d) = self
                            .store
                            .ingest(std::mem::take(&mut batch))
                            .await
                            .map_err(|e| e.to_api().to_status(DOMAIN))?;
                        applied += a as i32;
                        duplicates += d as i32;
                    }
                    if self.store.forget(&e.event_id, &e.customer_id).await.map_err(|e| e.to_api().to_status(DOMAIN))? {
                        applied += 1;
                    } else {
                        duplicates += 1;
                    }
                }
                // Nothing segmentation uses: acknowledged, so the producer's outbox moves on.
                _ => duplicates += 1,
            }
        }
        if !batch.is_empty() {
            let (a, d) = self.store.ingest(batch).await.map_err(|e| e.to_api().to_status(DOMAIN))?;
            applied += a as i32;
            duplicates += d as i32;
        }
        Ok(tonic::Response::new(DeliverEventsResponse { applied, duplicates }))
    }
}

/// A built segmentation service: bound, migrated, not yet serving.
pub struct Segmentation {
    listener: TcpListener,
    addr: SocketAddr,
    store: Store,
    config: Config,
    auth: Arc<Authenticator>,
}

impl Segmentation {
    /// Binds, connects and migrates, loads the active model.
    pub async fn build(config: Config, auth: Arc<Authenticator>, clock: Arc<dyn Clock>) -> Result<Self, AppError> {
        let listener =
            TcpListener::bind(config.listen).await.map_err(|source| AppError::Bind { addr: config.listen, source })?;
        let addr = listener.local_addr().map_err(|source| AppError::Bind { addr: config.listen, source })?;
        let db = db::connect_and_migrate::<Migrator>(&config.database_url).await?;
        let store = Store::open(db, clock, Arc::new(Notify::new())).await?;
        Ok(Self { listener, addr, store, config, auth })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where campaigns grant offers, when loyalty was bound after segmentation (`rapport up` on any free ports).
    pub fn set_loyalty_url(&mut self, url: String) {
        self.config.loyalty_url = url;
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Serves until `shutdown`, with the campaign worker and the scheduled refresh beside it.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), AppError> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let campaigns = Arc::new(Notify::new());
        let outgoing =
            Outgoing::as_service(self.auth.clone(), "segmentation", Role::Segmentation, Duration::from_secs(10));
        let loyalty = client::channel(&self.config.loyalty_url, outgoing)
            .map_err(|e| AppError::Config(format!("{}: {e}", self.config.loyalty_url)))?;
        tokio::spawn(campaign_worker(
            self.store.clone(),
            LoyaltyServiceClient::new(loyalty),
            campaigns.clone(),
            self.config.campaign_poll,
            stop_rx.clone(),
        ));
        tokio::spawn(refresher(self.store.clone(), self.config.refresh_interval, stop_rx));
        let background = Background { store: self.store.clone(), campaigns };
        let api = SegmentationServiceServer::new(SegmentationApi::new(self.store.clone(), background))
            .max_decoding_message_size(self.config.serve.max_message_bytes);
        let sink = EventSinkServiceServer::new(Sink { store: self.store.clone() })
            .max_decoding_message_size(self.config.serve.max_message_bytes);
        let parts = ServeParts {
            listener: self.listener,
            config: self.config.serve.clone(),
            auth: self.auth,
            policy: policy().map_err(AppError::Config)?,
            service_names: vec![SERVICE_NAME, SINK_NAME],
            // A client stream carries a whole data set, creating a segment evaluates everyone, a refresh ages
            // everyone: they may outlive the per-request cap.
            long_running: vec![
                "/rapport.segmentation.v1.SegmentationService/IngestEvents",
                "/rapport.segmentation.v1.SegmentationService/CreateSegment",
                "/rapport.segmentation.v1.SegmentationService/RefreshFeatures",
            ],
            routes: Routes::new(api).add_service(sink),
            domain: DOMAIN.into(),
        };
        tracing::info!(addr = %self.addr, "segmentation serving");
        let r = serve::serve(parts, shutdown).await;
        let _ = stop_tx.send(true);
        Ok(r?)
    }
}

async fn stopped(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

async fn refresher(store: Store, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = stopped(&mut stop) => return,
            () = tokio::time::sleep(every) => {},
        }
        match store.refresh().await {
            Ok((aged, changes)) => {
                tracing::info!(aged, changes, "features aged and segments refreshed")
            }
            Err(e) => tracing::error!(error = %e, "refresh failed"),
        }
    }
}

/// Grants each running campaign's pending targets through loyalty, a batch at a time, until none is left. A batch
/// keeps its request id across retries and restarts, and loyalty grants once per campaign and customer.
async fn campaign_worker(
    store: Store,
    loyalty: LoyaltyServiceClient<OutgoingChannel>,
    wake: Arc<Notify>,
    poll: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let budget = RetryBudget::default();
    loop {
        if let Err(e) = grant_pending(&store, &loyalty, &budget).await {
            tracing::warn!(error = %e, "campaign round stopped, will retry");
        }
        tokio::select! {
            () = stopped(&mut stop) => return,
            () = wake.notified() => {},
            () = tokio::time::sleep(poll) => {},
        }
    }
}

async fn grant_pending(
    store: &Store,
    loyalty: &LoyaltyServiceClient<OutgoingChannel>,
    budget: &RetryBudget,
) -> Result<(), String> {
    for (campaign_id, offer_id) in store.running_campaigns().await.map_err(|e| e.to_string())? {
        loop {
            let batch = store.pending_targets(&campaign_id, 500).await.map_err(|e| e.to_string())?;
            if batch.is_empty() {
                store.record_grants(&campaign_id, &[], &[]).await.map_err(|e| e.to_string())?;
                break;
            }
            let request_id = format!("{campaign_id}:{}:{}", batch[0], batch.len());
            let req = GrantOffersRequest {
                request_id,
                offer_id: offer_id.clone(),
                campaign_id: campaign_id.clone(),
                customer_ids: batch.clone(),
            };
            let answer = client::with_retry(budget, 3, || {
                let mut c = loyalty.clone();
                let r = req.clone();
                async move { c.grant_offers(r).await }
            })
            .instrument(tracing::info_span!("campaign.grant", campaign_id = %campaign_id, batch = batch.len()))
            .await;
            match answer {
                Ok(resp) => {
                    let resp = resp.into_inner();
                    let failed: Vec<(String, String)> =
                        resp.skipped.into_iter().map(|s| (s.customer_id, s.reason)).collect();
                    let granted: Vec<String> =
                        batch.into_iter().filter(|c| !failed.iter().any(|(f, _)| f == c)).collect();
                    tracing::info!(campaign_id = %campaign_id, granted = granted.len(), failed = failed.len(), "campaign batch granted");
                    store.record_grants(&campaign_id, &granted, &failed).await.map_err(|e| e.to_string())?;
                }
                // The offer does not exist or the request is refused: every target fails with that reason.
                Err(s)
                    if matches!(
                        s.code(),
                        tonic::Code::NotFound | tonic::Code::InvalidArgument | tonic::Code::PermissionDenied
                    ) =>
                {
                    let reason = format!("{:?}", s.code()).to_uppercase();
                    let failed: Vec<(String, String)> = batch.into_iter().map(|c| (c, reason.clone())).collect();
                    store.record_grants(&campaign_id, &[], &failed).await.map_err(|e| e.to_string())?;
                }
                Err(s) => return Err(format!("loyalty: {:?} {}", s.code(), s.message())),
            }
        }
    }
    Ok(())
}
