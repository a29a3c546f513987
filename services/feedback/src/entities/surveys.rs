use sea_orm::entity::prelude::*;

/// A survey of one customer after one service, and its answer.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "surveys")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub survey_id: String,
    pub customer_id: String,
    pub touchpoint: String,
    pub channel: i32,
    pub created_at: i64,
    pub expires_at: i64,
    pub score: Option<i32>,
    pub comment: Option<String>,
    pub answered_at: Option<i64>,
    pub tier: Option<String>,
    /// The resolved case a recovery survey follows.
    pub after_case_id: Option<String>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
