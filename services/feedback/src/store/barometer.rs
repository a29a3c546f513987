//! The satisfaction barometer: its criteria (a setting), the staff's assessments per agent and period, the measures
//! feedback takes from its own data over a period, and readings — one per period, taken under a lock so that two
//! replicas never read one period at once, each stored with the criteria and weights it was computed with.
use std::collections::HashMap;

use rapport_kit::frame::{Done, Key};
use rapport_proto::feedback::v1 as pb;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::OnConflict,
};

use super::{CareGrouping, Grouping, Result, Store, settings};
use crate::{
    domain::{
        barometer::{self, Axis, Criterion, Measure, MeasureValue, Reading},
        cases::{CaseKind, ERASED},
    },
    entities::{agents, barometer_readings, cases, staff_assessments},
    error::FeedbackError,
    wire,
};

/// The setting holding the criteria.
const CRITERIA: &str = "barometer_criteria";

/// An agent's assessment to record.
#[derive(Debug, Clone)]
pub struct AssessmentCmd {
    /// The agent.
    pub agent_id: String,
    /// `YYYY-MM`.
    pub period: String,
    /// 0-10 per axis.
    pub scores: Vec<(Axis, i32)>,
    /// Free text.
    pub comment: String,
}

impl Store {
    /// The barometer's criteria (the defaults until first set).
    pub async fn barometer_criteria(&self) -> Result<Vec<Criterion>> {
        Ok(settings::read(&self.db, CRITERIA).await?.unwrap_or_else(barometer::default_criteria))
    }

    /// Replaces the barometer's criteria.
    pub async fn set_barometer_criteria(
        &self,
        key: &Key,
        criteria: Vec<Criterion>,
    ) -> Result<pb::SetBarometerCriteriaResponse> {
        self.frame
            .once(self, key, "SetBarometerCriteria", move |_, txn, now| {
                Box::pin(async move {
                    settings::write(txn, CRITERIA, &criteria, now).await?;
                    tracing::info!(criteria = criteria.len(), "barometer criteria replaced");
                    Ok(Done::reply(pb::SetBarometerCriteriaResponse {
                        criteria: criteria.iter().map(wire::criterion_pb).collect(),
                    }))
                })
            })
            .await
    }

    /// Records (or replaces) an agent's assessment of a period.
    pub async fn record_assessment(&self, key: &Key, cmd: AssessmentCmd) -> Result<pb::RecordStaffAssessmentResponse> {
        self.frame
            .once(self, key, "RecordStaffAssessment", move |_, txn, now| {
                Box::pin(async move {
                    if agents::Entity::find_by_id(cmd.agent_id.clone()).one(txn).await?.is_none() {
                        return Err(FeedbackError::AgentNotFound);
                    }
                    let row = staff_assessments::ActiveModel {
                        agent_id: Set(cmd.agent_id.clone()),
                        period: Set(cmd.period.clone()),
                        scores: Set(serde_json::to_string(&cmd.scores)?),
                        comment: Set(cmd.comment.clone()),
                        answered_at: Set(now),
                    };
                    staff_assessments::Entity::insert(row)
                        .on_conflict(
                            OnConflict::columns([
                                staff_assessments::Column::AgentId,
                                staff_assessments::Column::Period,
                            ])
                            .update_columns([
                                staff_assessments::Column::Scores,
                                staff_assessments::Column::Comment,
                                staff_assessments::Column::AnsweredAt,
                            ])
                            .to_owned(),
                        )
                        .exec_without_returning(txn)
                        .await?;
                    let answers = staff_assessments::Entity::find()
                        .filter(staff_assessments::Column::Period.eq(cmd.period.as_str()))
                        .count(txn)
                        .await?;
                    tracing::info!(period = %cmd.period, answers, "staff assessment recorded");
                    Ok(Done::reply(pb::RecordStaffAssessmentResponse {
                        answers: i32::try_from(answers).unwrap_or(i32::MAX),
                    }))
                })
            })
            .await
    }

