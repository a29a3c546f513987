use sea_orm::entity::prelude::*;

/// A customer entered or left a segment.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "segment_changes")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub segment_id: String,
    pub customer_id: String,
    pub entered: bool,
    pub at: i64,
}

/// Relations are kept by the store.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
