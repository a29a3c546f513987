//! The middleware in front of every RPC: a server span joined to the caller's trace, authentication and the
//! role × RPC matrix, admission (a concurrency limit that sheds load at once instead of queueing), and the request
//! deadline (the caller's `grpc-timeout`, capped by the server's) answered with DEADLINE_EXCEEDED.
//!
//! Health checks and reflection pass straight through: probes must never be starved or shed.
use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{sync::Semaphore, time::Instant};
use tonic::body::Body;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::{
    auth::{Authenticator, Caller, Policy, Role},
    error::{ApiError, ErrorCode, ServiceError},
};

tokio::task_local! {
    /// The deadline of the RPC being served, so outgoing calls pass on what is left of it.
    pub static DEADLINE: Instant;
    /// The authenticated caller of the RPC being served, so request ids are scoped per caller.
    pub static CALLER: Caller;
    /// Whether the caller's role sees the personal fields of this service's answers (authz.txt `@personal`).
    static PERSONAL: bool;
}

/// Paths that bypass the guard.
fn exempt(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
        || path.starts_with("/grpc.reflection.v1.ServerReflection/")
        || path.starts_with("/grpc.reflection.v1alpha.ServerReflection/")
}

/// Shared state of the guard.
pub struct GuardConfig {
    /// Verifies tokens.
    pub auth: Arc<Authenticator>,
    /// The role × RPC matrix.
    pub policy: Policy,
    /// Full names of the services this server serves: a call to any other answers UNIMPLEMENTED.
    pub served: Vec<String>,
    /// Requests served at once before new ones are shed with RESOURCE_EXHAUSTED.
    pub concurrency: usize,
    /// The longest a request may run.
    pub request_timeout: Duration,
    /// Paths of long-running calls (client streams of a data set) and the longest they may run instead.
    pub long_running: (Vec<String>, Duration),
    /// The `ErrorInfo` domain of errors the guard itself returns.
    pub domain: String,
}

/// The tower layer.
#[derive(Clone)]
pub struct GuardLayer {
    state: Arc<State>,
}

struct State {
    cfg: GuardConfig,
    permits: Arc<Semaphore>,
    /// RED metrics: every RPC's duration by service, method and status code (its count is the rate, the counts by
    /// code the errors); a no-op unless telemetry exports metrics.
    duration: opentelemetry::metrics::Histogram<f64>,
}

impl GuardLayer {
    /// A guard with this configuration.
    pub fn new(cfg: GuardConfig) -> Self {
        let permits = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
        let duration = opentelemetry::global::meter("rapport")
            .f64_histogram(DURATION_METRIC)
            .with_unit("s")
            .with_description("duration of rpcs served, by rpc.service, rpc.method and rpc.grpc.status_code")
            .with_boundaries(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
            .build();
        Self { state: Arc::new(State { cfg, permits, duration }) }
    }
}

/// The name of the RPC duration histogram (OpenTelemetry's semantic conventions for RPC servers).
pub const DURATION_METRIC: &str = "rpc.server.call.duration";

impl State {
    /// Records one RPC. An unknown service or method is recorded as `unknown`: a caller cannot grow the metric's
    /// series by sending made-up paths.
    fn record(&self, started: std::time::Instant, service: &str, method: &str, code: i32) {
        let known = code != tonic::Code::Unimplemented as i32;
        let (service, method) = if known { (service, method) } else { ("unknown", "unknown") };
        let attributes = [
            opentelemetry::KeyValue::new("rpc.system", "grpc"),
            opentelemetry::KeyValue::new("rpc.service", service.to_string()),
            opentelemetry::KeyValue::new("rpc.method", method.to_string()),
            opentelemetry::KeyValue::new("rpc.grpc.status_code", i64::from(code)),
            opentelemetry::KeyValue::new(rapport_telemetry::suite::SERVICE_ATTRIBUTE, self.cfg.domain.clone()),
        ];
        self.duration.record(started.elapsed().as_secs_f64(), &attributes);
    }
}

/// The status code of an answer: trailers-only answers (every refusal) carry it in the headers, a success does not.
fn status_of(resp: &http::Response<Body>) -> i32 {
    resp.headers().get("grpc-status").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i32>().ok()).unwrap_or(0)
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Guard { inner, state: self.state.clone() }
    }
}

