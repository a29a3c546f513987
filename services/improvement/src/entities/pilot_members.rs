use sea_orm::entity::prelude::*;

/// A customer of a pilot's segment and its group.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "pilot_members")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub pilot_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub customer_id: String,
    pub grp: String,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
