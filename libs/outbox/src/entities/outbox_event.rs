use sea_orm::entity::prelude::*;

/// An event waiting for (or done with) delivery.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox_events")]
pub struct Model {
    /// Delivery order.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The event's id: the idempotency key of its delivery.
    #[sea_orm(unique)]
    pub event_id: String,
    /// The receiving service.
    pub destination: String,
    /// The customer the event is about.
    pub partition_key: String,
    /// The encoded `rapport.events.v1.Event`.
    pub payload: Vec<u8>,
    /// When it was written (ms).
    pub created_at: i64,
    /// Failed delivery attempts so far.
    pub attempts: i32,
    /// Not before (ms).
    pub next_attempt_at: i64,
    /// When the receiver acknowledged it (ms).
    pub delivered_at: Option<i64>,
    /// The last delivery error.
    pub last_error: Option<String>,
    /// When it was parked after its last allowed attempt (ms); parked events wait for an operator's retry.
    pub parked_at: Option<i64>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
