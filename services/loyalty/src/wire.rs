//! Loyalty's domain values in their wire form (the protobuf types), for replies built by the API and by the store
//! (whose mutations store their encoded reply with the change).
use rapport_kit::{clock::timestamp, guard::personal};
use rapport_proto::{common::v1::Money, loyalty::v1 as pb};

use crate::domain::{self, EntryKind, EntryView, HeldOffer, MemberView, OfferKind, OfferTerms, Tier};

pub(crate) fn to_money(micros: i64, currency: &str) -> Money {
    rapport_kit::money::money(micros, currency)
}

pub(crate) fn tier_pb(t: Tier) -> pb::Tier {
    match t {
        Tier::Bronze => pb::Tier::Bronze,
        Tier::Silver => pb::Tier::Silver,
        Tier::Gold => pb::Tier::Gold,
        Tier::Vip => pb::Tier::Vip,
    }
}

pub(crate) fn tier_from_pb(t: i32) -> Option<Tier> {
    match pb::Tier::try_from(t).ok()? {
        pb::Tier::Bronze => Some(Tier::Bronze),
        pb::Tier::Silver => Some(Tier::Silver),
        pb::Tier::Gold => Some(Tier::Gold),
        pb::Tier::Vip => Some(Tier::Vip),
        pb::Tier::Unspecified => None,
    }
}

pub(crate) fn kind_pb(k: EntryKind) -> pb::EntryKind {
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

pub(crate) fn balance_pb(b: domain::Balance) -> pb::Balance {
    pb::Balance {
        active: b.active,
        pending: b.pending,
        spent: b.spent,
        expired: b.expired,
        expiring_soon: b.expiring_soon,
    }
}

pub(crate) fn member_pb(m: MemberView) -> pb::Member {
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
        display_name: personal(m.display_name.unwrap_or_default()),
        points_to_keep_tier: m.to_keep,
    }
}

pub(crate) fn entry_pb(e: EntryView) -> pb::LedgerEntry {
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

pub(crate) fn offer_pb(o: OfferTerms) -> pb::Offer {
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

pub(crate) fn held_pb(h: HeldOffer) -> pb::MemberOffer {
    pb::MemberOffer {
        offer: Some(offer_pb(h.terms)),
        campaign_id: h.campaign_id,
        uses_left: h.uses_left,
        grant_time: Some(timestamp(h.granted_at)),
    }
}
