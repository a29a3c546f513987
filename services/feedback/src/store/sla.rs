//! SLA clocks of cases: the policy (targets per severity and tier, the escalation queue), the pauses while a case
//! waits for the customer, the customer writing again (a next-response clock), the view of the clocks at an
//! instant, and the sweeper (under the `feedback.sla` lease) that records each warning and breach once — a unique
//! row per case, clock and kind, so even two sweepers could not record one twice — and escalates a case on each new
//! breach, moving it to the escalation queue when the policy names one.
use std::collections::{BTreeMap, HashMap};

use rapport_kit::{
    audit::{Actor, Entry},
    db::begin_write,
    frame::{Done, Key},
};
use rapport_proto::feedback::v1 as pb;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, OnConflict},
};

use super::{Result, Store, cases::locked, settings};
use crate::{
    domain::{
        cases,
        sla::{self, Policy, ViewState},
    },
    entities::{case_messages, case_pauses, cases as rows, queues, sla_events},
    error::FeedbackError,
    wire::{self, CaseSla},
};

/// Open cases looked at per query of a sweep.
const SWEEP_PAGE: u64 = 500;

/// What one sweep recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    /// New warnings.
    pub warnings: u64,
    /// New breaches by clock (`first_response`, `next_response`, `resolution`) and the case's tier.
    pub breaches: BTreeMap<(&'static str, String), u64>,
}

impl Swept {
    fn count(&mut self, clock: &str, kind: &str, tier: &str) {
        if kind != "breach" {
            self.warnings += 1;
            return;
        }
        let clock = match clock {
            "first_response" => "first_response",
            "resolution" => "resolution",
            _ => "next_response",
        };
        *self.breaches.entry((clock, tier.to_string())).or_default() += 1;
    }

    /// Warnings and breaches.
    pub fn recorded(&self) -> u64 {
        self.warnings + self.breaches.values().sum::<u64>()
    }
}
/// The setting holding the SLA policy.
const SLA_POLICY: &str = "sla_policy";

