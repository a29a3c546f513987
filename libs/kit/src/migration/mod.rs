//! Migrations of the tables kit owns; each service lists [`all`] first in its own `Migrator`.
use sea_orm_migration::MigrationTrait;

pub mod m20261123_000001_create_idempotency_keys;
pub mod m20261124_000003_create_idempotency_subjects;

/// Every migration of kit's tables, in order.
pub fn all() -> Vec<Box<dyn MigrationTrait>> {
    vec![
        Box::new(m20261123_000001_create_idempotency_keys::Migration),
        Box::new(m20261124_000003_create_idempotency_subjects::Migration),
    ]
}
