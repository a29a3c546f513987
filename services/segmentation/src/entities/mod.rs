//! One file per table.
pub mod customers;
pub mod daily_activity;
pub mod models;
pub mod training_jobs;
pub mod segments;
pub mod segment_members;
pub mod segment_changes;
pub mod campaigns;
pub mod campaign_targets;
