//! The feedback schema, in order: kit's and the outbox's tables first, then feedback's own.
use sea_orm_migration::prelude::*;

pub mod m20261124_000020_create_surveys;
pub mod m20261124_000021_create_customer_context;
pub mod m20261201_000022_create_cases;
pub mod m20261201_000023_create_sla;
pub mod m20261201_000024_create_routing;
pub mod m20261201_000025_add_recovery_surveys;
pub mod m20261201_000026_create_settings;
pub mod m20261201_000027_create_barometer;
pub mod m20261201_000028_add_next_response;
pub mod m20261201_000029_backfill_next_response;

/// Every migration of the feedback database.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = rapport_kit::migration::all();
        all.extend(rapport_outbox::migration::all());
        all.push(Box::new(m20261124_000020_create_surveys::Migration));
        all.push(Box::new(m20261124_000021_create_customer_context::Migration));
        all.push(Box::new(m20261201_000022_create_cases::Migration));
        all.push(Box::new(m20261201_000023_create_sla::Migration));
        all.push(Box::new(m20261201_000024_create_routing::Migration));
        all.push(Box::new(m20261201_000025_add_recovery_surveys::Migration));
        all.push(Box::new(m20261201_000026_create_settings::Migration));
        all.push(Box::new(m20261201_000027_create_barometer::Migration));
        all.push(Box::new(m20261201_000028_add_next_response::Migration));
        all.push(Box::new(m20261201_000029_backfill_next_response::Migration));
        all
    }
}
