use sea_orm::entity::prelude::*;

/// A referral: an ambassador, the customer it brought, its screening and its lifecycle.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "referrals")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i64,
    #[sea_orm(unique)]
    pub referral_id: String,
    pub programme_id: String,
    pub programme_version: i32,
    pub referrer_id: String,
    #[sea_orm(unique)]
    pub referee_id: String,
    pub code_key: String,
    /// The code as issued (blank once its ambassador is erased).
    pub code: String,
    pub state: String,
    pub fraud_score: f64,
    /// Whether the screening flagged it when it was made (it stays counted after an agent's review).
    pub flagged_at_signup: bool,
    /// The signals that fired (JSON).
    pub signals: String,
    pub email_hash: Option<String>,
    pub payment_hash: Option<String>,
    pub device_hash: Option<String>,
    pub signed_up_at: i64,
    pub converted_at: Option<i64>,
    pub converted_order_id: String,
    /// The converting order's amount, and what of it was returned.
    pub order_micros: i64,
    pub returned_micros: i64,
    pub conversions: i32,
    /// When its first conversion's approval delay is over.
    pub approve_at: Option<i64>,
    pub approved_at: Option<i64>,
    pub reviewed_by: String,
    pub reason: String,
    pub voided_at: Option<i64>,
    /// Who voided it (an agent, or `returns`), and why: the review before stays as it was.
    pub voided_by: String,
    pub void_reason: String,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
