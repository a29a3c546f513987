//! What every service wires the same way around its events: its role × RPC matrix joined with the event services'
//! (`OutboxService` for a producer, `EventSinkService` for a receiver), and its sink in front of its handler.
use std::{sync::Arc, time::Duration};

use rapport_kit::{auth::Policy, clock::Clock, pseudonym::Pseudonyms};
use rapport_proto::events::v1::event_sink_service_server::EventSinkServiceServer;
use sea_orm::DatabaseConnection;

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
    Ok(p)
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
