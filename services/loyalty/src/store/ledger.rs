//! The ledger: earn, redeem, adjust, reverse, transfer, its pages, and the building blocks every credit and debit
//! goes through (lots, entries, spent points).
use rapport_kit::frame::{Done, Key};
use rapport_proto::loyalty::v1 as pb;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::Expr,
};

use super::{Result, State, Store};
use crate::{
    domain::{self, DAY_MS, EntryKind, EntryView, Lot},
    entities::{ledger_entries, members, point_lots},
    error::LoyaltyError,
    wire,
};

impl Store {
    /// Credits active points.
    pub async fn earn(
        &self,
        key: &Key,
        customer_id: &str,
        points: i64,
        reason: &str,
        reference: &str,
    ) -> Result<pb::EarnPointsResponse> {
        let (customer_id, reason, reference) = (customer_id.to_string(), reason.to_string(), reference.to_string());
        self.frame
            .once(self, key, "EarnPoints", move |s, txn, now| {
                Box::pin(async move {
                    let mut st = s.lock_settled(txn, &customer_id, now).await?;
                    let expires = now + s.rules.validity_days * DAY_MS;
                    let e = s
                        .credit(
                            txn,
                            &mut st,
                            EntryKind::Earn,
                            points,
                            points,
                            &reason,
                            &reference,
                            now,
                            expires,
                            None,
                            None,
                        )
                        .await?;
                    s.maybe_upgrade(txn, &mut st, now).await?;
                    let balance = Some(wire::balance_pb(s.balance(&st, now)));
                    let id = e.id;
                    Ok(Done::about([customer_id], pb::EarnPointsResponse { entry: Some(wire::entry_pb(e)), balance })
                        .on("entry", id))
                })
            })
            .await
    }

    /// Spends active points.
    pub async fn redeem(
        &self,
        key: &Key,
        customer_id: &str,
        points: i64,
        reason: &str,
    ) -> Result<pb::RedeemPointsResponse> {
        let (customer_id, reason) = (customer_id.to_string(), reason.to_string());
        self.frame
            .once(self, key, "RedeemPoints", move |s, txn, now| {
                Box::pin(async move {
                    let mut st = s.lock_settled(txn, &customer_id, now).await?;
                    let e = s.debit(txn, &mut st, EntryKind::Redeem, points, &reason, None, None, now).await?;
                    let balance = Some(wire::balance_pb(s.balance(&st, now)));
                    let id = e.id;
                    Ok(Done::about([customer_id], pb::RedeemPointsResponse { entry: Some(wire::entry_pb(e)), balance })
                        .on("entry", id))
                })
            })
            .await
    }

    /// A manual correction.
    pub async fn adjust(
        &self,
        key: &Key,
        customer_id: &str,
        points: i64,
        reason: &str,
    ) -> Result<pb::AdjustPointsResponse> {
        let (customer_id, reason) = (customer_id.to_string(), reason.to_string());
        self.frame
            .once(self, key, "AdjustPoints", move |s, txn, now| {
                Box::pin(async move {
                    let mut st = s.lock_settled(txn, &customer_id, now).await?;
                    let e = if points > 0 {
                        let expires = now + s.rules.validity_days * DAY_MS;
                        s.credit(txn, &mut st, EntryKind::Adjust, points, 0, &reason, "", now, expires, None, None)
                            .await?
                    } else {
                        s.debit(txn, &mut st, EntryKind::Adjust, -points, &reason, None, None, now).await?
                    };
                    let balance = Some(wire::balance_pb(s.balance(&st, now)));
                    let id = e.id;
                    Ok(Done::about([customer_id], pb::AdjustPointsResponse { entry: Some(wire::entry_pb(e)), balance })
                        .on("entry", id))
                })
            })
            .await
    }

    /// Reverses all (points = 0) or part of an earn, purchase or redemption.
    pub async fn reverse(
        &self,
        key: &Key,
        customer_id: &str,
        entry_id: i64,
        points: i64,
        reason: &str,
    ) -> Result<pb::ReversePointsResponse> {
        let (customer_id, reason) = (customer_id.to_string(), reason.to_string());
        self.frame
            .once(self, key, "ReversePoints", move |s, txn, now| {
                Box::pin(async move {
                    let mut st = s.lock_settled(txn, &customer_id, now).await?;
                    let e = s.reverse_in(txn, &mut st, entry_id, points, &reason, now).await?;
                    let balance = Some(wire::balance_pb(s.balance(&st, now)));
                    // The target is the entry reversed; the reversal's own entry is in the reply.
                    Ok(Done::about(
                        [customer_id],
                        pb::ReversePointsResponse { entry: Some(wire::entry_pb(e)), balance },
                    )
                    .on("entry", entry_id))
                })
            })
            .await
    }

    /// Points of the entry `entry_id` reversed so far (by ReversePoints or returns).
    pub(super) async fn reversed(&self, txn: &DatabaseTransaction, entry_id: i64) -> Result<i64> {
        Ok(ledger_entries::Entity::find()
            .filter(ledger_entries::Column::ReversesEntryId.eq(entry_id))
            .all(txn)
            .await?
            .iter()
            .map(|e| e.points.abs())
            .sum())
    }

