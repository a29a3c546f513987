//! Case rules, pure: what a case is, its states, and what resolving one requires.

/// State of an open case.
pub const OPEN: &str = "open";
/// State of a resolved case.
pub const RESOLVED: &str = "resolved";
/// State of a case whose customer was erased: kept for the statistics, closed to any change.
pub const ERASED: &str = "erased";
/// Author of the customer's own messages.
pub const CUSTOMER: &str = "customer";

/// Why a case in `state` takes no answer, wait or resolution, if it does not.
pub fn check_open(state: &str) -> Result<(), crate::error::FeedbackError> {
    use crate::error::FeedbackError;
    match state {
        OPEN => Ok(()),
        ERASED => Err(FeedbackError::CustomerErased),
        _ => Err(FeedbackError::CaseResolved),
    }
}

/// Complaint or claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseKind {
    /// The customer is unhappy.
    Complaint,
    /// The customer asks for redress.
    Claim,
    /// The call-back of a detractor's answer.
    FollowUp,
}

impl CaseKind {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complaint => "complaint",
            Self::Claim => "claim",
            Self::FollowUp => "follow_up",
        }
    }

    /// From its stored name (anything else is a complaint).
    pub fn parse(s: &str) -> Self {
        match s {
            "claim" => Self::Claim,
            "follow_up" => Self::FollowUp,
            _ => Self::Complaint,
        }
    }
}

/// What closing a case records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// What was done.
    pub resolution: String,
    /// Why it happened.
    pub root_cause: String,
    /// What changes so it does not happen again.
    pub corrective_action: String,
}

/// The fields a resolution lacks for a case of `kind`: a claim closes only with its root cause and corrective action.
pub fn missing_for_resolution(kind: CaseKind, r: &Resolution) -> Vec<&'static str> {
    let mut missing = Vec::new();
    if kind == CaseKind::Claim {
        if r.root_cause.trim().is_empty() {
            missing.push("root_cause");
        }
        if r.corrective_action.trim().is_empty() {
            missing.push("corrective_action");
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_closes_with_its_root_cause_and_corrective_action() {
        let bare = Resolution { resolution: "refunded".into(), ..Resolution::default() };
        assert!(missing_for_resolution(CaseKind::Complaint, &bare).is_empty());
        assert_eq!(missing_for_resolution(CaseKind::Claim, &bare), vec!["root_cause", "corrective_action"]);
        let half = Resolution { root_cause: "carrier lost it".into(), corrective_action: " ".into(), ..bare.clone() };
        assert_eq!(missing_for_resolution(CaseKind::Claim, &half), vec!["corrective_action"]);
        let full = Resolution { corrective_action: "second carrier".into(), ..half };
        assert!(missing_for_resolution(CaseKind::Claim, &full).is_empty());
        assert_eq!(CaseKind::parse(CaseKind::Claim.as_str()), CaseKind::Claim);
    }
}
