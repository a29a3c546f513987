//! SLA clocks of cases: the pauses while a case waits for the customer, the view of both clocks at an instant, and
//! the sweeper (under the `feedback.sla` lease) that records each warning and breach once — a unique row per case,
//! clock and kind, so even two sweepers could not record one twice — and escalates a case on each new breach.
use std::collections::HashMap;

use rapport_kit::{
    db::begin_write,
    frame::{Done, Key},
};
use rapport_proto::feedback::v1 as pb;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, OnConflict},
};

use super::{Result, Store, cases::locked};
use crate::{
    domain::{
        cases,
        sla::{self, ViewState},
    },
    entities::{case_messages, case_pauses, cases as rows, sla_events},
    wire::{self, CaseSla},
};

/// Open cases looked at per query of a sweep.
const SWEEP_PAGE: u64 = 500;

impl Store {
    /// The pauses of `ids`, by case (an open pause ends at `i64::MAX`).
    pub(super) async fn pauses_of<C: ConnectionTrait>(
        &self,
        conn: &C,
        ids: Vec<String>,
    ) -> Result<HashMap<String, Vec<(i64, i64)>>> {
        let mut out: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        for p in case_pauses::Entity::find().filter(case_pauses::Column::CaseId.is_in(ids)).all(conn).await? {
            out.entry(p.case_id).or_default().push((p.started_at, p.ended_at.unwrap_or(i64::MAX)));
        }
        Ok(out)
    }

    /// Both clocks of a case at `now`.
    pub(super) fn sla_view(&self, c: &rows::Model, pauses: &[(i64, i64)], now: i64) -> CaseSla {
        let cal = &self.calendar;
        CaseSla {
            first: sla::view(cal, c.created_at, c.first_response_target, c.first_response_at, pauses, now),
            resolution: sla::view(cal, c.created_at, c.resolution_target, c.resolved_at, pauses, now),
            waiting: c.resolved_at.is_none() && pauses.iter().any(|(_, e)| *e == i64::MAX),
        }
    }

    /// A case in its wire form at `now`, with its clocks (pauses read through `conn`).
    pub(super) async fn case_pb_in<C: ConnectionTrait>(
        &self,
        conn: &C,
        c: &rows::Model,
        messages: Vec<case_messages::Model>,
        now: i64,
    ) -> Result<pb::Case> {
        let pauses = self.pauses_of(conn, vec![c.case_id.clone()]).await?.remove(&c.case_id).unwrap_or_default();
        wire::case_pb(c, messages, &self.sla_view(c, &pauses, now))
    }

    /// Starts or ends the wait for the customer.
    pub async fn set_waiting(&self, key: &Key, case_id: &str, waiting: bool) -> Result<pb::SetCaseWaitingResponse> {
        let case_id = case_id.to_string();
        self.frame
            .once(self, key, "SetCaseWaiting", move |s, txn, now| {
                Box::pin(async move {
                    let case = locked(txn, &case_id).await?;
                    cases::check_open(&case.state)?;
                    let open = case_pauses::Entity::find()
                        .filter(case_pauses::Column::CaseId.eq(case_id.as_str()))
                        .filter(case_pauses::Column::EndedAt.is_null())
                        .one(txn)
                        .await?;
                    match (waiting, open) {
                        (true, None) => {
                            let p = case_pauses::ActiveModel {
                                case_id: Set(case_id.clone()),
                                started_at: Set(now),
                                ended_at: Set(None),
                                ..Default::default()
                            };
                            case_pauses::Entity::insert(p).exec_without_returning(txn).await?;
                        }
                        (false, Some(p)) => {
                            case_pauses::Entity::update_many()
                                .col_expr(case_pauses::Column::EndedAt, Expr::value(now))
                                .filter(case_pauses::Column::Id.eq(p.id))
                                .exec(txn)
                                .await?;
                        }
                        // Already so.
                        _ => {}
                    }
                    tracing::info!(case_id = %case_id, waiting, "case waiting for the customer changed");
                    let reply = pb::SetCaseWaitingResponse { case: Some(s.case_pb_in(txn, &case, vec![], now).await?) };
                    Ok(Done::about([case.customer_id.clone()], reply))
                })
            })
            .await
    }

