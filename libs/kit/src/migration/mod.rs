//! Migrations of the tables kit owns; each service lists them in its own `Migrator`.
pub mod m20261123_000001_create_idempotency_keys;
