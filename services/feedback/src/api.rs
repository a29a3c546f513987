//! The gRPC boundary: validates requests, turns them into store commands, and maps errors to `google.rpc.Status`.
//! Replies are built by `wire.rs` (mutations' replies inside the store's transaction, where they are kept for
//! retries).
use rapport_kit::{
    auth::{Caller, Role},
    error::Violations,
    error::{ApiError, ErrorCode},
    frame::Key,
    guard::{acting_customer, ensure_own, ensure_owner_of},
    page::{self, PageBounds},
};
use rapport_proto::{
    common::v1::Channel,
    feedback::v1::{self as pb, feedback_service_server::FeedbackService},
};
use std::time::Duration;

use tonic::{Request, Response, Status};

use crate::{
    domain::{
        DAY_MS, DEFAULT_VALID_DAYS, DEFAULT_WAIT_DAYS,
        actions::{self, ActionRule, Condition, Op},
        barometer::{self, Criterion},
        cases::{CaseKind, Resolution},
        routing::{Assignment, Rule},
        sla::{Policy, PolicyRule, Targets},
        themes::Theme,
    },
    error::FeedbackError,
    peers::Peers,
    store::{AgentCmd, AssessmentCmd, CareGrouping, CaseCmd, CaseFilter, Grouping, QueueCmd, Store, SurveyCmd},
    wire,
};

/// `ErrorInfo` domain of feedback's errors.
pub const DOMAIN: &str = <FeedbackError as rapport_kit::error::ServiceError>::DOMAIN;
/// The longest NPS window.
const MAX_WINDOW_DAYS: i64 = 400;
/// Longest customer or agent text.
const MAX_TEXT: usize = 5_000;
/// Page sizes of ListCases.
const CASES_PAGE: PageBounds = PageBounds { default: 50, max: 500 };

/// Checks required free text.
fn required_text(v: &mut Violations, field: &str, text: &str, max: usize) {
    v.check(!text.trim().is_empty(), field, "is required");
    v.text(field, text, max);
}

/// The FeedbackService implementation.
#[derive(Clone)]
pub struct FeedbackApi {
    store: Store,
    nps_target: f64,
    peers: Peers,
    context_wait: Duration,
}

impl FeedbackApi {
    /// Serves `store`; NPS reports compare against `nps_target`; a case's tier and a customer's context are asked
    /// of the other services through `peers`, a context's parts awaited at most `context_wait` (and never past
    /// three quarters of what is left of the caller's deadline).
    pub fn new(store: Store, nps_target: f64, peers: Peers, context_wait: Duration) -> Self {
        Self { store, nps_target, peers, context_wait }
    }
}

/// Tiers a routing rule may name.
const TIERS: [&str; 6] = ["bronze", "silver", "gold", "vip", "none", "unknown"];

/// A routing rule from the wire, its violations recorded under `at`.
fn rule_of(v: &mut Violations, at: &str, r: &pb::RoutingRule) -> Rule {
    v.id(&format!("{at}.rule_id"), &r.rule_id);
    v.slug(&format!("{at}.queue_id"), &r.queue_id);
    for (i, t) in r.themes.iter().enumerate() {
        v.slug(&format!("{at}.themes[{i}]"), t);
    }
    for (i, c) in r.channels.iter().enumerate() {
        let known = Channel::try_from(*c).is_ok_and(|c| c != Channel::Unspecified);
        v.check(known, &format!("{at}.channels[{i}]"), "must be a known channel");
    }
    let mut severities = Vec::new();
    for (i, s) in r.severities.iter().enumerate() {
        match pb::Severity::try_from(*s) {
            Ok(s) if s != pb::Severity::Unspecified => severities.push(wire::severity_name(s).to_string()),
            _ => v.add(format!("{at}.severities[{i}]"), "must be a known severity"),
        }
    }
    for (i, t) in r.tiers.iter().enumerate() {
        v.check(
            TIERS.contains(&t.as_str()),
            &format!("{at}.tiers[{i}]"),
            "must be bronze, silver, gold, vip, none or unknown",
        );
    }
    for (i, s) in r.segments.iter().enumerate() {
        v.id(&format!("{at}.segments[{i}]"), s);
    }
    Rule {
        rule_id: r.rule_id.clone(),
        themes: r.themes.clone(),
        channels: r.channels.clone(),
        severities,
        tiers: r.tiers.clone(),
        detractors_only: r.detractors_only,
        segments: r.segments.clone(),
        queue_id: r.queue_id.clone(),
    }
}

