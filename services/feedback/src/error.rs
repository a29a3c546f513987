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
    /// No such case.
    #[error("case not found")]
    CaseNotFound,
    /// The case is resolved: it takes no more answers.
    #[error("the case is resolved")]
    CaseResolved,
    /// A claim cannot close without its root cause and corrective action.
    #[error("a claim needs a root cause and a corrective action to be resolved")]
    ClaimNeedsRootCause {
        /// The missing fields.
        missing: Vec<&'static str>,
    },
    /// The caller named a theme the taxonomy does not have.
    #[error("unknown theme {0}")]
    UnknownTheme(String),
    /// A recovery survey follows a case that is not resolved yet.
    #[error("the case is not resolved yet")]
    CaseNotResolved,
    /// No such queue.
    #[error("queue {0} not found")]
    QueueNotFound(String),
    /// No such agent.
    #[error("agent not found")]
    AgentNotFound,
    /// The taxonomy holds the most themes it may.
    #[error("the taxonomy holds 50 themes, the most it may")]
    TaxonomyFull,
    /// Fewer than two themes with examples or keywords.
    #[error("the taxonomy needs at least two themes with examples or keywords")]
    TaxonomyTooSmall,
    /// The period already has a barometer reading (and the caller did not ask to replace it).
    #[error("the period {0} already has a reading; ask to replace it")]
    ReadingExists(String),
    /// The period is not over yet: its reading would be partial.
    #[error("the period {0} is not over yet")]
    PeriodNotOver(String),
    /// A stored value could not be read back.
    #[error("stored value: {0}")]
    Stored(#[from] serde_json::Error),
    /// A blocking task failed.
    #[error("task: {0}")]
    Task(String),
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
            Self::CaseNotFound => (C::NotFound, "CASE_NOT_FOUND"),
            Self::CaseResolved => (C::FailedPrecondition, "CASE_RESOLVED"),
            Self::ClaimNeedsRootCause { missing } => {
                let mut e = ApiError::new(C::FailedPrecondition, "CLAIM_NEEDS_ROOT_CAUSE", self.to_string());
                e.violations = missing.iter().map(|f| (f.to_string(), "is required for a claim".into())).collect();
                return e;
            }
            Self::UnknownTheme(_) => {
                let mut e = ApiError::new(C::FailedPrecondition, "UNKNOWN_THEME", self.to_string());
                e.violations = vec![("theme".into(), "must be a theme of the taxonomy".into())];
                return e;
            }
            Self::TaxonomyTooSmall => (C::FailedPrecondition, "TAXONOMY_TOO_SMALL"),
            Self::TaxonomyFull => (C::FailedPrecondition, "TAXONOMY_FULL"),
            Self::QueueNotFound(_) => (C::FailedPrecondition, "QUEUE_NOT_FOUND"),
            Self::CaseNotResolved => (C::FailedPrecondition, "CASE_NOT_RESOLVED"),
            Self::AgentNotFound => (C::NotFound, "AGENT_NOT_FOUND"),
            Self::ReadingExists(_) => (C::FailedPrecondition, "READING_EXISTS"),
            Self::PeriodNotOver(_) => (C::FailedPrecondition, "PERIOD_NOT_OVER"),
            Self::Db(_) | Self::Stored(_) | Self::Task(_) => return ApiError::internal(),
        };
        ApiError::new(code, reason, self.to_string())
    }

    fn is_internal(&self) -> bool {
        matches!(self, Self::Db(_) | Self::Stored(_) | Self::Task(_))
    }

    fn db(&self) -> Option<&sea_orm::DbErr> {
        match self {
            Self::Db(e) => Some(e),
            _ => None,
        }
    }

    /// A retry of a request about a customer erased since: what it was about is gone with the customer's data.
    fn erased() -> Self {
        Self::CustomerErased
    }
}

impl From<ApiError> for FeedbackError {
    fn from(e: ApiError) -> Self {
        Self::Invalid(e)
    }
}
