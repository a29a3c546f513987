//! What every service wires the same way around its events: its role × RPC matrix joined with the event services'
//! (`OutboxService` for a producer, `EventSinkService` for a receiver) and the audit trail's (`AuditService`), the
//! operator services every service serves, and its sink in front of its handler.
use std::{sync::Arc, time::Duration};

use rapport_kit::{
    audit::{self, AuditApi, Trail},
    auth::Policy,
    clock::Clock,
    pseudonym::Pseudonyms,
    service::EventBus,
};
use rapport_proto::{
    audit::v1::audit_service_server::AuditServiceServer,
    events::v1::{event_sink_service_server::EventSinkServiceServer, outbox_service_server::OutboxServiceServer},
};
use sea_orm::DatabaseConnection;
use tonic::service::Routes;

use crate::{
    RelayConfig, admin,
    jetstream::JetStream,
    sink::{self, EventHandler, EventSink},
};

/// The matrix of `service` (its `authz.txt`), with the `OutboxService` every producer serves and, for a service that
/// receives events, who may deliver them (its `authz-events.txt`).
pub fn policy(service: &str, authz: &str, events_authz: Option<&str>) -> Result<Policy, String> {
    let mut p = Policy::parse(service, authz)?;
    if let Some(events) = events_authz {
        p.extend(sink::SERVICE_NAME, events)?;
    }
    p.extend(admin::SERVICE_NAME, admin::AUTHZ)?;
    p.extend(audit::SERVICE_NAME, audit::AUTHZ)?;
    Ok(p)
}

/// The operator services every service serves beside its own: its outbox's and its audit trail's.
pub const OPERATOR_SERVICES: [&str; 2] = [admin::SERVICE_NAME, audit::SERVICE_NAME];

/// `routes` with the operator services over `db`: `OutboxService` (waking `outbox` after a retry) and
/// `AuditService` (the trail kept with `pseudonyms`); errors carry `domain` (the service); requests larger than
/// `max_message_bytes` are refused like the service's own.
pub fn operator_routes(
    routes: Routes,
    db: &DatabaseConnection,
    clock: &Arc<dyn Clock>,
    outbox: &crate::Outbox,
    pseudonyms: &Pseudonyms,
    domain: &'static str,
    max_message_bytes: usize,
) -> Routes {
    let trail = Trail::new(pseudonyms.clone());
    let admin = admin::OutboxAdmin::new(db.clone(), clock.clone(), outbox.clone(), trail.clone(), domain);
    let audit = AuditApi::new(db.clone(), trail, domain);
    routes
        .add_service(OutboxServiceServer::new(admin).max_decoding_message_size(max_message_bytes))
        .add_service(AuditServiceServer::new(audit).max_decoding_message_size(max_message_bytes))
}

/// What a receiving service's sink needs besides its handler.
pub struct SinkSettings {
    /// The clock events' dates are checked against.
    pub clock: Arc<dyn Clock>,
    /// The key of tombstones.
    pub pseudonyms: Pseudonyms,
    /// How far in the future an event may be dated.
    pub max_skew: Duration,
    /// Largest request.
    pub max_message_bytes: usize,
    /// `ErrorInfo` domain (the service, also its name as a subscriber).
    pub domain: &'static str,
    /// How events arrive: over gRPC only, or also from JetStream.
    pub bus: EventBus,
    /// The producers it receives from (the callers its `authz-events.txt` lets deliver): over JetStream, one
    /// consumer each.
    pub sources: Vec<String>,
}

impl SinkSettings {
    /// A receiving service's settings: `domain`'s, from its `common` ones, receiving from the producers its
    /// `events_authz` (its `authz-events.txt`) lets deliver.
    pub fn of(
        common: &rapport_kit::service::Common,
        clock: &Arc<dyn Clock>,
        max_skew: Duration,
        domain: &'static str,
        events_authz: &str,
    ) -> Self {
        Self {
            clock: clock.clone(),
            pseudonyms: common.pseudonyms.clone(),
            max_skew,
            max_message_bytes: common.serve.max_message_bytes,
            domain,
            bus: common.events.clone(),
            sources: crate::jetstream::sources(events_authz),
        }
    }
}

/// The `EventSinkService` of a receiving service: `handler` over `db`, `after_commit` called after each commit that
/// applied something (the service's own relays and workers to wake). Over JetStream it also starts a consumer per
/// source, applying through the same sink, until `stop` resolves.
pub fn sink_service<H: EventHandler, F, Fut>(
    db: DatabaseConnection,
    handler: H,
    settings: SinkSettings,
    stop: F,
    after_commit: impl Fn() + Send + Sync + 'static,
) -> EventSinkServiceServer<EventSink<H>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let clock = settings.clock.clone();
    let sink = Arc::new(
        EventSink::new(db, Arc::new(handler), settings.clock, settings.pseudonyms, settings.max_skew, settings.domain)
            .after_commit(after_commit),
    );
    if let EventBus::JetStream(nats) = &settings.bus {
        for source in settings.sources {
            let config = match RelayConfig::from_env(&source, settings.domain) {
                Ok(c) => c,
                Err(e) => {
                    // Checked at start by the service's own relays' configuration; the defaults otherwise.
                    tracing::warn!(error = %e, "outbox settings unreadable, defaults used");
                    RelayConfig::new(&source, settings.domain)
                }
            };
            let (nats, sink, clock, stop) = (nats.clone(), sink.clone(), clock.clone(), stop());
            tokio::spawn(async move {
                match JetStream::connect(&nats, sink.domain()).await {
                    Ok(bus) => crate::jetstream::consume(bus, sink, source, config, clock, stop).await,
                    Err(e) => {
                        tracing::error!(source = %source, error = %e, "jetstream unreachable: no events received")
                    }
                }
            });
        }
    }
    EventSinkServiceServer::from_arc(sink).max_decoding_message_size(settings.max_message_bytes)
}
