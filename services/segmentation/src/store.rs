//! Persistence of segmentation through sea-orm, and the work that reads and writes it: ingestion (features,
//! buckets, online cluster assignment, segment re-evaluation, membership events in the outbox), ageing, training,
//! segments and campaigns.
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, RwLock},
};

use rapport_kit::{clock::Clock, db::begin_write, idempotency, lease::Lease, pseudonym::Pseudonyms};
use rapport_outbox::{Outbox, inbox, sink};
use rapport_proto::events::v1::{SegmentMembershipChanged, event};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, TryInsertResult, sea_query::Expr,
};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    domain::{
        bucket,
        clustering::FitConfig,
        day_of,
        features::{Bucket, Event, Features, Kind},
        model::{self, ModelSpec, Placement},
        rules::{self, Rule, Step, Subject},
    },
    entities::{
        campaign_targets, campaigns, customers, daily_activity, models, segment_changes, segment_members, segments,
        training_jobs,
    },
    error::SegmentationError,
};

type Result<T> = std::result::Result<T, SegmentationError>;

/// Held while a training job runs: one at a time across replicas.
const TRAINING_LEASE: &str = "segmentation.training";

/// The idempotency key of a mutation.
#[derive(Debug, Clone)]
pub struct Idem {
    /// Request id.
    pub request_id: String,
    /// Parameter hash.
    pub fingerprint: String,
}

/// A customer as stored, decoded.
#[derive(Debug, Clone)]
pub struct CustomerState {
    /// Id.
    pub customer_id: String,
    /// Attributes.
    pub attributes: BTreeMap<String, String>,
    /// Consent to offers.
    pub consent_marketing: bool,
    /// Consent to profiling.
    pub consent_profiling: bool,
    /// Features.
    pub features: Features,
    /// Stable cluster id.
    pub cluster: Option<i32>,
}

/// A segment as stored, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentDef {
    /// Id.
    pub segment_id: String,
    /// Name.
    pub display_name: String,
    /// Rule.
    pub rule: Rule,
    /// Created at (ms).
    pub created_at: i64,
}

/// Training parameters.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
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

/// A campaign with its counters.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct CampaignView {
    /// Id.
    pub campaign_id: String,
    /// Segment.
    pub segment_id: String,
    /// Offer.
    pub offer_id: String,
    /// Holdout percent.
    pub holdout_percent: i32,
    /// running, paused or completed.
    pub state: String,
    /// Why it is paused.
    #[serde(default)]
    pub state_reason: Option<String>,
    /// Snapshotted members (held out included).
    pub targeted: i64,
    /// Granted.
    pub granted: i64,
    /// Held out.
    pub held_out: i64,
    /// Refused by loyalty, or erased before their grant.
    pub failed: i64,
    /// Failed targets by reason.
    #[serde(default)]
    pub failed_by_reason: BTreeMap<String, i64>,
    /// Created at.
    pub created_at: i64,
}

/// The active model, kept in memory for online assignment.
pub type ActiveModel = Arc<RwLock<Option<(i64, Arc<ModelSpec>)>>>;

/// The segmentation database.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    clock: Arc<dyn Clock>,
    model: ActiveModel,
    outbox: Outbox,
    pseudonyms: Pseudonyms,
}

impl Store {
    /// A store over `db`; loads the active model.
    pub async fn open(
        db: DatabaseConnection,
        clock: Arc<dyn Clock>,
        outbox: Outbox,
        pseudonyms: Pseudonyms,
    ) -> Result<Self> {
        let store = Self { db, clock, model: Arc::new(RwLock::new(None)), outbox, pseudonyms };
        store.active_model(&store.db).await?;
        // A job left running with nobody training (the training lease is free) was interrupted by a stop; a job
        // another replica is running keeps going.
        if let Some(lease) = Lease::try_acquire(&store.db, TRAINING_LEASE).await? {
            training_jobs::Entity::update_many()
                .col_expr(training_jobs::Column::State, Expr::value("failed"))
                .col_expr(training_jobs::Column::Error, Expr::value("interrupted by a restart"))
                .filter(training_jobs::Column::State.eq("running"))
                .exec(&store.db)
                .await?;
            lease.release().await;
        }
        Ok(store)
    }

    /// The connection.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Now, by the service clock.
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    fn set_model(&self, version: i64, spec: ModelSpec) {
        if let Ok(mut m) = self.model.write() {
            *m = Some((version, Arc::new(spec)));
        }
    }

    /// The active model as this replica last saw it.
    pub fn model(&self) -> Option<(i64, Arc<ModelSpec>)> {
        self.model.read().ok().and_then(|m| m.clone())
    }

    /// The active model as the database has it: the newest version, loaded when another replica trained it.
    pub async fn active_model<C: ConnectionTrait>(&self, db: &C) -> Result<Option<(i64, Arc<ModelSpec>)>> {
        let newest: Option<i64> = models::Entity::find()
            .select_only()
            .column_as(models::Column::Version.max(), "v")
            .into_tuple::<Option<i64>>()
            .one(db)
            .await?
            .flatten();
        let cached = self.model();
        match (newest, &cached) {
            (None, _) => Ok(None),
            (Some(v), Some((c, _))) if *c == v => Ok(cached),
            (Some(v), _) => {
                let Some(m) = models::Entity::find_by_id(v).one(db).await? else {
                    return Ok(cached);
                };
                self.set_model(m.version, serde_json::from_str(&m.spec)?);
                Ok(self.model())
            }
        }
    }

