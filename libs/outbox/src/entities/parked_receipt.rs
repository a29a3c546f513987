use sea_orm::entity::prelude::*;

/// An event this service received over JetStream and refused after its attempts: parked here, at the subscriber,
/// until an operator replays it (`RetryParkedEvents` with this service as the destination).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "parked_receipts")]
pub struct Model {
    /// Order of parking.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// `<source>/<event id>`.
    #[sea_orm(unique)]
    pub event_key: String,
    /// The event's id.
    pub event_id: String,
    /// The producer.
    pub source: String,
    /// The customer the event is about.
    pub partition_key: String,
    /// The encoded `rapport.events.v1.Event`.
    pub payload: Vec<u8>,
    /// When the producer wrote it (ms; its `occurred_at`, or when it was parked if it had none).
    pub created_at: i64,
    /// Deliveries refused.
    pub attempts: i32,
    /// The last refusal.
    pub last_error: String,
    /// When it was parked (ms); `None` once an operator asked for a replay, until it is applied (and deleted).
    pub parked_at: Option<i64>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
