//! Offers: their terms, grants to members (once per campaign and customer), redemptions, and the personalised price.
use rapport_kit::frame::{Done, Key};
use rapport_proto::loyalty::v1 as pb;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, sea_query::Expr};

use super::{Result, Store};
use crate::{
    domain::{self, HeldOffer, OfferKind, OfferTerms, Quote, Tier},
    entities::{members, offer_grants, offers},
    error::LoyaltyError,
    wire,
};

impl Store {
    /// Defines an offer (the same terms again is a no-op).
    pub async fn create_offer(&self, key: &Key, terms: OfferTerms) -> Result<pb::CreateOfferResponse> {
        let reply = |t: OfferTerms| Done::reply(pb::CreateOfferResponse { offer: Some(wire::offer_pb(t)) });
        self.frame
            .once(self, key, "CreateOffer", move |_s, txn, now| {
                Box::pin(async move {
                    if let Some(existing) = offers::Entity::find_by_id(terms.offer_id.clone()).one(txn).await? {
                        return if offer_terms(&existing) == terms {
                            Ok(reply(terms))
                        } else {
                            Err(LoyaltyError::OfferExists)
                        };
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
                    Ok(reply(terms))
                })
            })
            .await
    }

    /// Grants an offer to customers, once per campaign and customer.
    pub async fn grant_offers(
        &self,
        key: &Key,
        offer_id: &str,
        campaign_id: &str,
        customers: Vec<String>,
    ) -> Result<pb::GrantOffersResponse> {
        let (offer_id, campaign_id) = (offer_id.to_string(), campaign_id.to_string());
        self.frame.once(self, key, "GrantOffers", move |_s, txn, now| {
            Box::pin(async move {
                let offer = offers::Entity::find_by_id(offer_id.clone()).one(txn).await?.ok_or(LoyaltyError::OfferNotFound)?;
                let terms = offer_terms(&offer);
                let found: Vec<members::Model> = members::Entity::find()
                    .filter(members::Column::CustomerId.is_in(customers.iter().map(String::as_str)))
                    .all(txn)
                    .await?;
                let mut out = pb::GrantOffersResponse::default();
                for c in customers.iter().cloned() {
                    let Some(m) = found.iter().find(|m| m.customer_id == c) else {
                        out.skipped.push(pb::GrantSkip { customer_id: c, reason: "NOT_A_MEMBER".into() });
                        continue;
                    };
                    if !terms.eligible(Tier::parse(&m.tier).unwrap_or(Tier::Bronze)) {
                        out.skipped.push(pb::GrantSkip { customer_id: c, reason: "TIER_NOT_ELIGIBLE".into() });
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
                        out.already_granted += 1;
                    }
                }
                tracing::info!(offer_id = %offer_id, campaign_id = %campaign_id, granted = out.granted, already = out.already_granted, skipped = out.skipped.len(), "offers granted");
                // The reply names customers of the batch: erasing any of them blanks it.
                Ok(Done::about(customers, out))
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
        key: &Key,
        customer_id: &str,
        offer_id: &str,
        order_id: &str,
    ) -> Result<pb::RedeemOfferResponse> {
        let (customer_id, offer_id, order_id) = (customer_id.to_string(), offer_id.to_string(), order_id.to_string());
        self.frame
            .once(self, key, "RedeemOffer", move |s, txn, now| {
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
                    let offer = wire::held_pb(HeldOffer { uses_left: h.uses_left - 1, ..h });
                    Ok(Done::about([customer_id], pb::RedeemOfferResponse { offer: Some(offer) }))
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
