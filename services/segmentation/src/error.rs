//! The one error enum of the segmentation service, and how each maps to the shared codes.
use rapport_kit::error::{ApiError, ErrorCode, ServiceError};

/// Everything that can go wrong in segmentation.
#[derive(Debug, thiserror::Error)]
pub enum SegmentationError {
    /// The request is invalid (the violations say where), or its request id was used for another request.
    #[error("{}", .0.message)]
    Invalid(ApiError),
    /// Unknown customer.
    #[error("customer not found")]
    CustomerNotFound,
    /// The customer was erased: nothing about it is taken again.
    #[error("the customer was erased")]
    CustomerErased,
    /// Unknown segment.
    #[error("segment not found")]
    SegmentNotFound,
    /// A segment with this id exists.
    #[error("a segment with this id already exists")]
    SegmentExists,
    /// Another segment or a running campaign uses the segment.
    #[error("the segment is used by {0}")]
    SegmentInUse(String),
    /// No model trained yet.
    #[error("no clustering model has been trained yet")]
    NoModel,
    /// Unknown training job.
    #[error("training job not found")]
    JobNotFound,
    /// A training job is running already.
    #[error("a training job is already running")]
    TrainingRunning,
    /// Unknown campaign.
    #[error("campaign not found")]
    CampaignNotFound,
    /// The campaign id exists with other parameters.
    #[error("a campaign with this id exists with other parameters")]
    CampaignExists,
    /// Clustering failed (e.g. fewer customers than clusters).
    #[error("{0}")]
    Clustering(#[from] crate::domain::clustering::ClusteringError),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    /// Stored JSON could not be read back.
    #[error("stored data: {0}")]
    Stored(#[from] serde_json::Error),
    /// A background task failed.
    #[error("task: {0}")]
    Task(String),
}

impl ServiceError for SegmentationError {
    const DOMAIN: &'static str = "segmentation";

    fn to_api(&self) -> ApiError {
        use ErrorCode as C;
        let (code, reason) = match self {
            Self::Invalid(e) => return e.clone(),
            Self::CustomerNotFound => (C::NotFound, "CUSTOMER_NOT_FOUND"),
            Self::CustomerErased => (C::FailedPrecondition, "CUSTOMER_ERASED"),
            Self::SegmentNotFound => (C::NotFound, "SEGMENT_NOT_FOUND"),
            Self::SegmentExists => (C::AlreadyExists, "SEGMENT_EXISTS"),
            Self::SegmentInUse(_) => (C::FailedPrecondition, "SEGMENT_IN_USE"),
            Self::NoModel => (C::FailedPrecondition, "NO_MODEL"),
            Self::JobNotFound => (C::NotFound, "JOB_NOT_FOUND"),
            Self::TrainingRunning => (C::FailedPrecondition, "TRAINING_RUNNING"),
            Self::CampaignNotFound => (C::NotFound, "CAMPAIGN_NOT_FOUND"),
            Self::CampaignExists => (C::AlreadyExists, "CAMPAIGN_EXISTS"),
            Self::Clustering(_) => (C::FailedPrecondition, "NOT_ENOUGH_CUSTOMERS"),
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

    /// A retry of a request about a customer erased since.
    fn erased() -> Self {
        Self::CustomerErased
    }

    fn clash(method: &str) -> Option<Self> {
        Some(match method {
            "CreateSegment" => Self::SegmentExists,
            "TriggerCampaign" => Self::CampaignExists,
            "TrainModel" => Self::TrainingRunning,
            _ => return None,
        })
    }
}

impl From<ApiError> for SegmentationError {
    fn from(e: ApiError) -> Self {
        Self::Invalid(e)
    }
}
