//! The gRPC boundary: validates requests, turns them into store commands, and maps errors to `google.rpc.Status`.
use rapport_kit::{
    auth::Caller,
    clock::millis,
    error::{ApiError, Violations},
    frame::Key,
    page::{self, PageBounds},
};
use rapport_proto::improvement::v1::{self as pb, improvement_service_server::ImprovementService};
use tonic::{Request, Response, Status};

use crate::{
    domain::{DAY_MS, Status as Lifecycle, UNCLASSIFIED, discovery::Config, pilot::Group},
    error::ImprovementError,
    peers::Segmentation,
    store::{AcceptCmd, DiscoverCmd, ImprovementCmd, ImprovementPatch, PilotCmd, StatusCmd, Store, SuggestionCmd},
    wire,
};

/// `ErrorInfo` domain of improvement's errors.
pub const DOMAIN: &str = <ImprovementError as rapport_kit::error::ServiceError>::DOMAIN;
/// Page sizes of ListSignals.
const SIGNALS_PAGE: PageBounds = PageBounds { default: 50, max: 500 };
/// The longest discovery window.
const MAX_WINDOW_DAYS: i64 = 400;
/// The default discovery window.
const DEFAULT_WINDOW_DAYS: i64 = 180;

fn status(e: ImprovementError) -> Status {
    rapport_kit::error::status(e)
}

fn invalid(v: Violations) -> Result<(), Status> {
    rapport_kit::error::invalid::<ImprovementError>(v)
}

/// Checks a theme named by a request (not "unclassified").
fn theme_id(v: &mut Violations, field: &str, id: &str) {
    v.slug(field, id);
    v.check(id != UNCLASSIFIED, field, "must be a theme, not unclassified");
}

/// Checks a list of themes: `range` of them, each a theme, no repeats.
fn theme_list(v: &mut Violations, field: &str, ids: &[String], range: std::ops::RangeInclusive<usize>) {
    if !range.contains(&ids.len()) {
        v.add(field, format!("must name {} to {} themes", range.start(), range.end()));
    }
    for (i, t) in ids.iter().enumerate() {
        theme_id(v, &format!("{field}[{i}]"), t);
        if ids[..i].contains(t) {
            v.add(format!("{field}[{i}]"), "is named twice");
        }
    }
}

/// Checks `value` within `range` unless 0 (the default).
fn within_or_default(v: &mut Violations, field: &str, value: i64, range: std::ops::RangeInclusive<i64>) -> Option<i64> {
    if value == 0 {
        return None;
    }
    if !range.contains(&value) {
        v.add(field, format!("must be 0 (the default) or from {} to {}", range.start(), range.end()));
    }
    Some(value)
}

fn confidence_of(v: &mut Violations, value: f64) -> f64 {
    v.check(value.is_finite() && value > 0.0 && value <= 1.0, "confidence", "must be above 0 and at most 1");
    value
}

fn effort_of(v: &mut Violations, value: f64) -> f64 {
    v.check(value.is_finite() && value > 0.0 && value <= 520.0, "effort_weeks", "must be above 0 and at most 520");
    value
}

/// Timestamps requests may name: 2000-01-01 to 2100-01-01 (arithmetic on them cannot overflow).
const TIME_RANGE: std::ops::Range<i64> = 946_684_800_000..4_102_444_800_000;

/// A timestamp of the request within [`TIME_RANGE`] (a violation of `field` otherwise, and now in its place).
fn time_of(v: &mut Violations, field: &str, ts: Option<&prost_types::Timestamp>, now: i64) -> Option<i64> {
    let t = ts.map(millis)?;
    if TIME_RANGE.contains(&t) {
        Some(t)
    } else {
        v.add(field, "must be between 2000 and 2100");
        Some(now)
    }
}

/// Who is calling (the token's subject), for what people do.
fn actor_of<T>(req: &Request<T>) -> String {
    req.extensions().get::<Caller>().map(|c| c.subject.clone()).unwrap_or_else(|| "unknown".into())
}

/// The ImprovementService implementation.
#[derive(Clone)]
pub struct ImprovementApi {
    store: Store,
    segmentation: Segmentation,
}

impl ImprovementApi {
    /// Serves `store`; pilots take their segments from `segmentation`.
    pub fn new(store: Store, segmentation: Segmentation) -> Self {
        Self { store, segmentation }
    }
}

