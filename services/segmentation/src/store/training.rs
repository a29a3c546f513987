//! Training jobs (one at a time across replicas, under the training lease), model versions, and re-placing every
//! customer in a new model.
use std::sync::Arc;

use ndarray::Array2;
use rapport_kit::{
    frame::{Done, Key},
    lease::Lease,
};
use rapport_proto::segmentation::v1 as pb;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, sea_query::Expr,
};

use super::{Result, Store, TRAINING_LEASE};
use crate::{
    domain::{
        clustering::FitConfig,
        features::Features,
        model::{self, ModelSpec, Pages, Visit},
    },
    entities::{customers, models, training_jobs},
    error::SegmentationError,
};

/// Training parameters.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrainParams {
    /// Features.
    pub features: Vec<String>,
    /// k, or None to choose.
    pub k: Option<usize>,
    /// Range to choose k from.
    pub k_range: (usize, usize),
    /// Fit sample size.
    pub sample: usize,
    /// Seed.
    pub seed: u64,
    /// Algorithm.
    pub algorithm: crate::domain::clustering::Algorithm,
}

/// A training job's state.
#[derive(Debug, Clone, PartialEq)]
pub struct JobView {
    /// Id.
    pub job_id: String,
    /// running, succeeded, failed.
    pub state: String,
    /// Phase.
    pub phase: String,
    /// 0..1.
    pub progress: f64,
    /// Model version.
    pub model_version: Option<i64>,
    /// Error.
    pub error: Option<String>,
}

/// Customers read per training page: memory for training is the sample plus one page, whatever the population.
const TRAINING_PAGE: u64 = 5_000;

/// The customers who consent to profiling, in customer-id order, one keyset page at a time (read from a blocking
/// thread through the runtime), each customer's model features computed at `now`.
struct CustomerPages {
    db: DatabaseConnection,
    rt: tokio::runtime::Handle,
    names: Vec<String>,
    now: i64,
    page: u64,
}

impl CustomerPages {
    fn consenting() -> sea_orm::Select<customers::Entity> {
        customers::Entity::find().filter(customers::Column::ConsentProfiling.eq(true))
    }
}

impl Pages for CustomerPages {
    type Id = String;
    type Error = SegmentationError;

    fn count(&mut self) -> Result<usize> {
        Ok(self.rt.block_on(Self::consenting().count(&self.db))? as usize)
    }

    fn pass(&mut self, visit: &mut Visit<'_, String, SegmentationError>) -> Result<()> {
        let mut after = String::new();
        loop {
            let rows: Vec<(String, String)> = self.rt.block_on(
                Self::consenting()
                    .select_only()
                    .column(customers::Column::CustomerId)
                    .column(customers::Column::Features)
                    .filter(customers::Column::CustomerId.gt(after.as_str()))
                    .order_by_asc(customers::Column::CustomerId)
                    .limit(self.page)
                    .into_tuple()
                    .all(&self.db),
            )?;
            let Some(last) = rows.last().map(|r| r.0.clone()) else {
                return Ok(());
            };
            let d = self.names.len();
            let mut matrix = Array2::<f64>::zeros((rows.len(), d));
            let mut ids = Vec::with_capacity(rows.len());
            for (i, (id, features)) in rows.into_iter().enumerate() {
                let f: Features = serde_json::from_str(&features)?;
                for (j, name) in self.names.iter().enumerate() {
                    matrix[[i, j]] = f.value(name, self.now).unwrap_or(0.0);
                }
                ids.push(id);
            }
            visit(&ids, matrix.view())?;
            after = last;
        }
    }
}

impl Store {
    /// Records a training job; the caller runs it with [`Store::run_training`].
    pub async fn start_training(&self, key: &Key) -> Result<(String, bool)> {
        let job_id = format!("job-{}", uuid::Uuid::new_v4().simple());
        let id = job_id.clone();
        let out: pb::TrainModelResponse = self
            .frame
            .once(self, key, "TrainModel", move |_s, txn, now| {
                Box::pin(async move {
                    let running = training_jobs::Entity::find()
                        .filter(training_jobs::Column::State.eq("running"))
                        .count(txn)
                        .await?;
                    if running > 0 {
                        return Err(SegmentationError::TrainingRunning);
                    }
                    training_jobs::Entity::insert(training_jobs::ActiveModel {
                        job_id: Set(id.clone()),
                        state: Set("running".into()),
                        phase: Set("queued".into()),
                        progress: Set(0.0),
                        model_version: Set(None),
                        error: Set(None),
                        created_at: Set(now),
                        updated_at: Set(now),
                    })
                    .exec_without_returning(txn)
                    .await?;
                    Ok(Done::reply(pb::TrainModelResponse { job_id: id }))
                })
            })
            .await?;
        let fresh = out.job_id == job_id;
        Ok((out.job_id, fresh))
    }