    async fn once<T, F>(&self, idem: &Idem, method: &str, subjects: Vec<String>, f: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: for<'t> FnOnce(&'t Self, &'t DatabaseTransaction, i64) -> BoxFut<'t, Result<T>>,
    {
        let txn = begin_write(&self.db).await?;
        let now = self.now();
        match idempotency::claim(&txn, &idem.request_id, method, &idem.fingerprint, now).await? {
            Ok(idempotency::Claim::Replay(bytes)) => return Ok(serde_json::from_slice(&bytes)?),
            Ok(idempotency::Claim::Erased) => return Err(SegmentationError::CustomerErased),
            Ok(idempotency::Claim::Fresh) => {}
            Err(e) => return Err(SegmentationError::Idempotency(e)),
        }
        let out = match f(self, &txn, now).await {
            // On PostgreSQL two requests can both find the row missing and both insert it: the loser's insert
            // hits the unique index, which is the same answer its check would have given a moment later.
            Err(SegmentationError::Db(e)) if rapport_kit::db::is_unique_violation(&e) => {
                return Err(clash(method).unwrap_or(SegmentationError::Db(e)));
            }
            r => r?,
        };
        idempotency::complete_for(&txn, &idem.request_id, &subjects, serde_json::to_vec(&out)?).await?;
        txn.commit().await?;
        self.outbox.notify();
        Ok(out)
    }

    // ---- ingestion --------------------------------------------------------------------------------------------

    /// Applies events, each event id once, none about an erased customer; returns (applied, skipped). One
    /// transaction per call.
    pub async fn ingest(&self, events: Vec<Event>) -> Result<(i64, i64)> {
        let now = self.now();
        let txn = begin_write(&self.db).await?;
        let (mut fresh, mut skipped) = (Vec::with_capacity(events.len()), 0);
        let mut erased: HashMap<String, bool> = HashMap::new();
        for e in events {
            if !inbox::apply_once(&txn, &e.event_id, "ingest", now).await? {
                skipped += 1;
                continue;
            }
            let gone = match erased.get(&e.customer_id) {
                Some(g) => *g,
                None => {
                    let g = sink::is_erased(&txn, &self.pseudonyms, &e.customer_id).await?;
                    erased.insert(e.customer_id.clone(), g);
                    g
                }
            };
            if gone {
                skipped += 1;
            } else {
                fresh.push(e);
            }
        }
        let applied = fresh.len() as i64;
        self.apply_in(&txn, fresh, now).await?;
        txn.commit().await?;
        self.outbox.notify();
        Ok((applied, skipped))
    }

    /// Applies fresh events inside `txn`: per customer, in customer-id order (so concurrent batches lock customers
    /// in the same order and never deadlock), each customer's events in time order.
    pub async fn apply_in(&self, txn: &DatabaseTransaction, events: Vec<Event>, now: i64) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let today = day_of(now);
        let segments = load_segments(txn).await?;
        let mut groups: BTreeMap<String, Vec<Event>> = BTreeMap::new();
        for e in events {
            groups.entry(e.customer_id.clone()).or_default().push(e);
        }
        for (customer_id, mut fresh) in groups {
            fresh.sort_by_key(|e| e.at_ms);
            let mut st = self.lock_or_create(txn, &customer_id, now).await?;
            let mut buckets = load_buckets(txn, &customer_id, today - 400).await?;
            st.features.age(today.max(st.features.window_day), &buckets);
            for e in &fresh {
                st.features.apply(e);
                add_to_bucket(txn, &mut buckets, e).await?;
            }
            self.settle_customer(txn, &mut st, &buckets, &segments, now).await?;
        }
        Ok(())
    }

    /// Erases everything segmentation holds about a customer inside `txn`; campaign targets stay under a keyed
    /// pseudonym so campaign counts stay true. The caller records the tombstone.
    pub async fn forget_in(&self, txn: &DatabaseTransaction, customer_id: &str) -> Result<()> {
        customers::Entity::delete_by_id(customer_id.to_string()).exec(txn).await?;
        daily_activity::Entity::delete_many()
            .filter(daily_activity::Column::CustomerId.eq(customer_id))
            .exec(txn)
            .await?;
        segment_members::Entity::delete_many()
            .filter(segment_members::Column::CustomerId.eq(customer_id))
            .exec(txn)
            .await?;
        segment_changes::Entity::delete_many()
            .filter(segment_changes::Column::CustomerId.eq(customer_id))
            .exec(txn)
            .await?;
        // A target not granted yet is not granted at all: its grant would go to a pseudonym.
        campaign_targets::Entity::update_many()
            .col_expr(campaign_targets::Column::Status, Expr::value("failed"))
            .col_expr(campaign_targets::Column::Reason, Expr::value(Some("CUSTOMER_ERASED".to_string())))
            .filter(campaign_targets::Column::CustomerId.eq(customer_id))
            .filter(campaign_targets::Column::Status.eq("pending"))
            .exec(txn)
            .await?;
        campaign_targets::Entity::update_many()
            .col_expr(campaign_targets::Column::CustomerId, Expr::value(self.pseudonyms.of(customer_id)))
            .filter(campaign_targets::Column::CustomerId.eq(customer_id))
            .exec(txn)
            .await?;
        self.outbox.scrub(txn, customer_id).await?;
        idempotency::scrub(txn, customer_id, self.now()).await?;
        Ok(())
    }

    /// Erases a customer on request (`ForgetCustomer`): its data, a tombstone so later events are dropped, and an
    /// erasure event for segmentation's own subscribers. Returns whether anything was held about it.
    pub async fn forget_customer(&self, idem: &Idem, customer_id: &str) -> Result<bool> {
        let customer_id = customer_id.to_string();
        self.once(idem, "ForgetCustomer", vec![], move |s, txn, now| {
            Box::pin(async move {
                let known =
                    customers::Entity::find_by_id(customer_id.clone()).lock_exclusive().one(txn).await?.is_some();
                s.forget_in(txn, &customer_id).await?;
                sink::bury(txn, &s.pseudonyms, &customer_id, now).await?;
                let ev = event::Payload::CustomerForgotten(rapport_proto::events::v1::CustomerForgotten {});
                s.outbox.publish(txn, &customer_id, ev, now).await?;
                tracing::info!(known, "customer erased from segmentation");
                Ok(known)
            })
        })
        .await
    }

