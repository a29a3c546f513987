//! Cases: complaints and claims opened once per request, classified by theme (before the transaction: the decision
//! depends only on the text and the active taxonomy version), with their events (`CaseOpened` for segmentation, a
//! `ThemeSignal` for improvement); agents' answers (the first sets the first-response time) and resolution (a claim
//! needs its root cause and corrective action), each under the case's row lock.
use rapport_kit::frame::{Done, Key};
use rapport_proto::{
    events::v1::{CaseOpened, ThemeSignal, event},
    feedback::v1 as pb,
};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait},
};

use super::{Result, Store};
use crate::{
    domain::{
        cases::{self, CaseKind, Resolution},
        routing,
        themes::Classification,
    },
    entities::{case_messages, case_pauses, cases as rows},
    error::FeedbackError,
    wire,
};

/// A case to open.
#[derive(Debug, Clone)]
pub struct CaseCmd {
    /// Complaint or claim.
    pub kind: CaseKind,
    /// Customer.
    pub customer_id: String,
    /// Channel (wire enum value).
    pub channel: i32,
    /// `low` … `critical`.
    pub severity: &'static str,
    /// Order (may be empty).
    pub order_id: String,
    /// The customer's words.
    pub text: String,
    /// A theme chosen by the caller, if any.
    pub theme: Option<String>,
    /// The tier loyalty gave at intake, if it answered in time.
    pub tier: Option<String>,
}

/// Why a case is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A complaint or claim from a channel.
    Intake,
    /// The follow-up of a detractor's answer.
    FollowUp,
}

/// Which cases to list.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    /// `open` or `resolved`.
    pub state: Option<&'static str>,
    /// Theme.
    pub theme: Option<String>,
    /// Customer.
    pub customer_id: Option<String>,
}

impl Store {
    /// Opens a case: classifies it, stores it with the customer's text, publishes its events.
    pub async fn open_case(&self, key: &Key, cmd: CaseCmd) -> Result<pb::OpenCaseResponse> {
        let (version, decision) = match &cmd.theme {
            Some(t) => {
                let (_, c) = self.classifier().await?;
                if !c.themes().contains(t) {
                    return Err(FeedbackError::UnknownTheme(t.clone()));
                }
                let chosen = Classification { theme: t.clone(), confidence: 1.0, keywords: vec![], tie_broken: false };
                (0, chosen)
            }
            None => self.classify(&cmd.text).await?,
        };
        self.frame
            .once(self, key, "OpenCase", move |s, txn, now| {
                Box::pin(async move {
                    s.lock_customer(txn, &cmd.customer_id).await?;
                    if rapport_outbox::sink::is_erased(txn, &s.pseudonyms, &cmd.customer_id).await? {
                        return Err(FeedbackError::CustomerErased);
                    }
                    let case = s.open_in(txn, &cmd, &decision, version, now, Origin::Intake).await?;
                    // A new case has no pause yet.
                    let fresh = wire::case_pb(&case, vec![], &s.sla_view(&case, &[], now))?;
                    let reply = pb::OpenCaseResponse { case: Some(fresh) };
                    Ok(Done::about([cmd.customer_id], reply).on("case", &case.case_id))
                })
            })
            .await
    }

