//! Customers: ingestion of events (features, buckets, online cluster assignment, segment re-evaluation), consent
//! and attributes, erasure with its tombstone, and the daily ageing of windows.
use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    sync::Arc,
};

use rapport_kit::{
    db::begin_write,
    frame::{Done, Key},
    idempotency, lease,
};
use rapport_outbox::{inbox, sink};
use rapport_proto::{events::v1::event, segmentation::v1 as pb};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Alias, Expr, OnConflict},
};

use super::{Result, SegmentDef, Store, decode_customer, load_buckets_of, load_segments, memberships_of, reevaluate};
use crate::{
    api::DOMAIN,
    domain::{
        day_of,
        features::{Bucket, Event, Features},
        model::ModelSpec,
    },
    entities::{campaign_targets, customers, daily_activity, segment_changes, segment_members},
    error::SegmentationError,
};

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

impl Store {
    /// Applies events, each event id once, none about an erased customer; returns (applied, skipped). One
    /// transaction per call.
    pub async fn ingest(&self, events: Vec<Event>) -> Result<(i64, i64)> {
        let now = self.now();
        let total = events.len() as i64;
        let txn = begin_write(&self.db).await?;
        // The customers' locks first (as the sink takes them), so an erasure under way is waited for, not written
        // around.
        lease::lock_customers(&txn, DOMAIN, &self.pseudonyms, events.iter().map(|e| e.customer_id.as_str())).await?;
        // Each event id once (one statement per thousand ids), none about an erased customer (one query).
        let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
        let mut new_ids = inbox::apply_many(&txn, &ids, "ingest", now).await?;
        let customers: BTreeSet<&str> = events.iter().map(|e| e.customer_id.as_str()).collect();
        let erased = sink::erased_among(&txn, &self.pseudonyms, &customers.into_iter().collect::<Vec<_>>()).await?;
        let fresh: Vec<Event> =
            events.into_iter().filter(|e| new_ids.remove(&e.event_id) && !erased.contains(&e.customer_id)).collect();
        let applied = fresh.len() as i64;
        self.apply_in(&txn, fresh, now).await?;
        txn.commit().await?;
        self.outbox.notify();
        Ok((applied, total - applied))
    }

    /// Applies fresh events inside `txn`: per customer, in customer-id order (so concurrent batches lock customers
    /// in the same order and never deadlock), each customer's events in time order; the daily buckets are then
    /// written in one statement per thousand (customer, day, kind).
    pub async fn apply_in(&self, txn: &DatabaseTransaction, events: Vec<Event>, now: i64) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let today = day_of(now);
        let since = today - 400;
        let segments = load_segments(txn).await?;
        let model = self.active_model(txn).await?;
        let mut groups: BTreeMap<String, Vec<Event>> = BTreeMap::new();
        for e in events {
            groups.entry(e.customer_id.clone()).or_default().push(e);
        }
        let ids: Vec<String> = groups.keys().cloned().collect();
        let mut states = self.lock_or_create_many(txn, &ids, now).await?;
        let mut buckets = load_buckets_of(txn, &ids, since).await?;
        let mut added = BucketDeltas::new();
        for (st, (customer_id, mut fresh)) in states.iter_mut().zip(groups) {
            debug_assert_eq!(st.customer_id, customer_id, "states come back in the order of ids");
            fresh.sort_by_key(|e| e.at_ms);
            let held = buckets.entry(st.customer_id.clone()).or_default();
            st.features.age(today.max(st.features.window_day), held);
            for e in &fresh {
                st.features.apply(e);
                add_to_bucket(held, &mut added, since, e);
            }
        }
        self.settle_many(txn, &mut states, &buckets, &segments, model, now).await?;
        write_buckets(txn, added).await
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
    pub async fn forget_customer(&self, key: &Key, customer_id: &str) -> Result<pb::ForgetCustomerResponse> {
        let customer_id = customer_id.to_string();
        self.frame
            .once(self, key, "ForgetCustomer", move |s, txn, now| {
                Box::pin(async move {
                    lease::lock_customer(txn, DOMAIN, &s.pseudonyms, &customer_id).await?;
                    let known =
                        customers::Entity::find_by_id(customer_id.clone()).lock_exclusive().one(txn).await?.is_some();
                    s.forget_in(txn, &customer_id).await?;
                    sink::bury(txn, &s.pseudonyms, &customer_id, now).await?;
                    let ev = event::Payload::CustomerForgotten(rapport_proto::events::v1::CustomerForgotten {});
                    s.outbox.publish(txn, &customer_id, ev, now).await?;
                    tracing::info!(known, "customer erased from segmentation");
                    Ok(Done::reply(pb::ForgetCustomerResponse { found: known }))
                })
            })
            .await
    }

