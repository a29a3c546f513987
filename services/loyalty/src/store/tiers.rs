//! What time does to members: expired points, the end of a tier period (settled by the sweeper and on every
//! locked read), and upgrades as qualifying points come in.
use rapport_kit::db;
use rapport_proto::events::v1::{TierChanged, event};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect, sea_query::Expr,
};

use super::{Result, State, Store};
use crate::{
    domain::{self, DAY_MS, EntryKind, Tier},
    entities::{ledger_entries, members, point_lots, tier_changes},
    error::LoyaltyError,
};

impl Store {
    /// Settles members whose points expired or whose tier period ended; returns how many were settled.
    pub async fn settle_due(&self, limit: u64) -> Result<usize> {
        let now = self.clock.now_ms();
        let mut ids: Vec<String> = point_lots::Entity::find()
            .select_only()
            .column(point_lots::Column::CustomerId)
            .filter(point_lots::Column::Remaining.gt(0))
            .filter(point_lots::Column::ExpiresAt.lte(now))
            .distinct()
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?;
        let periods: Vec<String> = members::Entity::find()
            .select_only()
            .column(members::Column::CustomerId)
            .filter(members::Column::TierPeriodEnd.lte(now))
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?;
        ids.extend(periods);
        ids.sort();
        ids.dedup();
        let mut n = 0;
        for id in ids {
            let txn = db::begin_write(&self.db).await?;
            match self.lock_settled(&txn, &id, now).await {
                Ok(_) => {
                    txn.commit().await?;
                    n += 1;
                }
                // Forgotten meanwhile: nothing to settle.
                Err(LoyaltyError::MemberNotFound) => {}
                Err(e) => return Err(e),
            }
        }
        if n > 0 {
            self.outbox.notify();
        }
        Ok(n)
    }

    /// Locks the member and writes what time has done: expired lots, a downgrade at the end of the tier period.
    pub(super) async fn lock_settled(&self, txn: &DatabaseTransaction, customer_id: &str, now: i64) -> Result<State> {
        let mut st = self.lock(txn, customer_id).await?;
        let expired = domain::expired_lots(&st.lots, now);
        for (lot_id, points) in &expired {
            let lot = st.lots.iter().find(|l| l.id == *lot_id).copied();
            self.take(txn, &mut st, &[(*lot_id, *points)]).await?;
            let reason = format!("points of lot {lot_id} expired");
            let at = lot.map_or(now, |l| l.expires_at);
            self.write_entry(txn, customer_id, EntryKind::Expire, -points, 0, &reason, "", None, None, at, None, None)
                .await?;
        }
        let total: i64 = expired.iter().map(|(_, p)| p).sum();
        if total > 0 {
            st.member.expired += total;
            members::Entity::update_many()
                .col_expr(members::Column::Expired, Expr::value(st.member.expired))
                .filter(members::Column::CustomerId.eq(customer_id))
                .exec(txn)
                .await?;
        }
        if now >= st.member.tier_period_end {
            let tier = Tier::parse(&st.member.tier).unwrap_or(Tier::Bronze);
            let q = self.qualifying(txn, customer_id, now).await?;
            let (change, next_end) = domain::period_end(&self.rules, tier, q, st.member.tier_period_end, now);
            st.member.tier_period_end = next_end;
            members::Entity::update_many()
                .col_expr(members::Column::TierPeriodEnd, Expr::value(next_end))
                .filter(members::Column::CustomerId.eq(customer_id))
                .exec(txn)
                .await?;
            if let Some(c) = change {
                self.change_tier(txn, &mut st, c, next_end, now).await?;
            }
        }
        Ok(st)
    }

