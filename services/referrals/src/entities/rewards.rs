use sea_orm::entity::prelude::*;

/// A reward of a referral: one side of one conversion, or a milestone bonus.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "rewards")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub reward_id: String,
    pub referral_id: String,
    pub side: String,
    pub customer_id: String,
    pub points: i64,
    pub state: String,
    pub due_at: i64,
    pub order_id: String,
    pub converted_at: i64,
    pub entry_id: String,
    pub last_error: String,
    pub attempts: i32,
    pub paid_at: Option<i64>,
    pub clawed_back_at: Option<i64>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
