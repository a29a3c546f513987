//! The feedback service: NPS surveys after a service with anti-fatigue, answers recorded once, and the NPS of any
//! window with its confidence interval against the target. Reads top to bottom: `app` → `api` → `domain` ← `store`.
pub mod api;
pub mod app;
pub mod domain;
pub mod entities;
pub mod error;
pub mod events;
pub mod gauges;
pub mod migration;
pub mod peers;
pub mod store;
mod wire;
