//! The segmentation service: behaviour features, linfa clustering, rule segments, explanations, campaigns.
//! Reads top to bottom: `app` → `api` → `domain` ← `store`.
pub mod domain;
