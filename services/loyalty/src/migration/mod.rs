//! The loyalty schema, in order: kit's and the outbox's tables first, then loyalty's own.
use sea_orm_migration::prelude::*;

pub mod m20261123_000004_create_members;
pub mod m20261123_000005_create_ledger_entries;
pub mod m20261123_000006_create_point_lots;
pub mod m20261123_000007_create_tier_changes;
pub mod m20261123_000008_create_purchases;
pub mod m20261123_000009_create_offers;
pub mod m20261123_000010_create_offer_grants;
pub mod m20261201_000011_add_purchase_returns;

/// Every migration of the loyalty database.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = rapport_kit::migration::all();
        all.extend(rapport_outbox::migration::all());
        let own: Vec<Box<dyn MigrationTrait>> = vec![
            Box::new(m20261123_000004_create_members::Migration),
            Box::new(m20261123_000005_create_ledger_entries::Migration),
            Box::new(m20261123_000006_create_point_lots::Migration),
            Box::new(m20261123_000007_create_tier_changes::Migration),
            Box::new(m20261123_000008_create_purchases::Migration),
            Box::new(m20261123_000009_create_offers::Migration),
            Box::new(m20261123_000010_create_offer_grants::Migration),
            Box::new(m20261201_000011_add_purchase_returns::Migration),
        ];
        all.extend(own);
        all
    }
}
