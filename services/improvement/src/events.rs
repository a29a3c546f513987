//! Feedback's events into improvement, applied inside the shared sink's transaction (`rapport_outbox::sink`), which
//! has already checked the sender, de-duplicated by event id and dropped what concerns erased customers: theme
//! signals and NPS answers; erasures come to `forget`.
use rapport_outbox::sink::{EventHandler, HandlerError};
use rapport_proto::events::v1::{Event, event::Payload};
use sea_orm::DatabaseTransaction;

use crate::store::Store;

/// Applies delivered events to improvement's store.
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
    /// Theme signals and NPS answers; the rest is not used.
    async fn apply(&self, txn: &DatabaseTransaction, events: Vec<Event>) -> Result<(), HandlerError> {
        let now = self.store.now();
        // Only feedback speaks of what customers said (the sink has bound each event's source to its sender).
        for e in events.iter().filter(|e| e.source == "feedback") {
            let applied = match &e.payload {
                Some(Payload::ThemeSignal(t)) => self.store.signal_in(txn, e, t, now).await,
                Some(Payload::SurveyAnswered(a)) => self.store.answer_in(txn, e, a, now).await,
                _ => Ok(()),
            };
            applied.map_err(HandlerError::of)?;
        }
        Ok(())
    }

    async fn forget(&self, txn: &DatabaseTransaction, customer_id: &str) -> Result<(), HandlerError> {
        let now = self.store.now();
        self.store.forget_in(txn, customer_id, now).await.map(|_| ()).map_err(HandlerError::of)
    }
}
