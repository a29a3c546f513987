use sea_orm::entity::prelude::*;

/// An offer granted to a member by a campaign.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "offer_grants")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub offer_id: String,
    pub campaign_id: String,
    pub customer_id: String,
    pub uses: i32,
    pub granted_at: i64,
}

/// Relations are enforced by the store, not by foreign keys (the ledger outlives erased members).
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
