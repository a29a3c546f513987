use sea_orm::entity::prelude::*;

/// A receiver's tombstone: this customer was erased, so a late event about it is dropped, never applied.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "erased_customers")]
pub struct Model {
    /// Keyed pseudonym of the customer id (`rapport_kit::pseudonym`): the id itself is not kept.
    #[sea_orm(primary_key, auto_increment = false)]
    pub pseudonym: String,
    /// When the erasure was applied (ms).
    pub erased_at: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
