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
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, Statement,
    sea_query::Expr,
};

use super::{Result, Store};
use crate::{
    domain::{Balance, DAY_MS, MemberView, Rules, Tier},
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
    ///
    /// Within the tier period (the usual case) it is one statement, its own snapshot on both databases: the member
    /// row with its lots and qualifying entries summed by the database ([`MEMBER_SQL`]). A member whose period has
    /// ended but not yet been settled by the sweeper is read as the sweeper would settle it, in a read snapshot.
    pub async fn member(&self, customer_id: &str) -> Result<MemberView> {
        let now = self.clock.now_ms();
        let values: [sea_orm::Value; 5] = [
            customer_id.into(),
            now.into(),
            (now + 30 * DAY_MS).into(),
            (now - 365 * DAY_MS).into(),
            (365 * DAY_MS).into(),
        ];
        let stmt = Statement::from_sql_and_values(self.db.get_database_backend(), MEMBER_SQL, values);
        let row = self.db.query_one_raw(stmt).await?.ok_or(LoyaltyError::MemberNotFound)?;
        let sums = Sums::from_query_result(&row, "")?;
        if now < sums.tier_period_end {
            return Ok(sums.view(&self.rules, now));
        }
        self.member_in_snapshot(customer_id, now).await
    }

    /// The member read step by step in a read snapshot, settling what time has done on the fly with the domain's
    /// functions; [`Store::member`] falls back to it, and the tests check the one-statement read against it.
    pub async fn member_in_snapshot(&self, customer_id: &str, now: i64) -> Result<MemberView> {
        let txn = db::begin_read(&self.db).await?;
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

/// The member view in one statement: `$1` the customer, `$2` now, `$3` now + 30 days (expiring soon), `$4` now - 365
/// days (the qualifying window), `$5` 365 days (the window that ends with the tier period). The sums are those of [`crate::domain::balance`] and [`crate::domain::qualifying`]:
/// lots not yet expired are active (available) or pending, lots expired but not yet written off add to `expired`;
/// qualifying points count now and at the period's end. Each sum is cast to BIGINT (PostgreSQL's SUM of a bigint is
/// a numeric).
const MEMBER_SQL: &str = "SELECT m.customer_id, m.display_name, m.tier, m.tier_period_end, m.enrolled_at, m.spent, \
     m.expired + CAST(COALESCE(l.lapsed, 0) AS BIGINT) AS expired, \
     CAST(COALESCE(l.active, 0) AS BIGINT) AS active, \
     CAST(COALESCE(l.expiring_soon, 0) AS BIGINT) AS expiring_soon, \
     CAST(COALESCE(l.pending, 0) AS BIGINT) AS pending, \
     CAST(COALESCE((SELECT SUM(e.qualifying) FROM ledger_entries e WHERE e.customer_id = m.customer_id \
         AND e.created_at > $4 AND e.qualifying <> 0), 0) AS BIGINT) AS qualifying, \
     CAST(COALESCE((SELECT SUM(e.qualifying) FROM ledger_entries e WHERE e.customer_id = m.customer_id \
         AND e.created_at > $4 AND e.created_at > m.tier_period_end - $5 AND e.qualifying <> 0), 0) \
         AS BIGINT) AS at_end \
     FROM members m, \
     (SELECT SUM(CASE WHEN expires_at <= $2 THEN remaining ELSE 0 END) AS lapsed, \
             SUM(CASE WHEN expires_at > $2 AND available_at <= $2 THEN remaining ELSE 0 END) AS active, \
             SUM(CASE WHEN expires_at > $2 AND available_at <= $2 AND expires_at <= $3 THEN remaining ELSE 0 END) \
                 AS expiring_soon, \
             SUM(CASE WHEN expires_at > $2 AND available_at > $2 THEN remaining ELSE 0 END) AS pending \
      FROM point_lots WHERE customer_id = $1 AND remaining > 0) l \
     WHERE m.customer_id = $1";

/// A row of [`MEMBER_SQL`].
#[derive(FromQueryResult)]
struct Sums {
    customer_id: String,
    display_name: Option<String>,
    tier: String,
    tier_period_end: i64,
    enrolled_at: i64,
    spent: i64,
    expired: i64,
    active: i64,
    expiring_soon: i64,
    pending: i64,
    qualifying: i64,
    at_end: i64,
}

impl Sums {
    fn view(self, rules: &Rules, now: i64) -> MemberView {
        debug_assert!(now < self.tier_period_end, "a period that has ended is settled first");
        let tier = Tier::parse(&self.tier).unwrap_or(Tier::Bronze);
        let (qualifying, at_end) = (self.qualifying.max(0), self.at_end.max(0));
        MemberView {
            customer_id: self.customer_id,
            display_name: self.display_name,
            tier,
            balance: Balance {
                active: self.active,
                pending: self.pending,
                expiring_soon: self.expiring_soon,
                spent: self.spent,
                expired: self.expired,
            },
            qualifying,
            progress: rules.progress(tier, qualifying),
            to_keep: rules.points_to_keep(tier, at_end),
            tier_period_end: self.tier_period_end,
            enrolled_at: self.enrolled_at,
        }
    }
}
