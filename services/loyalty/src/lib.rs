//! The loyalty service: members, an append-only idempotent points ledger, tiers up to VIP, offers and
//! personalised prices. Reads top to bottom: `app` → `api` → `domain` ← `store`.
pub mod api;
pub mod app;
pub mod domain;
pub mod entities;
pub mod error;
pub mod migration;
pub mod store;
mod wire;
