//! Persistence of segmentation through sea-orm, one file per aggregate around the shared transaction frame
//! ([`rapport_kit::frame`]), and the work that reads and writes it:
//!
//! - `customer.rs`: ingestion (features, buckets, online cluster assignment, segment re-evaluation, membership
//!   events in the outbox), consent and attributes, erasure, ageing;
//! - `training.rs`: training jobs (one at a time across replicas) and model versions;
//! - `segment.rs`: rule segments, their members and explanations;
//! - `campaign.rs`: campaign snapshots, targets and counters.
//!
//! The helpers below (decoding rows, loading buckets and segments, re-evaluating a customer) are shared by them.
use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, RwLock},
};

use rapport_kit::{clock::Clock, frame::Frame, lease::Lease, pseudonym::Pseudonyms};
use rapport_outbox::Outbox;
use rapport_proto::events::v1::{SegmentMembershipChanged, event};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, sea_query::Expr,
};

use crate::{
    domain::{
        day_of,
        features::{Bucket, Kind},
        model::ModelSpec,
        rules::{self, Subject},
    },
    entities::{customers, daily_activity, models, segment_changes, segment_members, segments, training_jobs},
    error::SegmentationError,
};

mod campaign;
mod customer;
mod segment;
mod training;

pub use campaign::CampaignView;
pub use customer::CustomerState;
pub use segment::SegmentDef;
pub use training::{JobView, TrainParams};

type Result<T> = std::result::Result<T, SegmentationError>;

/// Held while a training job runs: one at a time across replicas.
const TRAINING_LEASE: &str = "segmentation.training";

/// The active model, kept in memory for online assignment.
pub type ActiveModel = Arc<RwLock<Option<(i64, Arc<ModelSpec>)>>>;

/// The segmentation database.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    frame: Frame,
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
        let wake = outbox.clone();
        let frame = Frame::new(db.clone(), clock.clone(), &pseudonyms).after_commit(move || wake.notify());
        let store = Self { db, frame, clock, model: Arc::new(RwLock::new(None)), outbox, pseudonyms };
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
}

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

fn daily_map(buckets: &[Bucket]) -> HashMap<(Kind, i64), i64> {
    let mut m = HashMap::new();
    for b in buckets {
        *m.entry((b.kind, b.day)).or_default() += b.count;
    }
    m
}

/// Daily buckets after day `since_day` of each of `ids` (one query per thousand ids); a customer without any has
/// no entry.
async fn load_buckets_of<C: ConnectionTrait>(
    db: &C,
    ids: &[String],
    since_day: i64,
) -> Result<HashMap<String, Vec<Bucket>>> {
    let mut out: HashMap<String, Vec<Bucket>> = HashMap::new();
    for chunk in ids.chunks(rapport_kit::db::ROWS_PER_STATEMENT) {
        let rows = daily_activity::Entity::find()
            .filter(daily_activity::Column::CustomerId.is_in(chunk.iter().map(String::as_str)))
            .filter(daily_activity::Column::Day.gt(since_day))
            .all(db)
            .await?;
        for b in rows {
            if let Some(kind) = Kind::parse(&b.kind) {
                let bucket = Bucket { day: b.day, kind, count: b.count, amount_micros: b.amount_micros };
                out.entry(b.customer_id).or_default().push(bucket);
            }
        }
    }
    Ok(out)
}

/// The segments each of `ids` is a member of (one query per thousand ids).
async fn memberships_of<C: ConnectionTrait>(db: &C, ids: &[String]) -> Result<HashMap<String, HashSet<String>>> {
    let mut out: HashMap<String, HashSet<String>> = HashMap::new();
    for chunk in ids.chunks(rapport_kit::db::ROWS_PER_STATEMENT) {
        let rows = segment_members::Entity::find()
            .select_only()
            .column(segment_members::Column::CustomerId)
            .column(segment_members::Column::SegmentId)
            .filter(segment_members::Column::CustomerId.is_in(chunk.iter().map(String::as_str)))
            .into_tuple::<(String, String)>()
            .all(db)
            .await?;
        for (customer_id, segment_id) in rows {
            out.entry(customer_id).or_default().insert(segment_id);
        }
    }
    Ok(out)
}

/// Evaluates every segment for one customer, in order, and writes what changed against its `current`
/// memberships (membership rows, change log, outbox events). Returns the number of changes.
async fn reevaluate(
    txn: &DatabaseTransaction,
    outbox: &Outbox,
    st: &CustomerState,
    buckets: &[Bucket],
    segments: &[SegmentDef],
    current: &HashSet<String>,
    now: i64,
) -> Result<usize> {
    let daily = daily_map(buckets);
    let mut decided: HashSet<String> = HashSet::new();
    for seg in segments {
        let subject = st.subject(&daily, now, &decided);
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

impl CustomerState {
    /// The customer as segment rules see it: with its daily counts, at `now`, with the memberships decided so far.
    fn subject<'a>(
        &'a self,
        daily: &'a HashMap<(Kind, i64), i64>,
        now: i64,
        memberships: &'a HashSet<String>,
    ) -> Subject<'a> {
        Subject {
            customer_id: &self.customer_id,
            features: &self.features,
            attributes: &self.attributes,
            cluster: self.cluster,
            daily,
            today: day_of(now),
            now_ms: now,
            memberships,
        }
    }
}