/// A next-best-action rule from the wire, its violations recorded under `at`.
fn action_rule_of(v: &mut Violations, at: &str, r: &pb::ActionRule) -> ActionRule {
    v.id(&format!("{at}.rule_id"), &r.rule_id);
    required_text(v, &format!("{at}.action"), &r.action, 200);
    v.check(r.description.chars().count() <= 500, &format!("{at}.description"), "must be at most 500 characters");
    v.check((1..=10).contains(&r.conditions.len()), &format!("{at}.conditions"), "must hold 1 to 10 conditions");
    let mut conditions = Vec::new();
    for (i, c) in r.conditions.iter().enumerate() {
        let here = format!("{at}.conditions[{i}]");
        v.check(
            actions::FACTS.iter().any(|(n, _)| *n == c.fact),
            &format!("{here}.fact"),
            "must be a known fact (see ListActionRules)",
        );
        let op = match pb::ActionOp::try_from(c.op) {
            Ok(pb::ActionOp::Eq) => Some(Op::Eq),
            Ok(pb::ActionOp::Ne) => Some(Op::Ne),
            Ok(pb::ActionOp::Gt) => Some(Op::Gt),
            Ok(pb::ActionOp::Gte) => Some(Op::Gte),
            Ok(pb::ActionOp::Lt) => Some(Op::Lt),
            Ok(pb::ActionOp::Lte) => Some(Op::Lte),
            _ => {
                v.add(format!("{here}.op"), "must be a known comparison");
                None
            }
        };
        required_text(v, &format!("{here}.value"), &c.value, 100);
        if let Some(op) = op {
            v.check(
                !op.numeric() || c.value.parse::<f64>().is_ok_and(f64::is_finite),
                &format!("{here}.value"),
                "must be a number for this comparison",
            );
            conditions.push(Condition { fact: c.fact.clone(), op, value: c.value.clone() });
        }
    }
    ActionRule { rule_id: r.rule_id.clone(), action: r.action.clone(), description: r.description.clone(), conditions }
}

/// Barometer criteria from the wire, their violations recorded under `criteria[i]`.
fn criteria_of(v: &mut Violations, list: &[pb::BarometerCriterion]) -> Vec<Criterion> {
    v.check((1..=30).contains(&list.len()), "criteria", "must hold 1 to 30 criteria");
    let mut ids = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let at = format!("criteria[{i}]");
        v.id(&format!("{at}.criterion_id"), &c.criterion_id);
        v.check(ids.insert(c.criterion_id.as_str()), &format!("{at}.criterion_id"), "must be unique");
        let axis = wire::axis_of(c.axis);
        v.check(axis.is_some(), &format!("{at}.axis"), "must be a known axis");
        let measure = wire::measure_of(c.measure);
        v.check(measure.is_some(), &format!("{at}.measure"), "must be a known measure");
        v.check(c.weight > 0.0 && c.weight <= 100.0, &format!("{at}.weight"), "must be above 0 and at most 100");
        v.check(
            c.target.is_finite() && c.target.abs() <= 1e6,
            &format!("{at}.target"),
            "must be a number of at most 1,000,000",
        );
        if let (Some(axis), Some(measure)) = (axis, measure) {
            out.push(Criterion {
                criterion_id: c.criterion_id.clone(),
                axis,
                measure,
                weight: c.weight,
                target: c.target,
            });
        }
    }
    out
}

