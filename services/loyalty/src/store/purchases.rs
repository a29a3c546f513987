//! Purchases: the earning rules, pending points, the tier they lead to, and the `PurchaseRecorded` event.
use rapport_kit::frame::{Done, Key};
use rapport_proto::{
    events::v1::{PurchaseRecorded, PurchaseReturned, event},
    loyalty::v1 as pb,
};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};

use super::{Result, Store};
use crate::{
    domain::{DAY_MS, EntryKind, Tier},
    entities::purchases,
    error::LoyaltyError,
    wire,
};

/// A purchase to record.
#[derive(Debug, Clone)]
pub struct PurchaseCmd {
    /// Member.
    pub customer_id: String,
    /// Order id.
    pub order_id: String,
    /// Amount in micro-units.
    pub amount_micros: i64,
    /// Currency.
    pub currency: String,
    /// Channel (wire enum value; loyalty only passes it on).
    pub channel: i32,
    /// Recurring purchase.
    pub recurring: bool,
}

impl Store {
    /// Records a purchase: earning rules, pending points, tier, event.
    pub async fn record_purchase(&self, key: &Key, cmd: PurchaseCmd) -> Result<pb::RecordPurchaseResponse> {
        self.frame
            .once(self, key, "RecordPurchase", move |s, txn, now| {
                Box::pin(async move {
                    let mut st = s.lock_settled(txn, &cmd.customer_id, now).await?;
                    if purchases::Entity::find_by_id(cmd.order_id.clone()).one(txn).await?.is_some() {
                        return Err(LoyaltyError::OrderAlreadyRecorded);
                    }
                    let tier = Tier::parse(&st.member.tier).unwrap_or(Tier::Bronze);
                    let (points, explanation) = s.rules.purchase_points(tier, cmd.amount_micros, cmd.recurring);
                    let entry = if points > 0 {
                        let available = now + s.rules.pending_days * DAY_MS;
                        let expires = available + s.rules.validity_days * DAY_MS;
                        let reason = format!("purchase {}", cmd.order_id);
                        Some(
                            s.credit(
                                txn,
                                &mut st,
                                EntryKind::Purchase,
                                points,
                                points,
                                &reason,
                                &cmd.order_id,
                                available,
                                expires,
                                None,
                                None,
                            )
                            .await?,
                        )
                    } else {
                        None
                    };
                    purchases::Entity::insert(purchases::ActiveModel {
                        order_id: Set(cmd.order_id.clone()),
                        customer_id: Set(cmd.customer_id.clone()),
                        amount_micros: Set(cmd.amount_micros),
                        currency: Set(cmd.currency.clone()),
                        channel: Set(cmd.channel),
                        recurring: Set(cmd.recurring),
                        points: Set(points),
                        entry_id: Set(entry.as_ref().map(|e| e.id)),
                        created_at: Set(now),
                        returned_micros: Set(0),
                        returned_points: Set(0),
                    })
                    .exec_without_returning(txn)
                    .await?;
                    s.maybe_upgrade(txn, &mut st, now).await?;
                    let amount = rapport_kit::money::money(cmd.amount_micros, &cmd.currency);
                    let ev = event::Payload::PurchaseRecorded(PurchaseRecorded {
                        order_id: cmd.order_id.clone(),
                        amount: Some(amount),
                        channel: cmd.channel,
                        recurring: cmd.recurring,
                        points,
                    });
                    s.publish(txn, &cmd.customer_id, ev, now).await?;
                    let member = s.view(txn, &st, now).await?;
                    let reply = pb::RecordPurchaseResponse {
                        entry: entry.map(wire::entry_pb),
                        points,
                        explanation,
                        member: Some(wire::member_pb(member)),
                    };
                    Ok(Done::about([cmd.customer_id], reply))
                })
            })
            .await
    }
}

/// A return of all or part of an order.
#[derive(Debug, Clone)]
pub struct ReturnCmd {
    /// Member.
    pub customer_id: String,
    /// The order.
    pub order_id: String,
    /// Amount returned in micro-units; `None`: all that was not returned yet.
    pub amount_micros: Option<i64>,
    /// Why (a refund, a return).
    pub reason: String,
}

