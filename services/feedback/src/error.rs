//! The one error enum of the feedback service, and how each maps to the shared codes.
use rapport_kit::error::{ApiError, ErrorCode, ServiceError};

/// Everything that can go wrong in feedback.
#[derive(Debug, thiserror::Error)]
pub enum FeedbackError {
    /// The request is invalid (the violations say where), or its request id was used for another request.
    #[error("{}", .0.message)]
    Invalid(ApiError),
    /// The customer was surveyed too recently.
    #[error("the customer was surveyed less than {wait_days} days ago; a survey is allowed from {allowed_from}")]
    SurveyFatigue {
        /// The waiting time.
        wait_days: i64,
        /// When a survey is allowed again (RFC 3339).
        allowed_from: String,
    },
    /// The customer was erased: nothing about it is taken again.
    #[error("the customer was erased")]
    CustomerErased,
    /// No such survey.
    #[error("survey not found")]
    SurveyNotFound,
    /// The survey can no longer be answered.
    #[error("the survey expired")]
    SurveyExpired,
    /// The survey was answered by another request.
    #[error("the survey was already answered")]
    SurveyAnswered,
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
}

impl ServiceError for FeedbackError {
    const DOMAIN: &'static str = "feedback";

    fn to_api(&self) -> ApiError {
        use ErrorCode as C;
        let (code, reason) = match self {
            Self::Invalid(e) => return e.clone(),
            Self::SurveyFatigue { .. } => (C::FailedPrecondition, "SURVEY_FATIGUE"),
            Self::CustomerErased => (C::FailedPrecondition, "CUSTOMER_ERASED"),
            Self::SurveyNotFound => (C::NotFound, "SURVEY_NOT_FOUND"),
            Self::SurveyExpired => (C::FailedPrecondition, "SURVEY_EXPIRED"),
            Self::SurveyAnswered => (C::FailedPrecondition, "SURVEY_ANSWERED"),
            Self::Db(_) => return ApiError::internal(),
        };
        ApiError::new(code, reason, self.to_string())
    }

    fn is_internal(&self) -> bool {
        matches!(self, Self::Db(_))
    }

    fn db(&self) -> Option<&sea_orm::DbErr> {
        match self {
            Self::Db(e) => Some(e),
            _ => None,
        }
    }

    /// A retry of a request about a customer erased since: the survey is gone with the customer's data.
    fn erased() -> Self {
        Self::SurveyNotFound
    }
}

impl From<ApiError> for FeedbackError {
    fn from(e: ApiError) -> Self {
        Self::Invalid(e)
    }
}