    /// Reads the member and works out what [`Self::lock_settled`] would write, writing nothing: expired lots leave
    /// the open ones and count as expired; an ended period moves on, with the downgrade it brings.
    pub(super) async fn read_settled(&self, txn: &DatabaseTransaction, customer_id: &str, now: i64) -> Result<State> {
        let mut st = self.read(txn, customer_id).await?;
        let expired: i64 = domain::expired_lots(&st.lots, now).iter().map(|(_, p)| p).sum();
        st.member.expired += expired;
        st.lots.retain(|l| l.expires_at > now);
        if now >= st.member.tier_period_end {
            let tier = Tier::parse(&st.member.tier).unwrap_or(Tier::Bronze);
            let q = self.qualifying(txn, customer_id, now).await?;
            let (change, next_end) = domain::period_end(&self.rules, tier, q, st.member.tier_period_end, now);
            st.member.tier_period_end = next_end;
            if let Some(c) = change {
                st.member.tier = c.to.as_str().into();
            }
        }
        Ok(st)
    }

    pub(super) async fn maybe_upgrade(&self, txn: &DatabaseTransaction, st: &mut State, now: i64) -> Result<()> {
        let tier = Tier::parse(&st.member.tier).unwrap_or(Tier::Bronze);
        let q = self.qualifying(txn, &st.member.customer_id, now).await?;
        if let Some(c) = domain::upgrade(&self.rules, tier, q) {
            self.change_tier(txn, st, c, now + 365 * DAY_MS, now).await?;
        }
        Ok(())
    }

    pub(super) async fn change_tier(
        &self,
        txn: &DatabaseTransaction,
        st: &mut State,
        c: domain::TierChange,
        period_end: i64,
        now: i64,
    ) -> Result<()> {
        let id = st.member.customer_id.clone();
        let from = st.member.tier.clone();
        members::Entity::update_many()
            .col_expr(members::Column::Tier, Expr::value(c.to.as_str()))
            .col_expr(members::Column::TierPeriodEnd, Expr::value(period_end))
            .filter(members::Column::CustomerId.eq(id.as_str()))
            .exec(txn)
            .await?;
        tier_changes::Entity::insert(tier_changes::ActiveModel {
            customer_id: Set(id.clone()),
            from_tier: Set(from.clone()),
            to_tier: Set(c.to.as_str().into()),
            reason: Set(c.reason.into()),
            created_at: Set(now),
            ..Default::default()
        })
        .exec_without_returning(txn)
        .await?;
        st.member.tier = c.to.as_str().into();
        st.member.tier_period_end = period_end;
        let ev = event::Payload::TierChanged(TierChanged {
            from_tier: from.clone(),
            to_tier: c.to.as_str().into(),
            reason: c.reason.into(),
        });
        self.publish(txn, &id, ev, now).await?;
        tracing::info!(customer_id = %id, from = %from, to = c.to.as_str(), reason = c.reason, "tier changed");
        Ok(())
    }

    pub(super) async fn qualifying(&self, txn: &DatabaseTransaction, customer_id: &str, now: i64) -> Result<i64> {
        Ok(self.qualifying_at(txn, customer_id, now, now).await?.0)
    }

    /// Qualifying points of the rolling 12 months ending `now` and of those ending `later` (at or after `now`: what
    /// of today's will still count then), from one read of the entries.
    pub(super) async fn qualifying_at(
        &self,
        txn: &DatabaseTransaction,
        customer_id: &str,
        now: i64,
        later: i64,
    ) -> Result<(i64, i64)> {
        let rows: Vec<(i64, i64)> = ledger_entries::Entity::find()
            .select_only()
            .column(ledger_entries::Column::CreatedAt)
            .column(ledger_entries::Column::Qualifying)
            .filter(ledger_entries::Column::CustomerId.eq(customer_id))
            .filter(ledger_entries::Column::CreatedAt.gt(now - 365 * DAY_MS))
            .filter(ledger_entries::Column::Qualifying.ne(0))
            .into_tuple()
            .all(txn)
            .await?;
        Ok((domain::qualifying(&rows, now), domain::qualifying(&rows, later.max(now))))
    }
}