/// The SLA policy from the wire, its violations recorded under `policy`.
fn policy_of(v: &mut Violations, p: &pb::SlaPolicy) -> Policy {
    const SEVERITIES: [&str; 5] = ["low", "medium", "high", "critical", "*"];
    let limit = 1..=30 * DAY_MS;
    v.check((1..=50).contains(&p.rules.len()), "policy.rules", "must hold 1 to 50 lines");
    let mut rules = Vec::new();
    for (i, r) in p.rules.iter().enumerate() {
        let at = format!("policy.rules[{i}]");
        v.check(
            SEVERITIES.contains(&r.severity.as_str()),
            &format!("{at}.severity"),
            "must be low, medium, high, critical or *",
        );
        v.check(
            r.tier == "*" || TIERS.contains(&r.tier.as_str()),
            &format!("{at}.tier"),
            "must be bronze, silver, gold, vip, none, unknown or *",
        );
        for (field, ms) in [
            ("first_response_ms", r.first_response_ms),
            ("next_response_ms", r.next_response_ms),
            ("resolution_ms", r.resolution_ms),
        ] {
            v.check(limit.contains(&ms) && ms >= 60_000, &format!("{at}.{field}"), "must be 1 minute to 30 days");
        }
        rules.push(PolicyRule {
            severity: r.severity.clone(),
            tier: r.tier.clone(),
            targets: Targets {
                first_response: r.first_response_ms,
                next_response: r.next_response_ms,
                resolution: r.resolution_ms,
            },
        });
    }
    if let Some(last) = p.rules.last() {
        v.check(
            last.severity == "*" && last.tier == "*",
            &format!("policy.rules[{}]", p.rules.len() - 1),
            "the last line must match any case (* and *)",
        );
    }
    let queue = (!p.escalation_queue_id.is_empty()).then(|| p.escalation_queue_id.clone());
    if let Some(q) = &queue {
        v.slug("policy.escalation_queue_id", q);
    }
    Policy { rules, escalation_queue: queue }
}

/// Checks a barometer period, `YYYY-MM`, and returns its window.
fn period(v: &mut Violations, period: &str) -> (i64, i64) {
    let w = barometer::period_window(period);
    v.check(w.is_some(), "period", "must be a month, YYYY-MM");
    w.unwrap_or_default()
}

fn status(e: FeedbackError) -> Status {
    rapport_kit::error::status(e)
}

fn invalid(v: Violations) -> Result<(), Status> {
    rapport_kit::error::invalid::<FeedbackError>(v)
}