    /// Reverses `points` (0: all that is left) of the entry `entry_id` of the locked member `st`, inside `txn`.
    pub(super) async fn reverse_in(
        &self,
        txn: &DatabaseTransaction,
        st: &mut State,
        entry_id: i64,
        points: i64,
        reason: &str,
        now: i64,
    ) -> Result<EntryView> {
        let original = ledger_entries::Entity::find_by_id(entry_id)
            .one(txn)
            .await?
            .filter(|e| e.customer_id == st.member.customer_id)
            .ok_or(LoyaltyError::EntryNotFound)?;
        let kind = EntryKind::parse(&original.kind).ok_or(LoyaltyError::NotReversible)?;
        if !kind.reversible() {
            return Err(LoyaltyError::NotReversible);
        }
        let left = original.points.abs() - self.reversed(txn, entry_id).await?;
        let points = if points == 0 { left } else { points };
        if points > left || left == 0 {
            return Err(LoyaltyError::NothingLeftToReverse { left });
        }
        let reason = if reason.is_empty() { format!("reversal of entry {entry_id}") } else { reason.to_string() };
        let e = if kind == EntryKind::Redeem {
            // Give the spent points back as a fresh lot.
            let expires = now + self.rules.validity_days * DAY_MS;
            let e = self
                .credit(
                    txn,
                    st,
                    EntryKind::Reverse,
                    points,
                    0,
                    &reason,
                    &original.reference,
                    now,
                    expires,
                    Some(entry_id),
                    None,
                )
                .await?;
            self.add_spent(txn, st, -points).await?;
            e
        } else {
            let own = point_lots::Entity::find()
                .filter(point_lots::Column::EntryId.eq(entry_id))
                .one(txn)
                .await?
                .map(|l| l.id);
            let takes = domain::allocate_reversal(&st.lots, own, points, now)
                .map_err(|i| LoyaltyError::InsufficientPoints { available: i.available, requested: points })?;
            self.take(txn, st, &takes).await?;
            self.write_entry(
                txn,
                &st.member.customer_id.clone(),
                EntryKind::Reverse,
                -points,
                -points,
                &reason,
                &original.reference,
                Some(entry_id),
                None,
                now,
                None,
                None,
            )
            .await?
        };
        Ok(e)
    }

    /// Moves active points between members.
    pub async fn transfer(
        &self,
        key: &Key,
        from: &str,
        to: &str,
        points: i64,
        reason: &str,
    ) -> Result<pb::TransferPointsResponse> {
        let (from, to, reason) = (from.to_string(), to.to_string(), reason.to_string());
        self.frame
            .once(self, key, "TransferPoints", move |s, txn, now| {
                Box::pin(async move {
                    // Lock in a fixed order so two opposite transfers cannot deadlock.
                    let (mut a, mut b) = if from < to {
                        let a = s.lock_settled(txn, &from, now).await?;
                        (a, s.lock_settled(txn, &to, now).await?)
                    } else {
                        let b = s.lock_settled(txn, &to, now).await?;
                        (s.lock_settled(txn, &from, now).await?, b)
                    };
                    let debit =
                        s.debit(txn, &mut a, EntryKind::TransferOut, points, &reason, Some(&to), None, now).await?;
                    let expires = now + s.rules.validity_days * DAY_MS;
                    let credit = s
                        .credit(
                            txn,
                            &mut b,
                            EntryKind::TransferIn,
                            points,
                            0,
                            &reason,
                            "",
                            now,
                            expires,
                            None,
                            Some(&from),
                        )
                        .await?;
                    let reply = pb::TransferPointsResponse {
                        debit: Some(wire::entry_pb(debit)),
                        credit: Some(wire::entry_pb(credit)),
                        from_balance: Some(wire::balance_pb(s.balance(&a, now))),
                    };
                    Ok(Done::about([from, to], reply))
                })
            })
            .await
    }

