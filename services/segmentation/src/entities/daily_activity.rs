use sea_orm::entity::prelude::*;

/// A customer's events of one kind on one day: what windows and event-count rules read.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "daily_activity")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub customer_id: String,
    pub day: i64,
    pub kind: String,
    pub count: i64,
    pub amount_micros: i64,
}

/// Relations are kept by the store.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
