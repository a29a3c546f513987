use sea_orm::entity::prelude::*;

/// A recorded order (each earns once).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "purchases")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub order_id: String,
    pub customer_id: String,
    pub amount_micros: i64,
    pub currency: String,
    pub channel: i32,
    pub recurring: bool,
    pub points: i64,
    pub entry_id: Option<i64>,
    pub created_at: i64,
    /// Of the amount, how much was returned so far.
    pub returned_micros: i64,
    /// Of the points, how many were reversed by returns so far.
    pub returned_points: i64,
}

/// Relations are enforced by the store, not by foreign keys (the ledger outlives erased members).
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
