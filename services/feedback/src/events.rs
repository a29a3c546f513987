//! Other services' events into feedback: today their erasures, applied inside the shared sink's transaction
//! (`rapport_outbox::sink`), which has already checked the sender, de-duplicated and recorded the tombstone.
use rapport_kit::error::ServiceError;
use rapport_outbox::sink::{EventHandler, HandlerError};
use rapport_proto::events::v1::Event;
use sea_orm::DatabaseTransaction;

use crate::{error::FeedbackError, store::Store};

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
    /// Purchases, tier changes and memberships are not used by feedback yet.
    async fn apply(&self, _txn: &DatabaseTransaction, _events: Vec<Event>) -> Result<(), HandlerError> {
        Ok(())
    }

    async fn forget(&self, txn: &DatabaseTransaction, customer_id: &str) -> Result<(), HandlerError> {
        let now = self.store.now();
        self.store.forget_in(txn, customer_id, now).await.map(|_| ()).map_err(|e| match e {
            FeedbackError::Db(e) => HandlerError::Db(e),
            e => HandlerError::Other(e.to_api().message),
        })
    }
}
