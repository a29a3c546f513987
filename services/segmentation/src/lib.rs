//! The segmentation service: behaviour features, linfa clustering, rule segments, explanations, campaigns.
//! Reads top to bottom: `app` → `api` → `domain` ← `store`.
pub mod api;
pub mod app;
pub mod campaigns;
pub mod domain;
pub mod entities;
pub mod error;
pub mod events;
pub mod migration;
pub mod store;
pub mod synthetic;
