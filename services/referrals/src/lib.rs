//! The referrals service: programmes, ambassadors and their codes, sign-ups attributed and screened for fraud,
//! conversions from loyalty's purchases, rewards paid through loyalty exactly once, and clawed back when a return
//! voids a referral. Reads top to bottom: `app` → `api` → `domain` ← `store`; `payouts` talks to loyalty.
pub mod api;
pub mod app;
pub mod domain;
pub mod entities;
pub mod error;
pub mod events;
pub mod migration;
pub mod payouts;
pub mod store;
mod wire;
