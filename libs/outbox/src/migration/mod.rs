//! Migrations of the outbox, inbox and tombstone tables; each service lists [`all`] in its own `Migrator`, before
//! its own tables.
use sea_orm_migration::MigrationTrait;

pub mod m20261123_000002_create_outbox_events;
pub mod m20261123_000003_create_inbox_events;
pub mod m20261124_000001_add_outbox_parking;
pub mod m20261124_000002_create_erased_customers;
pub mod m20261206_000001_create_parked_receipts;

/// Every migration of the event tables, in order.
pub fn all() -> Vec<Box<dyn MigrationTrait>> {
    vec![
        Box::new(m20261123_000002_create_outbox_events::Migration),
        Box::new(m20261123_000003_create_inbox_events::Migration),
        Box::new(m20261124_000001_add_outbox_parking::Migration),
        Box::new(m20261124_000002_create_erased_customers::Migration),
        Box::new(m20261206_000001_create_parked_receipts::Migration),
    ]
}
