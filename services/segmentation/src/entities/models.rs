use sea_orm::entity::prelude::*;

/// A trained clustering model (the newest is active).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "models")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub version: i64,
    pub spec: String,
    pub created_at: i64,
}

/// Relations are kept by the store.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
