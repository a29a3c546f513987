//! Surveys: scheduling under the anti-fatigue rule (the customer's row locked, so two schedules cannot both pass),
//! answers recorded once with their events (`SurveyAnswered` always, `PromoterIdentified` for 9-10, a
//! `ThemeSignal` for a detractor's comment), and NPS over a window aggregated by the database.
use std::collections::BTreeMap;

use rapport_kit::frame::{Done, Key};
use rapport_proto::{
    events::v1::{PromoterIdentified, SurveyAnswered, ThemeSignal, event},
    feedback::v1 as pb,
};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, Query},
};

use super::{
    Result, Store,
    cases::{CaseCmd, Origin},
    report::channel_name,
};
use crate::{
    domain::{self, DAY_MS, Nps, NpsClass, cases::CaseKind, themes::Classification},
    entities::{cases, survey_segments, surveyed_customers, surveys},
    error::FeedbackError,
    wire,
};

/// A survey to schedule.
#[derive(Debug, Clone)]
pub struct SurveyCmd {
    /// Customer.
    pub customer_id: String,
    /// Touchpoint.
    pub touchpoint: String,
    /// Channel (wire enum value).
    pub channel: i32,
    /// Waiting time since the previous survey.
    pub wait_days: i64,
    /// Days the survey may be answered.
    pub valid_days: i64,
    /// The resolved case of the customer a recovery survey follows (not held back by the waiting time).
    pub after_case_id: Option<String>,
}

/// How to group an NPS report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    /// Overall only.
    None,
    /// By UTC day.
    Day,
    /// By channel (wire enum value).
    Channel,
    /// By touchpoint.
    Touchpoint,
    /// By the loyalty tier the customer had when answering (`unknown` when loyalty had said nothing).
    Tier,
    /// By the segments the customer was in when answering (an answer counts in each of its segments).
    Segment,
}

/// NPS of a window: overall, per group, per day.
#[derive(Debug, Clone, Default)]
pub struct NpsReport {
    /// Every answer.
    pub overall: Nps,
    /// Per group key, in key order.
    pub groups: BTreeMap<String, Nps>,
    /// Per UTC day, in order.
    pub daily: BTreeMap<String, Nps>,
    /// Answers to recovery surveys.
    pub recovery: Nps,
}

impl Store {
    /// Schedules a survey unless the customer was surveyed within the waiting time.
    pub async fn schedule(&self, key: &Key, cmd: SurveyCmd) -> Result<pb::ScheduleSurveyResponse> {
        self.frame
            .once(self, key, "ScheduleSurvey", move |s, txn, now| {
                Box::pin(async move {
                    let survey = s.schedule_in(txn, &cmd, now).await?;
                    let reply = pb::ScheduleSurveyResponse { survey: Some(wire::survey_pb(&survey, now)) };
                    Ok(Done::about([cmd.customer_id], reply))
                })
            })
            .await
    }