impl Store {
    /// Records a return of an order: the points it earned are reversed in proportion to the amount returned (all
    /// that is left for the rest of the order), as a reversing entry, and `PurchaseReturned` is published.
    pub async fn record_return(&self, key: &Key, cmd: ReturnCmd) -> Result<pb::RecordReturnResponse> {
        self.frame
            .once(self, key, "RecordReturn", move |s, txn, now| {
                Box::pin(async move {
                    let mut st = s.lock_settled(txn, &cmd.customer_id, now).await?;
                    let order = purchases::Entity::find_by_id(cmd.order_id.clone())
                        .one(txn)
                        .await?
                        .filter(|p| p.customer_id == cmd.customer_id)
                        .ok_or(LoyaltyError::OrderNotFound)?;
                    let left = order.amount_micros - order.returned_micros;
                    let amount = cmd.amount_micros.unwrap_or(left);
                    if left <= 0 || amount > left {
                        return Err(LoyaltyError::NothingLeftToReturn { left_micros: left.max(0) });
                    }
                    let whole = amount == left;
                    let points = if whole {
                        order.points - order.returned_points
                    } else {
                        // In proportion, rounded down, never past what is left.
                        let share = i128::from(order.points) * i128::from(amount) / i128::from(order.amount_micros);
                        (share as i64).min(order.points - order.returned_points)
                    };
                    let reason = if cmd.reason.is_empty() { format!("return of {}", cmd.order_id) } else { cmd.reason };
                    // Never past what the ledger still holds of the purchase (ReversePoints may have taken some).
                    let points = match order.entry_id {
                        Some(id) => points.min(order.points - s.reversed(txn, id).await?).max(0),
                        None => 0,
                    };
                    let entry = match order.entry_id {
                        Some(id) if points > 0 => Some(s.reverse_in(txn, &mut st, id, points, &reason, now).await?),
                        _ => None,
                    };
                    purchases::Entity::update_many()
                        .col_expr(purchases::Column::ReturnedMicros, Expr::value(order.returned_micros + amount))
                        .col_expr(purchases::Column::ReturnedPoints, Expr::value(order.returned_points + points))
                        .filter(purchases::Column::OrderId.eq(order.order_id.as_str()))
                        .exec(txn)
                        .await?;
                    let ev = event::Payload::PurchaseReturned(PurchaseReturned {
                        order_id: order.order_id.clone(),
                        amount: Some(rapport_kit::money::money(amount, &order.currency)),
                        points,
                        fully_returned: whole,
                    });
                    s.publish(txn, &cmd.customer_id, ev, now).await?;
                    tracing::info!(points, whole, "order returned");
                    let member = s.view(txn, &st, now).await?;
                    let reply = pb::RecordReturnResponse {
                        entry: entry.map(wire::entry_pb),
                        points_reversed: points,
                        returned: Some(rapport_kit::money::money(order.returned_micros + amount, &order.currency)),
                        fully_returned: whole,
                        member: Some(wire::member_pb(member)),
                    };
                    Ok(Done::about([cmd.customer_id], reply))
                })
            })
            .await
    }
}

/// The programme at a glance (see [`Store::programme_stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProgrammeStats {
    /// Members now.
    pub members: i64,
    /// Members per stored tier now.
    pub members_by_tier: std::collections::BTreeMap<String, i64>,
    /// Members who bought in the window.
    pub buyers: i64,
    /// Of them, those who bought at least twice.
    pub repeat_buyers: i64,
    /// Purchases in the window.
    pub purchases: i64,
}

impl Store {
    /// Members per tier now, and the purchases of `[start, end)` per buyer, counted by the database.
    pub async fn programme_stats(&self, start: i64, end: i64) -> Result<ProgrammeStats> {
        use sea_orm::QuerySelect;
        let tiers: Vec<(String, i64)> = crate::entities::members::Entity::find()
            .select_only()
            .column(crate::entities::members::Column::Tier)
            .column_as(crate::entities::members::Column::CustomerId.count(), "n")
            .group_by(crate::entities::members::Column::Tier)
            .into_tuple()
            .all(&self.db)
            .await?;
        let per_buyer: Vec<(String, i64)> = purchases::Entity::find()
            .select_only()
            .column(purchases::Column::CustomerId)
            .column_as(purchases::Column::OrderId.count(), "n")
            .filter(purchases::Column::CreatedAt.gte(start))
            .filter(purchases::Column::CreatedAt.lt(end))
            .group_by(purchases::Column::CustomerId)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(ProgrammeStats {
            members: tiers.iter().map(|(_, n)| n).sum(),
            members_by_tier: tiers.into_iter().collect(),
            buyers: per_buyer.len() as i64,
            repeat_buyers: per_buyer.iter().filter(|(_, n)| *n >= 2).count() as i64,
            purchases: per_buyer.iter().map(|(_, n)| n).sum(),
        })
    }
}
