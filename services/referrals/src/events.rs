//! Other services' events into referrals, applied inside the shared sink's transaction (`rapport_outbox::sink`),
//! which has already checked the sender, de-duplicated by event id and dropped what concerns erased customers:
//! loyalty's purchases convert referrals and its returns void them; feedback's promoters become ambassadors of the
//! default programme; erasures come to `forget`.
use rapport_outbox::sink::{EventHandler, HandlerError};
use rapport_proto::events::v1::{Event, event::Payload};
use sea_orm::DatabaseTransaction;

use crate::{
    domain::{Purchase, screening::Fingerprints},
    error::ReferralsError,
    store::{EnrolCmd, Store},
    wire,
};

/// The programme promoters are invited to.
pub const PROMOTER_PROGRAMME: &str = "default";

/// Applies delivered events to referrals' store.
pub struct Handler {
    store: Store,
}

impl Handler {
    /// Over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    async fn apply_one(&self, txn: &DatabaseTransaction, e: &Event) -> Result<(), ReferralsError> {
        let at = e.occurred_at.as_ref().map_or_else(|| self.store.now(), rapport_kit::clock::millis);
        match &e.payload {
            Some(Payload::PurchaseRecorded(p)) => {
                let purchase = Purchase {
                    order_id: p.order_id.clone(),
                    amount_micros: wire::micros(p.amount.as_ref()),
                    currency: p.amount.as_ref().map(|m| m.currency_code.clone()).unwrap_or_default(),
                    at,
                };
                self.store.purchase_in(txn, &e.customer_id, purchase).await
            }
            Some(Payload::PurchaseReturned(r)) => {
                let amount = wire::micros(r.amount.as_ref());
                self.store.return_in(txn, &e.customer_id, &r.order_id, amount, r.fully_returned, at).await
            }
            Some(Payload::PromoterIdentified(_)) => {
                let cmd = EnrolCmd {
                    customer_id: e.customer_id.clone(),
                    programme_id: PROMOTER_PROGRAMME.into(),
                    source: "promoter",
                    review_site: String::new(),
                    fingerprints: Fingerprints::default(),
                };
                match self.store.enrol_event_in(txn, &cmd, at).await {
                    // Without a default programme there is nothing to invite a promoter to.
                    Err(ReferralsError::ProgrammeNotFound(_)) => Ok(()),
                    other => other,
                }
            }
            _ => Ok(()),
        }
    }
}

#[tonic::async_trait]
impl EventHandler for Handler {
    async fn apply(&self, txn: &DatabaseTransaction, events: Vec<Event>) -> Result<(), HandlerError> {
        for e in &events {
            self.apply_one(txn, e).await.map_err(HandlerError::of)?;
        }
        Ok(())
    }

    async fn forget(&self, txn: &DatabaseTransaction, customer_id: &str) -> Result<(), HandlerError> {
        let now = self.store.now();
        self.store.forget_in(txn, customer_id, now).await.map(|_| ()).map_err(HandlerError::of)
    }
}
