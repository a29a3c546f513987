//! The backlog: improvements created, changed and moved along their lifecycle once per request, under their row's
//! lock, each change of status kept with its actor and note; scores computed when read (reach and impact from the
//! signals, confidence and effort from people); shipping tells feedback (in the same transaction), and a shipped
//! improvement's before/after is measured when read.
use std::collections::BTreeSet;

use rapport_kit::frame::{Done, Key};
use rapport_proto::{
    events::v1::{ImprovementShipped, event},
    improvement::v1 as pb,
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, sea_query::Expr,
};

use super::{
    Result, Store,
    signals::{CASE, SURVEY_COMMENT},
};
use crate::{
    domain::{
        DAY_MS, Status, UNCLASSIFIED,
        impact::{self, Impact, Raised},
        priority::{self, Score},
    },
    entities::{improvement_history as history, improvements as rows, pilots, signals},
    error::ImprovementError,
    wire,
};

/// A signal as the before/after reads it: customer, feedback's theme, discovered theme, when, origin.
type Placed = (Option<String>, String, Option<String>, i64, String);

/// Most cases of discovered themes a shipped improvement names to feedback (the newest).
const MAX_CASES: u64 = 5_000;

/// A new improvement.
#[derive(Debug, Clone)]
pub struct ImprovementCmd {
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Themes it addresses.
    pub themes: Vec<String>,
    /// 0-1.
    pub confidence: f64,
    /// Person-weeks.
    pub effort_weeks: f64,
    /// Who proposes it.
    pub actor: String,
}

/// Changes to an improvement (None: unchanged).
#[derive(Debug, Clone, Default)]
pub struct ImprovementPatch {
    /// Title.
    pub title: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Themes.
    pub themes: Option<Vec<String>>,
    /// Confidence.
    pub confidence: Option<f64>,
    /// Effort.
    pub effort_weeks: Option<f64>,
}

/// A move along the lifecycle.
#[derive(Debug, Clone)]
pub struct StatusCmd {
    /// The improvement.
    pub improvement_id: String,
    /// Where to.
    pub to: Status,
    /// Why.
    pub note: String,
    /// For a duplicate: of which.
    pub duplicate_of: Option<String>,
    /// For shipping: re-survey the customers of the noted cases.
    pub resurvey: bool,
    /// Who.
    pub actor: String,
}

impl Store {
    /// The score of `row` now, from the signals of the last weeks (`facts`, of [`Store::reach_facts`]).
    fn score_in(
        &self,
        row: &rows::Model,
        facts: &std::collections::BTreeMap<String, Vec<crate::domain::analytics::SignalFact>>,
        settled: &crate::domain::Settlements,
        now: i64,
    ) -> Result<Score> {
        let themes: Vec<String> = serde_json::from_str(&row.themes)?;
        let mut resolved: Vec<String> = themes.iter().map(|t| settled.resolve(t).to_string()).collect();
        resolved.sort();
        resolved.dedup();
        let f = self.reach_in(facts, &resolved, now);
        Ok(priority::score(f.customers, f.mean_severity, f.vip_share, row.confidence, row.effort_weeks))
    }

    /// One improvement as the API shows it, scored now.
    async fn improvement_pb_in<C: ConnectionTrait>(
        &self,
        db: &C,
        row: &rows::Model,
        now: i64,
    ) -> Result<pb::Improvement> {
        let facts = self.reach_facts(db, now).await?;
        let settled = self.settlements(db).await?;
        let score = self.score_in(row, &facts, &settled, now)?;
        wire::improvement_pb(row, &score)
    }

    /// Checks that every theme exists.
    async fn known_themes(&self, txn: &DatabaseTransaction, themes: &[String]) -> Result<()> {
        let rows = self.theme_rows(txn).await?;
        match themes.iter().find(|t| !rows.contains_key(*t)) {
            Some(t) => Err(ImprovementError::ThemeNotFound(t.clone())),
            None => Ok(()),
        }
    }

    async fn locked(&self, txn: &DatabaseTransaction, id: &str) -> Result<rows::Model> {
        rows::Entity::find_by_id(id.to_string())
            .lock_exclusive()
            .one(txn)
            .await?
            .ok_or_else(|| ImprovementError::ImprovementNotFound(id.into()))
    }

