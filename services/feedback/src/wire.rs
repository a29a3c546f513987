//! Feedback's stored surveys in their wire form, for the API's and the store's replies.
use rapport_kit::{clock::timestamp, guard::personal};
use rapport_proto::feedback::v1 as pb;

use crate::{
    domain::{
        NpsClass, QUESTION,
        sla::{ClockView, ViewState},
    },
    entities::{case_messages, cases, surveys},
    error::FeedbackError,
};

/// The wire class of a score.
pub(crate) fn class_pb(score: i32) -> pb::NpsClass {
    match NpsClass::of(score) {
        NpsClass::Promoter => pb::NpsClass::Promoter,
        NpsClass::Passive => pb::NpsClass::Passive,
        NpsClass::Detractor => pb::NpsClass::Detractor,
    }
}

/// A survey row as the API shows it at `now`.
pub(crate) fn survey_pb(s: &surveys::Model, now: i64) -> pb::Survey {
    let state = match (s.score, now >= s.expires_at) {
        (Some(_), _) => pb::SurveyState::Answered,
        (None, true) => pb::SurveyState::Expired,
        (None, false) => pb::SurveyState::Scheduled,
    };
    pb::Survey {
        survey_id: s.survey_id.clone(),
        customer_id: s.customer_id.clone(),
        question: QUESTION.into(),
        touchpoint: s.touchpoint.clone(),
        channel: s.channel,
        state: state.into(),
        create_time: Some(timestamp(s.created_at)),
        expire_time: Some(timestamp(s.expires_at)),
        answer: s.score.map(|score| pb::Answer {
            score,
            class: class_pb(score).into(),
            comment: personal(s.comment.clone().unwrap_or_default()),
            answer_time: s.answered_at.map(timestamp),
        }),
        after_case_id: s.after_case_id.clone().unwrap_or_default(),
    }
}

/// An NPS with its interval under `key`.
pub(crate) fn nps_pb(key: String, n: &crate::domain::Nps) -> pb::NpsScore {
    let (ci_low, ci_high) = n.interval();
    pb::NpsScore {
        key,
        promoters: n.promoters,
        passives: n.passives,
        detractors: n.detractors,
        responses: n.responses(),
        score: n.score(),
        ci_low,
        ci_high,
    }
}

/// The SLA clocks of a case at an instant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CaseSla {
    /// Until the first answer.
    pub first: ClockView,
    /// Until resolution.
    pub resolution: ClockView,
    /// From the customer's last message until the next answer, once the customer wrote again after the first one.
    pub next: Option<ClockView>,
    /// Whether it waits for the customer.
    pub waiting: bool,
}

fn clock_pb(v: &ClockView) -> pb::SlaClock {
    let state = match v.state {
        ViewState::Running => pb::SlaState::Running,
        ViewState::Warning => pb::SlaState::Warning,
        ViewState::Breached => pb::SlaState::Breached,
        ViewState::Met => pb::SlaState::Met,
        ViewState::Paused => pb::SlaState::Paused,
    };
    pb::SlaClock { target_ms: v.target, elapsed_ms: v.elapsed, due_time: v.due.map(timestamp), state: state.into() }
}

/// A stored case (and its messages, when given) with its clocks, as the API shows it.
pub(crate) fn case_pb(
    c: &cases::Model,
    messages: Vec<case_messages::Model>,
    sla: &CaseSla,
) -> Result<pb::Case, FeedbackError> {
    let kind = match crate::domain::cases::CaseKind::parse(&c.kind) {
        crate::domain::cases::CaseKind::Claim => pb::CaseKind::Claim,
        crate::domain::cases::CaseKind::FollowUp => pb::CaseKind::FollowUp,
        crate::domain::cases::CaseKind::Complaint => pb::CaseKind::Complaint,
    };
    let severity = match c.severity.as_str() {
        "low" => pb::Severity::Low,
        "high" => pb::Severity::High,
        "critical" => pb::Severity::Critical,
        _ => pb::Severity::Medium,
    };
    let state = match c.state.as_str() {
        crate::domain::cases::OPEN => pb::CaseState::Open,
        crate::domain::cases::ERASED => pb::CaseState::Erased,
        _ => pb::CaseState::Resolved,
    };
    Ok(pb::Case {
        case_id: c.case_id.clone(),
        kind: kind.into(),
        customer_id: c.customer_id.clone(),
        channel: c.channel,
        severity: severity.into(),
        order_id: c.order_id.clone(),
        theme: Some(pb::ThemeDecision {
            theme: c.theme.clone(),
            confidence: c.confidence,
            keywords: serde_json::from_str(&c.keywords)?,
            tie_broken: c.tie_broken,
            taxonomy_version: c.taxonomy_version,
        }),
        state: state.into(),
        create_time: Some(timestamp(c.created_at)),
        first_response_time: c.first_response_at.map(timestamp),
        resolve_time: c.resolved_at.map(timestamp),
        resolution: c.resolution.clone().unwrap_or_default(),
        root_cause: c.root_cause.clone().unwrap_or_default(),
        corrective_action: c.corrective_action.clone().unwrap_or_default(),
        messages: messages
            .into_iter()
            .map(|m| pb::CaseMessage {
                author: m.author,
                text: personal(m.text),
                create_time: Some(timestamp(m.created_at)),
            })
            .collect(),
        tier: c.tier.clone(),
        first_response: Some(clock_pb(&sla.first)),
        resolution_clock: Some(clock_pb(&sla.resolution)),
        next_response: sla.next.as_ref().map(clock_pb),
        next_responses: c.next_responses,
        escalation_level: c.escalation_level,
        waiting: sla.waiting,
        queue_id: c.queue_id.clone(),
        assigned_agent: c.assigned_agent.clone().unwrap_or_default(),
        routed_by: c.routed_by.clone(),
        tier_source: c.tier_source.clone(),
    })
}

