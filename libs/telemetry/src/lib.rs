//! Tracing and OpenTelemetry for every Rapport process.
//!
//! - [`init`] installs the console log layer (text, or JSON with `RAPPORT_LOG_FORMAT=json`, filtered by `RUST_LOG`)
//!   and the OpenTelemetry layer (OTLP/gRPC export when `OTEL_EXPORTER_OTLP_ENDPOINT` or
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set; spans still get real ids without one, so propagation works).
//! - The env filter sits on the console layer only: a global filter would disable RPC spans and zero trace ids.
//! - [`extract`] / [`inject`] carry W3C trace context over gRPC metadata; [`current_traceparent`] and
//!   [`context_from_traceparent`] carry it through the outbox.
//! - [`init_suite`]: one process, several services, each span under its own service's resource ([`suite`]).
pub mod suite;

use std::collections::HashMap;

use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_sdk::{
    Resource,
    metrics::SdkMeterProvider,
    propagation::TraceContextPropagator,
    trace::{BatchSpanProcessor, SdkTracerProvider, SpanExporter},
};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    EnvFilter, Layer,
    filter::LevelFilter,
    fmt::writer::{BoxMakeWriter, MakeWriter},
    layer::SubscriberExt,
    util::SubscriberInitExt,
};

/// Flushes and shuts the tracer (and meter) provider down when dropped: keep it alive for the life of the process.
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
    meters: Option<SdkMeterProvider>,
}

impl TelemetryGuard {
    /// Exports every finished span now.
    pub fn flush(&self) {
        let _ = self.provider.force_flush();
        if let Some(m) = &self.meters {
            let _ = m.force_flush();
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let _ = self.provider.force_flush();
        let _ = self.provider.shutdown();
        if let Some(m) = self.meters.take() {
            let _ = m.shutdown();
        }
    }
}

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built from the `OTEL_*` variables.
    #[error("otlp exporter: {0}")]
    Exporter(String),
}

/// Sets up logging and tracing for `service` from the environment.
pub fn init(service: &str) -> Result<TelemetryGuard, TelemetryError> {
    let mut builder = SdkTracerProvider::builder().with_resource(resource(service));
    if otlp_asked() {
        builder = builder.with_span_processor(BatchSpanProcessor::builder(otlp_exporter()?).build());
    }
    let mut guard = install(service, builder.build(), BoxMakeWriter::new(std::io::stdout));
    guard.meters = otlp_meters(service)?;
    Ok(guard)
}

/// Sets up logging and tracing for a process that runs several services (`rapport up`): each span is exported under
/// its service's resource ([`suite::service_name`]), the spans of none under `process`'s (see [`suite`]).
pub fn init_suite(process: &str, services: &[&str]) -> Result<TelemetryGuard, TelemetryError> {
    let mut builder = SdkTracerProvider::builder().with_resource(resource(process));
    if otlp_asked() {
        let batch = || otlp_exporter().map(|e| BatchSpanProcessor::builder(e).build());
        let each =
            services.iter().map(|s| Ok((s.to_string(), batch()?))).collect::<Result<Vec<_>, TelemetryError>>()?;
        builder = builder.with_span_processor(suite::ByService::new(batch()?, each));
    }
    let mut guard = install(process, builder.build(), BoxMakeWriter::new(std::io::stdout));
    // Metrics under the process's resource: each point says its service (`rapport.service`).
    guard.meters = otlp_meters(process)?;
    Ok(guard)
}

/// The meter provider exporting OTLP metrics every `OTEL_METRIC_EXPORT_INTERVAL` (60 s by default), installed as the
/// global one, when OTLP is asked for; otherwise instruments are no-ops.
fn otlp_meters(service: &str) -> Result<Option<SdkMeterProvider>, TelemetryError> {
    if !otlp_asked() {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let provider =
        SdkMeterProvider::builder().with_resource(resource(service)).with_periodic_exporter(exporter).build();
    opentelemetry::global::set_meter_provider(provider.clone());
    Ok(Some(provider))
}

/// Whether metrics are exported (an OTLP endpoint is configured): work done only to feed a gauge can be skipped
/// otherwise.
pub fn exports_metrics() -> bool {
    otlp_asked()
}

/// An OTLP endpoint is configured and the SDK is not disabled.
fn otlp_asked() -> bool {
    let endpoint_set = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
        .iter()
        .any(|k| std::env::var(k).is_ok_and(|v| !v.is_empty()));
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    endpoint_set && !disabled
}

fn otlp_exporter() -> Result<opentelemetry_otlp::SpanExporter, TelemetryError> {
    opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))
}

/// Sets up logging and tracing with a given exporter, spans exported as they end (tests use the in-memory one).
pub fn init_with_exporter<E: SpanExporter + 'static>(service: &str, exporter: E) -> TelemetryGuard {
    let provider = SdkTracerProvider::builder().with_resource(resource(service)).with_simple_exporter(exporter).build();
    install(service, provider, BoxMakeWriter::new(std::io::stdout))
}

/// The same, the log lines written to `logs` instead of stdout (a test reads what the services logged).
pub fn init_with_exporter_and_logs<E, W>(service: &str, exporter: E, logs: W) -> TelemetryGuard
where
    E: SpanExporter + 'static,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let provider = SdkTracerProvider::builder().with_resource(resource(service)).with_simple_exporter(exporter).build();
    install(service, provider, BoxMakeWriter::new(logs))
}

