//! Erasure: the customer's texts dropped, its signals, answers and pilot places kept under a keyed pseudonym (counts,
//! rates and comparisons stay true), its spend forgotten, outbox rows and stored replies about it scrubbed, and a
//! tombstone so later events are dropped.
use rapport_kit::{
    frame::{Done, Key},
    idempotency,
};
use rapport_outbox::sink;
use rapport_proto::improvement::v1 as pb;
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, sea_query::Expr};

use super::{Result, Store};
use crate::entities::{answers, customers, pilot_members, signals};

impl Store {
    /// Erases the customer on request.
    pub async fn forget(&self, key: &Key, customer_id: &str) -> Result<pb::ForgetCustomerResponse> {
        let customer_id = customer_id.to_string();
        self.frame
            .once(self, key, "ForgetCustomer", move |s, txn, now| {
                Box::pin(async move {
                    let texts_dropped = s.forget_in(txn, &customer_id, now).await?;
                    sink::bury(txn, &s.pseudonyms, &customer_id, now).await?;
                    tracing::info!(texts_dropped, "customer erased from improvement");
                    Ok(Done::reply(pb::ForgetCustomerResponse { texts_dropped }))
                })
            })
            .await
    }

    /// Erases everything improvement holds about a customer inside `txn`; returns how many texts were dropped. The
    /// caller records the tombstone.
    pub async fn forget_in(&self, txn: &DatabaseTransaction, customer_id: &str, now: i64) -> Result<i64> {
        self.lock_customer(txn, customer_id).await?;
        // No pilot starts meanwhile: its members were checked against the tombstones before this commits.
        rapport_kit::lease::lock_shared_in_txn(txn, super::pilots::PILOTS_LOCK).await?;
        let pseudonym = self.pseudonyms.of(customer_id);
        let dropped = signals::Entity::update_many()
            .col_expr(signals::Column::CustomerId, Expr::value(pseudonym.clone()))
            .col_expr(signals::Column::Text, Expr::value(Option::<String>::None))
            .col_expr(signals::Column::Reference, Expr::value(""))
            .col_expr(signals::Column::Segments, Expr::value("[]"))
            .filter(signals::Column::CustomerId.eq(customer_id))
            .exec(txn)
            .await?
            .rows_affected;
        answers::Entity::update_many()
            .col_expr(answers::Column::CustomerId, Expr::value(pseudonym.clone()))
            .filter(answers::Column::CustomerId.eq(customer_id))
            .exec(txn)
            .await?;
        pilot_members::Entity::update_many()
            .col_expr(pilot_members::Column::CustomerId, Expr::value(pseudonym))
            .filter(pilot_members::Column::CustomerId.eq(customer_id))
            .exec(txn)
            .await?;
        customers::Entity::delete_by_id(customer_id.to_string()).exec(txn).await?;
        self.outbox.scrub(txn, customer_id).await?;
        idempotency::scrub(txn, customer_id, now).await?;
        Ok(i64::try_from(dropped).unwrap_or(i64::MAX))
    }
}
