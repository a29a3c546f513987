//! The gRPC boundary: validates requests, turns them into store commands, and maps errors to `google.rpc.Status`.
//! Replies are built by `wire.rs` (mutations' replies inside the store's transaction, where they are kept for
//! retries).
use rapport_kit::{clock::millis, error::Violations, frame::Key};
use rapport_proto::{
    common::v1::Channel,
    feedback::v1::{self as pb, feedback_service_server::FeedbackService},
};
use tonic::{Request, Response, Status};

use crate::{
    domain::{DAY_MS, DEFAULT_VALID_DAYS, DEFAULT_WAIT_DAYS},
    error::FeedbackError,
    store::{Grouping, Store, SurveyCmd},
    wire,
};

/// `ErrorInfo` domain of feedback's errors.
pub const DOMAIN: &str = <FeedbackError as rapport_kit::error::ServiceError>::DOMAIN;
/// The longest NPS window.
const MAX_WINDOW_DAYS: i64 = 400;

/// The FeedbackService implementation.
#[derive(Clone)]
pub struct FeedbackApi {
    store: Store,
    nps_target: f64,
}

impl FeedbackApi {
    /// Serves `store`; NPS reports compare against `nps_target`.
    pub fn new(store: Store, nps_target: f64) -> Self {
        Self { store, nps_target }
    }
}

fn status(e: FeedbackError) -> Status {
    rapport_kit::error::status(e)
}

fn invalid(v: Violations) -> Result<(), Status> {
    v.finish().map_err(|e| status(e.into()))
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
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        let days = |d: i32, default: i64| if d == 0 { default } else { i64::from(d) };
        let cmd = SurveyCmd {
            customer_id: r.customer_id.clone(),
            touchpoint: r.touchpoint.clone(),
            channel: r.channel,
            wait_days: days(r.min_days_between_surveys, DEFAULT_WAIT_DAYS),
            valid_days: days(r.valid_days, DEFAULT_VALID_DAYS),
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
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store.respond(&key, &r.survey_id, r.score, r.comment.clone()).await.map(Response::new).map_err(status)
    }

    async fn get_survey(&self, req: Request<pb::GetSurveyRequest>) -> Result<Response<pb::GetSurveyResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.id("survey_id", &r.survey_id);
        invalid(v)?;
        let survey = self.store.survey(&r.survey_id).await.map_err(status)?;
        Ok(Response::new(pb::GetSurveyResponse { survey: Some(survey) }))
    }

    async fn get_nps(&self, req: Request<pb::GetNpsRequest>) -> Result<Response<pb::GetNpsResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        let start = r.start_time.as_ref().map(millis);
        let end = r.end_time.as_ref().map(millis);
        v.check(start.is_some(), "start_time", "is required");
        v.check(end.is_some(), "end_time", "is required");
        if let (Some(s), Some(e)) = (start, end) {
            v.check(e > s, "end_time", "must be after start_time");
            v.check(e - s <= MAX_WINDOW_DAYS * DAY_MS, "end_time", "must be at most 400 days after start_time");
        }
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
        let report =
            self.store.nps(start.unwrap_or_default(), end.unwrap_or_default(), grouping).await.map_err(status)?;
        Ok(Response::new(pb::GetNpsResponse {
            overall: Some(wire::nps_pb(String::new(), &report.overall)),
            groups: report.groups.iter().map(|(k, n)| wire::nps_pb(k.clone(), n)).collect(),
            daily: report.daily.iter().map(|(k, n)| wire::nps_pb(k.clone(), n)).collect(),
            target: self.nps_target,
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
}
