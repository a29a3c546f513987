//! Rule segments: creation (materialised over every customer), deletion when unused, members, and why a customer
//! is or is not in one.
use std::collections::HashSet;

use rapport_kit::{
    db::begin_write,
    frame::{Done, Key},
};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{
    Result, Store, daily_map, decode_customer, decode_segment, load_buckets, load_buckets_of, load_segments,
    memberships_of, reevaluate,
};
use crate::{
    domain::{
        day_of,
        model::Placement,
        rules::{self, Rule, Step},
    },
    entities::{campaigns, customers, segment_members, segments},
    error::SegmentationError,
};

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

impl Store {
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
    pub async fn create_segment(&self, key: &Key, segment_id: &str, display_name: &str, rule: Rule) -> Result<i64> {
        let (segment_id, display_name) = (segment_id.to_string(), display_name.to_string());
        let sid = segment_id.clone();
        self.frame
            .once(self, key, "CreateSegment", move |_s, txn, now| {
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
                            e.violations
                                .push(("segment.condition".into(), format!("refers to unknown segment {dep:?}")));
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
                    Ok(Done::reply(()).on("segment", &segment_id))
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
            let states = page.into_iter().map(decode_customer).collect::<Result<Vec<_>>>()?;
            let ids: Vec<String> = states.iter().map(|st| st.customer_id.clone()).collect();
            let buckets = load_buckets_of(&txn, &ids, today - 400).await?;
            let members = memberships_of(&txn, &ids).await?;
            let none = HashSet::new();
            for st in &states {
                let (b, m) = (buckets.get(&st.customer_id), members.get(&st.customer_id));
                reevaluate(
                    &txn,
                    &self.outbox,
                    st,
                    b.map_or(&[][..], Vec::as_slice),
                    &segments,
                    m.unwrap_or(&none),
                    now,
                )
                .await?;
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
    pub async fn delete_segment(&self, key: &Key, segment_id: &str) -> Result<()> {
        let segment_id = segment_id.to_string();
        self.frame
            .once(self, key, "DeleteSegment", move |_s, txn, _now| {
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
                    Ok(Done::reply(()).on("segment", &segment_id))
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

    /// The generated label of `cluster` in the active model ("" when there is none).
    pub async fn cluster_label(&self, cluster: Option<i32>) -> Result<String> {
        let Some(id) = cluster else { return Ok(String::new()) };
        let Some((_, spec)) = self.active_model(&self.db).await? else { return Ok(String::new()) };
        Ok(spec.cluster(id).map(|c| c.label.clone()).unwrap_or_default())
    }

    /// Why a customer is (or is not) in a segment: every condition with the customer's value.
    pub async fn explain_segment(&self, customer_id: &str, segment_id: &str) -> Result<(bool, Vec<Step>)> {
        let (def, _) = self.segment(segment_id).await?;
        let st = self.customer(customer_id).await?;
        let now = self.now();
        let buckets = load_buckets(&self.db, customer_id, day_of(now) - 400).await?;
        let memberships: HashSet<String> = self.customer_segments(customer_id).await?.0.into_iter().collect();
        let daily = daily_map(&buckets);
        let subject = st.subject(&daily, now, &memberships);
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
}
