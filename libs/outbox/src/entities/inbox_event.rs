use sea_orm::entity::prelude::*;

/// An event a receiver has applied.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "inbox_events")]
pub struct Model {
    /// The event's id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub event_id: String,
    /// The producing service.
    pub source: String,
    /// When it was applied (ms).
    pub processed_at: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