    /// Creates or updates a customer's attributes and consent; returns whether it was new.
    pub async fn upsert_customer(
        &self,
        idem: &Idem,
        customer_id: &str,
        attributes: BTreeMap<String, String>,
        consent_marketing: bool,
        consent_profiling: bool,
    ) -> Result<bool> {
        let customer_id = customer_id.to_string();
        self.once(idem, "UpsertCustomer", vec![customer_id.clone()], move |s, txn, now| {
            Box::pin(async move {
                if sink::is_erased(txn, &s.pseudonyms, &customer_id).await? {
                    return Err(SegmentationError::CustomerErased);
                }
                let existed = customers::Entity::find_by_id(customer_id.clone()).one(txn).await?.is_some();
                let mut st = s.lock_or_create(txn, &customer_id, now).await?;
                st.attributes = attributes;
                st.consent_marketing = consent_marketing;
                st.consent_profiling = consent_profiling;
                let buckets = load_buckets(txn, &customer_id, day_of(now) - 400).await?;
                let segments = load_segments(txn).await?;
                s.settle_customer(txn, &mut st, &buckets, &segments, now).await?;
                Ok(!existed)
            })
        })
        .await
    }

    /// A customer's state.
    pub async fn customer(&self, customer_id: &str) -> Result<CustomerState> {
        let row = customers::Entity::find_by_id(customer_id.to_string())
            .one(&self.db)
            .await?
            .ok_or(SegmentationError::CustomerNotFound)?;
        decode_customer(row)
    }

    async fn lock_or_create(&self, txn: &DatabaseTransaction, customer_id: &str, now: i64) -> Result<CustomerState> {
        let fresh = Features { window_day: day_of(now), ..Features::default() };
        // Customers first seen through their events have given no consent yet: no profiling, no offers, until
        // UpsertCustomer records what they chose.
        let row = customers::ActiveModel {
            customer_id: Set(customer_id.to_string()),
            attributes: Set("{}".into()),
            consent_marketing: Set(false),
            consent_profiling: Set(false),
            features: Set(serde_json::to_string(&fresh)?),
            cluster_id: Set(None),
            model_version: Set(None),
            window_day: Set(fresh.window_day),
            updated_at: Set(now),
        };
        customers::Entity::insert(row)
            .on_conflict_do_nothing_on([customers::Column::CustomerId])
            .exec_without_returning(txn)
            .await?;
        let row = customers::Entity::find_by_id(customer_id.to_string())
            .lock_exclusive()
            .one(txn)
            .await?
            .ok_or(SegmentationError::CustomerNotFound)?;
        decode_customer(row)
    }

    /// Places the customer in the active model, re-evaluates its segments, saves it.
    async fn settle_customer(
        &self,
        txn: &DatabaseTransaction,
        st: &mut CustomerState,
        buckets: &[Bucket],
        segments: &[SegmentDef],
        now: i64,
    ) -> Result<usize> {
        let model = self.active_model(txn).await?;
        st.cluster = match (&model, st.consent_profiling) {
            (Some((_, spec)), true) => Some(spec.place(&st.features, now).cluster_id),
            _ => None,
        };
        let changes = reevaluate(txn, &self.outbox, st, buckets, segments, now).await?;
        customers::Entity::update_many()
            .col_expr(customers::Column::Attributes, Expr::value(serde_json::to_string(&st.attributes)?))
            .col_expr(customers::Column::ConsentMarketing, Expr::value(st.consent_marketing))
            .col_expr(customers::Column::ConsentProfiling, Expr::value(st.consent_profiling))
            .col_expr(customers::Column::Features, Expr::value(serde_json::to_string(&st.features)?))
            .col_expr(customers::Column::ClusterId, Expr::value(st.cluster))
            .col_expr(customers::Column::ModelVersion, Expr::value(model.map(|(v, _)| v)))
            .col_expr(customers::Column::WindowDay, Expr::value(st.features.window_day))
            .col_expr(customers::Column::UpdatedAt, Expr::value(now))
            .filter(customers::Column::CustomerId.eq(st.customer_id.as_str()))
            .exec(txn)
            .await?;
        Ok(changes)
    }

    /// Ages the windows of every customer not yet aged today, re-places them and re-evaluates their segments, in
    /// pages; returns (customers aged, membership changes).
    pub async fn refresh(&self) -> Result<(i64, i64)> {
        self.settle_all(true).await
    }

    /// Re-places every customer and re-evaluates every segment (after a new model).
    pub async fn reevaluate_all(&self) -> Result<(i64, i64)> {
        self.settle_all(false).await
    }

    /// Time moves windows by whole days: a customer is stale once per day (or until its next event settles it), so
    /// a refresh touches each customer at most daily, found through the `window_day` index.
    async fn settle_all(&self, only_stale: bool) -> Result<(i64, i64)> {
        let now = self.now();
        let today = day_of(now);
        let (mut aged, mut changes) = (0i64, 0i64);
        let mut after = String::new();
        loop {
            let txn = begin_write(&self.db).await?;
            let segments = load_segments(&txn).await?;
            // Locked, in customer-id order like ingestion: an ingest of the same customer waits instead of being
            // overwritten by the features read here.
            let mut q = customers::Entity::find()
                .filter(customers::Column::CustomerId.gt(after.as_str()))
                .order_by_asc(customers::Column::CustomerId)
                .limit(200)
                .lock_exclusive();
            if only_stale {
                q = q.filter(customers::Column::WindowDay.lt(today));
            }
            let page = q.all(&txn).await?;
            let Some(last) = page.last().map(|r| r.customer_id.clone()) else {
                break;
            };
            for row in page {
                let mut st = decode_customer(row)?;
                let buckets = load_buckets(&txn, &st.customer_id, today - 400).await?;
                if st.features.window_day < today {
                    st.features.age(today, &buckets);
                    aged += 1;
                }
                changes += self.settle_customer(&txn, &mut st, &buckets, &segments, now).await? as i64;
            }
            txn.commit().await?;
            after = last;
        }
        self.outbox.notify();
        Ok((aged, changes))
    }

