//! Persistence of loyalty through sea-orm. Every mutation is one transaction: claim the request id, lock the
//! member, settle what time has done (expiry, period-end downgrade), apply the change, write the outbox events and
//! the response, commit. A retry with the same request id gets the stored response back.
use std::sync::Arc;

use rapport_kit::{clock::Clock, db::begin_write, idempotency, pseudonym::Pseudonyms};
use rapport_outbox::Outbox;
use rapport_proto::events::v1::{CustomerForgotten, PurchaseRecorded, TierChanged, event};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, sea_query::Expr,
};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    domain::{
        self, Balance, DAY_MS, EntryKind, EntryView, HeldOffer, Lot, MemberView, OfferKind, OfferTerms, Quote, Rules,
        Tier,
    },
    entities::{ledger_entries, members, offer_grants, offers, point_lots, purchases, tier_changes},
    error::LoyaltyError,
};

type Result<T> = std::result::Result<T, LoyaltyError>;

/// The idempotency key of a mutation: the caller's request id and a hash of its parameters.
#[derive(Debug, Clone)]
pub struct Idem {
    /// Request id.
    pub request_id: String,
    /// Parameter hash.
    pub fingerprint: String,
}

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

/// What recording a purchase did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PurchaseOutcome {
    /// The credit, if any points.
    pub entry: Option<EntryView>,
    /// Points earned.
    pub points: i64,
    /// How.
    pub explanation: String,
    /// The member after.
    pub member: MemberView,
}

/// What granting an offer did.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct GrantOutcome {
    /// New grants.
    pub granted: i32,
    /// Grants that existed.
    pub already: i32,
    /// Customers left out and why.
    pub skipped: Vec<(String, String)>,
}

/// The loyalty database.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    clock: Arc<dyn Clock>,
    rules: Arc<Rules>,
    outbox: Outbox,
    pseudonyms: Pseudonyms,
}

/// A locked member and its open lots, kept in step with what is written.
struct State {
    member: members::Model,
    lots: Vec<Lot>,
}

impl Store {
    /// A store over `db`.
    pub fn new(
        db: DatabaseConnection,
        clock: Arc<dyn Clock>,
        rules: Arc<Rules>,
        outbox: Outbox,
        pseudonyms: Pseudonyms,
    ) -> Self {
        Self { db, clock, rules, outbox, pseudonyms }
    }

    /// The connection.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The rules.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    // ---- transaction frame ------------------------------------------------------------------------------------

    async fn begin(&self, idem: &Idem, method: &str) -> Result<(DatabaseTransaction, i64, Option<Vec<u8>>)> {
        let txn = begin_write(&self.db).await?;
        let now = self.clock.now_ms();
        match idempotency::claim(&txn, &idem.request_id, method, &idem.fingerprint, now).await? {
            Ok(idempotency::Claim::Fresh) => Ok((txn, now, None)),
            Ok(idempotency::Claim::Replay(bytes)) => Ok((txn, now, Some(bytes))),
            // The member was forgotten since: the stored answer went with its data.
            Ok(idempotency::Claim::Erased) => Err(LoyaltyError::MemberNotFound),
            Err(e) => Err(LoyaltyError::Idempotency(e)),
        }
    }

    async fn finish<T: Serialize>(
        &self,
        txn: DatabaseTransaction,
        idem: &Idem,
        subjects: &[String],
        out: T,
    ) -> Result<T> {
        idempotency::complete_for(&txn, &idem.request_id, subjects, serde_json::to_vec(&out)?).await?;
        txn.commit().await?;
        self.outbox.notify();
        Ok(out)
    }

