use sea_orm::entity::prelude::*;

/// A queue of cases.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "queues")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub queue_id: String,
    pub display_name: String,
    /// `round_robin` or `least_loaded`.
    pub assignment: String,
    /// The agent given the last case (round robin).
    pub last_agent: Option<String>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