    async fn record_change(
        &self,
        txn: &DatabaseTransaction,
        id: &str,
        (from, to): (Option<Status>, Status),
        actor: &str,
        note: &str,
        now: i64,
    ) -> Result<()> {
        let row = history::ActiveModel {
            improvement_id: Set(id.into()),
            from_status: Set(from.map(|s| s.as_str().to_string())),
            to_status: Set(to.as_str().into()),
            actor: Set(actor.into()),
            note: Set(note.into()),
            at: Set(now),
            ..Default::default()
        };
        history::Entity::insert(row).exec_without_returning(txn).await?;
        Ok(())
    }

    /// Adds an improvement, proposed, once per request.
    pub async fn create_improvement(&self, key: &Key, cmd: ImprovementCmd) -> Result<pb::CreateImprovementResponse> {
        self.frame
            .once(self, key, "CreateImprovement", move |s, txn, now| {
                Box::pin(async move {
                    s.known_themes(txn, &cmd.themes).await?;
                    let id = format!("imp-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
                    let row = rows::Model {
                        improvement_id: id.clone(),
                        title: cmd.title.clone(),
                        description: cmd.description.clone(),
                        themes: serde_json::to_string(&cmd.themes)?,
                        status: Status::Proposed.as_str().into(),
                        confidence: cmd.confidence,
                        effort_weeks: cmd.effort_weeks,
                        duplicate_of: None,
                        created_by: cmd.actor.clone(),
                        created_at: now,
                        updated_at: now,
                        shipped_at: None,
                    };
                    rows::Entity::insert(rows::ActiveModel::from(row.clone())).exec_without_returning(txn).await?;
                    s.record_change(txn, &id, (None, Status::Proposed), &cmd.actor, "proposed", now).await?;
                    tracing::info!(improvement_id = %id, themes = cmd.themes.len(), "improvement proposed");
                    let improvement = s.improvement_pb_in(txn, &row, now).await?;
                    Ok(Done::reply(pb::CreateImprovementResponse { improvement: Some(improvement) })
                        .on("improvement", &id))
                })
            })
            .await
    }

    /// Changes an open improvement, once per request.
    pub async fn update_improvement(
        &self,
        key: &Key,
        id: String,
        patch: ImprovementPatch,
    ) -> Result<pb::UpdateImprovementResponse> {
        self.frame
            .once(self, key, "UpdateImprovement", move |s, txn, now| {
                Box::pin(async move {
                    let mut row = s.locked(txn, &id).await?;
                    let status = Status::parse(&row.status).unwrap_or(Status::Proposed);
                    if status.is_closed() {
                        return Err(ImprovementError::ImprovementClosed(status.as_str()));
                    }
                    if let Some(t) = &patch.themes {
                        s.known_themes(txn, t).await?;
                        row.themes = serde_json::to_string(t)?;
                    }
                    if let Some(t) = &patch.title {
                        row.title = t.clone();
                    }
                    if let Some(d) = &patch.description {
                        row.description = d.clone();
                    }
                    if let Some(c) = patch.confidence {
                        row.confidence = c;
                    }
                    if let Some(e) = patch.effort_weeks {
                        row.effort_weeks = e;
                    }
                    row.updated_at = now;
                    rows::Entity::update(rows::ActiveModel::from(row.clone()).reset_all()).exec(txn).await?;
                    let improvement = s.improvement_pb_in(txn, &row, now).await?;
                    Ok(Done::reply(pb::UpdateImprovementResponse { improvement: Some(improvement) })
                        .on("improvement", &id))
                })
            })
            .await
    }

    /// Moves an improvement along its lifecycle, once per request; shipping tells feedback.
    pub async fn change_status(&self, key: &Key, cmd: StatusCmd) -> Result<pb::ChangeImprovementStatusResponse> {
        self.frame
            .once(self, key, "ChangeImprovementStatus", move |s, txn, now| {
                Box::pin(async move {
                    let mut row = s.locked(txn, &cmd.improvement_id).await?;
                    let from = Status::parse(&row.status).unwrap_or(Status::Proposed);
                    if from.is_closed() {
                        return Err(ImprovementError::ImprovementClosed(from.as_str()));
                    }
                    if !from.can_move_to(cmd.to) {
                        return Err(ImprovementError::InvalidTransition { from: from.as_str(), to: cmd.to.as_str() });
                    }
                    if let Some(of) = &cmd.duplicate_of {
                        if *of == row.improvement_id || rows::Entity::find_by_id(of.clone()).one(txn).await?.is_none() {
                            return Err(ImprovementError::ImprovementNotFound(of.clone()));
                        }
                        row.duplicate_of = Some(of.clone());
                    }
                    row.status = cmd.to.as_str().into();
                    row.updated_at = now;
                    if cmd.to == Status::Shipped {
                        row.shipped_at = Some(now);
                        s.publish_shipped(txn, &row, &cmd, now).await?;
                    }
                    rows::Entity::update(rows::ActiveModel::from(row.clone()).reset_all()).exec(txn).await?;
                    s.record_change(txn, &row.improvement_id, (Some(from), cmd.to), &cmd.actor, &cmd.note, now).await?;
                    tracing::info!(
                        improvement_id = %row.improvement_id,
                        from = from.as_str(),
                        to = cmd.to.as_str(),
                        "improvement status changed"
                    );
                    let improvement = s.improvement_pb_in(txn, &row, now).await?;
                    Ok(Done::reply(pb::ChangeImprovementStatusResponse { improvement: Some(improvement) })
                        .on("improvement", &row.improvement_id))
                })
            })
            .await
    }

    /// Tells feedback an improvement shipped: feedback's themes it addresses, and the cases improvement placed in
    /// its discovered themes (feedback has those as unclassified).
    async fn publish_shipped(
        &self,
        txn: &DatabaseTransaction,
        row: &rows::Model,
        cmd: &StatusCmd,
        now: i64,
    ) -> Result<()> {
        let themes: Vec<String> = serde_json::from_str(&row.themes)?;
        let settled = self.settlements(txn).await?;
        let rows_by_id = self.theme_rows(txn).await?;
        let mut members: BTreeSet<String> = BTreeSet::new();
        for t in &themes {
            members.extend(settled.members_of(settled.resolve(t)));
        }
        let taxonomy: Vec<String> =
            members.iter().filter(|t| rows_by_id.get(*t).is_some_and(|r| r.kind == wire::TAXONOMY)).cloned().collect();
        let discovered: Vec<String> = members.iter().filter(|t| !taxonomy.contains(t)).cloned().collect();
        let case_ids: Vec<String> = if discovered.is_empty() {
            Vec::new()
        } else {
            signals::Entity::find()
                .select_only()
                .column(signals::Column::Reference)
                .filter(signals::Column::Origin.eq(CASE))
                .filter(signals::Column::Reference.ne(""))
                .filter(signals::Column::Theme.eq(UNCLASSIFIED))
                .filter(signals::Column::Discovered.is_in(discovered))
                .order_by_desc(signals::Column::Seq)
                .limit(MAX_CASES)
                .into_tuple()
                .all(txn)
                .await?
        };
        let ev = event::Payload::ImprovementShipped(ImprovementShipped {
            improvement_id: row.improvement_id.clone(),
            title: row.title.clone(),
            note: cmd.note.clone(),
            theme_ids: taxonomy,
            case_ids,
            recent_days: self.settings.recent_days,
            resurvey: cmd.resurvey,
        });
        self.outbox.publish(txn, &format!("improvement:{}", row.improvement_id), ev, now).await?;
        Ok(())
    }

    /// An improvement with its history, pilots and (shipped) before/after over `window_days` each side.
    pub async fn improvement(&self, id: &str, window_days: i64) -> Result<pb::GetImprovementResponse> {
        let now = self.now();
        let row = rows::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
            .ok_or_else(|| ImprovementError::ImprovementNotFound(id.into()))?;
        let changes = history::Entity::find()
            .filter(history::Column::ImprovementId.eq(id))
            .order_by_asc(history::Column::Id)
            .all(&self.db)
            .await?;
        let pilot_rows = pilots::Entity::find()
            .filter(pilots::Column::ImprovementId.eq(id))
            .order_by_desc(pilots::Column::StartedAt)
            .all(&self.db)
            .await?;
        let mut pilots = Vec::new();
        for p in &pilot_rows {
            pilots.push(self.pilot_pb(p, &row, now).await?);
        }
        let impact = match row.shipped_at {
            Some(at) => self.impact_of(&row, at, window_days, now).await?.map(|i| wire::impact_pb(&i)),
            None => None,
        };
        Ok(pb::GetImprovementResponse {
            improvement: Some(self.improvement_pb_in(&self.db, &row, now).await?),
            history: changes.iter().map(wire::change_pb).collect(),
            pilots,
            impact,
        })
    }

    /// The backlog (of one status, or all), highest score first, at most `limit`.
    pub async fn improvements(&self, status: Option<Status>, limit: usize) -> Result<Vec<pb::Improvement>> {
        let now = self.now();
        let mut q = rows::Entity::find();
        if let Some(s) = status {
            q = q.filter(rows::Column::Status.eq(s.as_str()));
        }
        let all = q.all(&self.db).await?;
        let facts = self.reach_facts(&self.db, now).await?;
        let settled = self.settlements(&self.db).await?;
        let mut scored = all
            .into_iter()
            .map(|r| Ok((r.improvement_id.clone(), self.score_in(&r, &facts, &settled, now)?, r)))
            .collect::<Result<Vec<_>>>()?;
        priority::rank(&mut scored);
        scored.truncate(limit);
        scored.iter().map(|(_, score, r)| wire::improvement_pb(r, score)).collect()
    }

    /// The before/after of a shipped improvement (None before a whole day has passed).
    async fn impact_of(
        &self,
        row: &rows::Model,
        shipped_at: i64,
        window_days: i64,
        now: i64,
    ) -> Result<Option<Impact>> {
        let Some(days) = impact::window(shipped_at, now, window_days) else { return Ok(None) };
        let (from, to) = (shipped_at - days * DAY_MS, shipped_at + days * DAY_MS);
        let settled = self.settlements(&self.db).await?;
        let themes: Vec<String> = serde_json::from_str(&row.themes)?;
        let mine: BTreeSet<String> = themes.iter().map(|t| settled.resolve(t).to_string()).collect();
        let rows: Vec<Placed> = signals::Entity::find()
            .select_only()
            .column(signals::Column::CustomerId)
            .column(signals::Column::Theme)
            .column(signals::Column::Discovered)
            .column(signals::Column::OccurredAt)
            .column(signals::Column::Origin)
            .filter(signals::Column::OccurredAt.gte(from))
            .filter(signals::Column::OccurredAt.lt(to))
            .into_tuple()
            .all(&self.db)
            .await?;
        let raised: Vec<Raised> = rows
            .into_iter()
            .map(|(customer, theme, discovered, at, origin)| Raised {
                at,
                of_theme: mine.contains(settled.effective(&theme, discovered.as_deref(), origin == SURVEY_COMMENT)),
                customer,
            })
            .collect();
        let answers: Vec<(String, i32, i64)> =
            self.answers_in(&self.db, from, to).await?.into_iter().map(|a| (a.customer, a.score, a.at)).collect();
        Ok(Some(impact::compare(&raised, &answers, shipped_at, days)))
    }

    /// Checks that the improvement exists and is open (before asking segmentation for a pilot's segment).
    pub async fn improvement_open(&self, id: &str) -> Result<()> {
        let row = self.improvement_row(&self.db, id).await?;
        match Status::parse(&row.status) {
            Some(s) if s.is_closed() => Err(ImprovementError::ImprovementClosed(s.as_str())),
            _ => Ok(()),
        }
    }

    /// The improvement `id`.
    pub(super) async fn improvement_row<C: ConnectionTrait>(&self, db: &C, id: &str) -> Result<rows::Model> {
        rows::Entity::find_by_id(id.to_string())
            .one(db)
            .await?
            .ok_or_else(|| ImprovementError::ImprovementNotFound(id.into()))
    }

    /// Moves a planned (or proposed) improvement to piloting inside `txn`, as its first pilot starts.
    pub(super) async fn piloting_in(&self, txn: &DatabaseTransaction, id: &str, actor: &str, now: i64) -> Result<()> {
        let row = self.locked(txn, id).await?;
        let from = Status::parse(&row.status).unwrap_or(Status::Proposed);
        if from.is_closed() {
            return Err(ImprovementError::ImprovementClosed(from.as_str()));
        }
        if from == Status::Piloting {
            return Ok(());
        }
        rows::Entity::update_many()
            .col_expr(rows::Column::Status, Expr::value(Status::Piloting.as_str()))
            .col_expr(rows::Column::UpdatedAt, Expr::value(now))
            .filter(rows::Column::ImprovementId.eq(id))
            .exec(txn)
            .await?;
        self.record_change(txn, id, (Some(from), Status::Piloting), actor, "pilot started", now).await
    }
}