    /// Runs a mutation once per request id: replays the stored response, or runs `f` in the transaction. `subjects`
    /// are the members the response is about: forgetting one of them blanks it.
    async fn once<T, F>(&self, idem: &Idem, method: &str, subjects: Vec<String>, f: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: for<'t> FnOnce(&'t Self, &'t DatabaseTransaction, i64) -> BoxFut<'t, Result<T>>,
    {
        let (txn, now, replay) = self.begin(idem, method).await?;
        if let Some(bytes) = replay {
            return Ok(serde_json::from_slice(&bytes)?);
        }
        let out = match f(self, &txn, now).await {
            // On PostgreSQL two requests can both find the row missing and both insert it: the loser's insert
            // hits the unique index, which is the same answer its check would have given a moment later.
            Err(LoyaltyError::Db(e)) if rapport_kit::db::is_unique_violation(&e) => {
                return Err(clash(method).unwrap_or(LoyaltyError::Db(e)));
            }
            r => r?,
        };
        self.finish(txn, idem, &subjects, out).await
    }

    // ---- members ----------------------------------------------------------------------------------------------

    /// Enrols a customer.
    pub async fn enrol(&self, idem: &Idem, customer_id: &str, display_name: Option<String>) -> Result<MemberView> {
        let customer_id = customer_id.to_string();
        self.once(idem, "EnrolMember", vec![customer_id.clone()], move |s, txn, now| {
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
                s.view(txn, &st, now).await
            })
        })
        .await
    }

    /// A member, after settling what time has done.
    pub async fn member(&self, customer_id: &str) -> Result<MemberView> {
        let txn = begin_write(&self.db).await?;
        let now = self.clock.now_ms();
        let st = self.lock_settled(&txn, customer_id, now).await?;
        let v = self.view(&txn, &st, now).await?;
        txn.commit().await?;
        self.outbox.notify();
        Ok(v)
    }

    /// Erases the member's personal data and re-keys the ledger under an anonymous id.
    pub async fn forget(&self, idem: &Idem, customer_id: &str) -> Result<i64> {
        let customer_id = customer_id.to_string();
        self.once(idem, "ForgetMember", vec![], move |s, txn, now| {
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
                Ok(i64::try_from(n).unwrap_or(i64::MAX))
            })
        })
        .await
    }

    // ---- points -----------------------------------------------------------------------------------------------

    /// Credits active points.
    pub async fn earn(
        &self,
        idem: &Idem,
        customer_id: &str,
        points: i64,
        reason: &str,
        reference: &str,
    ) -> Result<(EntryView, Balance)> {
        let (customer_id, reason, reference) = (customer_id.to_string(), reason.to_string(), reference.to_string());
        self.once(idem, "EarnPoints", vec![customer_id.clone()], move |s, txn, now| {
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
                Ok((e, s.balance(&st, now)))
            })
        })
        .await
    }

    /// Spends active points.
    pub async fn redeem(
        &self,
        idem: &Idem,
        customer_id: &str,
        points: i64,
        reason: &str,
    ) -> Result<(EntryView, Balance)> {
        let (customer_id, reason) = (customer_id.to_string(), reason.to_string());
        self.once(idem, "RedeemPoints", vec![customer_id.clone()], move |s, txn, now| {
            Box::pin(async move {
                let mut st = s.lock_settled(txn, &customer_id, now).await?;
                let e = s.debit(txn, &mut st, EntryKind::Redeem, points, &reason, None, None, now).await?;
                Ok((e, s.balance(&st, now)))
            })
        })
        .await
    }

    /// A manual correction.
    pub async fn adjust(
        &self,
        idem: &Idem,
        customer_id: &str,
        points: i64,
        reason: &str,
    ) -> Result<(EntryView, Balance)> {
        let (customer_id, reason) = (customer_id.to_string(), reason.to_string());
        self.once(idem, "AdjustPoints", vec![customer_id.clone()], move |s, txn, now| {
            Box::pin(async move {
                let mut st = s.lock_settled(txn, &customer_id, now).await?;
                let e = if points > 0 {
                    let expires = now + s.rules.validity_days * DAY_MS;
                    s.credit(txn, &mut st, EntryKind::Adjust, points, 0, &reason, "", now, expires, None, None).await?
                } else {
                    s.debit(txn, &mut st, EntryKind::Adjust, -points, &reason, None, None, now).await?
                };
                Ok((e, s.balance(&st, now)))
            })
        })
        .await
    }

    /// Reverses all (points = 0) or part of an earn, purchase or redemption.
    pub async fn reverse(
        &self,
        idem: &Idem,
        customer_id: &str,
        entry_id: i64,
        points: i64,
        reason: &str,
    ) -> Result<(EntryView, Balance)> {
        let (customer_id, reason) = (customer_id.to_string(), reason.to_string());
        self.once(idem, "ReversePoints", vec![customer_id.clone()], move |s, txn, now| {
            Box::pin(async move {
                let mut st = s.lock_settled(txn, &customer_id, now).await?;
                let original = ledger_entries::Entity::find_by_id(entry_id)
                    .one(txn)
                    .await?
                    .filter(|e| e.customer_id == customer_id)
                    .ok_or(LoyaltyError::EntryNotFound)?;
                let kind = EntryKind::parse(&original.kind).ok_or(LoyaltyError::NotReversible)?;
                if !kind.reversible() {
                    return Err(LoyaltyError::NotReversible);
                }
                let already: i64 = ledger_entries::Entity::find()
                    .filter(ledger_entries::Column::ReversesEntryId.eq(entry_id))
                    .all(txn)
                    .await?
                    .iter()
                    .map(|e| e.points.abs())
                    .sum();
                let left = original.points.abs() - already;
                let points = if points == 0 { left } else { points };
                if points > left || left == 0 {
                    return Err(LoyaltyError::NothingLeftToReverse { left });
                }
                let reason = if reason.is_empty() { format!("reversal of entry {entry_id}") } else { reason };
                let e = if kind == EntryKind::Redeem {
                    // Give the spent points back as a fresh lot.
                    let expires = now + s.rules.validity_days * DAY_MS;
                    let e = s
                        .credit(
                            txn,
                            &mut st,
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
                    s.add_spent(txn, &mut st, -points).await?;
                    e
                } else {
                    let own = point_lots::Entity::find()
                        .filter(point_lots::Column::EntryId.eq(entry_id))
                        .one(txn)
                        .await?
                        .map(|l| l.id);
                    let takes = domain::allocate_reversal(&st.lots, own, points, now)
                        .map_err(|i| LoyaltyError::InsufficientPoints { available: i.available, requested: points })?;
                    s.take(txn, &mut st, &takes).await?;
                    s.write_entry(
                        txn,
                        &customer_id,
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
                Ok((e, s.balance(&st, now)))
            })
        })
        .await
    }

    /// Moves active points between members.
    pub async fn transfer(
        &self,
        idem: &Idem,
        from: &str,
        to: &str,
        points: i64,
        reason: &str,
    ) -> Result<(EntryView, EntryView, Balance)> {
        let (from, to, reason) = (from.to_string(), to.to_string(), reason.to_string());
        self.once(idem, "TransferPoints", vec![from.clone(), to.clone()], move |s, txn, now| {
            Box::pin(async move {
                // Lock in a fixed order so two opposite transfers cannot deadlock.
                let (mut a, mut b) = if from < to {
                    let a = s.lock_settled(txn, &from, now).await?;
                    (a, s.lock_settled(txn, &to, now).await?)
                } else {
                    let b = s.lock_settled(txn, &to, now).await?;
                    (s.lock_settled(txn, &from, now).await?, b)
                };
                let debit = s.debit(txn, &mut a, EntryKind::TransferOut, points, &reason, Some(&to), None, now).await?;
                let expires = now + s.rules.validity_days * DAY_MS;
                let credit = s
                    .credit(txn, &mut b, EntryKind::TransferIn, points, 0, &reason, "", now, expires, None, Some(&from))
                    .await?;
                Ok((debit, credit, s.balance(&a, now)))
            })
        })
        .await
    }

    /// Records a purchase: earning rules, pending points, tier, event.
    pub async fn record_purchase(&self, idem: &Idem, cmd: PurchaseCmd) -> Result<PurchaseOutcome> {
        self.once(idem, "RecordPurchase", vec![cmd.customer_id.clone()], move |s, txn, now| {
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
                Ok(PurchaseOutcome { entry, points, explanation, member })
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
        if members::Entity::find_by_id(customer_id.to_string()).one(&self.db).await?.is_none() {
            return Err(LoyaltyError::MemberNotFound);
        }
        let mut q = ledger_entries::Entity::find()
            .filter(ledger_entries::Column::CustomerId.eq(customer_id))
            .order_by_desc(ledger_entries::Column::Id)
            .limit(limit + 1);
        if let Some(b) = before {
            q = q.filter(ledger_entries::Column::Id.lt(b));
        }
        let (rows, next) = rapport_kit::page::split(q.all(&self.db).await?, limit, |r| r.id);
        Ok((rows.into_iter().map(entry_view).collect(), next))
    }

    // ---- offers -----------------------------------------------------------------------------------------------

    /// Defines an offer (the same terms again is a no-op).
    pub async fn create_offer(&self, idem: &Idem, terms: OfferTerms) -> Result<OfferTerms> {
        self.once(idem, "CreateOffer", vec![], move |_s, txn, now| {
            Box::pin(async move {
                if let Some(existing) = offers::Entity::find_by_id(terms.offer_id.clone()).one(txn).await? {
                    return if offer_terms(&existing) == terms { Ok(terms) } else { Err(LoyaltyError::OfferExists) };
                }
                offers::Entity::insert(offers::ActiveModel {
                    offer_id: Set(terms.offer_id.clone()),
                    title: Set(terms.title.clone()),
                    kind: Set(offer_kind_str(terms.kind).into()),
                    value: Set(terms.value),
                    sku: Set(terms.sku.clone()),
                    tiers: Set(terms.tiers.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(",")),
                    start_at: Set(terms.start_at),
                    end_at: Set(terms.end_at),
                    max_uses: Set(terms.max_uses),
                    created_at: Set(now),
                })
                .exec_without_returning(txn)
                .await?;
                tracing::info!(offer_id = %terms.offer_id, "offer created");
                Ok(terms)
            })
        })
        .await
    }

    /// Grants an offer to customers, once per campaign and customer.
    pub async fn grant_offers(
        &self,
        idem: &Idem,
        offer_id: &str,
        campaign_id: &str,
        customers: Vec<String>,
    ) -> Result<GrantOutcome> {
        let (offer_id, campaign_id) = (offer_id.to_string(), campaign_id.to_string());
        self.once(idem, "GrantOffers", vec![], move |_s, txn, now| {
            Box::pin(async move {
                let offer = offers::Entity::find_by_id(offer_id.clone()).one(txn).await?.ok_or(LoyaltyError::OfferNotFound)?;
                let terms = offer_terms(&offer);
                let found: Vec<members::Model> = members::Entity::find()
                    .filter(members::Column::CustomerId.is_in(customers.iter().map(String::as_str)))
                    .all(txn)
                    .await?;
                let mut out = GrantOutcome::default();
                for c in customers {
                    let Some(m) = found.iter().find(|m| m.customer_id == c) else {
                        out.skipped.push((c, "NOT_A_MEMBER".into()));
                        continue;
                    };
                    if !terms.eligible(Tier::parse(&m.tier).unwrap_or(Tier::Bronze)) {
                        out.skipped.push((c, "TIER_NOT_ELIGIBLE".into()));
                        continue;
                    }
                    let r = offer_grants::Entity::insert(offer_grants::ActiveModel {
                        offer_id: Set(offer_id.clone()),
                        campaign_id: Set(campaign_id.clone()),
                        customer_id: Set(c.clone()),
                        uses: Set(0),
                        granted_at: Set(now),
                        ..Default::default()
                    })
                    .on_conflict_do_nothing_on([
                        offer_grants::Column::OfferId,
                        offer_grants::Column::CampaignId,
                        offer_grants::Column::CustomerId,
                    ])
                    .exec_without_returning(txn)
                    .await?;
                    if matches!(r, sea_orm::TryInsertResult::Inserted(n) if n > 0) {
                        out.granted += 1;
                    } else {
                        out.already += 1;
                    }
                }
                tracing::info!(offer_id = %offer_id, campaign_id = %campaign_id, granted = out.granted, already = out.already, skipped = out.skipped.len(), "offers granted");
                Ok(out)
            })
        })
        .await
    }

    /// Offers a member holds.
    pub async fn held_offers(&self, customer_id: &str, only_usable: bool) -> Result<Vec<HeldOffer>> {
        if members::Entity::find_by_id(customer_id.to_string()).one(&self.db).await?.is_none() {
            return Err(LoyaltyError::MemberNotFound);
        }
        let now = self.clock.now_ms();
        let held = held(&self.db, customer_id).await?;
        Ok(held.into_iter().filter(|h| !only_usable || (h.uses_left > 0 && h.terms.valid_at(now))).collect())
    }

    /// Uses a held offer once.
    pub async fn redeem_offer(
        &self,
        idem: &Idem,
        customer_id: &str,
        offer_id: &str,
        order_id: &str,
    ) -> Result<HeldOffer> {
        let (customer_id, offer_id, order_id) = (customer_id.to_string(), offer_id.to_string(), order_id.to_string());
        self.once(idem, "RedeemOffer", vec![customer_id.clone()], move |s, txn, now| {
            Box::pin(async move {
                s.lock(txn, &customer_id).await?;
                let h = held(txn, &customer_id)
                    .await?
                    .into_iter()
                    .find(|h| h.terms.offer_id == offer_id)
                    .ok_or(LoyaltyError::OfferNotHeld)?;
                if !h.terms.valid_at(now) {
                    return Err(LoyaltyError::OfferNotActive);
                }
                if h.uses_left <= 0 {
                    return Err(LoyaltyError::OfferUsedUp);
                }
                let grant = offer_grants::Entity::find()
                    .filter(offer_grants::Column::CustomerId.eq(customer_id.as_str()))
                    .filter(offer_grants::Column::OfferId.eq(offer_id.as_str()))
                    .order_by_asc(offer_grants::Column::Id)
                    .one(txn)
                    .await?
                    .ok_or(LoyaltyError::OfferNotHeld)?;
                offer_grants::Entity::update_many()
                    .col_expr(offer_grants::Column::Uses, Expr::value(grant.uses + 1))
                    .filter(offer_grants::Column::Id.eq(grant.id))
                    .exec(txn)
                    .await?;
                tracing::info!(offer_id = %offer_id, order_id = %order_id, "offer redeemed");
                Ok(HeldOffer { uses_left: h.uses_left - 1, ..h })
            })
        })
        .await
    }

    /// The personalised price.
    pub async fn quote(
        &self,
        customer_id: &str,
        sku: &str,
        base_micros: i64,
        recurring: bool,
    ) -> Result<(Quote, Tier)> {
        let m = members::Entity::find_by_id(customer_id.to_string())
            .one(&self.db)
            .await?
            .ok_or(LoyaltyError::MemberNotFound)?;
        let tier = Tier::parse(&m.tier).unwrap_or(Tier::Bronze);
        let now = self.clock.now_ms();
        let usable: Vec<domain::UsableOffer> = held(&self.db, customer_id)
            .await?
            .into_iter()
            .filter(|h| h.uses_left > 0 && h.terms.valid_at(now) && h.terms.applies_to(sku))
            .map(|h| domain::UsableOffer {
                offer_id: h.terms.offer_id,
                title: h.terms.title,
                kind: h.terms.kind,
                value: h.terms.value,
            })
            .collect();
        Ok((domain::quote(&self.rules, base_micros, tier, recurring, &usable), tier))
    }

    // ---- time -------------------------------------------------------------------------------------------------

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
            let txn = begin_write(&self.db).await?;
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

    // ---- building blocks --------------------------------------------------------------------------------------

    async fn lock(&self, txn: &DatabaseTransaction, customer_id: &str) -> Result<State> {
        let member = members::Entity::find_by_id(customer_id.to_string())
            .lock_exclusive()
            .one(txn)
            .await?
            .ok_or(LoyaltyError::MemberNotFound)?;
        let lots = point_lots::Entity::find()
            .filter(point_lots::Column::CustomerId.eq(customer_id))
            .filter(point_lots::Column::Remaining.gt(0))
            .all(txn)
            .await?
            .into_iter()
            .map(|l| Lot { id: l.id, remaining: l.remaining, available_at: l.available_at, expires_at: l.expires_at })
            .collect();
        Ok(State { member, lots })
    }

    /// Locks the member and writes what time has done: expired lots, a downgrade at the end of the tier period.
    async fn lock_settled(&self, txn: &DatabaseTransaction, customer_id: &str, now: i64) -> Result<State> {
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

    async fn maybe_upgrade(&self, txn: &DatabaseTransaction, st: &mut State, now: i64) -> Result<()> {
        let tier = Tier::parse(&st.member.tier).unwrap_or(Tier::Bronze);
        let q = self.qualifying(txn, &st.member.customer_id, now).await?;
        if let Some(c) = domain::upgrade(&self.rules, tier, q) {
            self.change_tier(txn, st, c, now + 365 * DAY_MS, now).await?;
        }
        Ok(())
    }

    async fn change_tier(
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

    async fn qualifying(&self, txn: &DatabaseTransaction, customer_id: &str, now: i64) -> Result<i64> {
        let rows: Vec<i64> = ledger_entries::Entity::find()
            .select_only()
            .column(ledger_entries::Column::Qualifying)
            .filter(ledger_entries::Column::CustomerId.eq(customer_id))
            .filter(ledger_entries::Column::CreatedAt.gt(now - 365 * DAY_MS))
            .filter(ledger_entries::Column::Qualifying.ne(0))
            .into_tuple()
            .all(txn)
            .await?;
        Ok(rows.into_iter().sum::<i64>().max(0))
    }

    #[allow(clippy::too_many_arguments)]
    async fn credit(
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
    async fn debit(
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

    async fn add_spent(&self, txn: &DatabaseTransaction, st: &mut State, points: i64) -> Result<()> {
        st.member.spent += points;
        members::Entity::update_many()
            .col_expr(members::Column::Spent, Expr::value(st.member.spent))
            .filter(members::Column::CustomerId.eq(st.member.customer_id.as_str()))
            .exec(txn)
            .await?;
        Ok(())
    }

    async fn take(&self, txn: &DatabaseTransaction, st: &mut State, takes: &[(i64, i64)]) -> Result<()> {
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
    async fn write_entry(
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

    async fn publish(
        &self,
        txn: &DatabaseTransaction,
        customer_id: &str,
        payload: event::Payload,
        now: i64,
    ) -> Result<()> {
        self.outbox.publish(txn, customer_id, payload, now).await?;
        Ok(())
    }

    fn balance(&self, st: &State, now: i64) -> Balance {
        domain::balance(&st.lots, now, st.member.spent, st.member.expired)
    }

    async fn view(&self, txn: &DatabaseTransaction, st: &State, now: i64) -> Result<MemberView> {
        let tier = Tier::parse(&st.member.tier).unwrap_or(Tier::Bronze);
        let qualifying = self.qualifying(txn, &st.member.customer_id, now).await?;
        Ok(MemberView {
            customer_id: st.member.customer_id.clone(),
            display_name: st.member.display_name.clone(),
            tier,
            balance: self.balance(st, now),
            qualifying,
            progress: self.rules.progress(tier, qualifying),
            tier_period_end: st.member.tier_period_end,
            enrolled_at: st.member.enrolled_at,
        })
    }
}

/// Boxed futures for the mutation closures.
type BoxFut<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

fn entry_view(m: ledger_entries::Model) -> EntryView {
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

fn offer_kind_str(k: OfferKind) -> &'static str {
    match k {
        OfferKind::PercentOff => "percent_off",
        OfferKind::AmountOff => "amount_off",
    }
}

fn offer_terms(o: &offers::Model) -> OfferTerms {
    OfferTerms {
        offer_id: o.offer_id.clone(),
        title: o.title.clone(),
        kind: if o.kind == "amount_off" { OfferKind::AmountOff } else { OfferKind::PercentOff },
        value: o.value,
        sku: o.sku.clone(),
        tiers: o.tiers.split(',').filter_map(Tier::parse).collect(),
        start_at: o.start_at,
        end_at: o.end_at,
        max_uses: o.max_uses,
    }
}

/// Offers held by a member, one per offer, with the uses left across its grants.
async fn held<C: ConnectionTrait>(db: &C, customer_id: &str) -> Result<Vec<HeldOffer>> {
    let grants = offer_grants::Entity::find()
        .filter(offer_grants::Column::CustomerId.eq(customer_id))
        .order_by_asc(offer_grants::Column::Id)
        .all(db)
        .await?;
    let ids: Vec<String> = grants.iter().map(|g| g.offer_id.clone()).collect();
    let offers = offers::Entity::find().filter(offers::Column::OfferId.is_in(ids)).all(db).await?;
    let mut out: Vec<HeldOffer> = Vec::new();
    for g in grants {
        if let Some(h) = out.iter_mut().find(|h| h.terms.offer_id == g.offer_id) {
            h.uses_left -= g.uses;
            continue;
        }
        let Some(o) = offers.iter().find(|o| o.offer_id == g.offer_id) else {
            continue;
        };
        out.push(HeldOffer {
            terms: offer_terms(o),
            campaign_id: g.campaign_id,
            uses_left: o.max_uses - g.uses,
            granted_at: g.granted_at,
        });
    }
    for h in &mut out {
        h.uses_left = h.uses_left.max(0);
    }
    Ok(out)
}

/// Counts ledger entries of a member (tests and the CLI).
pub async fn count_entries<C: ConnectionTrait>(db: &C, customer_id: &str) -> Result<u64> {
    Ok(ledger_entries::Entity::find().filter(ledger_entries::Column::CustomerId.eq(customer_id)).count(db).await?)
}

/// The domain error of a mutation whose insert met a concurrent twin's row.
fn clash(method: &str) -> Option<LoyaltyError> {
    Some(match method {
        "EnrolMember" => LoyaltyError::MemberExists,
        "RecordPurchase" => LoyaltyError::OrderAlreadyRecorded,
        "CreateOffer" => LoyaltyError::OfferExists,
        _ => return None,
    })
}
