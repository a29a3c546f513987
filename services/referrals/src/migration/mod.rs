//! The referrals schema, in order: kit's and the outbox's tables first, then referrals' own.
use sea_orm_migration::prelude::*;

pub mod m20261202_000040_create_referrals;

/// Every migration of the referrals database.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = rapport_kit::migration::all();
        all.extend(rapport_outbox::migration::all());
        all.push(Box::new(m20261202_000040_create_referrals::Migration));
        all
    }
}
