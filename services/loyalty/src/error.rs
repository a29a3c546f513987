//! The one error enum of the loyalty service, and how each maps to the shared codes.
use rapport_kit::error::{ApiError, ErrorCode, ServiceError};

/// Everything that can go wrong in loyalty.
#[derive(Debug, thiserror::Error)]
pub enum LoyaltyError {
    /// The request is invalid (the violations say where), or its request id was used for another request.
    #[error("{}", .0.message)]
    Invalid(ApiError),
    /// No such member.
    #[error("member not found")]
    MemberNotFound,
    /// The customer is a member already.
    #[error("customer is already a member")]
    MemberExists,
    /// A debit larger than the active points.
    #[error("not enough active points: {available} available, {requested} requested")]
    InsufficientPoints {
        /// Active points.
        available: i64,
        /// Points asked for.
        requested: i64,
    },
    /// No such ledger entry for this member.
    #[error("ledger entry not found")]
    EntryNotFound,
    /// Only earn, purchase and redeem entries can be reversed.
    #[error("only earn, purchase and redeem entries can be reversed")]
    NotReversible,
    /// The reversal asks for more than is left to reverse.
    #[error("only {left} points are left to reverse on this entry")]
    NothingLeftToReverse {
        /// Points still reversible.
        left: i64,
    },
    /// The order was recorded before.
    #[error("order already recorded")]
    OrderAlreadyRecorded,
    /// A transfer to the same member.
    #[error("cannot transfer points to the same member")]
    SameMember,
    /// No such offer.
    #[error("offer not found")]
    OfferNotFound,
    /// An offer with this id exists with other terms.
    #[error("an offer with this id already exists")]
    OfferExists,
    /// The member does not hold the offer.
    #[error("the member does not hold this offer")]
    OfferNotHeld,
    /// Outside the offer's validity.
    #[error("the offer is not valid now")]
    OfferNotActive,
    /// No uses left.
    #[error("the offer has no uses left")]
    OfferUsedUp,
    /// No such order of this member.
    #[error("order not found")]
    OrderNotFound,
    /// The order was returned already (in full, or past the amount asked).
    #[error("nothing left to return: {left_micros} micro-units of the order remain")]
    NothingLeftToReturn {
        /// What is left of the order's amount.
        left_micros: i64,
    },
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
}

impl ServiceError for LoyaltyError {
    const DOMAIN: &'static str = "loyalty";

    fn to_api(&self) -> ApiError {
        use ErrorCode as C;
        let (code, reason) = match self {
            Self::Invalid(e) => return e.clone(),
            Self::MemberNotFound => (C::NotFound, "MEMBER_NOT_FOUND"),
            Self::MemberExists => (C::AlreadyExists, "MEMBER_EXISTS"),
            Self::InsufficientPoints { .. } => (C::FailedPrecondition, "INSUFFICIENT_POINTS"),
            Self::EntryNotFound => (C::NotFound, "ENTRY_NOT_FOUND"),
            Self::NotReversible => (C::FailedPrecondition, "ENTRY_NOT_REVERSIBLE"),
            Self::NothingLeftToReverse { .. } => (C::FailedPrecondition, "NOTHING_LEFT_TO_REVERSE"),
            Self::OrderAlreadyRecorded => (C::AlreadyExists, "ORDER_ALREADY_RECORDED"),
            Self::SameMember => (C::InvalidArgument, "SAME_MEMBER"),
            Self::OfferNotFound => (C::NotFound, "OFFER_NOT_FOUND"),
            Self::OfferExists => (C::AlreadyExists, "OFFER_EXISTS"),
            Self::OfferNotHeld => (C::FailedPrecondition, "OFFER_NOT_HELD"),
            Self::OfferNotActive => (C::FailedPrecondition, "OFFER_NOT_ACTIVE"),
            Self::OfferUsedUp => (C::FailedPrecondition, "OFFER_USED_UP"),
            Self::OrderNotFound => (C::NotFound, "ORDER_NOT_FOUND"),
            Self::NothingLeftToReturn { .. } => (C::FailedPrecondition, "NOTHING_LEFT_TO_RETURN"),
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

    /// A retry of a request about a member forgotten since.
    fn erased() -> Self {
        Self::MemberNotFound
    }

    fn clash(method: &str) -> Option<Self> {
        Some(match method {
            "EnrolMember" => Self::MemberExists,
            "RecordPurchase" => Self::OrderAlreadyRecorded,
            "CreateOffer" => Self::OfferExists,
            _ => return None,
        })
    }
}

impl From<ApiError> for LoyaltyError {
    fn from(e: ApiError) -> Self {
        Self::Invalid(e)
    }
}