    /// Opens a case inside `txn` (the caller holds the customer's lock and checked the tombstone): the tier (loyalty's
    /// answer at intake, else what its events last gave, else unknown) decides the SLA and may route; the case is
    /// routed, given to an agent with room, stored with the customer's words, and published.
    pub(super) async fn open_in(
        &self,
        txn: &DatabaseTransaction,
        cmd: &CaseCmd,
        decision: &Classification,
        version: i64,
        now: i64,
        origin: Origin,
    ) -> Result<rows::Model> {
        // The tier decides the SLA (VIPs are answered first) and may route: loyalty's answer at intake,
        // else what its events last gave, else unknown.
        let (known, segments) = self.context_of(txn, &cmd.customer_id).await?;
        let (tier, tier_source) = match (cmd.tier.clone(), known) {
            (Some(t), _) => (t, "loyalty"),
            (None, Some(t)) => (t, "events"),
            (None, None) => ("unknown".to_string(), "unknown"),
        };
        let targets = self.sla_policy_in(txn).await?.targets(cmd.severity, &tier);
        let last_score = self.last_score_in(txn, &cmd.customer_id).await?;
        let facts = routing::Facts {
            theme: decision.theme.clone(),
            channel: cmd.channel,
            severity: cmd.severity.into(),
            tier: tier.clone(),
            detractor: last_score.is_some_and(|s| s <= 6),
            segments: segments.clone(),
        };
        let (queue_id, routed_by) = self.route_in(txn, &facts).await?;
        let case_id = format!("case-{}", uuid::Uuid::new_v4().simple());
        let new_case = rows::Model {
            seq: 0,
            case_id: case_id.clone(),
            kind: cmd.kind.as_str().into(),
            customer_id: cmd.customer_id.clone(),
            channel: cmd.channel,
            severity: cmd.severity.into(),
            order_id: cmd.order_id.clone(),
            theme: decision.theme.clone(),
            confidence: decision.confidence,
            keywords: serde_json::to_string(&decision.keywords)?,
            tie_broken: decision.tie_broken,
            taxonomy_version: version,
            state: cases::OPEN.into(),
            created_at: now,
            first_response_at: None,
            resolved_at: None,
            resolution: None,
            root_cause: None,
            corrective_action: None,
            tier: tier.clone(),
            first_response_target: targets.first_response,
            resolution_target: targets.resolution,
            escalation_level: 0,
            queue_id: queue_id.clone(),
            assigned_agent: None,
            routed_by: routed_by.clone(),
            tier_source: tier_source.into(),
            next_response_target: targets.next_response,
            next_response_from: None,
            next_response_at: None,
            next_responses: 0,
        };
        let mut row = rows::ActiveModel::from(new_case.clone());
        row.seq = sea_orm::ActiveValue::NotSet;
        let seq = rows::Entity::insert(row).exec(txn).await?.last_insert_id;
        let message = case_messages::ActiveModel {
            case_id: Set(case_id.clone()),
            author: Set(cases::CUSTOMER.into()),
            text: Set(cmd.text.clone()),
            created_at: Set(now),
            ..Default::default()
        };
        case_messages::Entity::insert(message).exec_without_returning(txn).await?;
        let opened = event::Payload::CaseOpened(CaseOpened {
            case_id: case_id.clone(),
            kind: cmd.kind.as_str().into(),
            theme: decision.theme.clone(),
            channel: cmd.channel,
            severity: cmd.severity.into(),
        });
        // Segmentation counts complaints; the improvement service learns of the case from its theme signal.
        self.outbox.publish_to(txn, Some(&["segmentation"]), &cmd.customer_id, opened, now).await?;
        // A follow-up's words already went to the improvement service as the survey comment's signal.
        if origin == Origin::Intake {
            let signal = event::Payload::ThemeSignal(ThemeSignal {
                origin: "case".into(),
                reference: case_id.clone(),
                theme: decision.theme.clone(),
                confidence: decision.confidence,
                text: cmd.text.clone(),
                severity: cmd.severity.into(),
                channel: cmd.channel,
                nps: last_score,
                tier: tier.clone(),
                segments,
                kind: cmd.kind.as_str().into(),
            });
            self.outbox.publish_to(txn, Some(&["improvement"]), &cmd.customer_id, signal, now).await?;
        }
        // It waits in its queue: the assigner (one replica, woken by the commit) gives it to an agent with room, so
        // intake never waits on the queue's lock.
        let case = rows::Model { seq, ..new_case };
        tracing::info!(
            case_id = %case.case_id,
            theme = %case.theme,
            kind = %case.kind,
            queue_id = %case.queue_id,
            routed_by = %case.routed_by,
            agent_id = case.assigned_agent.as_deref().unwrap_or("-"),
            tier_source = %case.tier_source,
            "case opened"
        );
        Ok(case)
    }