#[tonic::async_trait]
impl FeedbackService for FeedbackApi {
    async fn schedule_survey(
        &self,
        req: Request<pb::ScheduleSurveyRequest>,
    ) -> Result<Response<pb::ScheduleSurveyResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("customer_id", &r.customer_id);
        v.id("touchpoint", &r.touchpoint);
        v.check(r.touchpoint.len() <= 64, "touchpoint", "must be at most 64 characters");
        let channel = Channel::try_from(r.channel).unwrap_or(Channel::Unspecified);
        v.check(channel != Channel::Unspecified, "channel", "must be a known channel");
        v.check((0..=365).contains(&r.min_days_between_surveys), "min_days_between_surveys", "must be 0 (7) to 365");
        v.check((0..=90).contains(&r.valid_days), "valid_days", "must be 0 (14) to 90");
        if !r.after_case_id.is_empty() {
            v.id("after_case_id", &r.after_case_id);
        }
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        let days = |d: i32, default: i64| if d == 0 { default } else { i64::from(d) };
        let cmd = SurveyCmd {
            customer_id: r.customer_id.clone(),
            touchpoint: r.touchpoint.clone(),
            channel: r.channel,
            wait_days: days(r.min_days_between_surveys, DEFAULT_WAIT_DAYS),
            valid_days: days(r.valid_days, DEFAULT_VALID_DAYS),
            after_case_id: (!r.after_case_id.is_empty()).then(|| r.after_case_id.clone()),
        };
        self.store.schedule(&key, cmd).await.map(Response::new).map_err(status)
    }

    async fn record_response(
        &self,
        req: Request<pb::RecordResponseRequest>,
    ) -> Result<Response<pb::RecordResponseResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("survey_id", &r.survey_id);
        v.check((0..=10).contains(&r.score), "score", "must be 0 to 10");
        v.text("comment", &r.comment, 2_000);
        invalid(v)?;
        if acting_customer().is_some() {
            let found = self.store.survey(&r.survey_id).await;
            ensure_owner_of(&found, |s| &s.customer_id).map_err(|e| status(e.into()))?;
        }
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store.respond(&key, &r.survey_id, r.score, r.comment.clone()).await.map(Response::new).map_err(status)
    }

    async fn get_survey(&self, req: Request<pb::GetSurveyRequest>) -> Result<Response<pb::GetSurveyResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.id("survey_id", &r.survey_id);
        invalid(v)?;
        let found = self.store.survey(&r.survey_id).await;
        ensure_owner_of(&found, |s| &s.customer_id).map_err(|e| status(e.into()))?;
        let survey = found.map_err(status)?;
        Ok(Response::new(pb::GetSurveyResponse { survey: Some(survey) }))
    }

    async fn get_nps(&self, req: Request<pb::GetNpsRequest>) -> Result<Response<pb::GetNpsResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        let (start, end) = v.window(r.start_time.as_ref(), r.end_time.as_ref(), MAX_WINDOW_DAYS);
        let grouping = match pb::NpsGrouping::try_from(r.group_by) {
            Ok(pb::NpsGrouping::Unspecified) => Grouping::None,
            Ok(pb::NpsGrouping::Day) => Grouping::Day,
            Ok(pb::NpsGrouping::Channel) => Grouping::Channel,
            Ok(pb::NpsGrouping::Touchpoint) => Grouping::Touchpoint,
            Ok(pb::NpsGrouping::Tier) => Grouping::Tier,
            Ok(pb::NpsGrouping::Segment) => Grouping::Segment,
            Err(_) => {
                v.add("group_by", "must be a known grouping");
                Grouping::None
            }
        };
        invalid(v)?;
        let report = self.store.nps(start, end, grouping).await.map_err(status)?;
        Ok(Response::new(pb::GetNpsResponse {
            overall: Some(wire::nps_pb(String::new(), &report.overall)),
            groups: report.groups.iter().map(|(k, n)| wire::nps_pb(k.clone(), n)).collect(),
            daily: report.daily.iter().map(|(k, n)| wire::nps_pb(k.clone(), n)).collect(),
            target: self.nps_target,
            recovery: Some(wire::nps_pb("recovery".into(), &report.recovery)),
        }))
    }

    async fn forget_customer(
        &self,
        req: Request<pb::ForgetCustomerRequest>,
    ) -> Result<Response<pb::ForgetCustomerResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("customer_id", &r.customer_id);
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store.forget(&key, &r.customer_id).await.map(Response::new).map_err(status)
    }

    async fn open_case(&self, req: Request<pb::OpenCaseRequest>) -> Result<Response<pb::OpenCaseResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("customer_id", &r.customer_id);
        let kind = match pb::CaseKind::try_from(r.kind) {
            Ok(pb::CaseKind::Complaint) => CaseKind::Complaint,
            Ok(pb::CaseKind::Claim) => CaseKind::Claim,
            _ => {
                v.add("kind", "must be complaint or claim");
                CaseKind::Complaint
            }
        };
        let channel = Channel::try_from(r.channel).unwrap_or(Channel::Unspecified);
        v.check(channel != Channel::Unspecified, "channel", "must be a known channel");
        let severity = pb::Severity::try_from(r.severity).unwrap_or_else(|_| {
            v.add("severity", "must be a known severity");
            pb::Severity::Unspecified
        });
        if !r.order_id.is_empty() {
            v.id("order_id", &r.order_id);
        }
        required_text(&mut v, "text", &r.text, MAX_TEXT);
        if !r.theme.is_empty() {
            v.slug("theme", &r.theme);
        }
        invalid(v)?;
        ensure_own(Some(&r.customer_id)).map_err(|e| status(e.into()))?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        let tier = self.peers.tier(&r.customer_id).await;
        let cmd = CaseCmd {
            kind,
            customer_id: r.customer_id.clone(),
            channel: r.channel,
            severity: wire::severity_name(severity),
            order_id: r.order_id.clone(),
            text: r.text.clone(),
            theme: (!r.theme.is_empty()).then(|| r.theme.clone()),
            tier,
        };
        self.store.open_case(&key, cmd).await.map(Response::new).map_err(status)
    }

    async fn get_case(&self, req: Request<pb::GetCaseRequest>) -> Result<Response<pb::GetCaseResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.id("case_id", &r.case_id);
        invalid(v)?;
        let case = self.store.case(&r.case_id).await.map_err(status)?;
        Ok(Response::new(pb::GetCaseResponse { case: Some(case) }))
    }

    async fn list_cases(&self, req: Request<pb::ListCasesRequest>) -> Result<Response<pb::ListCasesResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        let state = match pb::CaseState::try_from(r.state) {
            Ok(pb::CaseState::Unspecified) => None,
            Ok(pb::CaseState::Open) => Some(crate::domain::cases::OPEN),
            Ok(pb::CaseState::Resolved) => Some(crate::domain::cases::RESOLVED),
            Ok(pb::CaseState::Erased) => Some(crate::domain::cases::ERASED),
            Err(_) => {
                v.add("state", "must be a known state");
                None
            }
        };
        if !r.theme.is_empty() {
            v.slug("theme", &r.theme);
        }
        if !r.customer_id.is_empty() {
            v.id("customer_id", &r.customer_id);
        }
        let size = CASES_PAGE.size(r.page_size, &mut v);
        invalid(v)?;
        // The token is bound to the filter it came from.
        let query = format!("{}|{}|{}", r.state, r.theme, r.customer_id);
        let cursor = page::decode(&query, &r.page_token).map_err(|e| status(e.into()))?;
        let filter = CaseFilter {
            state,
            theme: (!r.theme.is_empty()).then(|| r.theme.clone()),
            customer_id: (!r.customer_id.is_empty()).then(|| r.customer_id.clone()),
        };
        let (cases, next) = self.store.cases(&filter, cursor, size).await.map_err(status)?;
        Ok(Response::new(pb::ListCasesResponse {
            cases,
            next_page_token: next.map(|c| page::encode(&query, c)).unwrap_or_default(),
        }))
    }

    async fn respond_to_case(
        &self,
        req: Request<pb::RespondToCaseRequest>,
    ) -> Result<Response<pb::RespondToCaseResponse>, Status> {
        let author = req.extensions().get::<Caller>().map(|c| c.subject.clone()).unwrap_or_else(|| "agent".into());
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("case_id", &r.case_id);
        required_text(&mut v, "text", &r.text, MAX_TEXT);
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store.respond_case(&key, &r.case_id, &author, r.text.clone()).await.map(Response::new).map_err(status)
    }

    async fn set_case_waiting(
        &self,
        req: Request<pb::SetCaseWaitingRequest>,
    ) -> Result<Response<pb::SetCaseWaitingResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("case_id", &r.case_id);
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store.set_waiting(&key, &r.case_id, r.waiting).await.map(Response::new).map_err(status)
    }

    async fn resolve_case(
        &self,
        req: Request<pb::ResolveCaseRequest>,
    ) -> Result<Response<pb::ResolveCaseResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("case_id", &r.case_id);
        required_text(&mut v, "resolution", &r.resolution, 2_000);
        v.text("root_cause", &r.root_cause, 2_000);
        v.text("corrective_action", &r.corrective_action, 2_000);
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        let resolution = Resolution {
            resolution: r.resolution.clone(),
            root_cause: r.root_cause.clone(),
            corrective_action: r.corrective_action.clone(),
        };
        self.store.resolve_case(&key, &r.case_id, resolution).await.map(Response::new).map_err(status)
    }

    async fn put_theme(&self, req: Request<pb::PutThemeRequest>) -> Result<Response<pb::PutThemeResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        let t = r.theme.clone().unwrap_or_default();
        v.slug("theme.theme_id", &t.theme_id);
        v.check(t.theme_id != crate::domain::themes::UNCLASSIFIED, "theme.theme_id", "is reserved");
        v.check(t.keywords.len() <= 200, "theme.keywords", "must be at most 200");
        v.check(t.examples.len() <= 500, "theme.examples", "must be at most 500");
        for (i, k) in t.keywords.iter().enumerate() {
            required_text(&mut v, &format!("theme.keywords[{i}]"), k, 100);
        }
        for (i, e) in t.examples.iter().enumerate() {
            required_text(&mut v, &format!("theme.examples[{i}]"), e, 1_000);
        }
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        let theme = Theme { id: t.theme_id, keywords: t.keywords, examples: t.examples };
        self.store.put_theme(&key, theme).await.map(Response::new).map_err(status)
    }

    async fn list_themes(&self, _: Request<pb::ListThemesRequest>) -> Result<Response<pb::ListThemesResponse>, Status> {
        self.store.themes().await.map(Response::new).map_err(status)
    }

    async fn train_classifier(
        &self,
        req: Request<pb::TrainClassifierRequest>,
    ) -> Result<Response<pb::TrainClassifierResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store.train_classifier(&key).await.map(Response::new).map_err(status)
    }

    async fn put_queue(&self, req: Request<pb::PutQueueRequest>) -> Result<Response<pb::PutQueueResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        let q = r.queue.clone().unwrap_or_default();
        v.slug("queue.queue_id", &q.queue_id);
        v.text("queue.display_name", &q.display_name, 200);
        let assignment = match pb::Assignment::try_from(q.assignment) {
            Ok(pb::Assignment::LeastLoaded) => Assignment::LeastLoaded,
            Ok(_) => Assignment::RoundRobin,
            Err(_) => {
                v.add("queue.assignment", "must be round_robin or least_loaded");
                Assignment::RoundRobin
            }
        };
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        let name = if q.display_name.is_empty() { q.queue_id.clone() } else { q.display_name.clone() };
        let cmd = QueueCmd { queue_id: q.queue_id, display_name: name, assignment };
        self.store.put_queue(&key, cmd).await.map(Response::new).map_err(status)
    }

    async fn list_queues(&self, _: Request<pb::ListQueuesRequest>) -> Result<Response<pb::ListQueuesResponse>, Status> {
        self.store.queues().await.map(Response::new).map_err(status)
    }

    async fn put_agent(&self, req: Request<pb::PutAgentRequest>) -> Result<Response<pb::PutAgentResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        let a = r.agent.clone().unwrap_or_default();
        v.id("agent.agent_id", &a.agent_id);
        v.check((1..=100).contains(&a.capacity), "agent.capacity", "must be 1 to 100");
        v.check(a.queue_ids.len() <= 50, "agent.queue_ids", "must be at most 50");
        for (i, q) in a.queue_ids.iter().enumerate() {
            v.slug(&format!("agent.queue_ids[{i}]"), q);
        }
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        let cmd = AgentCmd { agent_id: a.agent_id, queue_ids: a.queue_ids, capacity: a.capacity, online: a.online };
        self.store.put_agent(&key, cmd).await.map(Response::new).map_err(status)
    }

    async fn set_agent_online(
        &self,
        req: Request<pb::SetAgentOnlineRequest>,
    ) -> Result<Response<pb::SetAgentOnlineResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("agent_id", &r.agent_id);
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store.set_agent_online(&key, &r.agent_id, r.online).await.map(Response::new).map_err(status)
    }

    async fn set_routing_rules(
        &self,
        req: Request<pb::SetRoutingRulesRequest>,
    ) -> Result<Response<pb::SetRoutingRulesResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.check(r.rules.len() <= 100, "rules", "must be at most 100");
        let rules: Vec<Rule> =
            r.rules.iter().enumerate().map(|(i, x)| rule_of(&mut v, &format!("rules[{i}]"), x)).collect();
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store.set_rules(&key, rules).await.map(Response::new).map_err(status)
    }

    async fn list_routing_rules(
        &self,
        _: Request<pb::ListRoutingRulesRequest>,
    ) -> Result<Response<pb::ListRoutingRulesResponse>, Status> {
        let rules = self.store.rules().await.map_err(status)?;
        Ok(Response::new(pb::ListRoutingRulesResponse { rules: rules.iter().map(wire::rule_pb).collect() }))
    }

    async fn get_care_report(
        &self,
        req: Request<pb::GetCareReportRequest>,
    ) -> Result<Response<pb::GetCareReportResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        let (start, end) = v.window(r.start_time.as_ref(), r.end_time.as_ref(), MAX_WINDOW_DAYS);
        let by = match pb::CareGrouping::try_from(r.group_by) {
            Ok(pb::CareGrouping::Unspecified) => CareGrouping::None,
            Ok(pb::CareGrouping::Queue) => CareGrouping::Queue,
            Ok(pb::CareGrouping::Channel) => CareGrouping::Channel,
            Ok(pb::CareGrouping::Tier) => CareGrouping::Tier,
            Ok(pb::CareGrouping::Segment) => CareGrouping::Segment,
            Ok(pb::CareGrouping::Theme) => CareGrouping::Theme,
            Ok(pb::CareGrouping::Agent) => CareGrouping::Agent,
            Err(_) => {
                v.add("group_by", "must be a known grouping");
                CareGrouping::None
            }
        };
        invalid(v)?;
        let (overall, groups) = self.store.care_report(start, end, by).await.map_err(status)?;
        Ok(Response::new(pb::GetCareReportResponse {
            overall: Some(wire::care_pb(String::new(), &overall)),
            groups: groups.iter().map(|(k, s)| wire::care_pb(k.clone(), s)).collect(),
            target_ms: crate::domain::report::HALF_DAY_MS,
        }))
    }

    async fn classify_text(
        &self,
        req: Request<pb::ClassifyTextRequest>,
    ) -> Result<Response<pb::ClassifyTextResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        required_text(&mut v, "text", &r.text, MAX_TEXT);
        invalid(v)?;
        let (version, d) = self.store.classify(&r.text).await.map_err(status)?;
        Ok(Response::new(pb::ClassifyTextResponse {
            decision: Some(pb::ThemeDecision {
                theme: d.theme,
                confidence: d.confidence,
                keywords: d.keywords,
                tie_broken: d.tie_broken,
                taxonomy_version: version,
            }),
        }))
    }

    async fn get_customer_context(
        &self,
        req: Request<pb::GetCustomerContextRequest>,
    ) -> Result<Response<pb::GetCustomerContextResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.id("customer_id", &r.customer_id);
        invalid(v)?;
        if self.store.is_erased(&r.customer_id).await.map_err(status)? {
            return Err(status(FeedbackError::CustomerErased));
        }
        // The other services are asked while feedback reads its own: each part gets three quarters of what is left.
        let left = rapport_kit::guard::remaining().unwrap_or(self.context_wait);
        let wait = self.context_wait.min(left.mul_f64(0.75));
        let (record, rules, remote) = tokio::join!(
            self.store.customer_record(&r.customer_id),
            self.store.action_rules(),
            self.peers.ask(&r.customer_id, wait)
        );
        let (record, rules) = (record.map_err(status)?, rules.map_err(status)?);
        let (mut reply, facts) = Peers::context(&r.customer_id, record, remote, self.store.now());
        reply.suggestions = actions::suggest(&rules, &facts).into_iter().map(wire::suggestion_pb).collect();
        reply.facts = facts.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Ok(Response::new(reply))
    }

    async fn set_action_rules(
        &self,
        req: Request<pb::SetActionRulesRequest>,
    ) -> Result<Response<pb::SetActionRulesResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.check(r.rules.len() <= 50, "rules", "must be at most 50");
        let rules: Vec<ActionRule> =
            r.rules.iter().enumerate().map(|(i, x)| action_rule_of(&mut v, &format!("rules[{i}]"), x)).collect();
        let mut ids = std::collections::HashSet::new();
        for (i, x) in rules.iter().enumerate() {
            v.check(ids.insert(x.rule_id.as_str()), &format!("rules[{i}].rule_id"), "must be unique");
        }
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store.set_action_rules(&key, rules).await.map(Response::new).map_err(status)
    }

    async fn list_action_rules(
        &self,
        _: Request<pb::ListActionRulesRequest>,
    ) -> Result<Response<pb::ListActionRulesResponse>, Status> {
        let rules = self.store.action_rules().await.map_err(status)?;
        Ok(Response::new(pb::ListActionRulesResponse {
            rules: rules.iter().map(wire::action_rule_pb).collect(),
            facts: actions::FACTS
                .iter()
                .map(|(n, d)| pb::ActionFactName { name: n.to_string(), description: d.to_string() })
                .collect(),
        }))
    }

    async fn set_barometer_criteria(
        &self,
        req: Request<pb::SetBarometerCriteriaRequest>,
    ) -> Result<Response<pb::SetBarometerCriteriaResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        let criteria = criteria_of(&mut v, &r.criteria);
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store.set_barometer_criteria(&key, criteria).await.map(Response::new).map_err(status)
    }

    async fn get_barometer_criteria(
        &self,
        _: Request<pb::GetBarometerCriteriaRequest>,
    ) -> Result<Response<pb::GetBarometerCriteriaResponse>, Status> {
        let criteria = self.store.barometer_criteria().await.map_err(status)?;
        Ok(Response::new(pb::GetBarometerCriteriaResponse {
            criteria: criteria.iter().map(wire::criterion_pb).collect(),
        }))
    }

    async fn record_staff_assessment(
        &self,
        req: Request<pb::RecordStaffAssessmentRequest>,
    ) -> Result<Response<pb::RecordStaffAssessmentResponse>, Status> {
        let caller = req.extensions().get::<Caller>().cloned();
        let r = req.into_inner();
        // An agent answers for itself only (an operator may record an answer given on paper).
        if let Some(c) = caller.filter(|c| c.role == Role::Agent && c.subject != r.agent_id) {
            let e = ApiError::new(
                ErrorCode::PermissionDenied,
                "NOT_YOUR_ASSESSMENT",
                format!("an agent records its own assessment only (the token is {})", c.subject),
            );
            return Err(status(e.into()));
        }
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("agent_id", &r.agent_id);
        period(&mut v, &r.period);
        v.check(!r.scores.is_empty(), "scores", "must score at least one axis");
        let mut scores = Vec::new();
        for (i, s) in r.scores.iter().enumerate() {
            let axis = wire::axis_of(s.axis);
            v.check(axis.is_some(), &format!("scores[{i}].axis"), "must be a known axis");
            v.check((0..=10).contains(&s.score), &format!("scores[{i}].score"), "must be 0 to 10");
            if let Some(a) = axis {
                v.check(scores.iter().all(|(x, _)| *x != a), &format!("scores[{i}].axis"), "must be scored once");
                scores.push((a, s.score));
            }
        }
        v.text("comment", &r.comment, 2_000);
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        let cmd = AssessmentCmd { agent_id: r.agent_id, period: r.period, scores, comment: r.comment };
        self.store.record_assessment(&key, cmd).await.map(Response::new).map_err(status)
    }

    async fn take_barometer_reading(
        &self,
        req: Request<pb::TakeBarometerReadingRequest>,
    ) -> Result<Response<pb::TakeBarometerReadingResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        let (start, end) = period(&mut v, &r.period);
        invalid(v)?;
        if end > self.store.now() {
            return Err(status(FeedbackError::PeriodNotOver(r.period)));
        }
        let left = rapport_kit::guard::remaining().unwrap_or(self.context_wait);
        let wait = self.context_wait.min(left.mul_f64(0.5));
        let (own, theirs) =
            tokio::join!(self.store.own_measures(start, end), self.peers.loyalty_measures(start, end, wait));
        let mut measures = own.map_err(status)?;
        measures.extend(theirs);
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store.take_reading(&key, r.period, r.replace, measures).await.map(Response::new).map_err(status)
    }

    async fn list_barometer_readings(
        &self,
        req: Request<pb::ListBarometerReadingsRequest>,
    ) -> Result<Response<pb::ListBarometerReadingsResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.check((0..=120).contains(&r.limit), "limit", "must be 0 to 120");
        invalid(v)?;
        let limit = if r.limit == 0 { 12 } else { r.limit as u64 };
        let readings = self.store.readings(limit).await.map_err(status)?;
        Ok(Response::new(pb::ListBarometerReadingsResponse { readings }))
    }

    async fn add_customer_message(
        &self,
        req: Request<pb::AddCustomerMessageRequest>,
    ) -> Result<Response<pb::AddCustomerMessageResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("case_id", &r.case_id);
        required_text(&mut v, "text", &r.text, MAX_TEXT);
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store.add_customer_message(&key, &r.case_id, r.text).await.map(Response::new).map_err(status)
    }

    async fn set_sla_policy(
        &self,
        req: Request<pb::SetSlaPolicyRequest>,
    ) -> Result<Response<pb::SetSlaPolicyResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        let policy = policy_of(&mut v, &r.policy.clone().unwrap_or_default());
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store.set_sla_policy(&key, policy).await.map(Response::new).map_err(status)
    }

    async fn get_sla_policy(
        &self,
        _: Request<pb::GetSlaPolicyRequest>,
    ) -> Result<Response<pb::GetSlaPolicyResponse>, Status> {
        let policy = self.store.sla_policy().await.map_err(status)?;
        Ok(Response::new(pb::GetSlaPolicyResponse { policy: Some(wire::policy_pb(&policy)) }))
    }

    async fn list_staff_assessments(
        &self,
        req: Request<pb::ListStaffAssessmentsRequest>,
    ) -> Result<Response<pb::ListStaffAssessmentsResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        period(&mut v, &r.period);
        invalid(v)?;
        let assessments = self.store.assessments(&r.period).await.map_err(status)?;
        Ok(Response::new(pb::ListStaffAssessmentsResponse { assessments }))
    }
}