    /// A page of the member's ledger, newest first, after entry `before` (exclusive).
    pub async fn entries(
        &self,
        customer_id: &str,
        before: Option<i64>,
        limit: u64,
    ) -> Result<(Vec<EntryView>, Option<i64>)> {
        // An erased member's ledger lives on under its pseudonym, which is no member.
        if rapport_kit::pseudonym::Pseudonyms::is_pseudonym(customer_id) {
            return Err(LoyaltyError::MemberNotFound);
        }
        let mut q = ledger_entries::Entity::find()
            .filter(ledger_entries::Column::CustomerId.eq(customer_id))
            .order_by_desc(ledger_entries::Column::Id)
            .limit(limit + 1);
        if let Some(b) = before {
            q = q.filter(ledger_entries::Column::Id.lt(b));
        }
        let rows = q.all(&self.db).await?;
        // Only an empty page needs to ask whether the member exists (an erased member's ledger is re-keyed).
        if rows.is_empty() && members::Entity::find_by_id(customer_id.to_string()).one(&self.db).await?.is_none() {
            return Err(LoyaltyError::MemberNotFound);
        }
        let (rows, next) = rapport_kit::page::split(rows, limit, |r| r.id);
        Ok((rows.into_iter().map(entry_view).collect(), next))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn credit(
        &self,
        txn: &DatabaseTransaction,
        st: &mut State,
        kind: EntryKind,
        points: i64,
        qualifying: i64,
        reason: &str,
        reference: &str,
        available_at: i64,
        expires_at: i64,
        reverses: Option<i64>,
        counterparty: Option<&str>,
    ) -> Result<EntryView> {
        let now = self.clock.now_ms();
        let id = st.member.customer_id.clone();
        let e = self
            .write_entry(
                txn,
                &id,
                kind,
                points,
                qualifying,
                reason,
                reference,
                reverses,
                counterparty,
                now,
                Some(available_at),
                Some(expires_at),
            )
            .await?;
        let lot = point_lots::Entity::insert(point_lots::ActiveModel {
            customer_id: Set(id),
            entry_id: Set(e.id),
            initial: Set(points),
            remaining: Set(points),
            available_at: Set(available_at),
            expires_at: Set(expires_at),
            ..Default::default()
        })
        .exec(txn)
        .await?;
        st.lots.push(Lot { id: lot.last_insert_id, remaining: points, available_at, expires_at });
        Ok(e)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn debit(
        &self,
        txn: &DatabaseTransaction,
        st: &mut State,
        kind: EntryKind,
        points: i64,
        reason: &str,
        counterparty: Option<&str>,
        reverses: Option<i64>,
        now: i64,
    ) -> Result<EntryView> {
        let takes = domain::allocate(&st.lots, points, now)
            .map_err(|i| LoyaltyError::InsufficientPoints { available: i.available, requested: points })?;
        self.take(txn, st, &takes).await?;
        self.add_spent(txn, st, points).await?;
        let id = st.member.customer_id.clone();
        self.write_entry(txn, &id, kind, -points, 0, reason, "", reverses, counterparty, now, None, None).await
    }

    pub(super) async fn add_spent(&self, txn: &DatabaseTransaction, st: &mut State, points: i64) -> Result<()> {
        st.member.spent += points;
        members::Entity::update_many()
            .col_expr(members::Column::Spent, Expr::value(st.member.spent))
            .filter(members::Column::CustomerId.eq(st.member.customer_id.as_str()))
            .exec(txn)
            .await?;
        Ok(())
    }

    pub(super) async fn take(&self, txn: &DatabaseTransaction, st: &mut State, takes: &[(i64, i64)]) -> Result<()> {
        for (lot_id, points) in takes {
            let Some(lot) = st.lots.iter_mut().find(|l| l.id == *lot_id) else {
                continue;
            };
            lot.remaining -= points;
            point_lots::Entity::update_many()
                .col_expr(point_lots::Column::Remaining, Expr::value(lot.remaining))
                .filter(point_lots::Column::Id.eq(*lot_id))
                .exec(txn)
                .await?;
        }
        st.lots.retain(|l| l.remaining > 0);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn write_entry(
        &self,
        txn: &DatabaseTransaction,
        customer_id: &str,
        kind: EntryKind,
        points: i64,
        qualifying: i64,
        reason: &str,
        reference: &str,
        reverses: Option<i64>,
        counterparty: Option<&str>,
        created_at: i64,
        available_at: Option<i64>,
        expires_at: Option<i64>,
    ) -> Result<EntryView> {
        let mut m = ledger_entries::Model {
            id: 0,
            customer_id: customer_id.into(),
            kind: kind.as_str().into(),
            points,
            qualifying,
            reason: reason.into(),
            reference: reference.into(),
            reverses_entry_id: reverses,
            counterparty: counterparty.map(str::to_string),
            available_at,
            expires_at,
            created_at,
        };
        let am = ledger_entries::ActiveModel {
            customer_id: Set(m.customer_id.clone()),
            kind: Set(m.kind.clone()),
            points: Set(points),
            qualifying: Set(qualifying),
            reason: Set(m.reason.clone()),
            reference: Set(m.reference.clone()),
            reverses_entry_id: Set(reverses),
            counterparty: Set(m.counterparty.clone()),
            available_at: Set(available_at),
            expires_at: Set(expires_at),
            created_at: Set(created_at),
            ..Default::default()
        };
        m.id = ledger_entries::Entity::insert(am).exec(txn).await?.last_insert_id;
        Ok(entry_view(m))
    }
}

pub(super) fn entry_view(m: ledger_entries::Model) -> EntryView {
    EntryView {
        id: m.id,
        customer_id: m.customer_id,
        kind: EntryKind::parse(&m.kind).unwrap_or(EntryKind::Adjust),
        points: m.points,
        reason: m.reason,
        reference: m.reference,
        reverses_entry_id: m.reverses_entry_id,
        counterparty: m.counterparty,
        created_at: m.created_at,
        available_at: m.available_at,
        expires_at: m.expires_at,
    }
}