    /// A case with its messages.
    pub async fn case(&self, case_id: &str) -> Result<pb::Case> {
        let case = rows::Entity::find()
            .filter(rows::Column::CaseId.eq(case_id))
            .one(&self.db)
            .await?
            .ok_or(FeedbackError::CaseNotFound)?;
        let messages = case_messages::Entity::find()
            .filter(case_messages::Column::CaseId.eq(case_id))
            .order_by_asc(case_messages::Column::Id)
            .all(&self.db)
            .await?;
        self.case_pb_in(&self.db, &case, messages, self.now()).await
    }

    /// A page of cases, newest first, before the cursor `before`.
    pub async fn cases(&self, f: &CaseFilter, before: Option<i64>, limit: u64) -> Result<(Vec<pb::Case>, Option<i64>)> {
        let mut q = rows::Entity::find().order_by_desc(rows::Column::Seq).limit(limit + 1);
        if let Some(s) = f.state {
            q = q.filter(rows::Column::State.eq(s));
        }
        if let Some(t) = &f.theme {
            q = q.filter(rows::Column::Theme.eq(t.as_str()));
        }
        if let Some(c) = &f.customer_id {
            q = q.filter(rows::Column::CustomerId.eq(c.as_str()));
        }
        if let Some(b) = before {
            q = q.filter(rows::Column::Seq.lt(b));
        }
        let (page, next) = rapport_kit::page::split(q.all(&self.db).await?, limit, |r| r.seq);
        let pauses = self.pauses_of(&self.db, page.iter().map(|c| c.case_id.clone()).collect()).await?;
        let now = self.now();
        let cases = page
            .iter()
            .map(|c| {
                let p = pauses.get(&c.case_id).map_or(&[][..], Vec::as_slice);
                wire::case_pb(c, vec![], &self.sla_view(c, p, now))
            })
            .collect::<Result<_>>()?;
        Ok((cases, next))
    }

    /// Adds an agent's answer to an open case.
    pub async fn respond_case(
        &self,
        key: &Key,
        case_id: &str,
        author: &str,
        text: String,
    ) -> Result<pb::RespondToCaseResponse> {
        let (case_id, author) = (case_id.to_string(), author.to_string());
        self.frame
            .once(self, key, "RespondToCase", move |s, txn, now| {
                Box::pin(async move {
                    let case = locked(txn, &case_id).await?;
                    cases::check_open(&case.state)?;
                    let message = case_messages::ActiveModel {
                        case_id: Set(case_id.clone()),
                        author: Set(author),
                        text: Set(text),
                        created_at: Set(now),
                        ..Default::default()
                    };
                    case_messages::Entity::insert(message).exec_without_returning(txn).await?;
                    if case.first_response_at.is_none() {
                        rows::Entity::update_many()
                            .col_expr(rows::Column::FirstResponseAt, Expr::value(now))
                            .filter(rows::Column::Seq.eq(case.seq))
                            .exec(txn)
                            .await?;
                        tracing::info!(case_id = %case_id, after_ms = now - case.created_at, "case answered first");
                    } else if case.next_response_from.is_some() && case.next_response_at.is_none() {
                        // The answer to the customer's last message stops its next-response clock.
                        rows::Entity::update_many()
                            .col_expr(rows::Column::NextResponseAt, Expr::value(now))
                            .filter(rows::Column::Seq.eq(case.seq))
                            .exec(txn)
                            .await?;
                    }
                    let case = rows::Entity::find_by_id(case.seq).one(txn).await?.ok_or(FeedbackError::CaseNotFound)?;
                    let reply = pb::RespondToCaseResponse { case: Some(s.case_pb_in(txn, &case, vec![], now).await?) };
                    Ok(Done::about([case.customer_id.clone()], reply).on("case", &case.case_id))
                })
            })
            .await
    }

