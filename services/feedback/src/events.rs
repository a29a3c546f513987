//! Other services' events into feedback: tiers, segment memberships and erasures, applied inside the shared sink's transaction
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
    /// Tier changes and segment memberships (what NPS is grouped by); the rest is not used yet.
    async fn apply(&self, txn: &DatabaseTransaction, events: Vec<Event>) -> Result<(), HandlerError> {
        self.store.apply_in(txn, &events).await.map_err(HandlerError::of)
    }

    async fn forget(&self, txn: &DatabaseTransaction, customer_id: &str) -> Result<(), HandlerError> {
        let now = self.store.now();
        self.store.forget_in(txn, customer_id, now).await.map(|_| ()).map_err(HandlerError::of)
    }
}
