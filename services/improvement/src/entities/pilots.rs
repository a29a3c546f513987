use sea_orm::entity::prelude::*;

/// A pilot of an improvement on a segment.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "pilots")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub pilot_id: String,
    pub improvement_id: String,
    pub segment_id: String,
    pub holdout_percent: i32,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub started_by: String,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
