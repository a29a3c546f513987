//! The improvement schema, in order: kit's and the outbox's tables first, then improvement's own.
use sea_orm_migration::prelude::*;

pub mod m20261203_000050_create_improvement;

/// Every migration of the improvement database.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = rapport_kit::migration::all();
        all.extend(rapport_outbox::migration::all());
        all.push(Box::new(m20261203_000050_create_improvement::Migration));
        all
    }
}
