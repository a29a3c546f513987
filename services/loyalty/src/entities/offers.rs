use sea_orm::entity::prelude::*;

/// An offer that can be granted.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "offers")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub offer_id: String,
    pub title: String,
    pub kind: String,
    pub value: i64,
    pub sku: String,
    pub tiers: String,
    pub start_at: i64,
    pub end_at: i64,
    pub max_uses: i32,
    pub created_at: i64,
}

/// Relations are enforced by the store, not by foreign keys (the ledger outlives erased members).
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
