//! Migrations of the outbox and inbox tables; each service lists them in its own `Migrator`.
pub mod m20261123_000002_create_outbox_events;
pub mod m20261123_000003_create_inbox_events;
