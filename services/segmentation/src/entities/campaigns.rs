use sea_orm::entity::prelude::*;

/// A campaign: an offer granted to a segment's snapshot through loyalty.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "campaigns")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub campaign_id: String,
    pub segment_id: String,
    pub offer_id: String,
    pub holdout_percent: i32,
    pub state: String,
    pub created_at: i64,
    /// Why it is paused.
    pub state_reason: Option<String>,
    /// The W3C trace context of the TriggerCampaign call that started (or resumed) it.
    pub traceparent: Option<String>,
}

/// Relations are kept by the store.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