/// The guard around the routes.
#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    state: Arc<State>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S> Service<http::Request<Body>> for Guard<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        // The clone is ready-less by tower's contract; swap so the polled-ready one serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let path = req.uri().path().to_string();
        if exempt(&path) {
            return Box::pin(inner.call(req));
        }
        let state = self.state.clone();
        let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or(("", ""));
        let (service, method) = (service.to_string(), method.to_string());
        let span = tracing::info_span!(
            "grpc.server",
            otel.name = %path.trim_start_matches('/'),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
            enduser.role = tracing::field::Empty,
            rapport.service = %state.cfg.domain,
        );
        rapport_telemetry::set_parent(&span, rapport_telemetry::extract(req.headers()));
        let rpc_method = method.clone();
        let fut = async move {
            let domain = state.cfg.domain.as_str();
            let service = path.trim_start_matches('/').split('/').next().unwrap_or_default();
            if !state.cfg.served.iter().any(|s| s == service) {
                let e =
                    ApiError::new(ErrorCode::Unimplemented, "UNKNOWN_SERVICE", format!("{service} is not served here"));
                return Ok(reply(e, domain));
            }
            let caller = match bearer(req.headers()).map(|t| state.cfg.auth.verify(t)) {
                None => {
                    let e = ApiError::new(ErrorCode::Unauthenticated, "TOKEN_MISSING", "a bearer token is required");
                    return Ok(reply(e, domain));
                }
                Some(Err(e)) => return Ok(reply(e, domain)),
                Some(Ok(c)) => c,
            };
            tracing::Span::current().record("enduser.role", caller.role.as_str());
            if !state.cfg.policy.allows(&path, caller.role) {
                let e = ApiError::new(
                    ErrorCode::PermissionDenied,
                    "ROLE_NOT_ALLOWED",
                    format!("role {} may not call {rpc_method}", caller.role),
                );
                return Ok(reply(e, domain));
            }
            let Ok(_permit) = state.permits.clone().try_acquire_owned() else {
                tracing::warn!(rpc = %path, "request shed: server at its concurrency limit");
                let e = ApiError::new(ErrorCode::ResourceExhausted, "OVERLOADED", "server is overloaded, retry later");
                return Ok(reply(e, domain));
            };
            let cap = if state.cfg.long_running.0.contains(&path) {
                state.cfg.long_running.1
            } else {
                state.cfg.request_timeout
            };
            let budget = grpc_timeout(req.headers()).map_or(cap, |t| t.min(cap));
            let deadline = Instant::now() + budget;
            let personal = state.cfg.policy.sees_personal(&path, caller.role);
            req.extensions_mut().insert(caller.clone());
            let call = CALLER.scope(caller, DEADLINE.scope(deadline, PERSONAL.scope(personal, inner.call(req))));
            match tokio::time::timeout_at(deadline, call).await {
                Ok(Ok(resp)) => {
                    let code = status_of(&resp);
                    // A request prost could not decode (truncated, a bad wire type, a string that is not UTF-8,
                    // nesting past the recursion limit) is the caller's fault, not INTERNAL: it must not page
                    // anyone through the error-rate alert. Only here, on the server: a client that cannot decode
                    // a peer's reply keeps prost's INTERNAL (retryable).
                    if code == tonic::Code::Internal as i32
                        && tonic_says(resp.headers(), "failed to decode Protobuf message")
                    {
                        let e = ApiError::new(
                            ErrorCode::InvalidArgument,
                            "MALFORMED_MESSAGE",
                            "malformed request: the bytes are not a message of this rpc's request type",
                        );
                        return Ok(reply(e, domain));
                    }
                    if code == tonic::Code::OutOfRange as i32 && tonic_says(resp.headers(), "message length too large")
                    {
                        // tonic's own size check says OUT_OF_RANGE; gRPC says RESOURCE_EXHAUSTED, with a reason.
                        let e = ApiError::new(
                            ErrorCode::ResourceExhausted,
                            "MESSAGE_TOO_LARGE",
                            "the request is larger than this server accepts",
                        );
                        return Ok(reply(e, domain));
                    }
                    tracing::Span::current().record("rpc.grpc.status_code", code);
                    Ok(resp)
                }
                Ok(Err(e)) => Err(e),
                Err(_) => {
                    let e = ApiError::new(ErrorCode::DeadlineExceeded, "DEADLINE_EXCEEDED", "deadline exceeded");
                    Ok(reply(e, domain))
                }
            }
        };
        let started = std::time::Instant::now();
        let metrics = self.state.clone();
        Box::pin(
            async move {
                let answer = fut.await;
                if let Ok(resp) = &answer {
                    metrics.record(started, &service, &method, status_of(resp));
                }
                answer
            }
            .instrument(span),
        )
    }
}

fn reply(e: ApiError, domain: &str) -> http::Response<Body> {
    tracing::Span::current().record("rpc.grpc.status_code", e.code.grpc() as i32);
    e.to_status(domain).into_http()
}

/// Whether a trailers-only answer's `grpc-message` (percent-encoded) starts with or holds tonic's `text` (its own
/// refusals before any handler runs; handlers' internal errors say only "internal error").
fn tonic_says(headers: &http::HeaderMap, text: &str) -> bool {
    headers.get("grpc-message").and_then(|v| v.to_str().ok()).is_some_and(|m| percent_decode(m).contains(text))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")).map(str::trim)
}