    /// Looks at every open case's clocks: records each new warning and breach once, and escalates a case on each
    /// new breach. Returns how many warnings and breaches it recorded.
    pub async fn sweep_sla(&self) -> Result<usize> {
        let mut recorded = 0;
        let mut after = 0i64;
        loop {
            let now = self.now();
            let page = rows::Entity::find()
                .filter(rows::Column::State.eq(cases::OPEN))
                .filter(rows::Column::Seq.gt(after))
                .order_by_asc(rows::Column::Seq)
                .limit(SWEEP_PAGE)
                .all(&self.db)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            let pauses = self.pauses_of(&self.db, page.iter().map(|c| c.case_id.clone()).collect()).await?;
            for c in &page {
                let view = self.sla_view(c, pauses.get(&c.case_id).map_or(&[][..], Vec::as_slice), now);
                for (clock, v) in [("first_response", view.first), ("resolution", view.resolution)] {
                    let kinds: &[&str] = match v.state {
                        ViewState::Warning => &["warning"],
                        ViewState::Breached => &["warning", "breach"],
                        _ => &[],
                    };
                    for kind in kinds {
                        recorded += usize::from(self.record_sla_event(c, clock, kind, now).await?);
                    }
                }
            }
            if (page.len() as u64) < SWEEP_PAGE {
                break;
            }
        }
        Ok(recorded)
    }

    /// Records one warning or breach unless it already is; a new breach escalates the case. Whether it was new.
    /// The sweep read its page without locks: the case is locked, read again and its clock seen again first, so a
    /// case answered, resolved or erased meanwhile is left alone.
    async fn record_sla_event(&self, c: &rows::Model, clock: &str, kind: &str, now: i64) -> Result<bool> {
        let _turn = self.frame.write_turn().await;
        let txn = begin_write(&self.db).await?;
        let Some(c) = rows::Entity::find_by_id(c.seq).lock_exclusive().one(&txn).await? else {
            return Ok(false);
        };
        let pauses = self.pauses_of(&txn, vec![c.case_id.clone()]).await?.remove(&c.case_id).unwrap_or_default();
        let view = self.sla_view(&c, &pauses, now);
        let state = if clock == "first_response" { view.first.state } else { view.resolution.state };
        let still = c.state == cases::OPEN
            && match kind {
                "breach" => state == ViewState::Breached,
                _ => matches!(state, ViewState::Warning | ViewState::Breached),
            };
        if !still {
            txn.rollback().await?;
            return Ok(false);
        }
        let row = sla_events::ActiveModel {
            case_id: Set(c.case_id.clone()),
            clock: Set(clock.into()),
            kind: Set(kind.into()),
            at: Set(now),
            ..Default::default()
        };
        let inserted = sla_events::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([sla_events::Column::CaseId, sla_events::Column::Clock, sla_events::Column::Kind])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        if inserted == 0 {
            txn.rollback().await?;
            return Ok(false);
        }
        if kind == "breach" {
            rows::Entity::update_many()
                .col_expr(rows::Column::EscalationLevel, Expr::col(rows::Column::EscalationLevel).add(1))
                .filter(rows::Column::Seq.eq(c.seq))
                .exec(&txn)
                .await?;
            tracing::warn!(case_id = %c.case_id, clock, severity = %c.severity, tier = %c.tier, "sla breached, case escalated");
        } else {
            tracing::info!(case_id = %c.case_id, clock, "sla warning");
        }
        txn.commit().await?;
        Ok(true)
    }

    /// The warnings and breaches recorded for a case, in order: (clock, kind).
    pub async fn sla_events(&self, case_id: &str) -> Result<Vec<(String, String)>> {
        let rows: Vec<(String, String)> = sla_events::Entity::find()
            .select_only()
            .column(sla_events::Column::Clock)
            .column(sla_events::Column::Kind)
            .filter(sla_events::Column::CaseId.eq(case_id))
            .order_by_asc(sla_events::Column::Id)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows)
    }
}