    /// Creates or updates a customer's attributes and consent; returns whether it was new.
    pub async fn upsert_customer(
        &self,
        key: &Key,
        customer_id: &str,
        attributes: BTreeMap<String, String>,
        consent_marketing: bool,
        consent_profiling: bool,
    ) -> Result<pb::UpsertCustomerResponse> {
        let customer_id = customer_id.to_string();
        self.frame
            .once(self, key, "UpsertCustomer", move |s, txn, now| {
                Box::pin(async move {
                    lease::lock_customer(txn, DOMAIN, &s.pseudonyms, &customer_id).await?;
                    if sink::is_erased(txn, &s.pseudonyms, &customer_id).await? {
                        return Err(SegmentationError::CustomerErased);
                    }
                    let existed = customers::Entity::find_by_id(customer_id.clone()).one(txn).await?.is_some();
                    let Some(mut st) = s.lock_or_create_many(txn, std::slice::from_ref(&customer_id), now).await?.pop()
                    else {
                        return Err(SegmentationError::CustomerNotFound);
                    };
                    st.attributes = attributes;
                    st.consent_marketing = consent_marketing;
                    st.consent_profiling = consent_profiling;
                    let buckets = load_buckets_of(txn, std::slice::from_ref(&customer_id), day_of(now) - 400).await?;
                    let segments = load_segments(txn).await?;
                    let model = s.active_model(txn).await?;
                    s.settle_many(txn, std::slice::from_mut(&mut st), &buckets, &segments, model, now).await?;
                    Ok(Done::about([customer_id], pb::UpsertCustomerResponse { created: !existed }))
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

    /// Customers `ids` (distinct), created when first seen, locked in the database's id order, decoded in the order
    /// of `ids`.
    async fn lock_or_create_many(
        &self,
        txn: &DatabaseTransaction,
        ids: &[String],
        now: i64,
    ) -> Result<Vec<CustomerState>> {
        let fresh = serde_json::to_string(&Features { window_day: day_of(now), ..Features::default() })?;
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(rapport_kit::db::ROWS_PER_STATEMENT) {
            // Customers first seen through their events have given no consent yet: no profiling, no offers, until
            // UpsertCustomer records what they chose.
            let rows = chunk.iter().map(|id| customers::ActiveModel {
                customer_id: Set(id.clone()),
                attributes: Set("{}".into()),
                consent_marketing: Set(false),
                consent_profiling: Set(false),
                features: Set(fresh.clone()),
                cluster_id: Set(None),
                model_version: Set(None),
                window_day: Set(day_of(now)),
                updated_at: Set(now),
            });
            customers::Entity::insert_many(rows)
                .on_conflict_do_nothing_on([customers::Column::CustomerId])
                .exec_without_returning(txn)
                .await?;
            let rows = customers::Entity::find()
                .filter(customers::Column::CustomerId.is_in(chunk.iter().map(String::as_str)))
                .order_by_asc(customers::Column::CustomerId)
                .lock_exclusive()
                .all(txn)
                .await?;
            // Locked in the database's order of ids, returned in the caller's: the database's collation need not
            // sort as Rust does (`en_US` puts "apple" before "Zed"), and callers pair the states with their input.
            let mut found: HashMap<String, customers::Model> =
                rows.into_iter().map(|r| (r.customer_id.clone(), r)).collect();
            for id in chunk {
                out.push(decode_customer(found.remove(id).ok_or(SegmentationError::CustomerNotFound)?)?);
            }
        }
        Ok(out)
    }

    /// Places customers in the active model (`model`), re-evaluates their segments against their memberships
    /// (read in one query per thousand) and saves them (one statement per thousand). Returns the number of
    /// membership changes.
    async fn settle_many(
        &self,
        txn: &DatabaseTransaction,
        states: &mut [CustomerState],
        buckets: &HashMap<String, Vec<Bucket>>,
        segments: &[SegmentDef],
        model: Option<(i64, Arc<ModelSpec>)>,
        now: i64,
    ) -> Result<usize> {
        let members = if segments.is_empty() {
            HashMap::new()
        } else {
            let ids: Vec<String> = states.iter().map(|st| st.customer_id.clone()).collect();
            memberships_of(txn, &ids).await?
        };
        let none = HashSet::new();
        let mut changes = 0;
        for st in states.iter_mut() {
            st.cluster = match (&model, st.consent_profiling) {
                (Some((_, spec)), true) => Some(spec.place(&st.features, now).cluster_id),
                _ => None,
            };
            let held = buckets.get(&st.customer_id).map_or(&[][..], Vec::as_slice);
            let current = members.get(&st.customer_id).unwrap_or(&none);
            changes += reevaluate(txn, &self.outbox, st, held, segments, current, now).await?;
        }
        save_customers(txn, states, model.map(|(v, _)| v), now).await?;
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
            let mut states = page.into_iter().map(decode_customer).collect::<Result<Vec<_>>>()?;
            let ids: Vec<String> = states.iter().map(|st| st.customer_id.clone()).collect();
            let buckets = load_buckets_of(&txn, &ids, today - 400).await?;
            for st in states.iter_mut().filter(|st| st.features.window_day < today) {
                st.features.age(today, buckets.get(&st.customer_id).map_or(&[][..], Vec::as_slice));
                aged += 1;
            }
            let model = self.active_model(&txn).await?;
            changes += self.settle_many(&txn, &mut states, &buckets, &segments, model, now).await? as i64;
            txn.commit().await?;
            after = last;
        }
        self.outbox.notify();
        Ok((aged, changes))
    }
}

/// Events and amounts to add to the daily buckets, by (customer, day, kind).
type BucketDeltas = BTreeMap<(String, i64, &'static str), (i64, i64)>;

/// Counts `e` in its customer's loaded buckets (those after day `since`, as [`load_buckets`] reads them) and in
/// what is to be written.
fn add_to_bucket(buckets: &mut Vec<Bucket>, added: &mut BucketDeltas, since: i64, e: &Event) {
    let day = day_of(e.at_ms);
    let d = added.entry((e.customer_id.clone(), day, e.kind.as_str())).or_default();
    d.0 += 1;
    d.1 += e.amount_micros;
    if day <= since {
        return;
    }
    match buckets.iter_mut().find(|b| b.day == day && b.kind == e.kind) {
        Some(b) => {
            b.count += 1;
            b.amount_micros += e.amount_micros;
        }
        None => buckets.push(Bucket { day, kind: e.kind, count: 1, amount_micros: e.amount_micros }),
    }
}

/// Adds the counted events to the stored buckets: a multi-row upsert per thousand rows, in key order (so that
/// concurrent writers take row locks in the same order).
async fn write_buckets(txn: &DatabaseTransaction, added: BucketDeltas) -> Result<()> {
    use daily_activity::Column as C;
    use sea_orm::sea_query::ExprTrait;
    let rows: Vec<_> = added.into_iter().collect();
    for chunk in rows.chunks(rapport_kit::db::ROWS_PER_STATEMENT) {
        let models = chunk.iter().map(|((customer_id, day, kind), (count, amount))| daily_activity::ActiveModel {
            customer_id: Set(customer_id.clone()),
            day: Set(*day),
            kind: Set((*kind).to_string()),
            count: Set(*count),
            amount_micros: Set(*amount),
            ..Default::default()
        });
        let excluded = |c: C| Expr::col((Alias::new("excluded"), c));
        let on_conflict = OnConflict::columns([C::CustomerId, C::Day, C::Kind])
            .value(C::Count, Expr::col((daily_activity::Entity, C::Count)).add(excluded(C::Count)))
            .value(C::AmountMicros, Expr::col((daily_activity::Entity, C::AmountMicros)).add(excluded(C::AmountMicros)))
            .to_owned();
        daily_activity::Entity::insert_many(models).on_conflict(on_conflict).exec_without_returning(txn).await?;
    }
    Ok(())
}

/// Saves customers' attributes, consent, features and placement (`model_version`): rows already locked in this
/// transaction, written by a multi-row upsert per thousand, in id order.
async fn save_customers(
    txn: &DatabaseTransaction,
    states: &[CustomerState],
    model_version: Option<i64>,
    now: i64,
) -> Result<()> {
    use customers::Column as C;
    for chunk in states.chunks(rapport_kit::db::ROWS_PER_STATEMENT) {
        let rows = chunk
            .iter()
            .map(|st| {
                Ok(customers::ActiveModel {
                    customer_id: Set(st.customer_id.clone()),
                    attributes: Set(serde_json::to_string(&st.attributes)?),
                    consent_marketing: Set(st.consent_marketing),
                    consent_profiling: Set(st.consent_profiling),
                    features: Set(serde_json::to_string(&st.features)?),
                    cluster_id: Set(st.cluster),
                    model_version: Set(model_version),
                    window_day: Set(st.features.window_day),
                    updated_at: Set(now),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let on_conflict = OnConflict::column(C::CustomerId)
            .update_columns([
                C::Attributes,
                C::ConsentMarketing,
                C::ConsentProfiling,
                C::Features,
                C::ClusterId,
                C::ModelVersion,
                C::WindowDay,
                C::UpdatedAt,
            ])
            .to_owned();
        customers::Entity::insert_many(rows).on_conflict(on_conflict).exec_without_returning(txn).await?;
    }
    Ok(())
}
