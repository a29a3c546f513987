//! The gRPC boundary: validates requests, converts between the wire format and the domain, and maps errors to
//! `google.rpc.Status`. Only this file knows the loyalty protobuf types.
use prost::Message;
use rapport_kit::{
    clock::{millis, timestamp},
    error::Violations,
    idempotency,
    page::{self, PageBounds},
};
use rapport_proto::{
    common::v1::Money,
    loyalty::v1::{self as pb, loyalty_service_server::LoyaltyService},
};
use tonic::{Request, Response, Status};

use crate::{
    domain::{self, EntryKind, EntryView, HeldOffer, MAX_POINTS, MemberView, OfferKind, OfferTerms, Tier},
    error::LoyaltyError,
    store::{Idem, PurchaseCmd, Store},
};

/// `ErrorInfo` domain of loyalty's errors.
pub const DOMAIN: &str = "loyalty";
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
    if e.is_internal() {
        tracing::error!(error = %e, "loyalty request failed");
    }
    e.to_api().to_status(DOMAIN)
}

/// The idempotency key of a request: its id and the hash of the request with the id blanked.
fn idem<M: Message + Clone>(request_id: &str, msg: &M, blank: impl FnOnce(&mut M)) -> Idem {
    let mut m = msg.clone();
    blank(&mut m);
    Idem { request_id: request_id.to_string(), fingerprint: idempotency::fingerprint(&m.encode_to_vec()) }
}

fn points(v: &mut Violations, field: &str, p: i64) {
    v.check(p > 0 && p <= MAX_POINTS, field, "must be between 1 and 1000000000");
}

/// Micro-units of a money value, validating it against the programme currency.
fn money(v: &mut Violations, field: &str, m: Option<&Money>, currency: &str) -> i64 {
    rapport_kit::money::positive(v, field, m, Some(currency))
}

fn to_money(micros: i64, currency: &str) -> Money {
    rapport_kit::money::money(micros, currency)
}

fn tier_pb(t: Tier) -> pb::Tier {
    match t {
        Tier::Bronze => pb::Tier::Bronze,
        Tier::Silver => pb::Tier::Silver,
        Tier::Gold => pb::Tier::Gold,
        Tier::Vip => pb::Tier::Vip,
    }
}

fn tier_from_pb(t: i32) -> Option<Tier> {
    match pb::Tier::try_from(t).ok()? {
        pb::Tier::Bronze => Some(Tier::Bronze),
        pb::Tier::Silver => Some(Tier::Silver),
        pb::Tier::Gold => Some(Tier::Gold),
        pb::Tier::Vip => Some(Tier::Vip),
        pb::Tier::Unspecified => None,
    }
}

fn kind_pb(k: EntryKind) -> pb::EntryKind {
    match k {
        EntryKind::Earn => pb::EntryKind::Earn,
        EntryKind::Purchase => pb::EntryKind::Purchase,
        EntryKind::Redeem => pb::EntryKind::Redeem,
        EntryKind::Adjust => pb::EntryKind::Adjust,
        EntryKind::Reverse => pb::EntryKind::Reverse,
        EntryKind::TransferIn => pb::EntryKind::TransferIn,
        EntryKind::TransferOut => pb::EntryKind::TransferOut,
        EntryKind::Expire => pb::EntryKind::Expire,
    }
}

fn balance_pb(b: domain::Balance) -> pb::Balance {
    pb::Balance {
        active: b.active,
        pending: b.pending,
        spent: b.spent,
        expired: b.expired,
        expiring_soon: b.expiring_soon,
    }
}

fn member_pb(m: MemberView) -> pb::Member {
    let (next, missing) = m.progress.map_or((pb::Tier::Unspecified, 0), |(t, p)| (tier_pb(t), p));
    pb::Member {
        customer_id: m.customer_id,
        tier: tier_pb(m.tier).into(),
        balance: Some(balance_pb(m.balance)),
        qualifying_points: m.qualifying,
        next_tier: next.into(),
        points_to_next_tier: missing,
        tier_period_end: Some(timestamp(m.tier_period_end)),
        enrolled_at: Some(timestamp(m.enrolled_at)),
        display_name: m.display_name.unwrap_or_default(),
    }
}

fn entry_pb(e: EntryView) -> pb::LedgerEntry {
    pb::LedgerEntry {
        entry_id: e.id.to_string(),
        customer_id: e.customer_id,
        kind: kind_pb(e.kind).into(),
        points: e.points,
        reason: e.reason,
        reverses_entry_id: e.reverses_entry_id.map(|i| i.to_string()).unwrap_or_default(),
        counterparty_customer_id: e.counterparty.unwrap_or_default(),
        create_time: Some(timestamp(e.created_at)),
        available_time: e.available_at.map(timestamp),
        expire_time: e.expires_at.map(timestamp),
        reference: e.reference,
    }
}

fn offer_pb(o: OfferTerms) -> pb::Offer {
    pb::Offer {
        offer_id: o.offer_id,
        title: o.title,
        kind: match o.kind {
            OfferKind::PercentOff => pb::OfferKind::PercentOff,
            OfferKind::AmountOff => pb::OfferKind::AmountOff,
        }
        .into(),
        value: o.value,
        sku: o.sku,
        tiers: o.tiers.into_iter().map(|t| tier_pb(t).into()).collect(),
        start_time: Some(timestamp(o.start_at)),
        end_time: Some(timestamp(o.end_at)),
        max_uses_per_customer: o.max_uses,
    }
}

