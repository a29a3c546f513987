//! The gRPC boundary: validates requests, converts them to domain values, and maps errors to `google.rpc.Status`.
//! Replies are built by `wire.rs` (mutations' replies inside the store's transaction, where they are kept for
//! retries).
use rapport_kit::{
    clock::millis,
    error::Violations,
    frame::Key,
    guard::ensure_own,
    page::{self, PageBounds},
};
use rapport_proto::{
    common::v1::Money,
    loyalty::v1::{self as pb, loyalty_service_server::LoyaltyService},
};
use tonic::{Request, Response, Status};

use crate::{
    domain::{MAX_POINTS, OfferKind, OfferTerms, Tier},
    error::LoyaltyError,
    store::{PurchaseCmd, ReturnCmd, Store},
    wire::{entry_pb, held_pb, member_pb, tier_from_pb, tier_pb, to_money},
};

/// `ErrorInfo` domain of loyalty's errors.
pub const DOMAIN: &str = <LoyaltyError as rapport_kit::error::ServiceError>::DOMAIN;
const PAGE: PageBounds = PageBounds { default: 50, max: 500 };
const MAX_GRANT_BATCH: usize = 1_000;

/// The LoyaltyService implementation.
#[derive(Clone)]
pub struct LoyaltyApi {
    store: Store,
}

impl LoyaltyApi {
    /// Serves `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

fn status(e: LoyaltyError) -> Status {
    rapport_kit::error::status(e)
}

fn points(v: &mut Violations, field: &str, p: i64) {
    v.check(p > 0 && p <= MAX_POINTS, field, "must be between 1 and 1000000000");
}

/// Micro-units of a money value, validating it against the programme currency.
fn money(v: &mut Violations, field: &str, m: Option<&Money>, currency: &str) -> i64 {
    rapport_kit::money::positive(v, field, m, Some(currency))
}

#[tonic::async_trait]
impl LoyaltyService for LoyaltyApi {
    async fn enrol_member(
        &self,
        req: Request<pb::EnrolMemberRequest>,
    ) -> Result<Response<pb::EnrolMemberResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("customer_id", &r.customer_id);
        v.text("display_name", &r.display_name, 200);
        v.finish().map_err(|e| status(e.into()))?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        let name = (!r.display_name.is_empty()).then(|| r.display_name.clone());
        self.store.enrol(&key, &r.customer_id, name).await.map(Response::new).map_err(status)
    }

