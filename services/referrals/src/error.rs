//! The one error enum of the referrals service, and how each maps to the shared codes.
use rapport_kit::error::{ApiError, ErrorCode, ServiceError};

/// Everything that can go wrong in referrals.
#[derive(Debug, thiserror::Error)]
pub enum ReferralsError {
    /// The request is invalid (the violations say where), or its request id was used for another request.
    #[error("{}", .0.message)]
    Invalid(ApiError),
    /// The customer was erased: nothing about it is taken again.
    #[error("the customer was erased")]
    CustomerErased,
    /// No such programme.
    #[error("programme {0} not found")]
    ProgrammeNotFound(String),
    /// The programme exists.
    #[error("a programme with this id exists")]
    ProgrammeExists,
    /// The programme takes no sign-ups now.
    #[error("programme {0} is not active")]
    ProgrammeNotActive(String),
    /// No such code.
    #[error("code not found")]
    CodeNotFound,
    /// The code's ambassador was erased.
    #[error("the code's ambassador was erased")]
    CodeOwnerErased,
    /// The code is outside its validity window.
    #[error("the code is not valid now")]
    CodeExpired,
    /// The code reached its usage limit.
    #[error("the code was used {0} times, its limit")]
    CodeUsageLimit(i32),
    /// The vanity code is someone else's (case-insensitively).
    #[error("the code is taken")]
    CodeTaken,
    /// The customer has a code in the programme.
    #[error("the customer has a code in this programme: {0}")]
    CustomerHasCode(String),
    /// Too many sign-ups on the code lately.
    #[error("{count} sign-ups on the code in the last {window}, the limit")]
    VelocityLimit {
        /// Sign-ups counted.
        count: i64,
        /// `hour` or `day`.
        window: &'static str,
    },
    /// The referee is the ambassador.
    #[error("a customer cannot refer itself")]
    SelfReferral,
    /// The referee was referred already.
    #[error("the customer was referred already")]
    DuplicateReferee,
    /// The sign-up came after the attribution window.
    #[error("the sign-up came after the attribution window")]
    AttributionExpired,
    /// No such referral.
    #[error("referral not found")]
    ReferralNotFound,
    /// Only a flagged referral is approved by an agent.
    #[error("the referral is {0}, not flagged")]
    NotFlagged(&'static str),
    /// The referral is voided already.
    #[error("the referral is voided")]
    ReferralVoided,
    /// The ambassador has no review invitation.
    #[error("the ambassador was not invited to review")]
    NoReviewInvitation,
    /// The ambassador is not one.
    #[error("not an ambassador of this programme")]
    AmbassadorNotFound,
    /// A stored value could not be read back.
    #[error("stored value: {0}")]
    Stored(#[from] serde_json::Error),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
}

impl ServiceError for ReferralsError {
    const DOMAIN: &'static str = "referrals";

    fn to_api(&self) -> ApiError {
        use ErrorCode as C;
        let (code, reason) = match self {
            Self::Invalid(e) => return e.clone(),
            Self::CustomerErased => (C::FailedPrecondition, "CUSTOMER_ERASED"),
            Self::ProgrammeNotFound(_) => (C::NotFound, "PROGRAMME_NOT_FOUND"),
            Self::ProgrammeExists => (C::AlreadyExists, "PROGRAMME_EXISTS"),
            Self::ProgrammeNotActive(_) => (C::FailedPrecondition, "PROGRAMME_NOT_ACTIVE"),
            Self::CodeNotFound => (C::NotFound, "CODE_NOT_FOUND"),
            Self::CodeOwnerErased => (C::FailedPrecondition, "CODE_OWNER_ERASED"),
            Self::CodeExpired => (C::FailedPrecondition, "CODE_EXPIRED"),
            Self::CodeUsageLimit(_) => (C::ResourceExhausted, "CODE_USAGE_LIMIT"),
            Self::CodeTaken => (C::AlreadyExists, "CODE_TAKEN"),
            Self::CustomerHasCode(_) => (C::AlreadyExists, "CUSTOMER_HAS_CODE"),
            Self::VelocityLimit { .. } => (C::ResourceExhausted, "VELOCITY_LIMIT"),
            Self::SelfReferral => (C::FailedPrecondition, "SELF_REFERRAL"),
            Self::DuplicateReferee => (C::AlreadyExists, "DUPLICATE_REFEREE"),
            Self::AttributionExpired => (C::FailedPrecondition, "ATTRIBUTION_EXPIRED"),
            Self::ReferralNotFound => (C::NotFound, "REFERRAL_NOT_FOUND"),
            Self::NotFlagged(_) => (C::FailedPrecondition, "NOT_FLAGGED"),
            Self::ReferralVoided => (C::FailedPrecondition, "REFERRAL_VOIDED"),
            Self::NoReviewInvitation => (C::FailedPrecondition, "NO_REVIEW_INVITATION"),
            Self::AmbassadorNotFound => (C::NotFound, "AMBASSADOR_NOT_FOUND"),
            Self::Db(_) | Self::Stored(_) => return ApiError::internal(),
        };
        ApiError::new(code, reason, self.to_string())
    }

    fn is_internal(&self) -> bool {
        matches!(self, Self::Db(_) | Self::Stored(_))
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

    /// Two requests creating the same thing at once: the loser meets the unique index.
    fn clash(method: &str) -> Option<Self> {
        match method {
            "AttributeSignup" => Some(Self::DuplicateReferee),
            "CreateProgramme" => Some(Self::ProgrammeExists),
            "IssueCode" => Some(Self::CodeTaken),
            _ => None,
        }
    }
}

impl From<ApiError> for ReferralsError {
    fn from(e: ApiError) -> Self {
        Self::Invalid(e)
    }
}
