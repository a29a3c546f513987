use sea_orm::entity::prelude::*;

/// One immutable line of the points ledger (append-only).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ledger_entries")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub customer_id: String,
    pub kind: String,
    pub points: i64,
    pub qualifying: i64,
    pub reason: String,
    pub reference: String,
    pub reverses_entry_id: Option<i64>,
    pub counterparty: Option<String>,
    pub available_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
}

/// Relations are enforced by the store, not by foreign keys (the ledger outlives erased members).
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