    // ---- training ---------------------------------------------------------------------------------------------

    /// Records a training job; the caller runs it with [`Store::run_training`].
    pub async fn start_training(&self, idem: &Idem) -> Result<(String, bool)> {
        let job_id = format!("job-{}", uuid::Uuid::new_v4().simple());
        let id = job_id.clone();
        let out: String = self
            .once(idem, "TrainModel", vec![], move |_s, txn, now| {
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
                    Ok(id)
                })
            })
            .await?;
        let fresh = out == job_id;
        Ok((out, fresh))
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
        let lease = match Lease::try_acquire(&self.db, TRAINING_LEASE).await {
            Ok(Some(l)) => Some(l),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(job_id, error = %e, "training lease unavailable");
                None
            }
        };
        let result = match lease {
            Some(_) => self.train(job_id, params).await,
            None => Err(SegmentationError::TrainingRunning),
        };
        if let Some(l) = lease {
            l.release().await;
        }
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
        self.job_progress(job_id, "loading", 0.0).await?;
        let rows = customers::Entity::find()
            .filter(customers::Column::ConsentProfiling.eq(true))
            .order_by_asc(customers::Column::CustomerId)
            .all(&self.db)
            .await?;
        let mut ids = Vec::with_capacity(rows.len());
        let mut matrix = Vec::with_capacity(rows.len());
        for r in rows {
            let f: Features = serde_json::from_str(&r.features)?;
            matrix.push(params.features.iter().map(|n| f.value(n, now).unwrap_or(0.0)).collect::<Vec<f64>>());
            ids.push(r.customer_id);
        }
        let previous = self.active_model(&self.db).await?.map(|(_, m)| m);
        let progress = Arc::new(std::sync::Mutex::new(("fitting".to_string(), 0.0)));
        let p = progress.clone();
        let cfg = FitConfig {
            algorithm: params.algorithm,
            k: params.k,
            k_range: params.k_range,
            seed: params.seed,
            ..FitConfig::default()
        };
        let names = params.features.clone();
        let sample = params.sample;
        let mut work = tokio::task::spawn_blocking(move || {
            model::train(&names, &matrix, sample, &cfg, previous.as_deref(), &|phase, x| {
                if let Ok(mut g) = p.lock() {
                    *g = (phase.to_string(), x * 0.9);
                }
            })
        });
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
        let outcome = loop {
            tokio::select! {
                r = &mut work => break r.map_err(|e| SegmentationError::Task(e.to_string()))?,
                _ = tick.tick() => {
                    let (phase, x) = progress.lock().map(|g| g.clone()).unwrap_or_default();
                    self.job_progress(job_id, &phase, x).await?;
                }
            }
        };
        let (spec, assigned) = outcome?;
        self.job_progress(job_id, "saving", 0.9).await?;
        let txn = begin_write(&self.db).await?;
        let version = models::Entity::insert(models::ActiveModel {
            spec: Set(serde_json::to_string(&spec)?),
            created_at: Set(now),
            ..Default::default()
        })
        .exec(&txn)
        .await?
        .last_insert_id;
        let mut by_cluster: BTreeMap<i32, Vec<String>> = BTreeMap::new();
        for (id, c) in ids.into_iter().zip(assigned) {
            by_cluster.entry(c).or_default().push(id);
        }
        for (c, members) in by_cluster {
            for chunk in members.chunks(500) {
                customers::Entity::update_many()
                    .col_expr(customers::Column::ClusterId, Expr::value(Some(c)))
                    .col_expr(customers::Column::ModelVersion, Expr::value(Some(version)))
                    .filter(customers::Column::CustomerId.is_in(chunk.iter().map(String::as_str)))
                    .exec(&txn)
                    .await?;
            }
        }
        txn.commit().await?;
        tracing::info!(version, k = spec.clusters.len(), silhouette = spec.silhouette, "model trained");
        self.set_model(version, spec);
        // Cluster segments follow the new model.
        self.job_progress(job_id, "re-evaluating segments", 0.95).await?;
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

    // ---- segments ---------------------------------------------------------------------------------------------

    /// Ids of the existing segments.
    pub async fn segment_ids(&self) -> Result<HashSet<String>> {
        let ids: Vec<String> = segments::Entity::find()
            .select_only()
            .column(segments::Column::SegmentId)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(ids.into_iter().collect())
    }

    /// Creates a segment and materialises its members.
    pub async fn create_segment(&self, idem: &Idem, segment_id: &str, display_name: &str, rule: Rule) -> Result<i64> {
        let (segment_id, display_name) = (segment_id.to_string(), display_name.to_string());
        let sid = segment_id.clone();
        self.once(idem, "CreateSegment", vec![], move |_s, txn, now| {
            Box::pin(async move {
                if segments::Entity::find_by_id(segment_id.clone()).one(txn).await?.is_some() {
                    return Err(SegmentationError::SegmentExists);
                }
                for dep in rule.dependencies() {
                    if segments::Entity::find_by_id(dep.clone()).one(txn).await?.is_none() {
                        let mut e = rapport_kit::error::ApiError::new(
                            rapport_kit::error::ErrorCode::InvalidArgument,
                            "INVALID_ARGUMENT",
                            format!("segment {dep:?} does not exist"),
                        );
                        e.violations.push(("segment.condition".into(), format!("refers to unknown segment {dep:?}")));
                        return Err(SegmentationError::Invalid(e));
                    }
                }
                segments::Entity::insert(segments::ActiveModel {
                    segment_id: Set(segment_id.clone()),
                    display_name: Set(display_name),
                    rule: Set(serde_json::to_string(&rule)?),
                    created_at: Set(now),
                })
                .exec_without_returning(txn)
                .await?;
                tracing::info!(segment_id = %segment_id, "segment created");
                Ok(0i64)
            })
        })
        .await?;
        // Materialise: evaluate everyone (its own transaction per page).
        self.materialise(&sid).await?;
        self.segment_size(&sid).await
    }

    async fn materialise(&self, segment_id: &str) -> Result<()> {
        let now = self.now();
        let today = day_of(now);
        let mut after = String::new();
        loop {
            let txn = begin_write(&self.db).await?;
            let segments = load_segments(&txn).await?;
            let page = customers::Entity::find()
                .filter(customers::Column::CustomerId.gt(after.as_str()))
                .order_by_asc(customers::Column::CustomerId)
                .limit(500)
                .lock_exclusive()
                .all(&txn)
                .await?;
            let Some(last) = page.last().map(|r| r.customer_id.clone()) else {
                break;
            };
            for row in page {
                let st = decode_customer(row)?;
                let buckets = load_buckets(&txn, &st.customer_id, today - 400).await?;
                reevaluate(&txn, &self.outbox, &st, &buckets, &segments, now).await?;
            }
            txn.commit().await?;
            after = last;
        }
        tracing::debug!(segment_id, "segment materialised");
        self.outbox.notify();
        Ok(())
    }

    /// A segment.
    pub async fn segment(&self, segment_id: &str) -> Result<(SegmentDef, i64)> {
        let row = segments::Entity::find_by_id(segment_id.to_string())
            .one(&self.db)
            .await?
            .ok_or(SegmentationError::SegmentNotFound)?;
        let def = decode_segment(row)?;
        let size = self.segment_size(segment_id).await?;
        Ok((def, size))
    }

    async fn segment_size(&self, segment_id: &str) -> Result<i64> {
        let n = segment_members::Entity::find()
            .filter(segment_members::Column::SegmentId.eq(segment_id))
            .count(&self.db)
            .await?;
        Ok(i64::try_from(n).unwrap_or(i64::MAX))
    }

    /// Every segment with its size.
    pub async fn segments(&self) -> Result<Vec<(SegmentDef, i64)>> {
        let mut out = Vec::new();
        for def in load_segments(&self.db).await? {
            let size = self.segment_size(&def.segment_id).await?;
            out.push((def, size));
        }
        Ok(out)
    }

    /// Deletes a segment nobody uses.
    pub async fn delete_segment(&self, idem: &Idem, segment_id: &str) -> Result<()> {
        let segment_id = segment_id.to_string();
        self.once(idem, "DeleteSegment", vec![], move |_s, txn, _now| {
            Box::pin(async move {
                if segments::Entity::find_by_id(segment_id.clone()).one(txn).await?.is_none() {
                    return Err(SegmentationError::SegmentNotFound);
                }
                for other in load_segments(txn).await? {
                    if other.rule.dependencies().contains(&segment_id) {
                        return Err(SegmentationError::SegmentInUse(format!("segment {:?}", other.segment_id)));
                    }
                }
                let running = campaigns::Entity::find()
                    .filter(campaigns::Column::SegmentId.eq(segment_id.as_str()))
                    .filter(campaigns::Column::State.eq("running"))
                    .one(txn)
                    .await?;
                if let Some(c) = running {
                    return Err(SegmentationError::SegmentInUse(format!("running campaign {:?}", c.campaign_id)));
                }
                segment_members::Entity::delete_many()
                    .filter(segment_members::Column::SegmentId.eq(segment_id.as_str()))
                    .exec(txn)
                    .await?;
                segments::Entity::delete_by_id(segment_id.clone()).exec(txn).await?;
                tracing::info!(segment_id = %segment_id, "segment deleted");
                Ok(())
            })
        })
        .await
    }

    /// A page of members, after membership row `after`.
    pub async fn members(
        &self,
        segment_id: &str,
        after: Option<i64>,
        limit: u64,
    ) -> Result<(Vec<String>, Option<i64>)> {
        if segments::Entity::find_by_id(segment_id.to_string()).one(&self.db).await?.is_none() {
            return Err(SegmentationError::SegmentNotFound);
        }
        let mut q = segment_members::Entity::find()
            .filter(segment_members::Column::SegmentId.eq(segment_id))
            .order_by_asc(segment_members::Column::Id)
            .limit(limit + 1);
        if let Some(a) = after {
            q = q.filter(segment_members::Column::Id.gt(a));
        }
        let (rows, next) = rapport_kit::page::split(q.all(&self.db).await?, limit, |r| r.id);
        Ok((rows.into_iter().map(|r| r.customer_id).collect(), next))
    }

    /// Whether a customer is a member.
    pub async fn is_member(&self, segment_id: &str, customer_id: &str) -> Result<bool> {
        if segments::Entity::find_by_id(segment_id.to_string()).one(&self.db).await?.is_none() {
            return Err(SegmentationError::SegmentNotFound);
        }
        Ok(segment_members::Entity::find()
            .filter(segment_members::Column::SegmentId.eq(segment_id))
            .filter(segment_members::Column::CustomerId.eq(customer_id))
            .one(&self.db)
            .await?
            .is_some())
    }

    /// The segments of a customer, and its cluster.
    pub async fn customer_segments(&self, customer_id: &str) -> Result<(Vec<String>, Option<i32>)> {
        let st = self.customer(customer_id).await?;
        let ids: Vec<String> = segment_members::Entity::find()
            .select_only()
            .column(segment_members::Column::SegmentId)
            .filter(segment_members::Column::CustomerId.eq(customer_id))
            .order_by_asc(segment_members::Column::SegmentId)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok((ids, st.cluster))
    }

    /// Why a customer is (or is not) in a segment: every condition with the customer's value.
    pub async fn explain_segment(&self, customer_id: &str, segment_id: &str) -> Result<(bool, Vec<Step>)> {
        let (def, _) = self.segment(segment_id).await?;
        let st = self.customer(customer_id).await?;
        let now = self.now();
        let buckets = load_buckets(&self.db, customer_id, day_of(now) - 400).await?;
        let memberships: HashSet<String> = self.customer_segments(customer_id).await?.0.into_iter().collect();
        let daily = daily_map(&buckets);
        let subject = Subject {
            customer_id,
            features: &st.features,
            attributes: &st.attributes,
            cluster: st.cluster,
            daily: &daily,
            today: day_of(now),
            now_ms: now,
            memberships: &memberships,
        };
        let mut trace = Some(Vec::new());
        let held = rules::evaluate(&def.rule, &subject, "condition", &mut trace);
        Ok((held, trace.unwrap_or_default()))
    }

    /// Where a customer falls in the active model.
    pub async fn explain_cluster(&self, customer_id: &str) -> Result<(Placement, String, bool)> {
        let st = self.customer(customer_id).await?;
        let (_, spec) = self.active_model(&self.db).await?.ok_or(SegmentationError::NoModel)?;
        let p = spec.place(&st.features, self.now());
        let label = spec.cluster(p.cluster_id).map(|c| c.label.clone()).unwrap_or_default();
        Ok((p, label, st.cluster.is_some()))
    }

    // ---- campaigns --------------------------------------------------------------------------------------------

    /// Snapshots the segment into a campaign (holdout by stable bucket, consenting members only).
    pub async fn trigger_campaign(
        &self,
        idem: &Idem,
        campaign_id: &str,
        segment_id: &str,
        offer_id: &str,
        holdout: i32,
    ) -> Result<CampaignView> {
        let (campaign_id, segment_id, offer_id) =
            (campaign_id.to_string(), segment_id.to_string(), offer_id.to_string());
        let id = campaign_id.clone();
        self.once(idem, "TriggerCampaign", vec![], move |_s, txn, now| {
            Box::pin(async move {
                if let Some(c) = campaigns::Entity::find_by_id(campaign_id.clone()).one(txn).await? {
                    if c.segment_id != segment_id || c.offer_id != offer_id || c.holdout_percent != holdout {
                        return Err(SegmentationError::CampaignExists);
                    }
                    // Triggered again: a paused campaign resumes.
                    if c.state == "paused" {
                        campaigns::Entity::update_many()
                            .col_expr(campaigns::Column::State, Expr::value("running"))
                            .col_expr(campaigns::Column::StateReason, Expr::value(Option::<String>::None))
                            .filter(campaigns::Column::CampaignId.eq(campaign_id.as_str()))
                            .exec(txn)
                            .await?;
                        tracing::info!(campaign_id = %campaign_id, "campaign resumed");
                    }
                    return Ok(());
                }
                if segments::Entity::find_by_id(segment_id.clone()).one(txn).await?.is_none() {
                    return Err(SegmentationError::SegmentNotFound);
                }
                campaigns::Entity::insert(campaigns::ActiveModel {
                    campaign_id: Set(campaign_id.clone()),
                    segment_id: Set(segment_id.clone()),
                    offer_id: Set(offer_id.clone()),
                    holdout_percent: Set(holdout),
                    state: Set("running".into()),
                    created_at: Set(now),
                    state_reason: Set(None),
                })
                .exec_without_returning(txn)
                .await?;
                let members: Vec<String> = segment_members::Entity::find()
                    .select_only()
                    .column(segment_members::Column::CustomerId)
                    .filter(segment_members::Column::SegmentId.eq(segment_id.as_str()))
                    .into_tuple()
                    .all(txn)
                    .await?;
                // In chunks: a large segment would pass the databases' limits on bound parameters.
                let mut consenting: HashSet<String> = HashSet::new();
                for chunk in members.chunks(1000) {
                    let ids: Vec<String> = customers::Entity::find()
                        .select_only()
                        .column(customers::Column::CustomerId)
                        .filter(customers::Column::ConsentMarketing.eq(true))
                        .filter(customers::Column::CustomerId.is_in(chunk.iter().map(String::as_str)))
                        .into_tuple::<String>()
                        .all(txn)
                        .await?;
                    consenting.extend(ids);
                }
                let rows: Vec<campaign_targets::ActiveModel> = members
                    .into_iter()
                    .filter(|m| consenting.contains(m))
                    .map(|m| {
                        let held_out = i32::from(bucket(&m, &campaign_id)) < holdout;
                        campaign_targets::ActiveModel {
                            campaign_id: Set(campaign_id.clone()),
                            customer_id: Set(m),
                            status: Set(if held_out { "held_out" } else { "pending" }.into()),
                            reason: Set(None),
                            ..Default::default()
                        }
                    })
                    .collect();
                for chunk in rows.chunks(500) {
                    campaign_targets::Entity::insert_many(chunk.to_vec()).exec_without_returning(txn).await?;
                }
                tracing::info!(campaign_id = %campaign_id, segment_id = %segment_id, "campaign triggered");
                Ok(())
            })
        })
        .await?;
        self.campaign(&id).await
    }

    /// A campaign with its counters.
    pub async fn campaign(&self, campaign_id: &str) -> Result<CampaignView> {
        let c = campaigns::Entity::find_by_id(campaign_id.to_string())
            .one(&self.db)
            .await?
            .ok_or(SegmentationError::CampaignNotFound)?;
        let count = |status: &'static str| {
            let id = campaign_id.to_string();
            let db = self.db.clone();
            async move {
                campaign_targets::Entity::find()
                    .filter(campaign_targets::Column::CampaignId.eq(id))
                    .filter(campaign_targets::Column::Status.eq(status))
                    .count(&db)
                    .await
                    .map(|n| i64::try_from(n).unwrap_or(i64::MAX))
            }
        };
        let (pending, granted, held_out, failed) =
            (count("pending").await?, count("granted").await?, count("held_out").await?, count("failed").await?);
        let by_reason: Vec<(Option<String>, i64)> = campaign_targets::Entity::find()
            .select_only()
            .column(campaign_targets::Column::Reason)
            .column_as(campaign_targets::Column::Id.count(), "n")
            .filter(campaign_targets::Column::CampaignId.eq(campaign_id))
            .filter(campaign_targets::Column::Status.eq("failed"))
            .group_by(campaign_targets::Column::Reason)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(CampaignView {
            campaign_id: c.campaign_id,
            segment_id: c.segment_id,
            offer_id: c.offer_id,
            holdout_percent: c.holdout_percent,
            state: c.state,
            state_reason: c.state_reason,
            targeted: pending + granted + held_out + failed,
            granted,
            held_out,
            failed,
            failed_by_reason: by_reason.into_iter().map(|(r, n)| (r.unwrap_or_else(|| "UNKNOWN".into()), n)).collect(),
            created_at: c.created_at,
        })
    }

    /// Pauses a campaign with the reason an operator must act on; its pending targets stay pending.
    pub async fn pause_campaign(&self, campaign_id: &str, reason: &str) -> Result<()> {
        campaigns::Entity::update_many()
            .col_expr(campaigns::Column::State, Expr::value("paused"))
            .col_expr(campaigns::Column::StateReason, Expr::value(Some(reason.to_string())))
            .filter(campaigns::Column::CampaignId.eq(campaign_id))
            .filter(campaigns::Column::State.eq("running"))
            .exec(&self.db)
            .await?;
        tracing::warn!(campaign_id, reason, "campaign paused");
        Ok(())
    }

    /// Campaigns still granting.
    pub async fn running_campaigns(&self) -> Result<Vec<(String, String)>> {
        Ok(campaigns::Entity::find()
            .filter(campaigns::Column::State.eq("running"))
            .order_by_asc(campaigns::Column::CreatedAt)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|c| (c.campaign_id, c.offer_id))
            .collect())
    }

    /// The next pending targets of a campaign (in a stable order, so a retried batch is the same batch).
    pub async fn pending_targets(&self, campaign_id: &str, limit: u64) -> Result<Vec<String>> {
        Ok(campaign_targets::Entity::find()
            .select_only()
            .column(campaign_targets::Column::CustomerId)
            .filter(campaign_targets::Column::CampaignId.eq(campaign_id))
            .filter(campaign_targets::Column::Status.eq("pending"))
            .order_by_asc(campaign_targets::Column::Id)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?)
    }

    /// Records what loyalty did with a batch.
    pub async fn record_grants(
        &self,
        campaign_id: &str,
        granted: &[String],
        failed: &[(String, String)],
    ) -> Result<()> {
        let txn = begin_write(&self.db).await?;
        for chunk in granted.chunks(500) {
            campaign_targets::Entity::update_many()
                .col_expr(campaign_targets::Column::Status, Expr::value("granted"))
                .filter(campaign_targets::Column::CampaignId.eq(campaign_id))
                .filter(campaign_targets::Column::CustomerId.is_in(chunk.iter().map(String::as_str)))
                .exec(&txn)
                .await?;
        }
        for (customer, reason) in failed {
            campaign_targets::Entity::update_many()
                .col_expr(campaign_targets::Column::Status, Expr::value("failed"))
                .col_expr(campaign_targets::Column::Reason, Expr::value(Some(reason.clone())))
                .filter(campaign_targets::Column::CampaignId.eq(campaign_id))
                .filter(campaign_targets::Column::CustomerId.eq(customer.as_str()))
                .exec(&txn)
                .await?;
        }
        let pending = campaign_targets::Entity::find()
            .filter(campaign_targets::Column::CampaignId.eq(campaign_id))
            .filter(campaign_targets::Column::Status.eq("pending"))
            .count(&txn)
            .await?;
        if pending == 0 {
            campaigns::Entity::update_many()
                .col_expr(campaigns::Column::State, Expr::value("completed"))
                .filter(campaigns::Column::CampaignId.eq(campaign_id))
                .exec(&txn)
                .await?;
            tracing::info!(campaign_id, "campaign completed");
        }
        txn.commit().await?;
        Ok(())
    }
}

