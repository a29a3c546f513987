//! Erasure: comments dropped, answers and cases kept under a keyed pseudonym (NPS and case counts stay true, case
//! messages go), the anti-fatigue row,
//! outbox rows and stored replies about the customer scrubbed, a tombstone so later events are dropped.
use rapport_kit::{
    frame::{Done, Key},
    idempotency,
};
use rapport_outbox::sink;
use rapport_proto::{
    events::v1::{CustomerForgotten, event},
    feedback::v1 as pb,
};
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, sea_query::Expr};

use super::{Result, Store};
use crate::entities::{surveyed_customers, surveys};

impl Store {
    /// Erases the customer on request and tells feedback's subscribers.
    pub async fn forget(&self, key: &Key, customer_id: &str) -> Result<pb::ForgetCustomerResponse> {
        let customer_id = customer_id.to_string();
        self.frame
            .once(self, key, "ForgetCustomer", move |s, txn, now| {
                Box::pin(async move {
                    let n = s.forget_in(txn, &customer_id, now).await?;
                    sink::bury(txn, &s.pseudonyms, &customer_id, now).await?;
                    let ev = event::Payload::CustomerForgotten(CustomerForgotten {});
                    s.outbox.publish(txn, &customer_id, ev, now).await?;
                    tracing::info!(surveys = n, "customer erased from feedback");
                    let anonymised_surveys = i64::try_from(n).unwrap_or(i64::MAX);
                    Ok(Done::reply(pb::ForgetCustomerResponse { anonymised_surveys }))
                })
            })
            .await
    }

    /// Erases everything feedback holds about a customer inside `txn`; returns how many surveys were anonymised.
    /// The caller records the tombstone.
    pub async fn forget_in(&self, txn: &DatabaseTransaction, customer_id: &str, now: i64) -> Result<u64> {
        self.lock_customer(txn, customer_id).await?;
        let n = surveys::Entity::update_many()
            .col_expr(surveys::Column::CustomerId, Expr::value(self.pseudonyms.of(customer_id)))
            .col_expr(surveys::Column::Comment, Expr::value(Option::<String>::None))
            .filter(surveys::Column::CustomerId.eq(customer_id))
            .exec(txn)
            .await?
            .rows_affected;
        surveyed_customers::Entity::delete_by_id(customer_id.to_string()).exec(txn).await?;
        self.forget_cases(txn, customer_id, now).await?;
        self.forget_context(txn, customer_id).await?;
        self.outbox.scrub(txn, customer_id).await?;
        idempotency::scrub(txn, customer_id, now).await?;
        Ok(n)
    }

    /// Tells the improvement service of an erasure feedback learnt from another service (inside `txn`).
    pub async fn pass_on_erasure_in(&self, txn: &DatabaseTransaction, customer_id: &str, now: i64) -> Result<()> {
        let ev = event::Payload::CustomerForgotten(CustomerForgotten {});
        self.outbox.publish_to(txn, Some(&["improvement"]), customer_id, ev, now).await?;
        Ok(())
    }

    /// Whether the customer was erased, or `customer_id` is the pseudonym an erased customer's records are kept
    /// under (asking by it would tie them together again).
    pub async fn is_erased(&self, customer_id: &str) -> Result<bool> {
        Ok(rapport_outbox::sink::is_erased_or_pseudonym(&self.db, &self.pseudonyms, customer_id).await?)
    }
}
