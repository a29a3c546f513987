use sea_orm::entity::prelude::*;

/// Something a customer said (feedback's theme signal) or an agent suggested; the text is dropped with the customer.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "signals")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i64,
    pub signal_id: String,
    pub origin: String,
    pub reference: String,
    pub customer_id: Option<String>,
    pub theme: String,
    pub discovered: Option<String>,
    pub text: Option<String>,
    pub severity: String,
    pub channel: i32,
    pub nps: Option<i32>,
    pub tier: String,
    /// JSON array of segment ids.
    pub segments: String,
    pub kind: String,
    pub occurred_at: i64,
    pub suggested_by: Option<String>,
    pub received_at: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
