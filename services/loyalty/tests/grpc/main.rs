//! Black-box tests of the loyalty service over real gRPC on loopback, each on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod support;

mod auth;
mod concurrency;
mod crash;
mod drain;
mod errors;
mod ledger;
mod limits;
mod offers;
mod pagination;
mod property;
mod time;
mod tracing_spans;
