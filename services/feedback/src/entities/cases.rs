use sea_orm::entity::prelude::*;

/// A complaint or a claim, its theme and where it stands.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "cases")]
#[allow(missing_docs)]
pub struct Model {
    /// Order of opening (the page cursor).
    #[sea_orm(primary_key)]
    pub seq: i64,
    #[sea_orm(unique)]
    pub case_id: String,
    pub kind: String,
    pub customer_id: String,
    pub channel: i32,
    pub severity: String,
    pub order_id: String,
    pub theme: String,
    pub confidence: f64,
    /// JSON array of the keywords found.
    pub keywords: String,
    pub tie_broken: bool,
    pub taxonomy_version: i64,
    pub state: String,
    pub created_at: i64,
    pub first_response_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub resolution: Option<String>,
    pub root_cause: Option<String>,
    pub corrective_action: Option<String>,
    /// The loyalty tier it was opened under (`unknown` when feedback had not heard of one).
    pub tier: String,
    /// SLA target until the first answer, business milliseconds.
    pub first_response_target: i64,
    /// SLA target until resolution, business milliseconds.
    pub resolution_target: i64,
    /// How many SLA breaches escalated it.
    pub escalation_level: i32,
    pub queue_id: String,
    pub assigned_agent: Option<String>,
    /// The rule that routed it, or `default`.
    pub routed_by: String,
    /// `loyalty`, `events` or `unknown`.
    pub tier_source: String,
    /// SLA target from a customer's message until the next answer, business milliseconds.
    pub next_response_target: i64,
    /// When the customer's message that started the current next-response clock came.
    pub next_response_from: Option<i64>,
    /// When an agent answered it.
    pub next_response_at: Option<i64>,
    /// Next-response clocks so far (the current one's number).
    pub next_responses: i32,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