fn held_pb(h: HeldOffer) -> pb::MemberOffer {
    pb::MemberOffer {
        offer: Some(offer_pb(h.terms)),
        campaign_id: h.campaign_id,
        uses_left: h.uses_left,
        grant_time: Some(timestamp(h.granted_at)),
    }
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
        let key = idem(&r.request_id, &r, |m| m.request_id.clear());
        let name = (!r.display_name.is_empty()).then(|| r.display_name.clone());
        let m = self.store.enrol(&key, &r.customer_id, name).await.map_err(status)?;
        Ok(Response::new(pb::EnrolMemberResponse { member: Some(member_pb(m)) }))
    }

    async fn get_member(&self, req: Request<pb::GetMemberRequest>) -> Result<Response<pb::GetMemberResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.id("customer_id", &r.customer_id);
        v.finish().map_err(|e| status(e.into()))?;
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
        let key = idem(&r.request_id, &r, |m| m.request_id.clear());
        let n = self.store.forget(&key, &r.customer_id).await.map_err(status)?;
        Ok(Response::new(pb::ForgetMemberResponse { anonymised_entries: n }))
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
        let key = idem(&r.request_id, &r, |m| m.request_id.clear());
        let (e, b) = self.store.earn(&key, &r.customer_id, r.points, &r.reason, &r.reference).await.map_err(status)?;
        Ok(Response::new(pb::EarnPointsResponse { entry: Some(entry_pb(e)), balance: Some(balance_pb(b)) }))
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
        let key = idem(&r.request_id, &r, |m| m.request_id.clear());
        let (e, b) = self.store.redeem(&key, &r.customer_id, r.points, &r.reason).await.map_err(status)?;
        Ok(Response::new(pb::RedeemPointsResponse { entry: Some(entry_pb(e)), balance: Some(balance_pb(b)) }))
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
            r.points != 0 && r.points.abs() <= MAX_POINTS,
            "points",
            "must be non-zero and at most 1000000000 either way",
        );
        v.check(!r.reason.trim().is_empty(), "reason", "is required for an adjustment");
        v.text("reason", &r.reason, 500);
        v.finish().map_err(|e| status(e.into()))?;
        let key = idem(&r.request_id, &r, |m| m.request_id.clear());
        let (e, b) = self.store.adjust(&key, &r.customer_id, r.points, &r.reason).await.map_err(status)?;
        Ok(Response::new(pb::AdjustPointsResponse { entry: Some(entry_pb(e)), balance: Some(balance_pb(b)) }))
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
        let key = idem(&r.request_id, &r, |m| m.request_id.clear());
        let (e, b) = self
            .store
            .reverse(&key, &r.customer_id, entry_id.unwrap_or_default(), r.points, &r.reason)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ReversePointsResponse { entry: Some(entry_pb(e)), balance: Some(balance_pb(b)) }))
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
        let key = idem(&r.request_id, &r, |m| m.request_id.clear());
        let (d, c, b) = self
            .store
            .transfer(&key, &r.from_customer_id, &r.to_customer_id, r.points, &r.reason)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::TransferPointsResponse {
            debit: Some(entry_pb(d)),
            credit: Some(entry_pb(c)),
            from_balance: Some(balance_pb(b)),
        }))
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
        let key = idem(&r.request_id, &r, |m| m.request_id.clear());
        let cmd = PurchaseCmd {
            customer_id: r.customer_id.clone(),
            order_id: r.order_id.clone(),
            amount_micros: amount,
            currency,
            channel: r.channel,
            recurring: r.recurring,
        };
        let out = self.store.record_purchase(&key, cmd).await.map_err(status)?;
        Ok(Response::new(pb::RecordPurchaseResponse {
            entry: out.entry.map(entry_pb),
            points: out.points,
            explanation: out.explanation,
            member: Some(member_pb(out.member)),
        }))
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
        let key = idem(&r.request_id, &r, |m| m.request_id.clear());
        let t = self.store.create_offer(&key, terms).await.map_err(status)?;
        Ok(Response::new(pb::CreateOfferResponse { offer: Some(offer_pb(t)) }))
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
        let key = idem(&r.request_id, &r, |m| m.request_id.clear());
        let out =
            self.store.grant_offers(&key, &r.offer_id, &r.campaign_id, r.customer_ids.clone()).await.map_err(status)?;
        Ok(Response::new(pb::GrantOffersResponse {
            granted: out.granted,
            already_granted: out.already,
            skipped: out
                .skipped
                .into_iter()
                .map(|(customer_id, reason)| pb::GrantSkip { customer_id, reason })
                .collect(),
        }))
    }

    async fn list_member_offers(
        &self,
        req: Request<pb::ListMemberOffersRequest>,
    ) -> Result<Response<pb::ListMemberOffersResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.id("customer_id", &r.customer_id);
        v.finish().map_err(|e| status(e.into()))?;
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
        let key = idem(&r.request_id, &r, |m| m.request_id.clear());
        let h = self.store.redeem_offer(&key, &r.customer_id, &r.offer_id, &r.order_id).await.map_err(status)?;
        Ok(Response::new(pb::RedeemOfferResponse { offer: Some(held_pb(h)) }))
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
}