    /// Schedules a survey inside `txn` under the anti-fatigue rule (the customer's lock taken, its
    /// `surveyed_customers` row locked).
    pub(super) async fn schedule_in(
        &self,
        txn: &DatabaseTransaction,
        cmd: &SurveyCmd,
        now: i64,
    ) -> Result<surveys::Model> {
        self.lock_customer(txn, &cmd.customer_id).await?;
        if rapport_outbox::sink::is_erased(txn, &self.pseudonyms, &cmd.customer_id).await? {
            return Err(FeedbackError::CustomerErased);
        }
        // Lock (or create) the customer's row first: a concurrent schedule of the same customer waits.
        let fresh = surveyed_customers::ActiveModel {
            customer_id: Set(cmd.customer_id.clone()),
            last_surveyed_at: Set(i64::MIN),
        };
        surveyed_customers::Entity::insert(fresh)
            .on_conflict_do_nothing_on([surveyed_customers::Column::CustomerId])
            .exec_without_returning(txn)
            .await?;
        let row = surveyed_customers::Entity::find_by_id(cmd.customer_id.clone())
            .lock_exclusive()
            .one(txn)
            .await?
            .ok_or(FeedbackError::SurveyNotFound)?;
        if let Some(case_id) = &cmd.after_case_id {
            let case = cases::Entity::find()
                .filter(cases::Column::CaseId.eq(case_id.as_str()))
                .filter(cases::Column::CustomerId.eq(cmd.customer_id.as_str()))
                .one(txn)
                .await?
                .ok_or(FeedbackError::CaseNotFound)?;
            if case.state != crate::domain::cases::RESOLVED {
                return Err(FeedbackError::CaseNotResolved);
            }
        }
        let allowed = domain::next_allowed(row.last_surveyed_at, cmd.wait_days);
        // A recovery survey is what the complaint earned: the waiting time does not hold it back.
        if cmd.after_case_id.is_none() && row.last_surveyed_at != i64::MIN && now < allowed {
            let allowed_from = rapport_kit::clock::timestamp(allowed).to_string();
            return Err(FeedbackError::SurveyFatigue { wait_days: cmd.wait_days, allowed_from });
        }
        surveyed_customers::Entity::update_many()
            .col_expr(surveyed_customers::Column::LastSurveyedAt, Expr::value(now))
            .filter(surveyed_customers::Column::CustomerId.eq(cmd.customer_id.as_str()))
            .exec(txn)
            .await?;
        let survey = surveys::Model {
            survey_id: format!("srv-{}", uuid::Uuid::new_v4().simple()),
            customer_id: cmd.customer_id.clone(),
            touchpoint: cmd.touchpoint.clone(),
            channel: cmd.channel,
            created_at: now,
            expires_at: now.saturating_add(cmd.valid_days.saturating_mul(DAY_MS)),
            score: None,
            comment: None,
            answered_at: None,
            tier: None,
            after_case_id: cmd.after_case_id.clone(),
        };
        surveys::Entity::insert(surveys::ActiveModel::from(survey.clone())).exec_without_returning(txn).await?;
        tracing::info!(survey_id = %survey.survey_id, touchpoint = %survey.touchpoint, "survey scheduled");
        Ok(survey)
    }

