use sea_orm::entity::prelude::*;

/// A theme: feedback's (seen in signals) or discovered.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "themes")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub theme_id: String,
    pub kind: String,
    pub status: String,
    /// JSON [[term, weight]].
    pub terms: String,
    /// JSON [[word, weight]].
    pub top_terms: String,
    /// JSON array of signal seqs.
    pub representatives: String,
    pub size: i32,
    pub accepted_as: Option<String>,
    pub merged_into: Option<String>,
    pub first_run: i64,
    pub last_run: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
