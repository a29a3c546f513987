//! Black-box tests of the referrals service over real gRPC on loopback, each on SQLite and on PostgreSQL; rewards
//! are paid through a real loyalty server.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod support;

mod access;
mod fraud;
mod lifecycle;
mod programmes;