    /// Records the answer to a survey and publishes it.
    pub async fn respond(
        &self,
        key: &Key,
        survey_id: &str,
        score: i32,
        comment: String,
    ) -> Result<pb::RecordResponseResponse> {
        let survey_id = survey_id.to_string();
        // A detractor's comment is a lesson too: classified (before the transaction) for the improvement service.
        let theme = if NpsClass::of(score) == NpsClass::Detractor && !comment.trim().is_empty() {
            Some(self.classify(&comment).await?)
        } else {
            None
        };
        self.frame
            .once(self, key, "RecordResponse", move |s, txn, now| {
                Box::pin(async move {
                    // The customer's lock first, as an erasure takes it (then the survey's row): the follow-up case
                    // below must not interleave with an erasure of the customer.
                    let owner = surveys::Entity::find_by_id(survey_id.clone())
                        .one(txn)
                        .await?
                        .ok_or(FeedbackError::SurveyNotFound)?
                        .customer_id;
                    s.lock_customer(txn, &owner).await?;
                    if rapport_outbox::sink::is_erased(txn, &s.pseudonyms, &owner).await? {
                        return Err(FeedbackError::CustomerErased);
                    }
                    let mut survey = surveys::Entity::find_by_id(survey_id.clone())
                        .lock_exclusive()
                        .one(txn)
                        .await?
                        .ok_or(FeedbackError::SurveyNotFound)?;
                    if survey.score.is_some() {
                        return Err(FeedbackError::SurveyAnswered);
                    }
                    if now >= survey.expires_at {
                        return Err(FeedbackError::SurveyExpired);
                    }
                    // The tier and segments the customer answers under, for NPS by tier and by segment.
                    let (tier, segments) = s.context_of(txn, &survey.customer_id).await?;
                    let signal_context = (tier.clone().unwrap_or_else(|| "unknown".into()), segments.clone());
                    survey.score = Some(score);
                    survey.comment = (!comment.is_empty()).then_some(comment);
                    survey.answered_at = Some(now);
                    survey.tier = tier;
                    surveys::Entity::update_many()
                        .col_expr(surveys::Column::Score, Expr::value(score))
                        .col_expr(surveys::Column::Comment, Expr::value(survey.comment.clone()))
                        .col_expr(surveys::Column::AnsweredAt, Expr::value(now))
                        .col_expr(surveys::Column::Tier, Expr::value(survey.tier.clone()))
                        .filter(surveys::Column::SurveyId.eq(survey_id.as_str()))
                        .exec(txn)
                        .await?;
                    for segment_id in segments {
                        let row = survey_segments::ActiveModel {
                            survey_id: Set(survey_id.clone()),
                            segment_id: Set(segment_id),
                        };
                        survey_segments::Entity::insert(row).exec_without_returning(txn).await?;
                    }
                    let customer = survey.customer_id.clone();
                    let answered = event::Payload::SurveyAnswered(SurveyAnswered {
                        survey_id: survey_id.clone(),
                        score,
                        touchpoint: survey.touchpoint.clone(),
                        channel: survey.channel,
                    });
                    s.outbox.publish(txn, &customer, answered, now).await?;
                    if NpsClass::of(score) == NpsClass::Promoter {
                        let promoter = event::Payload::PromoterIdentified(PromoterIdentified {
                            survey_id: survey_id.clone(),
                            score,
                        });
                        s.outbox.publish(txn, &customer, promoter, now).await?;
                    }
                    if let (Some((_, t)), Some(text)) = (theme.clone(), survey.comment.clone()) {
                        let (tier, segments) = signal_context;
                        let signal = event::Payload::ThemeSignal(ThemeSignal {
                            origin: "survey_comment".into(),
                            reference: survey_id.clone(),
                            theme: t.theme,
                            confidence: t.confidence,
                            text,
                            severity: if score <= 3 { "high" } else { "medium" }.into(),
                            channel: survey.channel,
                            nps: Some(score),
                            tier,
                            segments,
                            kind: String::new(),
                        });
                        s.outbox.publish_to(txn, Some(&["improvement"]), &customer, signal, now).await?;
                    }
                    // A detractor is called back: a follow-up case, routed like any other.
                    let follow_up_case_id = if NpsClass::of(score) == NpsClass::Detractor {
                        let text = survey
                            .comment
                            .clone()
                            .unwrap_or_else(|| format!("NPS answer {score} after {}", survey.touchpoint));
                        let cmd = CaseCmd {
                            kind: CaseKind::FollowUp,
                            customer_id: customer.clone(),
                            channel: survey.channel,
                            severity: "high",
                            order_id: String::new(),
                            text,
                            theme: None,
                            tier: None,
                        };
                        let (version, decision) = theme.unwrap_or((0, Classification::unclassified()));
                        s.open_in(txn, &cmd, &decision, version, now, Origin::FollowUp).await?.case_id
                    } else {
                        String::new()
                    };
                    tracing::info!(survey_id = %survey_id, score, "survey answered");
                    let reply =
                        pb::RecordResponseResponse { survey: Some(wire::survey_pb(&survey, now)), follow_up_case_id };
                    Ok(Done::about([customer], reply))
                })
            })
            .await
    }

    /// A survey.
    pub async fn survey(&self, survey_id: &str) -> Result<pb::Survey> {
        let s = surveys::Entity::find_by_id(survey_id.to_string())
            .one(&self.db)
            .await?
            .ok_or(FeedbackError::SurveyNotFound)?;
        Ok(wire::survey_pb(&s, self.now()))
    }

