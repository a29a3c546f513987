//! The improvement service: complaint themes in (feedback's theme signals, agents' suggestions), themes discovered
//! by clustering unclassified texts, theme figures, a ranked backlog of improvements with their lifecycle, pilots
//! against a holdout, and shipped improvements told to feedback and measured before and after. Reads top to bottom:
//! `app` → `api` → `domain` ← `store`; `peers` talks to segmentation.
pub mod api;
pub mod app;
pub mod domain;
pub mod entities;
pub mod error;
pub mod events;
pub mod migration;
pub mod peers;
pub mod store;
mod wire;
