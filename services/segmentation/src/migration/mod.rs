//! The segmentation schema, in order: kit's and the outbox's tables first, then segmentation's own.
use sea_orm_migration::prelude::*;

pub mod m20261123_000004_create_customers;
pub mod m20261123_000005_create_daily_activity;
pub mod m20261123_000006_create_models;
pub mod m20261123_000007_create_training_jobs;
pub mod m20261123_000008_create_segments;
pub mod m20261123_000009_create_segment_members;
pub mod m20261123_000010_create_segment_changes;
pub mod m20261123_000011_create_campaigns;
pub mod m20261123_000012_create_campaign_targets;
pub mod m20261124_000013_one_running_training_job;
pub mod m20261124_000014_add_campaign_state_reason;
pub mod m20261206_000015_add_campaign_traceparent;

/// Every migration of the segmentation database.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = rapport_kit::migration::all();
        all.extend(rapport_outbox::migration::all());
        let own: Vec<Box<dyn MigrationTrait>> = vec![
            Box::new(m20261123_000004_create_customers::Migration),
            Box::new(m20261123_000005_create_daily_activity::Migration),
            Box::new(m20261123_000006_create_models::Migration),
            Box::new(m20261123_000007_create_training_jobs::Migration),
            Box::new(m20261123_000008_create_segments::Migration),
            Box::new(m20261123_000009_create_segment_members::Migration),
            Box::new(m20261123_000010_create_segment_changes::Migration),
            Box::new(m20261123_000011_create_campaigns::Migration),
            Box::new(m20261123_000012_create_campaign_targets::Migration),
            Box::new(m20261124_000013_one_running_training_job::Migration),
            Box::new(m20261124_000014_add_campaign_state_reason::Migration),
            Box::new(m20261206_000015_add_campaign_traceparent::Migration),
        ];
        all.extend(own);
        all
    }
}
