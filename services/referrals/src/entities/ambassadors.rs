use sea_orm::entity::prelude::*;

/// An ambassador of a programme, its review invitation and its own fingerprints.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "ambassadors")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub customer_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub programme_id: String,
    pub source: String,
    pub invited_at: i64,
    pub review_site: String,
    pub review_outcome: Option<String>,
    pub review_rating: i32,
    pub email_hash: Option<String>,
    pub payment_hash: Option<String>,
    pub device_hash: Option<String>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