/// Boxed futures for the mutation closures.
pub type BoxFut<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

fn decode_customer(row: customers::Model) -> Result<CustomerState> {
    Ok(CustomerState {
        customer_id: row.customer_id,
        attributes: serde_json::from_str(&row.attributes)?,
        consent_marketing: row.consent_marketing,
        consent_profiling: row.consent_profiling,
        features: serde_json::from_str(&row.features)?,
        cluster: row.cluster_id,
    })
}

fn decode_segment(row: segments::Model) -> Result<SegmentDef> {
    Ok(SegmentDef {
        segment_id: row.segment_id,
        display_name: row.display_name,
        rule: serde_json::from_str(&row.rule)?,
        created_at: row.created_at,
    })
}

/// Segments in evaluation order (a segment only refers to older ones).
async fn load_segments<C: ConnectionTrait>(db: &C) -> Result<Vec<SegmentDef>> {
    segments::Entity::find()
        .order_by_asc(segments::Column::CreatedAt)
        .order_by_asc(segments::Column::SegmentId)
        .all(db)
        .await?
        .into_iter()
        .map(decode_segment)
        .collect()
}

async fn load_buckets<C: ConnectionTrait>(db: &C, customer_id: &str, since_day: i64) -> Result<Vec<Bucket>> {
    Ok(daily_activity::Entity::find()
        .filter(daily_activity::Column::CustomerId.eq(customer_id))
        .filter(daily_activity::Column::Day.gt(since_day))
        .all(db)
        .await?
        .into_iter()
        .filter_map(|b| {
            Some(Bucket { day: b.day, kind: Kind::parse(&b.kind)?, count: b.count, amount_micros: b.amount_micros })
        })
        .collect())
}

