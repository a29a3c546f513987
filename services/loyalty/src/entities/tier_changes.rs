use sea_orm::entity::prelude::*;

/// A tier change with its reason.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tier_changes")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub customer_id: String,
    pub from_tier: String,
    pub to_tier: String,
    pub reason: String,
    pub created_at: i64,
}

/// Relations are enforced by the store, not by foreign keys (the ledger outlives erased members).
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
