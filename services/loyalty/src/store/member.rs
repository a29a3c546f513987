//! Members: enrolment, the member view (time's effects computed on read, never written by it), erasure.
use rapport_kit::{
    db,
    frame::{Done, Key},
    idempotency,
};
use rapport_proto::{
    events::v1::{CustomerForgotten, event},
    loyalty::v1 as pb,
};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};

use super::{Result, Store};
use crate::{
    domain::{DAY_MS, MemberView, Tier},
    entities::{ledger_entries, members, offer_grants, point_lots, purchases, tier_changes},
    error::LoyaltyError,
    wire,
};

impl Store {
    /// Enrols a customer.
    pub async fn enrol(
        &self,
        key: &Key,
        customer_id: &str,
        display_name: Option<String>,
    ) -> Result<pb::EnrolMemberResponse> {
        let customer_id = customer_id.to_string();
        self.frame
            .once(self, key, "EnrolMember", move |s, txn, now| {
                Box::pin(async move {
                    if members::Entity::find_by_id(customer_id.clone()).one(txn).await?.is_some() {
                        return Err(LoyaltyError::MemberExists);
                    }
                    let m = members::ActiveModel {
                        customer_id: Set(customer_id.clone()),
                        display_name: Set(display_name),
                        tier: Set(Tier::Bronze.as_str().into()),
                        tier_period_end: Set(now + 365 * DAY_MS),
                        enrolled_at: Set(now),
                        spent: Set(0),
                        expired: Set(0),
                    };
                    members::Entity::insert(m).exec_without_returning(txn).await?;
                    tracing::info!(customer_id = %customer_id, "member enrolled");
                    let st = s.lock(txn, &customer_id).await?;
                    let member = wire::member_pb(s.view(txn, &st, now).await?);
                    Ok(Done::about([customer_id], pb::EnrolMemberResponse { member: Some(member) }))
                })
            })
            .await
    }

    /// A member as of now, without writing: what time has done (expired lots, a period-end downgrade) is worked out
    /// on the fly, exactly as the sweeper or the next change will write it. A read never takes the write lock.
    pub async fn member(&self, customer_id: &str) -> Result<MemberView> {
        let txn = db::begin_read(&self.db).await?;
        let now = self.clock.now_ms();
        let st = self.read_settled(&txn, customer_id, now).await?;
        let v = self.view(&txn, &st, now).await?;
        txn.commit().await?;
        Ok(v)
    }

    /// Erases the member's personal data and re-keys the ledger under an anonymous id.
    pub async fn forget(&self, key: &Key, customer_id: &str) -> Result<pb::ForgetMemberResponse> {
        let customer_id = customer_id.to_string();
        self.frame
            .once(self, key, "ForgetMember", move |s, txn, now| {
                Box::pin(async move {
                    let st = s.lock(txn, &customer_id).await?;
                    let anon = s.pseudonyms.of(&format!("{customer_id}/{}", st.member.enrolled_at));
                    let n = ledger_entries::Entity::update_many()
                        .col_expr(ledger_entries::Column::CustomerId, Expr::value(anon.clone()))
                        .filter(ledger_entries::Column::CustomerId.eq(customer_id.as_str()))
                        .exec(txn)
                        .await?
                        .rows_affected;
                    ledger_entries::Entity::update_many()
                        .col_expr(ledger_entries::Column::Counterparty, Expr::value(anon.clone()))
                        .filter(ledger_entries::Column::Counterparty.eq(customer_id.as_str()))
                        .exec(txn)
                        .await?;
                    point_lots::Entity::update_many()
                        .col_expr(point_lots::Column::CustomerId, Expr::value(anon.clone()))
                        .filter(point_lots::Column::CustomerId.eq(customer_id.as_str()))
                        .exec(txn)
                        .await?;
                    purchases::Entity::update_many()
                        .col_expr(purchases::Column::CustomerId, Expr::value(anon.clone()))
                        .filter(purchases::Column::CustomerId.eq(customer_id.as_str()))
                        .exec(txn)
                        .await?;
                    tier_changes::Entity::update_many()
                        .col_expr(tier_changes::Column::CustomerId, Expr::value(anon.clone()))
                        .filter(tier_changes::Column::CustomerId.eq(customer_id.as_str()))
                        .exec(txn)
                        .await?;
                    offer_grants::Entity::update_many()
                        .col_expr(offer_grants::Column::CustomerId, Expr::value(anon.clone()))
                        .filter(offer_grants::Column::CustomerId.eq(customer_id.as_str()))
                        .exec(txn)
                        .await?;
                    members::Entity::delete_by_id(customer_id.clone()).exec(txn).await?;
                    s.outbox.scrub(txn, &customer_id).await?;
                    idempotency::scrub(txn, &customer_id, now).await?;
                    let ev = event::Payload::CustomerForgotten(CustomerForgotten {});
                    s.publish(txn, &customer_id, ev, now).await?;
                    tracing::info!(entries = n, "member forgotten, ledger anonymised");
                    let anonymised_entries = i64::try_from(n).unwrap_or(i64::MAX);
                    Ok(Done::reply(pb::ForgetMemberResponse { anonymised_entries }))
                })
            })
            .await
    }
}