/// The process's resource: its service name, and an instance id of its own, so the collector keeps the series of
/// two replicas apart instead of merging their cumulative counters (`OTEL_RESOURCE_ATTRIBUTES` may set it instead,
/// e.g. to the pod's name).
fn resource(service: &str) -> Resource {
    named_resource(std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service.to_string()))
}

/// A resource named `name`, with the process's instance id.
pub(crate) fn named_resource(name: String) -> Resource {
    let builder = Resource::builder().with_service_name(name);
    let given = std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.instance.id="));
    if given {
        builder.build()
    } else {
        builder.with_attribute(opentelemetry::KeyValue::new(INSTANCE_ID, instance_id())).build()
    }
}

const INSTANCE_ID: &str = "service.instance.id";

/// This process's instance id: random, the same for every provider of the process.
fn instance_id() -> String {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| uuid::Uuid::new_v4().to_string()).clone()
}

fn install(service: &str, provider: SdkTracerProvider, logs: BoxMakeWriter) -> TelemetryGuard {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());
    let tracer = provider.tracer(service.to_string());
    let console_filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sea_orm_migration=warn,sqlx=warn"));
    let json = std::env::var("RAPPORT_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let console = if json {
        tracing_subscriber::fmt::layer().json().with_writer(logs).with_filter(console_filter).boxed()
    } else {
        tracing_subscriber::fmt::layer().with_writer(logs).with_filter(console_filter).boxed()
    };
    // A fixed level on the OTel layer, never RUST_LOG: see the module docs.
    let otel = tracing_opentelemetry::layer().with_tracer(tracer).with_filter(LevelFilter::INFO);
    // A second init in the same process (several services in one `rapport up`) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(console).with(otel).try_init();
    TelemetryGuard { provider, meters: None }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// The remote parent carried by incoming request headers (W3C `traceparent` / `tracestate`).
pub fn extract(headers: &http::HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// Writes the current span's context into outgoing gRPC metadata.
pub fn inject(metadata: &mut tonic::metadata::MetadataMap) {
    let cx = Span::current().context();
    TraceContextPropagator::new().inject_context(&cx, &mut MetadataInjector(metadata));
}

/// Makes `span` a child of `parent` (a remote context from [`extract`] or [`context_from_traceparent`]).
pub fn set_parent(span: &Span, parent: Context) {
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// Links `span` to the span a stored W3C traceparent names (work caused by an earlier call, in a trace of its own);
/// nothing when the traceparent is empty or invalid.
pub fn add_link(span: &Span, traceparent: &str) {
    if traceparent.is_empty() {
        return;
    }
    let cause = context_from_traceparent(traceparent);
    span.add_link(cause.span().span_context().clone());
}

/// The W3C traceparent of the current span, empty when there is none.
pub fn current_traceparent() -> String {
    let cx = Span::current().context();
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent").unwrap_or_default()
}

/// The remote context named by a stored W3C traceparent.
pub fn context_from_traceparent(traceparent: &str) -> Context {
    let mut carrier = HashMap::new();
    carrier.insert("traceparent".to_string(), traceparent.to_string());
    TraceContextPropagator::new().extract(&carrier)
}

/// The trace id (32 hex digits) of the current span, for log correlation and tests.
pub fn current_trace_id() -> String {
    Span::current().context().span().span_context().trace_id().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_sdk::trace::InMemorySpanExporter;

    /// Two replicas export apart: every resource of a process carries the same instance id, another process its own.
    #[test]
    fn resources_carry_the_process_instance_id() {
        let id = |r: &Resource| r.get(&opentelemetry::Key::new(INSTANCE_ID)).map(|v| v.to_string());
        let (a, b) = (named_resource("rapport-a".into()), named_resource("rapport-b".into()));
        let found = id(&a).expect("an instance id");
        assert_eq!(id(&b), Some(found.clone()), "one process, one instance id");
        assert!(uuid::Uuid::parse_str(&found).is_ok(), "{found}");
    }

    /// One subscriber for the whole test process: tests share the process (`cargo test` runs them on threads), and
    /// a guard dropped by one test would shut down the tracer of the others.
    fn telemetry() {
        static GUARD: std::sync::OnceLock<TelemetryGuard> = std::sync::OnceLock::new();
        GUARD.get_or_init(|| init_with_exporter("test", InMemorySpanExporter::default()));
    }

    #[test]
    fn traceparent_round_trips_through_the_outbox_format() {
        telemetry();
        let span = tracing::info_span!("writer");
        let _enter = span.enter();
        let tp = current_traceparent();
        assert_eq!(tp.len(), 55, "traceparent: {tp}");
        let cx = context_from_traceparent(&tp);
        assert_eq!(cx.span().span_context().trace_id().to_string(), current_trace_id());
        assert_ne!(current_trace_id(), "00000000000000000000000000000000");
    }

    #[test]
    fn injected_metadata_extracts_to_the_same_trace() {
        telemetry();
        let span = tracing::info_span!("caller");
        let _enter = span.enter();
        let mut md = tonic::metadata::MetadataMap::new();
        inject(&mut md);
        let headers = md.into_headers();
        let cx = extract(&headers);
        assert_eq!(cx.span().span_context().trace_id().to_string(), current_trace_id());
    }
}
