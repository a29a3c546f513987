use sea_orm::entity::prelude::*;

/// A customer: attributes, consent, features and cluster.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "customers")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub customer_id: String,
    pub attributes: String,
    pub consent_marketing: bool,
    pub consent_profiling: bool,
    pub features: String,
    pub cluster_id: Option<i32>,
    pub model_version: Option<i64>,
    pub window_day: i64,
    pub updated_at: i64,
}

/// Relations are kept by the store.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
