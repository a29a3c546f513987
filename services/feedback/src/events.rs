//! Other services' events into feedback: tiers, segment memberships, the improvement service's accepted themes and
//! shipped improvements, and erasures, applied inside the shared sink's transaction
//! (`rapport_outbox::sink`), which has already checked the sender, de-duplicated and recorded the tombstone.
use rapport_outbox::sink::{EventHandler, HandlerError};
use rapport_proto::events::v1::Event;
use sea_orm::DatabaseTransaction;

use crate::store::Store;

/// Applies delivered events to feedback's store.
pub struct Handler {
    store: Store,
}

impl Handler {
    /// Over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl EventHandler for Handler {
    /// Tier changes and segment memberships (what NPS is grouped by), themes accepted and improvements shipped by the
    /// improvement service; the rest is not used.
    async fn apply(&self, txn: &DatabaseTransaction, events: Vec<Event>) -> Result<(), HandlerError> {
        self.store.apply_in(txn, &events).await.map_err(HandlerError::of)
    }

    /// Erases the customer, and passes the erasure on to the improvement service, which hears of customers only
    /// from feedback (the others heard it from where it came).
    async fn forget(&self, txn: &DatabaseTransaction, customer_id: &str) -> Result<(), HandlerError> {
        let now = self.store.now();
        self.store.forget_in(txn, customer_id, now).await.map_err(HandlerError::of)?;
        self.store.pass_on_erasure_in(txn, customer_id, now).await.map_err(HandlerError::of)
    }
}
