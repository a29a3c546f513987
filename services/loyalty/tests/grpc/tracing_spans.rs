//! Trace context crosses the wire, and an event delivered late by the outbox keeps the trace of the transaction
//! that wrote it.
use std::sync::{Arc, Mutex, OnceLock};

use opentelemetry::trace::{SpanKind, TraceContextExt};
use opentelemetry_sdk::trace::InMemorySpanExporter;
use rapport_outbox::entities::outbox_event;
use rapport_proto::events::v1::{
    DeliverEventsRequest, DeliverEventsResponse, Event,
    event_sink_service_server::{EventSinkService, EventSinkServiceServer},
};
use rapport_telemetry::TelemetryGuard;
use sea_orm::EntityTrait;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::support::{Db, Options, eventually, on_both, spawn_app, spawn_with};

/// One telemetry pipeline per test process; tests pick their spans by trace id.
fn exporter() -> &'static (InMemorySpanExporter, TelemetryGuard) {
    static T: OnceLock<(InMemorySpanExporter, TelemetryGuard)> = OnceLock::new();
    T.get_or_init(|| {
        let e = InMemorySpanExporter::default();
        let g = rapport_telemetry::init_with_exporter("loyalty-test", e.clone());
        (e, g)
    })
}

fn ids(span: &tracing::Span) -> (String, String) {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    (sc.trace_id().to_string(), sc.span_id().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_span_is_a_child_of_the_callers_span() {
    let (exp, _) = exporter();
    let app = spawn_app(Db::Sqlite).await;
    app.enrol("traced").await;
    let caller = tracing::info_span!("caller");
    let (trace_id, caller_id) = ids(&caller);
    assert_ne!(trace_id, "00000000000000000000000000000000");
    async { app.member("traced").await }.instrument(caller).await;
    eventually(10, "the server span", || async {
        exp.get_finished_spans().unwrap().iter().any(|s| {
            s.span_context.trace_id().to_string() == trace_id
                && s.name == "rapport.loyalty.v1.LoyaltyService/GetMember"
                && s.span_kind == SpanKind::Server
                && s.parent_span_id.to_string() == caller_id
        })
    })
    .await;
    app.stop().await;
}

/// Segmentation's event sink, as a test double that is unavailable until switched on.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(Event, String)>>>, Arc<std::sync::atomic::AtomicBool>);

#[tonic::async_trait]
impl EventSinkService for Recorder {
    async fn deliver_events(
        &self,
        req: tonic::Request<DeliverEventsRequest>,
    ) -> Result<tonic::Response<DeliverEventsResponse>, tonic::Status> {
        if !self.1.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(tonic::Status::unavailable("receiver down"));
        }
        let tp = req.metadata().get("traceparent").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let events = req.into_inner().events;
        let n = events.len() as i32;
        let mut all = self.0.lock().unwrap();
        all.extend(events.into_iter().map(|e| (e, tp.clone())));
        Ok(tonic::Response::new(DeliverEventsResponse { applied: n, duplicates: 0 }))
    }
}

on_both!(a_delayed_outbox_event_keeps_its_trace);

async fn a_delayed_outbox_event_keeps_its_trace(db: Db) {
    let (exp, _) = exporter();
    // Segmentation's event sink, unavailable at first.
    let recorder = Recorder::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sink = recorder.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(EventSinkServiceServer::new(sink))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
    });
    let opts = Options { segmentation_url: Some(format!("http://{addr}")), ..Options::default() };
    let app = spawn_with(db, opts).await;
    app.enrol("late").await;
    let caller = tracing::info_span!("checkout");
    let (trace_id, _) = ids(&caller);
    async { app.purchase("p1", "late", "order-late", 42, false).await }.instrument(caller).await;

    // The receiver is down: the relay fails and keeps the event.
    eventually(15, "a failed delivery attempt", || async {
        outbox_event::Entity::find()
            .all(&app.db)
            .await
            .unwrap()
            .iter()
            .any(|r| r.attempts > 0 && r.delivered_at.is_none())
    })
    .await;

    // The relay's backoff runs on the service clock, which this test moves by hand.
    app.clock.advance_ms(60_000);
    recorder.1.store(true, std::sync::atomic::Ordering::SeqCst);
    eventually(20, "the delivered purchase", || async {
        recorder.0.lock().unwrap().iter().any(|(e, _)| e.customer_id == "late" && e.payload.is_some())
    })
    .await;
    let got = recorder.0.lock().unwrap().clone();
    let (event, incoming) = got
        .iter()
        .find(|(e, _)| matches!(e.payload, Some(rapport_proto::events::v1::event::Payload::PurchaseRecorded(_))))
        .unwrap();
    assert_eq!(event.source, "loyalty");
    assert_eq!(&event.traceparent[3..35], trace_id, "the event carries the writer's trace");
    assert_eq!(&incoming[3..35], trace_id, "the delivery call joined that trace");
    eventually(10, "the outbox.deliver span", || async {
        exp.get_finished_spans()
            .unwrap()
            .iter()
            .any(|s| s.name == "outbox.deliver" && s.span_context.trace_id().to_string() == trace_id)
    })
    .await;
    eventually(10, "rows marked delivered", || async {
        outbox_event::Entity::find().all(&app.db).await.unwrap().iter().all(|r| r.delivered_at.is_some())
    })
    .await;
    app.stop().await;
}