/// Care figures under `key`.
pub(crate) fn care_pb(key: String, s: &crate::domain::report::CareStats) -> pb::CareStats {
    pb::CareStats {
        key,
        cases: s.cases,
        answered: s.answered,
        resolved: s.resolved,
        first_response_p50_ms: s.first_response_p50.unwrap_or(0),
        first_response_p90_ms: s.first_response_p90.unwrap_or(0),
        resolution_p50_ms: s.resolution_p50.unwrap_or(0),
        resolution_p90_ms: s.resolution_p90.unwrap_or(0),
        sla_attainment: s.sla_attainment,
        within_half_day: s.within_half_day,
        first_response_distribution: s.distribution.clone(),
    }
}

/// A routing rule in its wire form.
pub(crate) fn rule_pb(r: &crate::domain::routing::Rule) -> pb::RoutingRule {
    pb::RoutingRule {
        rule_id: r.rule_id.clone(),
        themes: r.themes.clone(),
        channels: r.channels.clone(),
        severities: r
            .severities
            .iter()
            .map(|s| {
                i32::from(pb::Severity::from_str_name(&format!("SEVERITY_{}", s.to_uppercase())).unwrap_or_default())
            })
            .collect(),
        tiers: r.tiers.clone(),
        detractors_only: r.detractors_only,
        segments: r.segments.clone(),
        queue_id: r.queue_id.clone(),
    }
}

/// The stored name of a wire severity (unset = medium).
pub(crate) fn severity_name(s: pb::Severity) -> &'static str {
    match s {
        pb::Severity::Low => "low",
        pb::Severity::High => "high",
        pb::Severity::Critical => "critical",
        pb::Severity::Medium | pb::Severity::Unspecified => "medium",
    }
}

/// A next-best-action rule as the API shows it.
pub(crate) fn action_rule_pb(r: &crate::domain::actions::ActionRule) -> pb::ActionRule {
    use crate::domain::actions::Op;
    pb::ActionRule {
        rule_id: r.rule_id.clone(),
        action: r.action.clone(),
        description: r.description.clone(),
        conditions: r
            .conditions
            .iter()
            .map(|c| pb::ActionCondition {
                fact: c.fact.clone(),
                op: match c.op {
                    Op::Eq => pb::ActionOp::Eq,
                    Op::Ne => pb::ActionOp::Ne,
                    Op::Gt => pb::ActionOp::Gt,
                    Op::Gte => pb::ActionOp::Gte,
                    Op::Lt => pb::ActionOp::Lt,
                    Op::Lte => pb::ActionOp::Lte,
                }
                .into(),
                value: c.value.clone(),
            })
            .collect(),
    }
}

/// A suggestion as the API shows it.
pub(crate) fn suggestion_pb(s: crate::domain::actions::Suggestion) -> pb::NextBestAction {
    pb::NextBestAction {
        rule_id: s.rule_id,
        action: s.action,
        description: s.description,
        facts: s
            .facts
            .into_iter()
            .map(|f| pb::ActionFact { name: f.name, value: f.value, condition: f.condition })
            .collect(),
    }
}

/// An axis on the wire.
pub(crate) fn axis_pb(a: crate::domain::barometer::Axis) -> pb::BarometerAxis {
    use crate::domain::barometer::Axis;
    match a {
        Axis::QualityOfService => pb::BarometerAxis::QualityOfService,
        Axis::CustomerSatisfaction => pb::BarometerAxis::CustomerSatisfaction,
        Axis::Loyalty => pb::BarometerAxis::Loyalty,
        Axis::Profit => pb::BarometerAxis::Profit,
    }
}

