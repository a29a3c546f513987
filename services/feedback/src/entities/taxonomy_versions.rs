use sea_orm::entity::prelude::*;

/// A trained version of the taxonomy: the snapshot every replica trains its classifier from.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "taxonomy_versions")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub version: i64,
    /// JSON array of themes (id, keywords, examples).
    pub themes: String,
    pub created_at: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