    /// Resolves a case; a claim needs its root cause and corrective action.
    pub async fn resolve_case(&self, key: &Key, case_id: &str, r: Resolution) -> Result<pb::ResolveCaseResponse> {
        let case_id = case_id.to_string();
        self.frame
            .once(self, key, "ResolveCase", move |s, txn, now| {
                Box::pin(async move {
                    let case = locked(txn, &case_id).await?;
                    cases::check_open(&case.state)?;
                    let missing = cases::missing_for_resolution(CaseKind::parse(&case.kind), &r);
                    if !missing.is_empty() {
                        return Err(FeedbackError::ClaimNeedsRootCause { missing });
                    }
                    let text = |s: &str| (!s.is_empty()).then(|| s.to_string());
                    rows::Entity::update_many()
                        .col_expr(rows::Column::State, Expr::value(cases::RESOLVED))
                        .col_expr(rows::Column::ResolvedAt, Expr::value(now))
                        .col_expr(rows::Column::Resolution, Expr::value(text(&r.resolution)))
                        .col_expr(rows::Column::RootCause, Expr::value(text(&r.root_cause)))
                        .col_expr(rows::Column::CorrectiveAction, Expr::value(text(&r.corrective_action)))
                        .filter(rows::Column::Seq.eq(case.seq))
                        .exec(txn)
                        .await?;
                    // A case that waited for the customer until now stops waiting.
                    case_pauses::Entity::update_many()
                        .col_expr(case_pauses::Column::EndedAt, Expr::value(now))
                        .filter(case_pauses::Column::CaseId.eq(case_id.as_str()))
                        .filter(case_pauses::Column::EndedAt.is_null())
                        .exec(txn)
                        .await?;
                    tracing::info!(case_id = %case_id, after_ms = now - case.created_at, "case resolved");
                    let case = rows::Entity::find_by_id(case.seq).one(txn).await?.ok_or(FeedbackError::CaseNotFound)?;
                    let reply = pb::ResolveCaseResponse { case: Some(s.case_pb_in(txn, &case, vec![], now).await?) };
                    Ok(Done::about([case.customer_id.clone()], reply).on("case", &case.case_id))
                })
            })
            .await
    }

    /// Erases the customer's cases inside `txn`: kept for the statistics under the pseudonym and closed to any
    /// change (state `erased`), their messages, order and resolution gone (root causes and corrective actions stay:
    /// they are the company's lessons). Returns how many cases were anonymised.
    pub(super) async fn forget_cases(&self, txn: &DatabaseTransaction, customer_id: &str, now: i64) -> Result<u64> {
        let ids: Vec<String> = rows::Entity::find()
            .select_only()
            .column(rows::Column::CaseId)
            .filter(rows::Column::CustomerId.eq(customer_id))
            .into_tuple()
            .all(txn)
            .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        // The cases first: their rows' locks wait for an answer or resolution under way, whose message the
        // delete below then sees; their clocks stop (an erased case is no one's to answer).
        rows::Entity::update_many()
            .col_expr(rows::Column::CustomerId, Expr::value(self.pseudonyms.of(customer_id)))
            .col_expr(rows::Column::OrderId, Expr::value(""))
            .col_expr(rows::Column::Resolution, Expr::value(Option::<String>::None))
            .col_expr(rows::Column::State, Expr::value(cases::ERASED))
            .col_expr(rows::Column::ResolvedAt, Expr::col(rows::Column::ResolvedAt).if_null(now))
            .col_expr(rows::Column::FirstResponseAt, Expr::col(rows::Column::FirstResponseAt).if_null(now))
            .filter(rows::Column::CaseId.is_in(ids.clone()))
            .exec(txn)
            .await?;
        case_messages::Entity::delete_many().filter(case_messages::Column::CaseId.is_in(ids.clone())).exec(txn).await?;
        case_pauses::Entity::update_many()
            .col_expr(case_pauses::Column::EndedAt, Expr::value(now))
            .filter(case_pauses::Column::CaseId.is_in(ids.clone()))
            .filter(case_pauses::Column::EndedAt.is_null())
            .exec(txn)
            .await?;
        Ok(ids.len() as u64)
    }
}

/// The case, its row locked for the rest of the transaction.
pub(super) async fn locked(txn: &DatabaseTransaction, case_id: &str) -> Result<rows::Model> {
    rows::Entity::find()
        .filter(rows::Column::CaseId.eq(case_id))
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or(FeedbackError::CaseNotFound)
}
