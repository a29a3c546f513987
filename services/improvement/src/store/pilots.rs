//! Pilots: an improvement tried on a segment's customers (asked of segmentation before the transaction) split into
//! the pilot group and a holdout by a stable draw; compared when read, on complaints of the improvement's themes and
//! on NPS during the pilot.
use std::collections::{BTreeSet, HashMap};

use rapport_kit::frame::{Done, Key};
use rapport_proto::improvement::v1 as pb;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::{Result, Store, signals::SURVEY_COMMENT};
use crate::{
    domain::pilot::{self, Group},
    entities::{improvements, pilot_members, pilots, signals},
    error::ImprovementError,
    wire,
};

/// Most pilots listed (the newest).
const MAX_LISTED: u64 = 100;

/// Taken by a pilot's start, and shared by erasures.
pub(super) const PILOTS_LOCK: &str = "improvement.pilots";

/// A pilot to start.
#[derive(Debug, Clone)]
pub struct PilotCmd {
    /// The improvement.
    pub improvement_id: String,
    /// The segment.
    pub segment_id: String,
    /// Its members, as segmentation gave them.
    pub members: Vec<String>,
    /// Holdout share, %.
    pub holdout_percent: i32,
    /// Who starts it.
    pub actor: String,
}

impl Store {
    /// The stored answer of an earlier StartPilot with `key`, if any (a retry gets it without asking segmentation).
    pub async fn started_pilot(&self, key: &Key) -> Result<Option<pb::StartPilotResponse>> {
        self.frame.stored(key, "StartPilot").await
    }