/// The name of a case's `n`-th next-response clock (each records its own warning and breach).
fn next_clock(n: i32) -> String {
    format!("next_response#{n}")
}

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
            next: c.next_response_from.map(|from| {
                // A case resolved before the answer stops its clock there.
                let stop = c.next_response_at.or(c.resolved_at);
                sla::view(cal, from, c.next_response_target, stop, pauses, now)
            }),
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
                    Ok(Done::about([case.customer_id.clone()], reply).on("case", &case.case_id))
                })
            })
            .await
    }

    /// Looks at every open case's clocks: records each new warning and breach once, and escalates a case on each
    /// new breach. Returns how many warnings and breaches it recorded.
    pub async fn sweep_sla(&self) -> Result<Swept> {
        let mut swept = Swept::default();
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
                let mut clocks =
                    vec![("first_response".to_string(), view.first), ("resolution".to_string(), view.resolution)];
                if let Some(next) = view.next {
                    clocks.push((next_clock(c.next_responses), next));
                }
                for (clock, v) in clocks {
                    let kinds: &[&str] = match v.state {
                        ViewState::Warning => &["warning"],
                        ViewState::Breached => &["warning", "breach"],
                        _ => &[],
                    };
                    for kind in kinds {
                        if self.record_sla_event(c, &clock, kind, now).await? {
                            swept.count(&clock, kind, &c.tier);
                        }
                    }
                }
            }
            if (page.len() as u64) < SWEEP_PAGE {
                break;
            }
        }
        Ok(swept)
    }

    /// Records one warning or breach unless it already is; a new breach escalates the case. Whether it was new.
    /// The sweep read its page without locks: the case is locked, read again and its clock seen again first, so a
    /// case answered in time, resolved or erased meanwhile is left alone; one answered late has its breach recorded
    /// but stays with the agent who answered.
    async fn record_sla_event(&self, c: &rows::Model, clock: &str, kind: &str, now: i64) -> Result<bool> {
        let _turn = self.frame.write_turn().await;
        let txn = begin_write(&self.db).await?;
        let Some(c) = rows::Entity::find_by_id(c.seq).lock_exclusive().one(&txn).await? else {
            return Ok(false);
        };
        let pauses = self.pauses_of(&txn, vec![c.case_id.clone()]).await?.remove(&c.case_id).unwrap_or_default();
        let view = self.sla_view(&c, &pauses, now);
        let state = match clock {
            "first_response" => Some(view.first.state),
            "resolution" => Some(view.resolution.state),
            // A next-response clock is still this one only while no newer one started.
            other => view.next.filter(|_| other == next_clock(c.next_responses)).map(|v| v.state),
        };
        let Some(state) = state else {
            txn.rollback().await?;
            return Ok(false);
        };
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
        let mut moved = false;
        if kind == "breach" {
            let mut update = rows::Entity::update_many()
                .col_expr(rows::Column::EscalationLevel, Expr::col(rows::Column::EscalationLevel).add(1));
            // The policy may send breached cases to an escalation queue: the case leaves its agent there, and the
            // assigner gives it to one of that queue's.
            // A clock that stopped late (answered before the sweep came) is a breach, but the case stays with the
            // agent who answered.
            let running = match clock {
                "first_response" => c.first_response_at.is_none(),
                "resolution" => c.resolved_at.is_none(),
                _ => c.next_response_at.is_none(),
            };
            let to = self.sla_policy_in(&txn).await?.escalation_queue.filter(|_| running);
            if let Some(q) = to.filter(|q| *q != c.queue_id) {
                update = update
                    .col_expr(rows::Column::QueueId, Expr::value(q.clone()))
                    .col_expr(rows::Column::AssignedAgent, Expr::value(Option::<String>::None));
                tracing::warn!(case_id = %c.case_id, from = %c.queue_id, to = %q, "breached case moved to the escalation queue");
                moved = true;
            }
            update.filter(rows::Column::Seq.eq(c.seq)).exec(&txn).await?;
            let (target, actor) = (format!("case:{}", c.case_id), Actor::worker("feedback.sla-sweeper"));
            let customers = [c.customer_id.clone()];
            let entry =
                Entry { at_ms: now, method: "EscalateCase", actor: &actor, target: &target, customers: &customers };
            self.frame.trail().record(&txn, entry).await?;
            tracing::warn!(case_id = %c.case_id, clock, severity = %c.severity, tier = %c.tier, "sla breached, case escalated");
        } else {
            tracing::info!(case_id = %c.case_id, clock, "sla warning");
        }
        txn.commit().await?;
        if moved {
            self.assign.notify_one();
        }
        Ok(true)
    }

    /// The SLA policy, read through `conn` (the standard one until first set).
    pub(super) async fn sla_policy_in<C: ConnectionTrait>(&self, conn: &C) -> Result<Policy> {
        Ok(settings::read(conn, SLA_POLICY).await?.unwrap_or_else(Policy::standard))
    }

    /// The SLA policy.
    pub async fn sla_policy(&self) -> Result<Policy> {
        self.sla_policy_in(&self.db).await
    }

    /// Replaces the SLA policy; cases opened from now on take its targets, breaches from now on its escalation
    /// queue (which must exist).
    pub async fn set_sla_policy(&self, key: &Key, policy: Policy) -> Result<pb::SetSlaPolicyResponse> {
        self.frame
            .once(self, key, "SetSlaPolicy", move |_, txn, now| {
                Box::pin(async move {
                    if let Some(q) = &policy.escalation_queue {
                        // A queue without agents online keeps escalated cases waiting until one comes.
                        let found = queues::Entity::find_by_id(q.clone()).one(txn).await?;
                        if found.is_none() {
                            return Err(FeedbackError::QueueNotFound(q.clone()));
                        }
                    }
                    settings::write(txn, SLA_POLICY, &policy, now).await?;
                    tracing::info!(rules = policy.rules.len(), "sla policy replaced");
                    Ok(Done::reply(pb::SetSlaPolicyResponse { policy: Some(wire::policy_pb(&policy)) }))
                })
            })
            .await
    }

    /// The customer writes again on an open case: the message is kept, a wait for the customer ends, and — once the
    /// case had its first answer — a next-response clock starts unless one is already running.
    pub async fn add_customer_message(
        &self,
        key: &Key,
        case_id: &str,
        text: String,
    ) -> Result<pb::AddCustomerMessageResponse> {
        let case_id = case_id.to_string();
        self.frame
            .once(self, key, "AddCustomerMessage", move |s, txn, now| {
                Box::pin(async move {
                    let case = locked(txn, &case_id).await?;
                    cases::check_open(&case.state)?;
                    let message = case_messages::ActiveModel {
                        case_id: Set(case_id.clone()),
                        author: Set(cases::CUSTOMER.into()),
                        text: Set(text),
                        created_at: Set(now),
                        ..Default::default()
                    };
                    case_messages::Entity::insert(message).exec_without_returning(txn).await?;
                    case_pauses::Entity::update_many()
                        .col_expr(case_pauses::Column::EndedAt, Expr::value(now))
                        .filter(case_pauses::Column::CaseId.eq(case_id.as_str()))
                        .filter(case_pauses::Column::EndedAt.is_null())
                        .exec(txn)
                        .await?;
                    let running = case.next_response_from.is_some() && case.next_response_at.is_none();
                    if case.first_response_at.is_some() && !running {
                        // The clock this one replaces keeps its record: answered late before the sweep saw it, its
                        // warning and breach are written now (the sweeper only looks at a case's current clock).
                        let pauses =
                            s.pauses_of(txn, vec![case_id.clone()]).await?.remove(&case_id).unwrap_or_default();
                        if let Some(last) = s.sla_view(&case, &pauses, now).next {
                            let kinds: &[&str] =
                                if last.state == ViewState::Breached { &["warning", "breach"] } else { &[] };
                            for kind in kinds {
                                let row = sla_events::ActiveModel {
                                    case_id: Set(case_id.clone()),
                                    clock: Set(next_clock(case.next_responses)),
                                    kind: Set((*kind).into()),
                                    at: Set(now),
                                    ..Default::default()
                                };
                                sla_events::Entity::insert(row)
                                    .on_conflict(
                                        OnConflict::columns([
                                            sla_events::Column::CaseId,
                                            sla_events::Column::Clock,
                                            sla_events::Column::Kind,
                                        ])
                                        .do_nothing()
                                        .to_owned(),
                                    )
                                    .exec_without_returning(txn)
                                    .await?;
                            }
                        }
                        rows::Entity::update_many()
                            .col_expr(rows::Column::NextResponseFrom, Expr::value(now))
                            .col_expr(rows::Column::NextResponseAt, Expr::value(Option::<i64>::None))
                            .col_expr(rows::Column::NextResponses, Expr::col(rows::Column::NextResponses).add(1))
                            .filter(rows::Column::Seq.eq(case.seq))
                            .exec(txn)
                            .await?;
                    }
                    tracing::info!(case_id = %case_id, "customer wrote again");
                    let case = rows::Entity::find_by_id(case.seq).one(txn).await?.ok_or(FeedbackError::CaseNotFound)?;
                    let reply =
                        pb::AddCustomerMessageResponse { case: Some(s.case_pb_in(txn, &case, vec![], now).await?) };
                    Ok(Done::about([case.customer_id.clone()], reply).on("case", &case.case_id))
                })
            })
            .await
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