    async fn get_member(&self, req: Request<pb::GetMemberRequest>) -> Result<Response<pb::GetMemberResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.id("customer_id", &r.customer_id);
        v.finish().map_err(|e| status(e.into()))?;
        ensure_own(Some(&r.customer_id)).map_err(|e| status(e.into()))?;
        let m = self.store.member(&r.customer_id).await.map_err(status)?;
        Ok(Response::new(pb::GetMemberResponse { member: Some(member_pb(m)) }))
    }

    async fn forget_member(
        &self,
        req: Request<pb::ForgetMemberRequest>,
    ) -> Result<Response<pb::ForgetMemberResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("customer_id", &r.customer_id);
        v.finish().map_err(|e| status(e.into()))?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store.forget(&key, &r.customer_id).await.map(Response::new).map_err(status)
    }

    async fn earn_points(
        &self,
        req: Request<pb::EarnPointsRequest>,
    ) -> Result<Response<pb::EarnPointsResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("customer_id", &r.customer_id);
        points(&mut v, "points", r.points);
        v.text("reason", &r.reason, 500);
        v.text("reference", &r.reference, 200);
        v.finish().map_err(|e| status(e.into()))?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store
            .earn(&key, &r.customer_id, r.points, &r.reason, &r.reference)
            .await
            .map(Response::new)
            .map_err(status)
    }

    async fn redeem_points(
        &self,
        req: Request<pb::RedeemPointsRequest>,
    ) -> Result<Response<pb::RedeemPointsResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("customer_id", &r.customer_id);
        points(&mut v, "points", r.points);
        v.text("reason", &r.reason, 500);
        v.finish().map_err(|e| status(e.into()))?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store.redeem(&key, &r.customer_id, r.points, &r.reason).await.map(Response::new).map_err(status)
    }

    async fn adjust_points(
        &self,
        req: Request<pb::AdjustPointsRequest>,
    ) -> Result<Response<pb::AdjustPointsResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("customer_id", &r.customer_id);
        v.check(
            r.points != 0 && r.points.unsigned_abs() <= MAX_POINTS.unsigned_abs(),
            "points",
            "must be non-zero and at most 1000000000 either way",
        );
        v.check(!r.reason.trim().is_empty(), "reason", "is required for an adjustment");
        v.text("reason", &r.reason, 500);
        v.finish().map_err(|e| status(e.into()))?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store.adjust(&key, &r.customer_id, r.points, &r.reason).await.map(Response::new).map_err(status)
    }

    async fn reverse_points(
        &self,
        req: Request<pb::ReversePointsRequest>,
    ) -> Result<Response<pb::ReversePointsResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("customer_id", &r.customer_id);
        let entry_id = r.entry_id.parse::<i64>().ok().filter(|i| *i > 0);
        v.check(entry_id.is_some(), "entry_id", "must be an entry id returned by the ledger");
        v.check((0..=MAX_POINTS).contains(&r.points), "points", "must be between 0 (all) and 1000000000");
        v.text("reason", &r.reason, 500);
        v.finish().map_err(|e| status(e.into()))?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store
            .reverse(&key, &r.customer_id, entry_id.unwrap_or_default(), r.points, &r.reason)
            .await
            .map(Response::new)
            .map_err(status)
    }

    async fn transfer_points(
        &self,
        req: Request<pb::TransferPointsRequest>,
    ) -> Result<Response<pb::TransferPointsResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("from_customer_id", &r.from_customer_id);
        v.id("to_customer_id", &r.to_customer_id);
        points(&mut v, "points", r.points);
        v.text("reason", &r.reason, 500);
        v.finish().map_err(|e| status(e.into()))?;
        if r.from_customer_id == r.to_customer_id {
            return Err(status(LoyaltyError::SameMember));
        }
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store
            .transfer(&key, &r.from_customer_id, &r.to_customer_id, r.points, &r.reason)
            .await
            .map(Response::new)
            .map_err(status)
    }

    async fn record_purchase(
        &self,
        req: Request<pb::RecordPurchaseRequest>,
    ) -> Result<Response<pb::RecordPurchaseResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("customer_id", &r.customer_id);
        v.id("order_id", &r.order_id);
        let currency = self.store.rules().currency.clone();
        let amount = money(&mut v, "amount", r.amount.as_ref(), &currency);
        v.check(rapport_proto::common::v1::Channel::try_from(r.channel).is_ok(), "channel", "is not a known channel");
        v.finish().map_err(|e| status(e.into()))?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        let cmd = PurchaseCmd {
            customer_id: r.customer_id.clone(),
            order_id: r.order_id.clone(),
            amount_micros: amount,
            currency,
            channel: r.channel,
            recurring: r.recurring,
        };
        self.store.record_purchase(&key, cmd).await.map(Response::new).map_err(status)
    }

    async fn list_transactions(
        &self,
        req: Request<pb::ListTransactionsRequest>,
    ) -> Result<Response<pb::ListTransactionsResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.id("customer_id", &r.customer_id);
        let size = PAGE.size(r.page_size, &mut v);
        v.finish().map_err(|e| status(e.into()))?;
        ensure_own(Some(&r.customer_id)).map_err(|e| status(e.into()))?;
        let cursor = page::decode(&r.customer_id, &r.page_token).map_err(|e| status(e.into()))?;
        let (entries, next) = self.store.entries(&r.customer_id, cursor, size).await.map_err(status)?;
        Ok(Response::new(pb::ListTransactionsResponse {
            entries: entries.into_iter().map(entry_pb).collect(),
            next_page_token: next.map(|c| page::encode(&r.customer_id, c)).unwrap_or_default(),
        }))
    }

    async fn create_offer(
        &self,
        req: Request<pb::CreateOfferRequest>,
    ) -> Result<Response<pb::CreateOfferResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        let Some(o) = r.offer.as_ref() else {
            v.add("offer", "is required");
            return Err(status(v.finish().err().map(Into::into).unwrap_or(LoyaltyError::OfferNotFound)));
        };
        v.id("offer.offer_id", &o.offer_id);
        v.check(!o.title.trim().is_empty(), "offer.title", "is required");
        v.text("offer.title", &o.title, 200);
        let kind = match pb::OfferKind::try_from(o.kind) {
            Ok(pb::OfferKind::PercentOff) => {
                v.check((1..=10_000).contains(&o.value), "offer.value", "must be 1 to 10000 basis points");
                OfferKind::PercentOff
            }
            Ok(pb::OfferKind::AmountOff) => {
                v.check(o.value > 0 && o.value <= 100_000_000, "offer.value", "must be a positive amount of cents");
                OfferKind::AmountOff
            }
            _ => {
                v.add("offer.kind", "must be OFFER_KIND_PERCENT_OFF or OFFER_KIND_AMOUNT_OFF");
                OfferKind::PercentOff
            }
        };
        if !o.sku.is_empty() {
            v.id("offer.sku", &o.sku);
        }
        let tiers: Vec<Tier> = o.tiers.iter().filter_map(|t| tier_from_pb(*t)).collect();
        v.check(tiers.len() == o.tiers.len(), "offer.tiers", "must name known tiers only");
        let start = o.start_time.as_ref().map(millis);
        let end = o.end_time.as_ref().map(millis);
        v.check(start.is_some(), "offer.start_time", "is required");
        v.check(end.is_some(), "offer.end_time", "is required");
        if let (Some(s), Some(e)) = (start, end) {
            v.check(e > s, "offer.end_time", "must be after start_time");
        }
        v.check(o.max_uses_per_customer >= 1, "offer.max_uses_per_customer", "must be at least 1");
        v.finish().map_err(|e| status(e.into()))?;
        let terms = OfferTerms {
            offer_id: o.offer_id.clone(),
            title: o.title.clone(),
            kind,
            value: o.value,
            sku: o.sku.clone(),
            tiers,
            start_at: start.unwrap_or_default(),
            end_at: end.unwrap_or_default(),
            max_uses: o.max_uses_per_customer,
        };
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store.create_offer(&key, terms).await.map(Response::new).map_err(status)
    }

    async fn grant_offers(
        &self,
        req: Request<pb::GrantOffersRequest>,
    ) -> Result<Response<pb::GrantOffersResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("offer_id", &r.offer_id);
        v.id("campaign_id", &r.campaign_id);
        v.check(
            !r.customer_ids.is_empty() && r.customer_ids.len() <= MAX_GRANT_BATCH,
            "customer_ids",
            "must hold 1 to 1000 customers",
        );
        for (i, c) in r.customer_ids.iter().enumerate() {
            v.id(&format!("customer_ids[{i}]"), c);
        }
        v.finish().map_err(|e| status(e.into()))?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store
            .grant_offers(&key, &r.offer_id, &r.campaign_id, r.customer_ids.clone())
            .await
            .map(Response::new)
            .map_err(status)
    }

    async fn list_member_offers(
        &self,
        req: Request<pb::ListMemberOffersRequest>,
    ) -> Result<Response<pb::ListMemberOffersResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.id("customer_id", &r.customer_id);
        v.finish().map_err(|e| status(e.into()))?;
        ensure_own(Some(&r.customer_id)).map_err(|e| status(e.into()))?;
        let held = self.store.held_offers(&r.customer_id, r.only_usable).await.map_err(status)?;
        Ok(Response::new(pb::ListMemberOffersResponse { offers: held.into_iter().map(held_pb).collect() }))
    }

    async fn redeem_offer(
        &self,
        req: Request<pb::RedeemOfferRequest>,
    ) -> Result<Response<pb::RedeemOfferResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("customer_id", &r.customer_id);
        v.id("offer_id", &r.offer_id);
        v.id("order_id", &r.order_id);
        v.finish().map_err(|e| status(e.into()))?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store.redeem_offer(&key, &r.customer_id, &r.offer_id, &r.order_id).await.map(Response::new).map_err(status)
    }

    async fn quote_price(
        &self,
        req: Request<pb::QuotePriceRequest>,
    ) -> Result<Response<pb::QuotePriceResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.id("customer_id", &r.customer_id);
        v.id("sku", &r.sku);
        let currency = self.store.rules().currency.clone();
        let base = money(&mut v, "base_price", r.base_price.as_ref(), &currency);
        v.finish().map_err(|e| status(e.into()))?;
        let (q, tier) = self.store.quote(&r.customer_id, &r.sku, base, r.recurring).await.map_err(status)?;
        Ok(Response::new(pb::QuotePriceResponse {
            price: Some(to_money(q.price, &currency)),
            base_price: Some(to_money(base, &currency)),
            adjustments: q
                .adjustments
                .into_iter()
                .map(|a| pb::PriceAdjustment {
                    kind: a.kind.into(),
                    description: a.description,
                    amount_off: Some(to_money(a.amount_off, &currency)),
                    offer_id: a.offer_id,
                })
                .collect(),
            tier: tier_pb(tier).into(),
        }))
    }

    async fn get_programme_stats(
        &self,
        req: Request<pb::GetProgrammeStatsRequest>,
    ) -> Result<Response<pb::GetProgrammeStatsResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        let (start, end) = v.window(r.start_time.as_ref(), r.end_time.as_ref(), 400);
        v.finish().map_err(|e| status(e.into()))?;
        let s = self.store.programme_stats(start, end).await.map_err(status)?;
        Ok(Response::new(pb::GetProgrammeStatsResponse {
            members: s.members,
            members_by_tier: s.members_by_tier.into_iter().collect(),
            buyers: s.buyers,
            repeat_buyers: s.repeat_buyers,
            purchases: s.purchases,
        }))
    }

    async fn record_return(
        &self,
        req: Request<pb::RecordReturnRequest>,
    ) -> Result<Response<pb::RecordReturnResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("customer_id", &r.customer_id);
        v.id("order_id", &r.order_id);
        v.text("reason", &r.reason, 200);
        let currency = self.store.rules().currency.clone();
        let amount = r.amount.as_ref().map(|m| money(&mut v, "amount", Some(m), &currency));
        v.finish().map_err(|e| status(e.into()))?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        let cmd = ReturnCmd {
            customer_id: r.customer_id.clone(),
            order_id: r.order_id.clone(),
            amount_micros: amount,
            reason: r.reason.clone(),
        };
        self.store.record_return(&key, cmd).await.map(Response::new).map_err(status)
    }
}
