use sea_orm::entity::prelude::*;

/// An improvement of the backlog.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "improvements")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub improvement_id: String,
    pub title: String,
    pub description: String,
    /// JSON array of theme ids.
    pub themes: String,
    pub status: String,
    pub confidence: f64,
    pub effort_weeks: f64,
    pub duplicate_of: Option<String>,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub shipped_at: Option<i64>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
