use sea_orm::entity::prelude::*;

/// Member of the programme (personal data: display_name).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "members")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub customer_id: String,
    pub display_name: Option<String>,
    pub tier: String,
    pub tier_period_end: i64,
    pub enrolled_at: i64,
    pub spent: i64,
    pub expired: i64,
}

/// Relations are enforced by the store, not by foreign keys (the ledger outlives erased members).
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
