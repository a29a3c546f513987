//! Black-box tests of the feedback service over real gRPC on loopback, each on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod support;

mod barometer;
mod cases;
mod context;
mod nps;
mod routing;
mod sla;
mod surveys;
