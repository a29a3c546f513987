use sea_orm::entity::prelude::*;

/// Points credited together, valid together.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "point_lots")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub customer_id: String,
    pub entry_id: i64,
    pub initial: i64,
    pub remaining: i64,
    pub available_at: i64,
    pub expires_at: i64,
}

/// Relations are enforced by the store, not by foreign keys (the ledger outlives erased members).
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