async fn add_to_bucket(txn: &DatabaseTransaction, buckets: &mut Vec<Bucket>, e: &Event) -> Result<()> {
    let day = day_of(e.at_ms);
    if let Some(b) = buckets.iter_mut().find(|b| b.day == day && b.kind == e.kind) {
        b.count += 1;
        b.amount_micros += e.amount_micros;
        daily_activity::Entity::update_many()
            .col_expr(daily_activity::Column::Count, Expr::value(b.count))
            .col_expr(daily_activity::Column::AmountMicros, Expr::value(b.amount_micros))
            .filter(daily_activity::Column::CustomerId.eq(e.customer_id.as_str()))
            .filter(daily_activity::Column::Day.eq(day))
            .filter(daily_activity::Column::Kind.eq(e.kind.as_str()))
            .exec(txn)
            .await?;
        return Ok(());
    }
    // Older than what was loaded, or new: insert, or add to a row that exists.
    let inserted = daily_activity::Entity::insert(daily_activity::ActiveModel {
        customer_id: Set(e.customer_id.clone()),
        day: Set(day),
        kind: Set(e.kind.as_str().into()),
        count: Set(1),
        amount_micros: Set(e.amount_micros),
        ..Default::default()
    })
    .on_conflict_do_nothing_on([
        daily_activity::Column::CustomerId,
        daily_activity::Column::Day,
        daily_activity::Column::Kind,
    ])
    .exec_without_returning(txn)
    .await?;
    if !matches!(inserted, TryInsertResult::Inserted(n) if n > 0) {
        let row = daily_activity::Entity::find()
            .filter(daily_activity::Column::CustomerId.eq(e.customer_id.as_str()))
            .filter(daily_activity::Column::Day.eq(day))
            .filter(daily_activity::Column::Kind.eq(e.kind.as_str()))
            .one(txn)
            .await?;
        if let Some(r) = row {
            daily_activity::Entity::update_many()
                .col_expr(daily_activity::Column::Count, Expr::value(r.count + 1))
                .col_expr(daily_activity::Column::AmountMicros, Expr::value(r.amount_micros + e.amount_micros))
                .filter(daily_activity::Column::Id.eq(r.id))
                .exec(txn)
                .await?;
        }
        return Ok(());
    }
    buckets.push(Bucket { day, kind: e.kind, count: 1, amount_micros: e.amount_micros });
    Ok(())
}

