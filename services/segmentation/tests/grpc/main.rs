//! Black-box tests of the segmentation service over real gRPC on loopback, each on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod support;

mod authz;
mod errors;
mod ingest;
mod segments;
mod training;
