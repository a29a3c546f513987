//! One file per table.
pub mod campaign_targets;
pub mod campaigns;
pub mod customers;
pub mod daily_activity;
pub mod models;
pub mod segment_changes;
pub mod segment_members;
pub mod segments;
pub mod training_jobs;