    /// The NPS of the answers given in `[start, end)`, counted by the database per (day, channel, touchpoint, score).
    pub async fn nps(&self, start: i64, end: i64, grouping: Grouping) -> Result<NpsReport> {
        let day = Expr::col(surveys::Column::AnsweredAt).div(DAY_MS);
        let rows: Vec<(i64, i32, String, Option<String>, i32, i64)> = surveys::Entity::find()
            .select_only()
            .column_as(day, "day")
            .column(surveys::Column::Channel)
            .column(surveys::Column::Touchpoint)
            .column(surveys::Column::Tier)
            .column(surveys::Column::Score)
            .column_as(surveys::Column::SurveyId.count(), "n")
            .filter(surveys::Column::AnsweredAt.gte(start))
            .filter(surveys::Column::AnsweredAt.lt(end))
            .filter(surveys::Column::Score.is_not_null())
            // By the output column: a repeated expression would bind its divisor twice, which PostgreSQL does not
            // see as the same expression.
            .group_by(Expr::col("day"))
            .group_by(surveys::Column::Channel)
            .group_by(surveys::Column::Touchpoint)
            .group_by(surveys::Column::Tier)
            .group_by(surveys::Column::Score)
            .order_by_asc(surveys::Column::Touchpoint)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut report = NpsReport::default();
        for (day, channel, touchpoint, tier, score, n) in rows {
            let day = domain::day_key(day * DAY_MS);
            let group = match grouping {
                Grouping::None | Grouping::Segment => None,
                Grouping::Day => Some(day.clone()),
                Grouping::Channel => Some(channel_name(channel)),
                Grouping::Touchpoint => Some(touchpoint),
                Grouping::Tier => Some(tier.unwrap_or_else(|| "unknown".into())),
            };
            report.overall.add_n(score, n);
            report.daily.entry(day).or_default().add_n(score, n);
            if let Some(g) = group {
                report.groups.entry(g).or_default().add_n(score, n);
            }
        }
        let recovery: Vec<(i32, i64)> = surveys::Entity::find()
            .select_only()
            .column(surveys::Column::Score)
            .column_as(surveys::Column::SurveyId.count(), "n")
            .filter(surveys::Column::AnsweredAt.gte(start))
            .filter(surveys::Column::AnsweredAt.lt(end))
            .filter(surveys::Column::Score.is_not_null())
            .filter(surveys::Column::AfterCaseId.is_not_null())
            .group_by(surveys::Column::Score)
            .into_tuple()
            .all(&self.db)
            .await?;
        for (score, n) in recovery {
            report.recovery.add_n(score, n);
        }
        if grouping == Grouping::Segment {
            for (segment, score, n) in self.nps_by_segment(start, end).await? {
                report.groups.entry(segment).or_default().add_n(score, n);
            }
        }
        Ok(report)
    }

    /// Answers in `[start, end)` counted per (segment, score).
    async fn nps_by_segment(&self, start: i64, end: i64) -> Result<Vec<(String, i32, i64)>> {
        let (ss, s) = (survey_segments::Entity, surveys::Entity);
        let q = Query::select()
            .column((ss, survey_segments::Column::SegmentId))
            .column((s, surveys::Column::Score))
            .expr(Expr::col((s, surveys::Column::SurveyId)).count())
            .from(ss)
            .inner_join(s, Expr::col((s, surveys::Column::SurveyId)).equals((ss, survey_segments::Column::SurveyId)))
            .and_where(Expr::col((s, surveys::Column::AnsweredAt)).gte(start))
            .and_where(Expr::col((s, surveys::Column::AnsweredAt)).lt(end))
            .and_where(Expr::col((s, surveys::Column::Score)).is_not_null())
            .group_by_col((ss, survey_segments::Column::SegmentId))
            .group_by_col((s, surveys::Column::Score))
            .to_owned();
        let rows = self.db.query_all(&q).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push((r.try_get_by_index(0)?, r.try_get_by_index(1)?, r.try_get_by_index(2)?));
        }
        Ok(out)
    }
}
