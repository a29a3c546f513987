//! Erasure: codes (a vanity code may be a name) kept only as a keyed hash so a later use is told "erased", the
//! ambassador's fingerprints and review site dropped, the customer taken off the block list, referrals, rewards and invitations kept under a keyed
//! pseudonym so programme counts stay true, rewards not yet paid to the customer cancelled, outbox rows and stored
//! replies scrubbed, a tombstone so later events are dropped.
use rapport_kit::{
    frame::{Done, Key},
    idempotency,
};
use rapport_outbox::sink;
use rapport_proto::{
    events::v1::{CustomerForgotten, event},
    referrals::v1 as pb,
};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait},
};

use super::{Result, Store};
use crate::{
    domain::reward,
    entities::{ambassadors, blocked, codes, invitations, referrals as rows, rewards},
};

impl Store {
    /// Erases the customer on request and tells referrals' subscribers.
    pub async fn forget(&self, key: &Key, customer_id: &str) -> Result<pb::ForgetCustomerResponse> {
        let customer_id = customer_id.to_string();
        self.frame
            .once(self, key, "ForgetCustomer", move |s, txn, now| {
                Box::pin(async move {
                    let reply = s.forget_in(txn, &customer_id, now).await?;
                    sink::bury(txn, &s.pseudonyms, &customer_id, now).await?;
                    // Segmentation holds the referrals the customer made: the erasure reaches it too.
                    let ev = event::Payload::CustomerForgotten(CustomerForgotten {});
                    s.outbox.publish(txn, &customer_id, ev, now).await?;
                    Ok(Done::reply(reply))
                })
            })
            .await
    }

    /// Erases everything referrals holds about a customer inside `txn`. The caller records the tombstone.
    pub async fn forget_in(
        &self,
        txn: &DatabaseTransaction,
        customer_id: &str,
        now: i64,
    ) -> Result<pb::ForgetCustomerResponse> {
        self.lock_customer(txn, customer_id).await?;
        let pseudonym = self.pseudonyms.of(customer_id);
        // The codes' rows first: a sign-up on one of them waits for the erasure and then finds it erased, and one
        // already under way finishes before its referral is re-keyed below.
        let own_codes =
            codes::Entity::find().filter(codes::Column::CustomerId.eq(customer_id)).lock_exclusive().all(txn).await?;
        // Then every referral the customer took part in, in one order (two erasures of customers who referred each
        // other would otherwise lock them in opposite orders).
        let taking_part: Vec<String> = rows::Entity::find()
            .filter(rows::Column::ReferrerId.eq(customer_id).or(rows::Column::RefereeId.eq(customer_id)))
            .order_by_asc(rows::Column::Seq)
            .lock_exclusive()
            .all(txn)
            .await?
            .into_iter()
            .map(|r| r.referral_id)
            .collect();
        for c in &own_codes {
            let erased_key = self.erased_code_key(&c.code_key);
            rows::Entity::update_many()
                .col_expr(rows::Column::CodeKey, Expr::value(erased_key.clone()))
                .col_expr(rows::Column::Code, Expr::value(String::new()))
                .filter(rows::Column::CodeKey.eq(&c.code_key))
                .exec(txn)
                .await?;
            codes::Entity::delete_by_id(c.code_key.clone()).exec(txn).await?;
            let kept = codes::ActiveModel {
                code_key: Set(erased_key),
                code: Set(String::new()),
                customer_id: Set(pseudonym.clone()),
                erased: Set(true),
                ..codes::ActiveModel::from(c.clone())
            };
            codes::Entity::insert(kept).exec_without_returning(txn).await?;
        }
        ambassadors::Entity::update_many()
            .col_expr(ambassadors::Column::CustomerId, Expr::value(pseudonym.clone()))
            .col_expr(ambassadors::Column::ReviewSite, Expr::value(String::new()))
            .col_expr(ambassadors::Column::EmailHash, Expr::value(Option::<String>::None))
            .col_expr(ambassadors::Column::PaymentHash, Expr::value(Option::<String>::None))
            .col_expr(ambassadors::Column::DeviceHash, Expr::value(Option::<String>::None))
            .filter(ambassadors::Column::CustomerId.eq(customer_id))
            .exec(txn)
            .await?;
        invitations::Entity::update_many()
            .col_expr(invitations::Column::CustomerId, Expr::value(pseudonym.clone()))
            .filter(invitations::Column::CustomerId.eq(customer_id))
            .exec(txn)
            .await?;
        let mut kept = 0;
        for column in [rows::Column::ReferrerId, rows::Column::RefereeId] {
            kept += rows::Entity::update_many()
                .col_expr(column, Expr::value(pseudonym.clone()))
                .filter(column.eq(customer_id))
                .exec(txn)
                .await?
                .rows_affected;
        }
        // The referee's fingerprints go with it (they were its own).
        rows::Entity::update_many()
            .col_expr(rows::Column::EmailHash, Expr::value(Option::<String>::None))
            .col_expr(rows::Column::PaymentHash, Expr::value(Option::<String>::None))
            .col_expr(rows::Column::DeviceHash, Expr::value(Option::<String>::None))
            .filter(rows::Column::RefereeId.eq(pseudonym.as_str()))
            .exec(txn)
            .await?;
        let cancelled = rewards::Entity::update_many()
            .col_expr(rewards::Column::State, Expr::value(reward::CANCELLED))
            .filter(rewards::Column::CustomerId.eq(customer_id))
            // Nothing is paid to an erased customer, nor taken back from it (loyalty erased its ledger too).
            .filter(rewards::Column::State.is_in([reward::HELD, reward::DUE, reward::PAYING, reward::CLAWBACK_DUE]))
            .exec(txn)
            .await?
            .rows_affected;
        rewards::Entity::update_many()
            .col_expr(rewards::Column::CustomerId, Expr::value(pseudonym.clone()))
            .filter(rewards::Column::CustomerId.eq(customer_id))
            .exec(txn)
            .await?;
        // A blocked customer's id goes too (its tombstone keeps it out); blocked e-mails, instruments and devices are
        // keyed hashes that name no one and stay.
        blocked::Entity::delete_many()
            .filter(blocked::Column::Kind.eq("customer"))
            .filter(blocked::Column::Value.eq(customer_id))
            .exec(txn)
            .await?;
        // A referral whose last unpaid reward was the customer's is settled now.
        for id in &taking_part {
            if let Some(row) = rows::Entity::find().filter(rows::Column::ReferralId.eq(id)).one(txn).await? {
                super::reward::settle_in(txn, row).await?;
            }
        }
        self.outbox.scrub(txn, customer_id).await?;
        idempotency::scrub(txn, customer_id, now).await?;
        tracing::info!(
            referrals = kept,
            codes = own_codes.len(),
            rewards_cancelled = cancelled,
            "customer erased from referrals"
        );
        Ok(pb::ForgetCustomerResponse {
            referrals_kept: i64::try_from(kept).unwrap_or(i64::MAX),
            codes_removed: own_codes.len() as i64,
            rewards_cancelled: i64::try_from(cancelled).unwrap_or(i64::MAX),
        })
    }
}