    async fn job_progress(&self, job_id: &str, phase: &str, progress: f64) -> Result<()> {
        training_jobs::Entity::update_many()
            .col_expr(training_jobs::Column::Phase, Expr::value(phase))
            .col_expr(training_jobs::Column::Progress, Expr::value(progress))
            .col_expr(training_jobs::Column::UpdatedAt, Expr::value(self.now()))
            .filter(training_jobs::Column::JobId.eq(job_id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Runs a training job to the end, recording progress, the model and every customer's cluster.
    pub async fn run_training(&self, job_id: &str, params: TrainParams) {
        let result = match Lease::try_acquire(&self.db, TRAINING_LEASE).await {
            Ok(Some(lease)) => {
                let r = self.train(job_id, params).await;
                lease.release().await;
                r
            }
            Ok(None) => Err(SegmentationError::TrainingRunning),
            Err(e) => Err(e.into()),
        };
        let (state, error, version) = match result {
            Ok(v) => ("succeeded", None, Some(v)),
            Err(e) => {
                tracing::warn!(job_id, error = %e, "training failed");
                ("failed", Some(e.to_string()), None)
            }
        };
        let r = training_jobs::Entity::update_many()
            .col_expr(training_jobs::Column::State, Expr::value(state))
            .col_expr(training_jobs::Column::Phase, Expr::value("done"))
            .col_expr(training_jobs::Column::Progress, Expr::value(1.0))
            .col_expr(training_jobs::Column::Error, Expr::value(error))
            .col_expr(training_jobs::Column::ModelVersion, Expr::value(version))
            .col_expr(training_jobs::Column::UpdatedAt, Expr::value(self.now()))
            .filter(training_jobs::Column::JobId.eq(job_id))
            .exec(&self.db)
            .await;
        if let Err(e) = r {
            tracing::error!(job_id, error = %e, "recording the end of a training job failed");
        }
    }

    async fn train(&self, job_id: &str, params: TrainParams) -> Result<i64> {
        let now = self.now();
        self.job_progress(job_id, "sampling", 0.0).await?;
        let previous = self.active_model(&self.db).await?.map(|(_, m)| m);
        let progress = Arc::new(std::sync::Mutex::new(("sampling".to_string(), 0.0)));
        let p = progress.clone();
        let cfg = FitConfig {
            algorithm: params.algorithm,
            k: params.k,
            k_range: params.k_range,
            seed: params.seed,
            ..FitConfig::default()
        };
        let mut pages = CustomerPages {
            db: self.db.clone(),
            rt: tokio::runtime::Handle::current(),
            names: params.features.clone(),
            now,
            page: TRAINING_PAGE,
        };
        let sample = params.sample;
        // Fitting and placing everyone is CPU work over pages read from the database: a blocking thread that reads
        // each page through the runtime. Placing counts the clusters' sizes and writes nothing: no transaction is
        // open while the pages are read, so ingestion and deliveries go on meanwhile.
        let mut work = tokio::task::spawn_blocking(move || -> Result<ModelSpec> {
            let report = |phase: &str, x: f64| {
                if let Ok(mut g) = p.lock() {
                    *g = (phase.to_string(), x * 0.9);
                }
            };
            let fitted = model::fit_pages(&params.features, &mut pages, sample, &cfg, previous.as_deref(), &report)?;
            fitted.assign(&mut pages, &report, &mut |_, _| Ok(()))
        });
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
        let spec = loop {
            tokio::select! {
                r = &mut work => break r.map_err(|e| SegmentationError::Task(e.to_string()))??,
                _ = tick.tick() => {
                    let (phase, x) = progress.lock().map(|g| g.clone()).unwrap_or_default();
                    // Progress is for people watching: a failed update must not abandon the work under way.
                    if let Err(e) = self.job_progress(job_id, &phase, x).await {
                        tracing::warn!(job_id, error = %e, "recording training progress failed");
                    }
                }
            }
        };
        self.job_progress(job_id, "saving", 0.9).await?;
        let version = models::Entity::insert(models::ActiveModel {
            spec: Set(serde_json::to_string(&spec)?),
            created_at: Set(now),
            ..Default::default()
        })
        .exec(&self.db)
        .await?
        .last_insert_id;
        tracing::info!(version, k = spec.clusters.len(), silhouette = spec.silhouette, "model trained");
        self.set_model(version, spec);
        // Every customer is re-placed in the new model, and cluster segments follow it, by the re-evaluation: pages
        // of 200 customers, each locked in id order in a short transaction, as ingestion locks them.
        self.job_progress(job_id, "placing and re-evaluating segments", 0.95).await?;
        self.reevaluate_all().await?;
        Ok(version)
    }

    /// A job.
    pub async fn job(&self, job_id: &str) -> Result<JobView> {
        let j = training_jobs::Entity::find_by_id(job_id.to_string())
            .one(&self.db)
            .await?
            .ok_or(SegmentationError::JobNotFound)?;
        Ok(JobView {
            job_id: j.job_id,
            state: j.state,
            phase: j.phase,
            progress: j.progress,
            model_version: j.model_version,
            error: j.error,
        })
    }

    /// A model version (0 = active) with its creation time.
    pub async fn model_version(&self, version: i64) -> Result<(i64, ModelSpec, i64)> {
        let row = if version == 0 {
            models::Entity::find().order_by_desc(models::Column::Version).one(&self.db).await?
        } else {
            models::Entity::find_by_id(version).one(&self.db).await?
        };
        let row = row.ok_or(SegmentationError::NoModel)?;
        Ok((row.version, serde_json::from_str(&row.spec)?, row.created_at))
    }
}