    /// The staff's assessments of `period`, by agent id.
    pub async fn assessments(&self, period: &str) -> Result<Vec<pb::StaffAssessment>> {
        staff_assessments::Entity::find()
            .filter(staff_assessments::Column::Period.eq(period))
            .order_by_asc(staff_assessments::Column::AgentId)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|a| {
                let scores: Vec<(Axis, i32)> = serde_json::from_str(&a.scores)?;
                Ok(pb::StaffAssessment {
                    agent_id: a.agent_id,
                    scores: scores
                        .into_iter()
                        .map(|(axis, score)| pb::AxisScore { axis: wire::axis_pb(axis).into(), score })
                        .collect(),
                    comment: a.comment,
                    answer_time: Some(rapport_kit::clock::timestamp(a.answered_at)),
                })
            })
            .collect()
    }

    /// The measures feedback takes from its own data over `[start, end)`: NPS, first-response median, SLA
    /// attainment, the half-day share and complaints per 100 answers — each unavailable, with its reason, when the
    /// period has nothing to measure.
    pub async fn own_measures(&self, start: i64, end: i64) -> Result<HashMap<Measure, MeasureValue>> {
        let nps = self.nps(start, end, Grouping::None).await?.overall;
        let (care, _) = self.care_report(start, end, CareGrouping::None).await?;
        let complaints = cases::Entity::find()
            .filter(cases::Column::CreatedAt.gte(start))
            .filter(cases::Column::CreatedAt.lt(end))
            .filter(cases::Column::State.ne(ERASED))
            .filter(cases::Column::Kind.is_in([CaseKind::Complaint.as_str(), CaseKind::Claim.as_str()]))
            .count(&self.db)
            .await?;
        let no_answers = || Err("no survey answers in the period".to_string());
        let no_cases = || Err("no cases in the period".to_string());
        let answers = nps.responses();
        Ok(HashMap::from([
            (Measure::Nps, if answers > 0 { Ok(nps.score()) } else { no_answers() }),
            (
                Measure::FirstResponseMedianHours,
                care.first_response_p50.map(|ms| ms as f64 / 3_600_000.0).ok_or_else(|| {
                    if care.cases == 0 { "no cases in the period".into() } else { "no case answered yet".into() }
                }),
            ),
            (Measure::SlaAttainmentPct, if care.cases > 0 { Ok(100.0 * care.sla_attainment) } else { no_cases() }),
            (Measure::HalfDayPct, if care.cases > 0 { Ok(100.0 * care.within_half_day) } else { no_cases() }),
            (
                Measure::ComplaintsPer100Answers,
                if answers > 0 { Ok(100.0 * complaints as f64 / answers as f64) } else { no_answers() },
            ),
        ]))
    }

    /// Takes the reading of `period` from `measures` (feedback's own and loyalty's), the staff's assessments and
    /// the previous reading; refuses a period already read unless `replace`.
    pub async fn take_reading(
        &self,
        key: &Key,
        period: String,
        replace: bool,
        measures: HashMap<Measure, MeasureValue>,
    ) -> Result<pb::TakeBarometerReadingResponse> {
        let criteria = self.barometer_criteria().await?;
        self.frame
            .once(self, key, "TakeBarometerReading", move |_, txn, now| {
                Box::pin(async move {
                    // One reading at a time: two replicas never read one period at once, nor around each other.
                    rapport_kit::lease::lock_in_txn(txn, "feedback.barometer").await?;
                    let exists = barometer_readings::Entity::find_by_id(period.clone()).one(txn).await?.is_some();
                    if exists && !replace {
                        return Err(FeedbackError::ReadingExists(period));
                    }
                    let previous = barometer_readings::Entity::find()
                        .filter(barometer_readings::Column::Period.lt(period.as_str()))
                        .order_by_desc(barometer_readings::Column::Period)
                        .limit(1)
                        .one(txn)
                        .await?
                        .map(|r| serde_json::from_str::<Reading>(&r.spec))
                        .transpose()?;
                    let staff = staff_assessments::Entity::find()
                        .filter(staff_assessments::Column::Period.eq(period.as_str()))
                        .all(txn)
                        .await?
                        .iter()
                        .map(|a| serde_json::from_str::<Vec<(Axis, i32)>>(&a.scores))
                        .collect::<std::result::Result<Vec<_>, _>>()?;
                    let value_of =
                        |m: Measure| measures.get(&m).cloned().unwrap_or_else(|| Err("not measured".to_string()));
                    let reading = barometer::read(&period, &criteria, value_of, &staff, previous.as_ref());
                    // The reply is the reading as stored (JSON does not keep every last bit of a float): the same
                    // figures whenever it is read again.
                    let spec = serde_json::to_string(&reading)?;
                    let reading: Reading = serde_json::from_str(&spec)?;
                    let row = barometer_readings::ActiveModel {
                        period: Set(period.clone()),
                        spec: Set(spec),
                        taken_at: Set(now),
                    };
                    barometer_readings::Entity::insert(row)
                        .on_conflict(
                            OnConflict::column(barometer_readings::Column::Period)
                                .update_columns([barometer_readings::Column::Spec, barometer_readings::Column::TakenAt])
                                .to_owned(),
                        )
                        .exec_without_returning(txn)
                        .await?;
                    tracing::info!(period = %period, index = ?reading.index, "barometer reading taken");
                    Ok(Done::reply(pb::TakeBarometerReadingResponse { reading: Some(wire::reading_pb(&reading, now)) }))
                })
            })
            .await
    }

    /// Readings, newest period first.
    pub async fn readings(&self, limit: u64) -> Result<Vec<pb::BarometerReading>> {
        barometer_readings::Entity::find()
            .order_by_desc(barometer_readings::Column::Period)
            .limit(limit)
            .all(&self.db)
            .await?
            .iter()
            .map(|r| Ok(wire::reading_pb(&serde_json::from_str(&r.spec)?, r.taken_at)))
            .collect()
    }
}
