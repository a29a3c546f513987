use sea_orm::entity::prelude::*;

/// One discovery.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "discovery_runs")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub run_id: i64,
    pub texts: i32,
    pub empty_texts: i32,
    pub k: i32,
    pub silhouette: f64,
    /// JSON arrays of theme ids.
    pub created: String,
    pub kept: String,
    pub retired: String,
    pub window_start: i64,
    pub window_end: i64,
    pub ran_at: i64,
    pub duration_ms: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
