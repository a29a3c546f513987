//! What every Rapport service shares: serving (health, reflection, limits, drain), authentication and
//! authorisation, errors with `google.rpc` details, configuration, the database, request idempotency, pagination,
//! a clock, outgoing clients, and the audit trail.
pub mod audit;
pub mod auth;
pub mod client;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod frame;
pub mod guard;
pub mod idempotency;
pub mod lease;
pub mod migration;
pub mod money;
pub mod page;
pub mod pseudonym;
pub mod serve;
pub mod service;
mod test_server;
pub mod testing;
pub mod tls;
