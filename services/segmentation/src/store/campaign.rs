//! Campaigns: a segment snapshotted into targets (consenting members, a stable holdout), granted by the campaign
//! worker in batches, with counters and failures by reason.
use std::collections::{BTreeMap, HashSet};

use rapport_kit::{
    db::begin_write,
    frame::{Done, Key},
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, sea_query::Expr,
};

use super::{Result, Store};
use crate::{
    domain::bucket,
    entities::{campaign_targets, campaigns, customers, segment_members, segments},
    error::SegmentationError,
};

/// A campaign with its counters.
#[derive(Debug, Clone, PartialEq)]
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
    pub failed_by_reason: BTreeMap<String, i64>,
    /// Created at.
    pub created_at: i64,
}

impl Store {
    /// Snapshots the segment into a campaign (holdout by stable bucket, consenting members only).
    pub async fn trigger_campaign(
        &self,
        key: &Key,
        campaign_id: &str,
        segment_id: &str,
        offer_id: &str,
        holdout: i32,
    ) -> Result<CampaignView> {
        let (campaign_id, segment_id, offer_id) =
            (campaign_id.to_string(), segment_id.to_string(), offer_id.to_string());
        let id = campaign_id.clone();
        let traceparent = Some(rapport_telemetry::current_traceparent()).filter(|t| !t.is_empty());
        self.frame
            .once(self, key, "TriggerCampaign", move |_s, txn, now| {
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
                                .col_expr(campaigns::Column::Traceparent, Expr::value(traceparent.clone()))
                                .filter(campaigns::Column::CampaignId.eq(campaign_id.as_str()))
                                .exec(txn)
                                .await?;
                            tracing::info!(campaign_id = %campaign_id, "campaign resumed");
                        }
                        return Ok(Done::reply(()).on("campaign", &campaign_id));
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
                        traceparent: Set(traceparent.clone()),
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
                    Ok(Done::reply(()).on("campaign", &campaign_id))
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

    /// Campaigns still granting: id, offer and the trace context of the call that triggered it (empty if none).
    pub async fn running_campaigns(&self) -> Result<Vec<(String, String, String)>> {
        Ok(campaigns::Entity::find()
            .filter(campaigns::Column::State.eq("running"))
            .order_by_asc(campaigns::Column::CreatedAt)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|c| (c.campaign_id, c.offer_id, c.traceparent.unwrap_or_default()))
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
