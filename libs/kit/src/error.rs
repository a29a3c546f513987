//! The small set of error codes every service maps its own error enum onto, and their wire form: a
//! `google.rpc.Status` with `ErrorInfo` (stable reason, domain = service) and `BadRequest` field violations.
use tonic::Status;
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// What went wrong, as the caller needs to know it; each maps to one gRPC code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request is malformed: fix it before retrying.
    InvalidArgument,
    /// The named resource does not exist.
    NotFound,
    /// The resource already exists.
    AlreadyExists,
    /// The system is not in a state that allows it (e.g. not enough points).
    FailedPrecondition,
    /// A concurrency conflict: retry the whole operation.
    Aborted,
    /// No or an invalid credential.
    Unauthenticated,
    /// A known caller without the right.
    PermissionDenied,
    /// Overloaded or a quota is used up.
    ResourceExhausted,
    /// The deadline passed.
    DeadlineExceeded,
    /// A dependency is down: safe to retry.
    Unavailable,
    /// The method is not served here.
    Unimplemented,
    /// A bug or an unexpected failure; details are logged, not returned.
    Internal,
}

impl ErrorCode {
    /// The gRPC code.
    pub fn grpc(self) -> tonic::Code {
        use tonic::Code as C;
        match self {
            Self::InvalidArgument => C::InvalidArgument,
            Self::NotFound => C::NotFound,
            Self::AlreadyExists => C::AlreadyExists,
            Self::FailedPrecondition => C::FailedPrecondition,
            Self::Aborted => C::Aborted,
            Self::Unauthenticated => C::Unauthenticated,
            Self::PermissionDenied => C::PermissionDenied,
            Self::ResourceExhausted => C::ResourceExhausted,
            Self::DeadlineExceeded => C::DeadlineExceeded,
            Self::Unavailable => C::Unavailable,
            Self::Unimplemented => C::Unimplemented,
            Self::Internal => C::Internal,
        }
    }
}

/// An error as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The code.
    pub code: ErrorCode,
    /// Stable, UPPER_SNAKE_CASE reason for `ErrorInfo`.
    pub reason: &'static str,
    /// Lowercase message for people.
    pub message: String,
    /// Field violations for `BadRequest` (field path, description).
    pub violations: Vec<(String, String)>,
}

impl ApiError {
    /// An error without field violations.
    pub fn new(code: ErrorCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self { code, reason, message: message.into(), violations: Vec::new() }
    }

    /// The opaque internal error; log the cause before returning it.
    pub fn internal() -> Self {
        Self::new(ErrorCode::Internal, "INTERNAL", "internal error")
    }

    /// The wire form, with `domain` (the service) in the ErrorInfo.
    pub fn to_status(&self, domain: &str) -> Status {
        let mut details = ErrorDetails::with_error_info(self.reason, domain, std::collections::HashMap::new());
        if !self.violations.is_empty() {
            let v: Vec<FieldViolation> =
                self.violations.iter().map(|(f, d)| FieldViolation::new(f.clone(), d.clone())).collect();
            details.set_bad_request(v);
        }
        Status::with_error_details(self.code.grpc(), self.message.clone(), details)
    }
}

/// What a service's one error enum offers the shared parts (the transaction frame, the gRPC boundary).
pub trait ServiceError: std::error::Error + From<sea_orm::DbErr> + From<ApiError> + Send + Sized + 'static {
    /// The `ErrorInfo` domain of the service (`loyalty`, `segmentation`, ...).
    const DOMAIN: &'static str;

    /// The wire form (internal causes are not returned: [`status`] logs them).
    fn to_api(&self) -> ApiError;

    /// Whether it is a fault of ours rather than of the request.
    fn is_internal(&self) -> bool;

    /// The database error inside, if it is one.
    fn db(&self) -> Option<&sea_orm::DbErr>;

    /// The answer to a retry whose stored reply went with an erased customer.
    fn erased() -> Self;

    /// The domain error of `method` when its insert meets a concurrent twin's row (unique index), if it has one.
    fn clash(_method: &str) -> Option<Self> {
        None
    }
}

/// The gRPC status of `e`, logging it first when it is ours.
pub fn status<E: ServiceError>(e: E) -> Status {
    if e.is_internal() {
        tracing::error!(error = %e, domain = E::DOMAIN, "request failed");
    }
    e.to_api().to_status(E::DOMAIN)
}

/// `Ok` when `v` holds nothing, else INVALID_ARGUMENT with every violation, in `E`'s domain.
pub fn invalid<E: ServiceError>(v: Violations) -> Result<(), Status> {
    v.finish().map_err(|e| status(E::from(e)))
}

/// Collects field violations of one request, so a caller learns every problem at once — up to
/// [`MAX_VIOLATIONS`] of them (the message counts the rest), each description cut at [`MAX_DESCRIPTION`] characters, so that a hostile request
/// (a million bad list entries, a description echoing a huge name) cannot make its refusal huge.
#[derive(Debug, Default)]
pub struct Violations(Vec<(String, String)>, usize);

/// Most violations one refusal lists; the rest are counted.
pub const MAX_VIOLATIONS: usize = 50;
/// Longest description of a violation, in characters.
pub const MAX_DESCRIPTION: usize = 200;
/// Fields the refusal's message names.
const NAMED_FIELDS: usize = 10;

