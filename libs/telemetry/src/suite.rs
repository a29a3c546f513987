//! One process, several services (`rapport up`): each span is exported under the resource of the service it belongs
//! to, so a trace viewer tells segmentation from loyalty.
//!
//! A span names its service with the [`SERVICE_ATTRIBUTE`] attribute (the guard's `grpc.server` spans, the workers'
//! rounds and the relay's deliveries do); a span without one belongs to the service of its nearest local ancestor,
//! and a span of no service to the process itself. [`ByService`] keeps one processor per service, each given its own
//! resource, and the service of every open span so that children can inherit it.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use opentelemetry::{
    Context, KeyValue,
    trace::{Span as _, SpanId, TraceContextExt},
};
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    trace::{Span, SpanData, SpanProcessor},
};

/// The span attribute naming the service a span belongs to (`loyalty`, `segmentation`, ...).
pub const SERVICE_ATTRIBUTE: &str = "rapport.service";

/// The `service.name` a service's spans carry: the name of its own binary, the same under `rapport up` as in a
/// deployment of one service per pod.
pub fn service_name(service: &str) -> String {
    format!("rapport-{service}")
}

/// Routes each span to the processor of its service.
#[derive(Debug)]
pub struct ByService<P> {
    services: HashMap<String, P>,
    process: P,
    open: Mutex<HashMap<SpanId, Arc<str>>>,
}

impl<P: SpanProcessor> ByService<P> {
    /// `process` takes the spans of no service; `services` maps each service to its processor.
    pub fn new(process: P, services: impl IntoIterator<Item = (String, P)>) -> Self {
        Self { services: services.into_iter().collect(), process, open: Mutex::new(HashMap::new()) }
    }

    fn processor(&self, service: Option<&str>) -> &P {
        service.and_then(|s| self.services.get(s)).unwrap_or(&self.process)
    }
}

fn named(attributes: &[KeyValue]) -> Option<Arc<str>> {
    attributes.iter().find(|kv| kv.key.as_str() == SERVICE_ATTRIBUTE).map(|kv| Arc::from(kv.value.as_str().as_ref()))
}

impl<P: SpanProcessor> SpanProcessor for ByService<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        let own = span.exported_data().and_then(|d| named(&d.attributes));
        let parent = cx.span().span_context().clone();
        let service = {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            let service = own.clone().or_else(|| {
                // A remote parent is another service's span (or another process's): nothing to inherit.
                (parent.is_valid() && !parent.is_remote()).then(|| open.get(&parent.span_id()).cloned()).flatten()
            });
            if let Some(s) = &service {
                open.insert(span.span_context().span_id(), s.clone());
            }
            service
        };
        if let (None, Some(s)) = (&own, &service) {
            // Inherited: on_end sees only the span's own data.
            span.set_attribute(KeyValue::new(SERVICE_ATTRIBUTE, s.to_string()));
        }
        self.processor(service.as_deref()).on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).remove(&span.span_context.span_id());
        let service = named(&span.attributes);
        self.processor(service.as_deref()).on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.services.values().chain([&self.process]).map(SpanProcessor::force_flush).fold(Ok(()), Result::and)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.services
            .values()
            .chain([&self.process])
            .map(|p| p.shutdown_with_timeout(timeout))
            .fold(Ok(()), Result::and)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.process.set_resource(resource);
        for (service, p) in &mut self.services {
            p.set_resource(&crate::named_resource(service_name(service)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Tracer as _, TracerProvider as _};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SimpleSpanProcessor};

    fn names(e: &InMemorySpanExporter) -> Vec<String> {
        let mut v: Vec<String> = e.get_finished_spans().unwrap().into_iter().map(|s| s.name.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn spans_go_to_their_service_and_children_inherit_it() {
        let (process, loyalty, segmentation) =
            (InMemorySpanExporter::default(), InMemorySpanExporter::default(), InMemorySpanExporter::default());
        let router = ByService::new(
            SimpleSpanProcessor::new(process.clone()),
            [
                ("loyalty".to_string(), SimpleSpanProcessor::new(loyalty.clone())),
                ("segmentation".to_string(), SimpleSpanProcessor::new(segmentation.clone())),
            ],
        );
        let provider = SdkTracerProvider::builder().with_span_processor(router).build();
        let tracer = provider.tracer("test");
        let server = tracer
            .span_builder("grpc.server")
            .with_attributes([KeyValue::new(SERVICE_ATTRIBUTE, "loyalty")])
            .start(&tracer);
        let cx = Context::current_with_span(server);
        let child = tracer.start_with_context("store.write", &cx);
        let grandchild = tracer.start_with_context("sql", &Context::current_with_span(child));
        drop(grandchild);
        // A remote parent gives nothing: the worker's own attribute decides.
        let remote = cx.span().span_context().clone();
        let remote = opentelemetry::trace::SpanContext::new(
            remote.trace_id(),
            remote.span_id(),
            remote.trace_flags(),
            true,
            remote.trace_state().clone(),
        );
        let worker = tracer
            .span_builder("worker.round")
            .with_attributes([KeyValue::new(SERVICE_ATTRIBUTE, "segmentation")])
            .start_with_context(&tracer, &Context::new().with_remote_span_context(remote.clone()));
        drop(worker);
        drop(tracer.start_with_context("orphan", &Context::new().with_remote_span_context(remote)));
        drop(tracer.start("startup"));
        drop(cx);
        assert_eq!(names(&loyalty), ["grpc.server", "sql", "store.write"]);
        assert_eq!(names(&segmentation), ["worker.round"]);
        assert_eq!(names(&process), ["orphan", "startup"]);
        let inherited = loyalty.get_finished_spans().unwrap().into_iter().find(|s| s.name == "sql").unwrap();
        assert!(inherited.attributes.contains(&KeyValue::new(SERVICE_ATTRIBUTE, "loyalty")));
        let router = provider.shutdown();
        assert!(router.is_ok(), "{router:?}");
    }
}
