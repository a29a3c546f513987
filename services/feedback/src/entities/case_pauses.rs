use sea_orm::entity::prelude::*;

/// A time a case waited for the customer: its SLA clocks stood still.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "case_pauses")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub case_id: String,
    pub started_at: i64,
    /// `None` while it still waits.
    pub ended_at: Option<i64>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