impl Violations {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a violation of `field`.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        if self.0.len() >= MAX_VIOLATIONS {
            self.1 += 1;
            return;
        }
        let mut description = description.into();
        if let Some((cut, _)) = description.char_indices().nth(MAX_DESCRIPTION) {
            description.truncate(cut);
            description.push('…');
        }
        self.0.push((field.into(), description));
    }

    /// Records a violation of `field` unless `ok`.
    pub fn check(&mut self, ok: bool, field: &str, description: &str) {
        if !ok {
            self.add(field, description);
        }
    }

    /// Checks an id-like string: 1-128 characters of letters, digits and `-_.:@`.
    pub fn id(&mut self, field: &str, value: &str) {
        if let Err(d) = check_id(value) {
            self.add(field, d);
        }
    }

    /// Checks a slug id (a theme, a queue, a programme): 1-64 characters of lower-case letters, digits and `_-`.
    pub fn slug(&mut self, field: &str, value: &str) {
        self.check(
            !value.is_empty()
                && value.len() <= 64
                && value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c)),
            field,
            "must be 1-64 characters of lower-case letters, digits and _-",
        );
    }

    /// Checks a request id (AIP-155): required, same alphabet as ids.
    pub fn request_id(&mut self, value: &str) {
        self.id("request_id", value);
    }

    /// Checks free text: at most `max` characters, no control characters.
    pub fn text(&mut self, field: &str, value: &str, max: usize) {
        if value.chars().count() > max {
            self.add(field, format!("must be at most {max} characters"));
        } else if value.chars().any(|c| c.is_control() && c != '\n') {
            self.add(field, "must not contain control characters");
        }
    }

    /// Checks a window `[start_time, end_time)`: both ends required, the end after the start, at most `max_days`
    /// long. Returns the ends in milliseconds (0 for a missing one).
    pub fn window(
        &mut self,
        start: Option<&prost_types::Timestamp>,
        end: Option<&prost_types::Timestamp>,
        max_days: i64,
    ) -> (i64, i64) {
        let (start, end) = (start.map(crate::clock::millis), end.map(crate::clock::millis));
        self.check(start.is_some(), "start_time", "is required");
        self.check(end.is_some(), "end_time", "is required");
        if let (Some(s), Some(e)) = (start, end) {
            self.check(e > s, "end_time", "must be after start_time");
            if e.saturating_sub(s) > max_days.saturating_mul(86_400_000) {
                self.add("end_time", format!("must be at most {max_days} days after start_time"));
            }
        }
        (start.unwrap_or_default(), end.unwrap_or_default())
    }

    /// Violations recorded so far.
    pub fn len(&self) -> usize {
        self.0.len() + self.1
    }

    /// Whether none was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` when nothing was recorded, else INVALID_ARGUMENT with reason `INVALID_ARGUMENT` and every violation.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let mut fields: Vec<&str> = self.0.iter().map(|(f, _)| f.as_str()).take(NAMED_FIELDS).collect();
        let unnamed = self.len() - fields.len();
        let more = format!("and {unnamed} more");
        if unnamed > 0 {
            fields.push(&more);
        }
        let message = format!("invalid {}", fields.join(", "));
        // The ones not listed are counted in the message ("and N more").
        Err(ApiError { code: ErrorCode::InvalidArgument, reason: "INVALID_ARGUMENT", message, violations: self.0 })
    }
}

fn check_id(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("is required");
    }
    if value.len() > 128 {
        return Err("must be at most 128 characters");
    }
    if !value.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:@".contains(c)) {
        return Err("may contain only letters, digits and -_.:@");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_become_bad_request_and_error_info() {
        let mut v = Violations::new();
        v.id("customer_id", "");
        v.id("other", "has space");
        v.request_id("ok-1");
        let err = v.finish().unwrap_err();
        let status = err.to_status("loyalty");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let d = status.get_error_details();
        assert_eq!(d.error_info().map(|i| i.reason.as_str()), Some("INVALID_ARGUMENT"));
        assert_eq!(d.error_info().map(|i| i.domain.as_str()), Some("loyalty"));
        let fields: Vec<_> =
            d.bad_request().map(|b| b.field_violations.iter().map(|f| f.field.clone()).collect()).unwrap_or_default();
        assert_eq!(fields, vec!["customer_id", "other"]);
    }

    #[test]
    fn no_violations_is_ok() {
        let mut v = Violations::new();
        v.id("customer_id", "c-1:x@y.z");
        v.text("reason", "fine", 10);
        v.slug("theme", "late_parcels-2");
        assert!(v.finish().is_ok());
        let mut v = Violations::new();
        v.slug("theme", "Late Parcels");
        v.slug("queue", "");
        assert_eq!(v.len(), 2);
    }

    #[test]
    fn a_million_violations_make_a_small_refusal() {
        let mut v = Violations::new();
        for i in 0..100_000 {
            v.add(format!("events[{i}]"), "x".repeat(1_000));
        }
        assert_eq!(v.len(), 100_000);
        let err = v.finish().unwrap_err();
        assert_eq!(err.violations.len(), MAX_VIOLATIONS);
        assert!(err.violations.iter().all(|(_, d)| d.chars().count() <= MAX_DESCRIPTION + 1));
        assert!(err.message.ends_with("events[9], and 99990 more"), "{}", err.message);
    }

    #[test]
    fn a_window_from_the_far_past_to_the_far_future_is_refused_not_overflowed() {
        let ts = |seconds| prost_types::Timestamp { seconds, nanos: 0 };
        let mut v = Violations::new();
        v.window(Some(&ts(i64::MIN)), Some(&ts(i64::MAX)), 400);
        assert_eq!(v.len(), 1, "too long");
    }
}
