//! System tests: segmentation, loyalty and feedback together over real gRPC, on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod campaign_loop;
mod campaign_pause;
mod care;
mod context;
mod erasure;
mod feedback_loop;
mod races;
mod reflection;
mod replicas;
mod support;
mod traces;
