//! Migrations of the tables kit owns; each service lists [`all`] first in its own `Migrator`.
use sea_orm_migration::{MigrationTrait, prelude::*};

pub mod m20261123_000001_create_idempotency_keys;
pub mod m20261124_000003_create_idempotency_subjects;
pub mod m20261203_000004_index_idempotency_created_at;
pub mod m20261204_000005_create_audit;

/// Every migration of kit's tables, in order.
pub fn all() -> Vec<Box<dyn MigrationTrait>> {
    vec![
        Box::new(m20261123_000001_create_idempotency_keys::Migration),
        Box::new(m20261124_000003_create_idempotency_subjects::Migration),
        Box::new(m20261203_000004_index_idempotency_created_at::Migration),
        Box::new(m20261204_000005_create_audit::Migration),
    ]
}

/// Creates the index `name` on `table` over `cols` (unique when asked) unless it exists: what every service's
/// migrations write many times.
pub async fn index(
    manager: &SchemaManager<'_>,
    table: &str,
    name: &str,
    cols: &[&str],
    unique: bool,
) -> Result<(), DbErr> {
    let mut i = Index::create();
    i.name(name).table(Alias::new(table)).if_not_exists();
    for c in cols {
        i.col(Alias::new(*c));
    }
    if unique {
        i.unique();
    }
    manager.create_index(i.to_owned()).await
}
