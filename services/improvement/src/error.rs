//! The one error enum of the improvement service, and how each maps to the shared codes.
use rapport_kit::error::{ApiError, ErrorCode, ServiceError};

/// Everything that can go wrong in improvement.
#[derive(Debug, thiserror::Error)]
pub enum ImprovementError {
    /// The request is invalid (the violations say where), or its request id was used for another request.
    #[error("{}", .0.message)]
    Invalid(ApiError),
    /// The customer was erased: nothing about it is taken again.
    #[error("the customer was erased")]
    CustomerErased,
    /// No such theme.
    #[error("theme {0} not found")]
    ThemeNotFound(String),
    /// The taxonomy id is in use.
    #[error("a theme with this id exists")]
    ThemeExists,
    /// The discovered theme was accepted or merged already.
    #[error("theme {0} is {1} already")]
    ThemeSettled(String, &'static str),
    /// Only a discovered theme is accepted or merged.
    #[error("theme {0} is not a discovered theme")]
    NotDiscovered(String),
    /// Too few texts for discovery.
    #[error("{texts} texts with words in common cannot make {k} themes")]
    TooFewTexts {
        /// Texts.
        texts: usize,
        /// Themes.
        k: usize,
    },
    /// No such improvement.
    #[error("improvement {0} not found")]
    ImprovementNotFound(String),
    /// The improvement is shipped, declined or a duplicate.
    #[error("the improvement is {0}: it changes no more")]
    ImprovementClosed(&'static str),
    /// The lifecycle does not allow the move.
    #[error("an improvement cannot go from {from} to {to}")]
    InvalidTransition {
        /// From.
        from: &'static str,
        /// To.
        to: &'static str,
    },
    /// No such pilot.
    #[error("pilot {0} not found")]
    PilotNotFound(String),
    /// The pilot ended.
    #[error("the pilot ended")]
    PilotEnded,
    /// Segmentation does not know the segment.
    #[error("segment {0} not found")]
    SegmentNotFound(String),
    /// The segment has no customer.
    #[error("segment {0} has no customer")]
    SegmentEmpty(String),
    /// Segmentation is not configured or did not answer.
    #[error("segmentation is unavailable: {0}")]
    SegmentationUnavailable(String),
    /// Clustering failed.
    #[error("discovery: {0}")]
    Discovery(String),
    /// A stored value could not be read back.
    #[error("stored value: {0}")]
    Stored(#[from] serde_json::Error),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
}

impl ServiceError for ImprovementError {
    const DOMAIN: &'static str = "improvement";

    fn to_api(&self) -> ApiError {
        use ErrorCode as C;
        let (code, reason) = match self {
            Self::Invalid(e) => return e.clone(),
            Self::CustomerErased => (C::FailedPrecondition, "CUSTOMER_ERASED"),
            Self::ThemeNotFound(_) => (C::NotFound, "THEME_NOT_FOUND"),
            Self::ThemeExists => (C::AlreadyExists, "THEME_EXISTS"),
            Self::ThemeSettled(..) => (C::FailedPrecondition, "THEME_SETTLED"),
            Self::NotDiscovered(_) => (C::FailedPrecondition, "NOT_DISCOVERED"),
            Self::TooFewTexts { .. } => (C::FailedPrecondition, "TOO_FEW_TEXTS"),
            Self::ImprovementNotFound(_) => (C::NotFound, "IMPROVEMENT_NOT_FOUND"),
            Self::ImprovementClosed(_) => (C::FailedPrecondition, "IMPROVEMENT_CLOSED"),
            Self::InvalidTransition { .. } => (C::FailedPrecondition, "INVALID_TRANSITION"),
            Self::PilotNotFound(_) => (C::NotFound, "PILOT_NOT_FOUND"),
            Self::PilotEnded => (C::FailedPrecondition, "PILOT_ENDED"),
            Self::SegmentNotFound(_) => (C::NotFound, "SEGMENT_NOT_FOUND"),
            Self::SegmentEmpty(_) => (C::FailedPrecondition, "SEGMENT_EMPTY"),
            Self::SegmentationUnavailable(_) => (C::Unavailable, "SEGMENTATION_UNAVAILABLE"),
            Self::Discovery(_) | Self::Db(_) | Self::Stored(_) => return ApiError::internal(),
        };
        ApiError::new(code, reason, self.to_string())
    }

    fn is_internal(&self) -> bool {
        matches!(self, Self::Db(_) | Self::Stored(_) | Self::Discovery(_))
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

    /// Two acceptances as one taxonomy id at once: the loser meets the key.
    fn clash(method: &str) -> Option<Self> {
        (method == "AcceptTheme").then_some(Self::ThemeExists)
    }
}

impl From<ApiError> for ImprovementError {
    fn from(e: ApiError) -> Self {
        Self::Invalid(e)
    }
}
