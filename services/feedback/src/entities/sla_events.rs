use sea_orm::entity::prelude::*;

/// A warning or a breach of a case's SLA clock, recorded once (unique by case, clock and kind).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sla_events")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub case_id: String,
    /// `first_response` or `resolution`.
    pub clock: String,
    /// `warning` or `breach`.
    pub kind: String,
    pub at: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