/// An axis from the wire (`None`: unspecified or unknown).
pub(crate) fn axis_of(a: i32) -> Option<crate::domain::barometer::Axis> {
    use crate::domain::barometer::Axis;
    match pb::BarometerAxis::try_from(a).ok()? {
        pb::BarometerAxis::QualityOfService => Some(Axis::QualityOfService),
        pb::BarometerAxis::CustomerSatisfaction => Some(Axis::CustomerSatisfaction),
        pb::BarometerAxis::Loyalty => Some(Axis::Loyalty),
        pb::BarometerAxis::Profit => Some(Axis::Profit),
        pb::BarometerAxis::Unspecified => None,
    }
}

/// A measure on the wire.
fn measure_pb(m: crate::domain::barometer::Measure) -> pb::BarometerMeasure {
    use crate::domain::barometer::Measure as M;
    match m {
        M::Nps => pb::BarometerMeasure::Nps,
        M::FirstResponseMedianHours => pb::BarometerMeasure::FirstResponseMedianHours,
        M::SlaAttainmentPct => pb::BarometerMeasure::SlaAttainmentPct,
        M::HalfDayPct => pb::BarometerMeasure::HalfDayPct,
        M::ComplaintsPer100Answers => pb::BarometerMeasure::ComplaintsPer100Answers,
        M::RepeatPurchasePct => pb::BarometerMeasure::RepeatPurchasePct,
        M::PremiumTierPct => pb::BarometerMeasure::PremiumTierPct,
    }
}

/// A measure from the wire (`None`: unspecified or unknown).
pub(crate) fn measure_of(m: i32) -> Option<crate::domain::barometer::Measure> {
    use crate::domain::barometer::Measure as M;
    Some(match pb::BarometerMeasure::try_from(m).ok()? {
        pb::BarometerMeasure::Nps => M::Nps,
        pb::BarometerMeasure::FirstResponseMedianHours => M::FirstResponseMedianHours,
        pb::BarometerMeasure::SlaAttainmentPct => M::SlaAttainmentPct,
        pb::BarometerMeasure::HalfDayPct => M::HalfDayPct,
        pb::BarometerMeasure::ComplaintsPer100Answers => M::ComplaintsPer100Answers,
        pb::BarometerMeasure::RepeatPurchasePct => M::RepeatPurchasePct,
        pb::BarometerMeasure::PremiumTierPct => M::PremiumTierPct,
        pb::BarometerMeasure::Unspecified => return None,
    })
}

/// A barometer criterion on the wire.
pub(crate) fn criterion_pb(c: &crate::domain::barometer::Criterion) -> pb::BarometerCriterion {
    pb::BarometerCriterion {
        criterion_id: c.criterion_id.clone(),
        axis: axis_pb(c.axis).into(),
        measure: measure_pb(c.measure).into(),
        weight: c.weight,
        target: c.target,
    }
}

/// A barometer reading on the wire, taken at `taken_at`.
pub(crate) fn reading_pb(r: &crate::domain::barometer::Reading, taken_at: i64) -> pb::BarometerReading {
    pb::BarometerReading {
        period: r.period.clone(),
        take_time: Some(timestamp(taken_at)),
        index: r.index.unwrap_or(-1.0),
        has_trend: r.trend.is_some(),
        trend: r.trend.unwrap_or_default(),
        previous_period: r.previous_period.clone().unwrap_or_default(),
        axes: r
            .axes
            .iter()
            .map(|a| pb::AxisReading {
                axis: axis_pb(a.axis).into(),
                customers: a.customers.unwrap_or(-1.0),
                staff: a.staff.unwrap_or(-1.0),
                staff_answers: i32::try_from(a.staff_answers).unwrap_or(i32::MAX),
                perception_gap: a.perception_gap.unwrap_or_default(),
                has_trend: a.trend.is_some(),
                trend: a.trend.unwrap_or_default(),
            })
            .collect(),
        criteria: r
            .criteria
            .iter()
            .map(|c| pb::CriterionReading {
                criterion: Some(criterion_pb(&c.criterion)),
                available: c.value.is_some(),
                unavailable_reason: c.unavailable.clone().unwrap_or_default(),
                value: c.value.unwrap_or_default(),
                score: c.score.unwrap_or_default(),
                weighted_gap: c.weighted_gap,
            })
            .collect(),
        priorities: r.priorities.clone(),
        priority_axes: r.priority_axes.iter().map(|a| axis_pb(*a).into()).collect(),
    }
}

/// The SLA policy on the wire.
pub(crate) fn policy_pb(p: &crate::domain::sla::Policy) -> pb::SlaPolicy {
    pb::SlaPolicy {
        rules: p
            .rules
            .iter()
            .map(|r| pb::SlaPolicyRule {
                severity: r.severity.clone(),
                tier: r.tier.clone(),
                first_response_ms: r.targets.first_response,
                next_response_ms: r.targets.next_response,
                resolution_ms: r.targets.resolution,
            })
            .collect(),
        escalation_queue_id: p.escalation_queue.clone().unwrap_or_default(),
    }
}