/// Parses a `grpc-timeout` header (`<digits><unit>`, unit one of H M S m u n).
pub fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    parse_timeout(headers.get("grpc-timeout")?.to_str().ok()?)
}

/// Parses a `grpc-timeout` value (`<digits><unit>`, unit one of H M S m u n).
pub fn parse_timeout(v: &str) -> Option<Duration> {
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// What is left of the current RPC's deadline, if it is served behind the guard.
pub fn remaining() -> Option<Duration> {
    DEADLINE.try_with(|d| d.saturating_duration_since(Instant::now())).ok()
}

/// The authenticated caller of the RPC being served on this task (None outside an RPC: a background worker).
pub fn caller() -> Option<Caller> {
    CALLER.try_with(Clone::clone).ok()
}

/// Whether the caller of the RPC being served sees personal fields (display names, attributes, customers' words)
/// in this service's answers: the roles of the matrix's `@personal` line. False outside an RPC (fail closed).
pub fn sees_personal() -> bool {
    PERSONAL.try_with(|p| *p).unwrap_or(false)
}

/// `value` when the caller sees personal fields, its empty default otherwise: how answers withhold them.
pub fn personal<T: Default>(value: T) -> T {
    if sees_personal() { value } else { T::default() }
}

/// The customer a customer's token acts for; `None` for staff, services and work outside an RPC.
pub fn acting_customer() -> Option<String> {
    CALLER.try_with(|c| (c.role == Role::Customer).then(|| c.subject.clone())).ok().flatten()
}

/// Object-level authorisation of the self-service RPCs: a customer's token acts only on data whose owner is its
/// own customer id. `owner` is the customer the request is about (its `customer_id`, or the owner of the survey or
/// code it names, `None` when there is none). Another customer's data and data that does not exist get the same
/// refusal, decided before anything about them is told, so the answer is no oracle of other customers. Staff and
/// services pass: the role × RPC matrix decides for them.
pub fn ensure_own(owner: Option<&str>) -> Result<(), ApiError> {
    match acting_customer() {
        Some(me) if owner != Some(me.as_str()) => Err(not_own()),
        _ => Ok(()),
    }
}

/// [`ensure_own`] for data a request names by another key (a survey, a code), after looking it up: found, its
/// owner decides; refused by the service (not found, erased), it has no owner, so the refusal is the same as for
/// another customer's; a fault passes through to be answered as one.
pub fn ensure_owner_of<T, E: ServiceError>(
    found: &Result<T, E>,
    owner: impl FnOnce(&T) -> &str,
) -> Result<(), ApiError> {
    match found {
        Ok(t) => ensure_own(Some(owner(t))),
        Err(e) if e.is_internal() => Ok(()),
        Err(_) => ensure_own(None),
    }
}

/// The refusal of a customer's token acting on anything but its own data (PERMISSION_DENIED, `NOT_OWN_DATA`).
pub fn not_own() -> ApiError {
    ApiError::new(ErrorCode::PermissionDenied, "NOT_OWN_DATA", "a customer may act only on its own data")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_units() {
        let mut h = http::HeaderMap::new();
        for (v, d) in
            [("5S", Duration::from_secs(5)), ("250m", Duration::from_millis(250)), ("1H", Duration::from_secs(3600))]
        {
            h.insert("grpc-timeout", v.parse().unwrap());
            assert_eq!(grpc_timeout(&h), Some(d));
        }
        h.insert("grpc-timeout", "x".parse().unwrap());
        assert_eq!(grpc_timeout(&h), None);
    }

    #[tokio::test]
    async fn a_customer_acts_only_on_its_own_data() {
        let as_role = |role, subject: &str| Caller { role, subject: subject.into() };
        assert!(ensure_own(Some("c-1")).is_ok(), "outside an RPC nothing is refused");
        CALLER
            .scope(as_role(Role::Customer, "c-1"), async {
                assert_eq!(acting_customer().as_deref(), Some("c-1"));
                assert!(ensure_own(Some("c-1")).is_ok());
                let other = ensure_own(Some("c-2")).unwrap_err();
                let missing = ensure_own(None).unwrap_err();
                assert_eq!(
                    (other.code, other.reason, &other.message),
                    (missing.code, missing.reason, &missing.message)
                );
                assert_eq!(other.reason, "NOT_OWN_DATA");
            })
            .await;
        CALLER
            .scope(as_role(Role::Agent, "a-1"), async {
                assert_eq!(acting_customer(), None);
                assert!(ensure_own(Some("c-2")).is_ok() && ensure_own(None).is_ok());
            })
            .await;
    }

    #[test]
    fn health_and_reflection_are_exempt() {
        assert!(exempt("/grpc.health.v1.Health/Check"));
        assert!(exempt("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"));
        assert!(!exempt("/rapport.loyalty.v1.LoyaltyService/EarnPoints"));
    }
}