    /// Starts a pilot, once per request: the members not erased here are drawn into the pilot group or the holdout.
    pub async fn start_pilot(&self, key: &Key, cmd: PilotCmd) -> Result<pb::StartPilotResponse> {
        self.frame
            .once(self, key, "StartPilot", move |s, txn, now| {
                Box::pin(async move {
                    // Pilots start one at a time, never while an erasure is under way (it takes the lock shared):
                    // the members checked against the tombstones below are the ones written.
                    rapport_kit::lease::lock_in_txn(txn, PILOTS_LOCK).await?;
                    s.piloting_in(txn, &cmd.improvement_id, &cmd.actor, now).await?;
                    let pilot_id = format!("pil-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
                    let members = s.not_erased(txn, &cmd.members).await?;
                    if members.is_empty() {
                        return Err(ImprovementError::SegmentEmpty(cmd.segment_id.clone()));
                    }
                    let row = pilots::Model {
                        pilot_id: pilot_id.clone(),
                        improvement_id: cmd.improvement_id.clone(),
                        segment_id: cmd.segment_id.clone(),
                        holdout_percent: cmd.holdout_percent,
                        started_at: now,
                        ended_at: None,
                        started_by: cmd.actor.clone(),
                    };
                    pilots::Entity::insert(pilots::ActiveModel::from(row.clone())).exec_without_returning(txn).await?;
                    for chunk in members.chunks(500) {
                        let rows = chunk.iter().map(|c| pilot_members::ActiveModel {
                            pilot_id: Set(pilot_id.clone()),
                            customer_id: Set(c.clone()),
                            grp: Set(pilot::group_of(&pilot_id, c, cmd.holdout_percent).as_str().into()),
                        });
                        pilot_members::Entity::insert_many(rows).exec_without_returning(txn).await?;
                    }
                    tracing::info!(pilot_id = %pilot_id, improvement_id = %cmd.improvement_id, customers = members.len(), "pilot started");
                    let improvement = s.improvement_row(txn, &cmd.improvement_id).await?;
                    let pilot = s.pilot_pb_in(txn, &row, &improvement, now).await?;
                    Ok(Done::reply(pb::StartPilotResponse { pilot: Some(pilot) }))
                })
            })
            .await
    }

    /// `customers` without those erased here, sorted, once each.
    async fn not_erased(&self, txn: &DatabaseTransaction, customers: &[String]) -> Result<Vec<String>> {
        use rapport_outbox::entities::erased_customer;
        let mut unique: Vec<String> = customers.to_vec();
        unique.sort();
        unique.dedup();
        let mut erased = BTreeSet::new();
        for chunk in unique.chunks(500) {
            let pseudonyms: HashMap<String, &String> = chunk.iter().map(|c| (self.pseudonyms.of(c), c)).collect();
            let found: Vec<String> = erased_customer::Entity::find()
                .select_only()
                .column(erased_customer::Column::Pseudonym)
                .filter(erased_customer::Column::Pseudonym.is_in(pseudonyms.keys().cloned().collect::<Vec<_>>()))
                .into_tuple()
                .all(txn)
                .await?;
            erased.extend(found.iter().filter_map(|p| pseudonyms.get(p).map(|c| (*c).clone())));
        }
        Ok(unique
            .into_iter()
            .filter(|c| !erased.contains(c) && !rapport_kit::pseudonym::Pseudonyms::is_pseudonym(c))
            .collect())
    }

    /// Ends a running pilot, once per request.
    pub async fn end_pilot(&self, key: &Key, pilot_id: String) -> Result<pb::EndPilotResponse> {
        self.frame
            .once(self, key, "EndPilot", move |s, txn, now| {
                Box::pin(async move {
                    let mut row = pilots::Entity::find_by_id(pilot_id.clone())
                        .lock_exclusive()
                        .one(txn)
                        .await?
                        .ok_or_else(|| ImprovementError::PilotNotFound(pilot_id.clone()))?;
                    if row.ended_at.is_some() {
                        return Err(ImprovementError::PilotEnded);
                    }
                    row.ended_at = Some(now);
                    pilots::Entity::update(pilots::ActiveModel::from(row.clone()).reset_all()).exec(txn).await?;
                    tracing::info!(pilot_id = %pilot_id, "pilot ended");
                    let improvement = s.improvement_row(txn, &row.improvement_id).await?;
                    let pilot = s.pilot_pb_in(txn, &row, &improvement, now).await?;
                    Ok(Done::reply(pb::EndPilotResponse { pilot: Some(pilot) }))
                })
            })
            .await
    }

    /// A pilot compared with its holdout.
    pub async fn pilot(&self, pilot_id: &str) -> Result<pb::Pilot> {
        let row = pilots::Entity::find_by_id(pilot_id.to_string())
            .one(&self.db)
            .await?
            .ok_or_else(|| ImprovementError::PilotNotFound(pilot_id.into()))?;
        let improvement = self.improvement_row(&self.db, &row.improvement_id).await?;
        self.pilot_pb(&row, &improvement, self.now()).await
    }

    /// Pilots (of one improvement, or all), newest first.
    pub async fn pilots(&self, improvement_id: Option<&str>) -> Result<Vec<pb::Pilot>> {
        let mut q = pilots::Entity::find().order_by_desc(pilots::Column::StartedAt).limit(MAX_LISTED);
        if let Some(id) = improvement_id {
            q = q.filter(pilots::Column::ImprovementId.eq(id));
        }
        let now = self.now();
        let mut out = Vec::new();
        for row in q.all(&self.db).await? {
            let improvement = self.improvement_row(&self.db, &row.improvement_id).await?;
            out.push(self.pilot_pb(&row, &improvement, now).await?);
        }
        Ok(out)
    }

    /// The group of a customer in a pilot, and whether the pilot runs.
    pub async fn pilot_group(&self, pilot_id: &str, customer_id: &str) -> Result<(Option<Group>, bool)> {
        let row = pilots::Entity::find_by_id(pilot_id.to_string())
            .one(&self.db)
            .await?
            .ok_or_else(|| ImprovementError::PilotNotFound(pilot_id.into()))?;
        let member =
            pilot_members::Entity::find_by_id((pilot_id.to_string(), customer_id.to_string())).one(&self.db).await?;
        Ok((member.and_then(|m| Group::parse(&m.grp)), row.ended_at.is_none()))
    }

    pub(super) async fn pilot_pb(
        &self,
        row: &pilots::Model,
        improvement: &improvements::Model,
        now: i64,
    ) -> Result<pb::Pilot> {
        self.pilot_pb_in(&self.db, row, improvement, now).await
    }

    /// A pilot with its comparison over its time so far.
    async fn pilot_pb_in<C: sea_orm::ConnectionTrait>(
        &self,
        db: &C,
        row: &pilots::Model,
        improvement: &improvements::Model,
        now: i64,
    ) -> Result<pb::Pilot> {
        let (from, to) = (row.started_at, row.ended_at.unwrap_or(now).max(row.started_at));
        let members: HashMap<String, Group> = pilot_members::Entity::find()
            .filter(pilot_members::Column::PilotId.eq(row.pilot_id.as_str()))
            .all(db)
            .await?
            .into_iter()
            .filter_map(|m| Group::parse(&m.grp).map(|g| (m.customer_id, g)))
            .collect();
        let settled = self.settlements(db).await?;
        let themes: Vec<String> = serde_json::from_str(&improvement.themes)?;
        let mine: BTreeSet<String> = themes.iter().map(|t| settled.resolve(t).to_string()).collect();
        let raised: Vec<(Option<String>, String, Option<String>, String)> = signals::Entity::find()
            .select_only()
            .column(signals::Column::CustomerId)
            .column(signals::Column::Theme)
            .column(signals::Column::Discovered)
            .column(signals::Column::Origin)
            .filter(signals::Column::OccurredAt.gte(from))
            .filter(signals::Column::OccurredAt.lt(to))
            .filter(signals::Column::CustomerId.is_not_null())
            .into_tuple()
            .all(db)
            .await?;
        let complainers: BTreeSet<String> = raised
            .into_iter()
            .filter(|(_, t, d, o)| mine.contains(settled.effective(t, d.as_deref(), o == SURVEY_COMMENT)))
            .filter_map(|(c, ..)| c)
            .collect();
        let answers: Vec<(String, i32)> =
            self.answers_in(db, from, to).await?.into_iter().map(|a| (a.customer, a.score)).collect();
        let comparison = pilot::compare(&members, &complainers, &answers);
        Ok(wire::pilot_pb(row, &comparison))
    }
}
