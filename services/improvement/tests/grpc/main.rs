//! Black-box tests of the improvement service over real gRPC on loopback, each on SQLite and on PostgreSQL; pilots
//! take their segments from a real segmentation server.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod support;

mod access;
mod backlog;
mod pilots;
mod themes;
