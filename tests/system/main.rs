//! System tests: segmentation, loyalty, feedback, referrals and improvement together over real gRPC, on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod bola;
mod campaign_loop;
mod campaign_pause;
mod care;
mod context;
mod erasure;
mod feedback_loop;
mod improvement;
mod races;
mod referrals;
mod reflection;
mod replicas;
mod support;
mod tokens;
mod traces;