fn daily_map(buckets: &[Bucket]) -> HashMap<(Kind, i64), i64> {
    let mut m = HashMap::new();
    for b in buckets {
        *m.entry((b.kind, b.day)).or_default() += b.count;
    }
    m
}

/// Evaluates every segment for one customer, in order, and writes what changed (membership rows, change log,
/// outbox events). Returns the number of changes.
async fn reevaluate(
    txn: &DatabaseTransaction,
    outbox: &Outbox,
    st: &CustomerState,
    buckets: &[Bucket],
    segments: &[SegmentDef],
    now: i64,
) -> Result<usize> {
    let current: HashSet<String> = segment_members::Entity::find()
        .select_only()
        .column(segment_members::Column::SegmentId)
        .filter(segment_members::Column::CustomerId.eq(st.customer_id.as_str()))
        .into_tuple::<String>()
        .all(txn)
        .await?
        .into_iter()
        .collect();
    let daily = daily_map(buckets);
    let mut decided: HashSet<String> = HashSet::new();
    for seg in segments {
        let subject = Subject {
            customer_id: &st.customer_id,
            features: &st.features,
            attributes: &st.attributes,
            cluster: st.cluster,
            daily: &daily,
            today: day_of(now),
            now_ms: now,
            memberships: &decided,
        };
        if rules::evaluate(&seg.rule, &subject, "condition", &mut None) {
            decided.insert(seg.segment_id.clone());
        }
    }
    let mut changes = 0;
    for seg in segments {
        let (was, is) = (current.contains(&seg.segment_id), decided.contains(&seg.segment_id));
        if was == is {
            continue;
        }
        changes += 1;
        if is {
            segment_members::Entity::insert(segment_members::ActiveModel {
                segment_id: Set(seg.segment_id.clone()),
                customer_id: Set(st.customer_id.clone()),
                entered_at: Set(now),
                ..Default::default()
            })
            .exec_without_returning(txn)
            .await?;
        } else {
            segment_members::Entity::delete_many()
                .filter(segment_members::Column::SegmentId.eq(seg.segment_id.as_str()))
                .filter(segment_members::Column::CustomerId.eq(st.customer_id.as_str()))
                .exec(txn)
                .await?;
        }
        segment_changes::Entity::insert(segment_changes::ActiveModel {
            segment_id: Set(seg.segment_id.clone()),
            customer_id: Set(st.customer_id.clone()),
            entered: Set(is),
            at: Set(now),
            ..Default::default()
        })
        .exec_without_returning(txn)
        .await?;
        let payload = event::Payload::SegmentMembershipChanged(SegmentMembershipChanged {
            segment_id: seg.segment_id.clone(),
            entered: is,
        });
        outbox.publish(txn, &st.customer_id, payload, now).await?;
    }
    Ok(changes)
}

/// The domain error of a mutation whose insert met a concurrent twin's row.
fn clash(method: &str) -> Option<SegmentationError> {
    Some(match method {
        "CreateSegment" => SegmentationError::SegmentExists,
        "TriggerCampaign" => SegmentationError::CampaignExists,
        "TrainModel" => SegmentationError::TrainingRunning,
        _ => return None,
    })
}
