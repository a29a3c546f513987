//! What every service wires the same way around its events: its role × RPC matrix joined with the event services'
//! (`OutboxService` for a producer, `EventSinkService` for a receiver) and the audit trail's (`AuditService`), the
//! operator services every service serves, and its sink in front of its handler.
use std::{sync::Arc, time::Duration};

use rapport_kit::{
    audit::{self, AuditApi, Trail},
    auth::Policy,
    clock::Clock,
    pseudonym::Pseudonyms,
};
use rapport_proto::{
    audit::v1::audit_service_server::AuditServiceServer,
    events::v1::{event_sink_service_server::EventSinkServiceServer, outbox_service_server::OutboxServiceServer},
};
use sea_orm::DatabaseConnection;
use tonic::service::Routes;

use crate::{
    admin,
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
    /// `ErrorInfo` domain (the service).
    pub domain: &'static str,
}

/// The `EventSinkService` of a receiving service: `handler` over `db`, `after_commit` called after each commit that
/// applied something (the service's own relays and workers to wake).
pub fn sink_service<H: EventHandler>(
    db: DatabaseConnection,
    handler: H,
    settings: SinkSettings,
    after_commit: impl Fn() + Send + Sync + 'static,
) -> EventSinkServiceServer<EventSink<H>> {
    let sink =
        EventSink::new(db, Arc::new(handler), settings.clock, settings.pseudonyms, settings.max_skew, settings.domain)
            .after_commit(after_commit);
    EventSinkServiceServer::new(sink).max_decoding_message_size(settings.max_message_bytes)
}
