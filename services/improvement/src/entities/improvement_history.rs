use sea_orm::entity::prelude::*;

/// A change of an improvement's status, with its actor.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "improvement_history")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub improvement_id: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub actor: String,
    pub note: String,
    pub at: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