#[tonic::async_trait]
impl ImprovementService for ImprovementApi {
    async fn submit_suggestion(
        &self,
        req: Request<pb::SubmitSuggestionRequest>,
    ) -> Result<Response<pb::SubmitSuggestionResponse>, Status> {
        let actor = actor_of(&req);
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.check(!r.text.trim().is_empty(), "text", "is required");
        v.text("text", &r.text, 2_000);
        if !r.theme_id.is_empty() {
            theme_id(&mut v, "theme_id", &r.theme_id);
        }
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        let cmd = SuggestionCmd {
            text: r.text.trim().to_string(),
            theme_id: (!r.theme_id.is_empty()).then(|| r.theme_id.clone()),
            suggested_by: actor,
        };
        self.store.suggest(&key, cmd).await.map(Response::new).map_err(status)
    }

    async fn list_signals(
        &self,
        req: Request<pb::ListSignalsRequest>,
    ) -> Result<Response<pb::ListSignalsResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.slug("theme_id", &r.theme_id);
        let size = SIGNALS_PAGE.size(r.page_size, &mut v);
        invalid(v)?;
        let cursor = page::decode(&r.theme_id, &r.page_token).map_err(|e: ApiError| status(e.into()))?;
        let (signals, next) = self.store.signals(&r.theme_id, cursor, size).await.map_err(status)?;
        Ok(Response::new(pb::ListSignalsResponse {
            signals,
            next_page_token: next.map(|c| page::encode(&r.theme_id, c)).unwrap_or_default(),
        }))
    }

    async fn discover_themes(
        &self,
        req: Request<pb::DiscoverThemesRequest>,
    ) -> Result<Response<pb::DiscoverThemesResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        let now = self.store.now();
        let (start, end) = match (r.start_time.as_ref(), r.end_time.as_ref()) {
            (None, None) => (now - DEFAULT_WINDOW_DAYS * DAY_MS, now),
            (s, e) => {
                let end = time_of(&mut v, "end_time", e, now).unwrap_or(now);
                let start = time_of(&mut v, "start_time", s, now).unwrap_or(end - DEFAULT_WINDOW_DAYS * DAY_MS);
                v.check(end > start, "end_time", "must be after start_time");
                v.check(
                    end - start <= MAX_WINDOW_DAYS * DAY_MS,
                    "end_time",
                    "must be at most 400 days after start_time",
                );
                (start, end)
            }
        };
        let k = within_or_default(&mut v, "k", i64::from(r.k), 2..=40);
        let k_min = within_or_default(&mut v, "k_min", i64::from(r.k_min), 2..=40).unwrap_or(2);
        let k_max = within_or_default(&mut v, "k_max", i64::from(r.k_max), 2..=40).unwrap_or(12.max(k_min));
        v.check(k_max >= k_min, "k_max", "must be at least k_min");
        let sample = within_or_default(&mut v, "sample_size", i64::from(r.sample_size), 100..=20_000).unwrap_or(5_000);
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        let config = Config {
            k: k.map(|k| k as usize),
            k_range: (k_min as usize, k_max as usize),
            sample_size: sample as usize,
            ..Config::default()
        };
        self.store.discover(&key, DiscoverCmd { start, end, config }).await.map(Response::new).map_err(status)
    }

    async fn list_themes(
        &self,
        req: Request<pb::ListThemesRequest>,
    ) -> Result<Response<pb::ListThemesResponse>, Status> {
        let r = req.into_inner();
        self.store.themes(r.include_settled).await.map(Response::new).map_err(status)
    }

    async fn accept_theme(
        &self,
        req: Request<pb::AcceptThemeRequest>,
    ) -> Result<Response<pb::AcceptThemeResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        theme_id(&mut v, "theme_id", &r.theme_id);
        theme_id(&mut v, "taxonomy_id", &r.taxonomy_id);
        v.check(!r.taxonomy_id.starts_with("d-"), "taxonomy_id", "must not start with d- (discovered themes' ids do)");
        v.check(r.keywords.len() <= 200, "keywords", "must hold at most 200 keywords");
        for (i, k) in r.keywords.iter().enumerate() {
            v.check(!k.trim().is_empty(), &format!("keywords[{i}]"), "must not be empty");
            v.text(&format!("keywords[{i}]"), k, 100);
        }
        v.check(r.examples.len() <= 500, "examples", "must hold at most 500 examples");
        for (i, e) in r.examples.iter().enumerate() {
            v.check(!e.trim().is_empty(), &format!("examples[{i}]"), "must not be empty");
            v.text(&format!("examples[{i}]"), e, 1_000);
        }
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        let cmd = AcceptCmd {
            theme_id: r.theme_id.clone(),
            taxonomy_id: r.taxonomy_id.clone(),
            keywords: r.keywords.iter().map(|k| k.trim().to_string()).collect(),
            examples: r.examples.iter().map(|e| e.trim().to_string()).collect(),
        };
        self.store.accept(&key, cmd).await.map(Response::new).map_err(status)
    }

    async fn merge_theme(
        &self,
        req: Request<pb::MergeThemeRequest>,
    ) -> Result<Response<pb::MergeThemeResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        theme_id(&mut v, "theme_id", &r.theme_id);
        theme_id(&mut v, "into_theme_id", &r.into_theme_id);
        v.check(r.theme_id != r.into_theme_id, "into_theme_id", "must be another theme");
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store.merge(&key, r.theme_id.clone(), r.into_theme_id.clone()).await.map(Response::new).map_err(status)
    }

    async fn get_theme_analytics(
        &self,
        req: Request<pb::GetThemeAnalyticsRequest>,
    ) -> Result<Response<pb::GetThemeAnalyticsResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        if !r.theme_ids.is_empty() {
            theme_list(&mut v, "theme_ids", &r.theme_ids, 1..=100);
        }
        let weeks = within_or_default(&mut v, "weeks", i64::from(r.weeks), 2..=52).unwrap_or(8);
        let end = time_of(&mut v, "end_time", r.end_time.as_ref(), self.store.now());
        invalid(v)?;
        let weeks = self.store.weeks(end, weeks as usize);
        let figures = self.store.analytics(&r.theme_ids, weeks).await.map_err(status)?;
        Ok(Response::new(pb::GetThemeAnalyticsResponse {
            themes: figures.iter().map(wire::analytics_pb).collect(),
            start_time: Some(rapport_kit::clock::timestamp(weeks.start())),
            end_time: Some(rapport_kit::clock::timestamp(weeks.end)),
            high_value_threshold: self.store.settings().high_value,
        }))
    }

    async fn create_improvement(
        &self,
        req: Request<pb::CreateImprovementRequest>,
    ) -> Result<Response<pb::CreateImprovementResponse>, Status> {
        let actor = actor_of(&req);
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.check(!r.title.trim().is_empty(), "title", "is required");
        v.text("title", &r.title, 200);
        v.text("description", &r.description, 5_000);
        theme_list(&mut v, "theme_ids", &r.theme_ids, 1..=20);
        let confidence = if r.confidence == 0.0 { 0.5 } else { confidence_of(&mut v, r.confidence) };
        let effort_weeks = if r.effort_weeks == 0.0 { 1.0 } else { effort_of(&mut v, r.effort_weeks) };
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        let cmd = ImprovementCmd {
            title: r.title.trim().to_string(),
            description: r.description.trim().to_string(),
            themes: r.theme_ids.clone(),
            confidence,
            effort_weeks,
            actor,
        };
        self.store.create_improvement(&key, cmd).await.map(Response::new).map_err(status)
    }

    async fn update_improvement(
        &self,
        req: Request<pb::UpdateImprovementRequest>,
    ) -> Result<Response<pb::UpdateImprovementResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("improvement_id", &r.improvement_id);
        if let Some(t) = &r.title {
            v.check(!t.trim().is_empty(), "title", "must not be empty");
            v.text("title", t, 200);
        }
        if let Some(d) = &r.description {
            v.text("description", d, 5_000);
        }
        if !r.theme_ids.is_empty() {
            theme_list(&mut v, "theme_ids", &r.theme_ids, 1..=20);
        }
        let confidence = r.confidence.map(|c| confidence_of(&mut v, c));
        let effort_weeks = r.effort_weeks.map(|e| effort_of(&mut v, e));
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        let patch = ImprovementPatch {
            title: r.title.as_ref().map(|t| t.trim().to_string()),
            description: r.description.as_ref().map(|d| d.trim().to_string()),
            themes: (!r.theme_ids.is_empty()).then(|| r.theme_ids.clone()),
            confidence,
            effort_weeks,
        };
        self.store.update_improvement(&key, r.improvement_id.clone(), patch).await.map(Response::new).map_err(status)
    }

    async fn change_improvement_status(
        &self,
        req: Request<pb::ChangeImprovementStatusRequest>,
    ) -> Result<Response<pb::ChangeImprovementStatusResponse>, Status> {
        let actor = actor_of(&req);
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("improvement_id", &r.improvement_id);
        let to = pb::ImprovementStatus::try_from(r.status).ok().and_then(wire::status_of);
        v.check(
            to.is_some_and(|t| t != Lifecycle::Proposed),
            "status",
            "must be planned, piloting, shipped, declined or duplicate",
        );
        v.text("note", &r.note, 2_000);
        if to == Some(Lifecycle::Duplicate) {
            v.id("duplicate_of", &r.duplicate_of);
        } else {
            v.check(r.duplicate_of.is_empty(), "duplicate_of", "is given only with duplicate");
        }
        v.check(!r.resurvey || to == Some(Lifecycle::Shipped), "resurvey", "is given only with shipped");
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        let cmd = StatusCmd {
            improvement_id: r.improvement_id.clone(),
            to: to.unwrap_or(Lifecycle::Planned),
            note: r.note.trim().to_string(),
            duplicate_of: (!r.duplicate_of.is_empty()).then(|| r.duplicate_of.clone()),
            resurvey: r.resurvey,
            actor,
        };
        self.store.change_status(&key, cmd).await.map(Response::new).map_err(status)
    }

    async fn get_improvement(
        &self,
        req: Request<pb::GetImprovementRequest>,
    ) -> Result<Response<pb::GetImprovementResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.id("improvement_id", &r.improvement_id);
        let days =
            within_or_default(&mut v, "impact_window_days", i64::from(r.impact_window_days), 1..=365).unwrap_or(28);
        invalid(v)?;
        self.store.improvement(&r.improvement_id, days).await.map(Response::new).map_err(status)
    }

    async fn list_improvements(
        &self,
        req: Request<pb::ListImprovementsRequest>,
    ) -> Result<Response<pb::ListImprovementsResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        let state = match pb::ImprovementStatus::try_from(r.status) {
            Ok(pb::ImprovementStatus::Unspecified) => None,
            Ok(s) => wire::status_of(s),
            Err(_) => {
                v.add("status", "must be a known status");
                None
            }
        };
        let limit = within_or_default(&mut v, "limit", i64::from(r.limit), 1..=500).unwrap_or(50);
        invalid(v)?;
        let improvements = self.store.improvements(state, limit as usize).await.map_err(status)?;
        Ok(Response::new(pb::ListImprovementsResponse { improvements }))
    }

    async fn start_pilot(
        &self,
        req: Request<pb::StartPilotRequest>,
    ) -> Result<Response<pb::StartPilotResponse>, Status> {
        let actor = actor_of(&req);
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("improvement_id", &r.improvement_id);
        v.id("segment_id", &r.segment_id);
        let holdout = within_or_default(&mut v, "holdout_percent", i64::from(r.holdout_percent), 1..=90).unwrap_or(20);
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        // A retry gets its first answer, whatever segmentation says now.
        if let Some(done) = self.store.started_pilot(&key).await.map_err(status)? {
            return Ok(Response::new(done));
        }
        // The improvement first (a quick refusal), then the segment's members, asked before the transaction.
        self.store.improvement_open(&r.improvement_id).await.map_err(status)?;
        let members = self.segmentation.members(&r.segment_id).await.map_err(status)?;
        if members.is_empty() {
            return Err(status(ImprovementError::SegmentEmpty(r.segment_id.clone())));
        }
        let cmd = PilotCmd {
            improvement_id: r.improvement_id.clone(),
            segment_id: r.segment_id.clone(),
            members,
            holdout_percent: holdout as i32,
            actor,
        };
        self.store.start_pilot(&key, cmd).await.map(Response::new).map_err(status)
    }

    async fn end_pilot(&self, req: Request<pb::EndPilotRequest>) -> Result<Response<pb::EndPilotResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("pilot_id", &r.pilot_id);
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store.end_pilot(&key, r.pilot_id.clone()).await.map(Response::new).map_err(status)
    }

    async fn get_pilot(&self, req: Request<pb::GetPilotRequest>) -> Result<Response<pb::GetPilotResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.id("pilot_id", &r.pilot_id);
        invalid(v)?;
        let pilot = self.store.pilot(&r.pilot_id).await.map_err(status)?;
        Ok(Response::new(pb::GetPilotResponse { pilot: Some(pilot) }))
    }

    async fn list_pilots(
        &self,
        req: Request<pb::ListPilotsRequest>,
    ) -> Result<Response<pb::ListPilotsResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        if !r.improvement_id.is_empty() {
            v.id("improvement_id", &r.improvement_id);
        }
        invalid(v)?;
        let of = (!r.improvement_id.is_empty()).then_some(r.improvement_id.as_str());
        let pilots = self.store.pilots(of).await.map_err(status)?;
        Ok(Response::new(pb::ListPilotsResponse { pilots }))
    }

    async fn check_pilot_group(
        &self,
        req: Request<pb::CheckPilotGroupRequest>,
    ) -> Result<Response<pb::CheckPilotGroupResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.id("pilot_id", &r.pilot_id);
        v.id("customer_id", &r.customer_id);
        invalid(v)?;
        let (group, running) = self.store.pilot_group(&r.pilot_id, &r.customer_id).await.map_err(status)?;
        let group = match group {
            Some(Group::Pilot) => pb::PilotGroupKind::Pilot,
            Some(Group::Holdout) => pb::PilotGroupKind::Holdout,
            None => pb::PilotGroupKind::NotInPilot,
        };
        Ok(Response::new(pb::CheckPilotGroupResponse { group: group.into(), running }))
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
}
