//! Offers targeted by tier, granted in batches once per campaign and customer, redeemed within limits; prices.
use rapport_kit::clock::timestamp;
use rapport_proto::loyalty::v1 as pb;
use tonic::Code;

use crate::support::{Db, T0, assert_status, eur, on_both, spawn_app};

on_both!(vip_offers_grants_and_redemption, personalised_prices);

fn offer(id: &str, kind: pb::OfferKind, value: i64, tiers: Vec<pb::Tier>, days: i64, uses: i32) -> pb::Offer {
    pb::Offer {
        offer_id: id.into(),
        title: format!("offer {id}"),
        kind: kind.into(),
        value,
        sku: String::new(),
        tiers: tiers.into_iter().map(Into::into).collect(),
        start_time: Some(timestamp(T0)),
        end_time: Some(timestamp(T0 + days * 86_400_000)),
        max_uses_per_customer: uses,
    }
}

async fn vip_offers_grants_and_redemption(db: Db) {
    let app = spawn_app(db).await;
    let mut c = app.client.clone();
    app.enrol("vip").await;
    app.enrol("basic").await;
    app.earn("e", "vip", 25_000).await.unwrap();
    let o = offer("vip-10", pb::OfferKind::PercentOff, 1_000, vec![pb::Tier::Vip], 30, 2);
    c.create_offer(pb::CreateOfferRequest { request_id: "o1".into(), offer: Some(o.clone()) }).await.unwrap();
    // the same terms again is fine; other terms under the same id are refused
    c.create_offer(pb::CreateOfferRequest { request_id: "o1b".into(), offer: Some(o.clone()) }).await.unwrap();
    let mut other = o.clone();
    other.value = 2_000;
    let err =
        c.create_offer(pb::CreateOfferRequest { request_id: "o1c".into(), offer: Some(other) }).await.unwrap_err();
    assert_status(&err, Code::AlreadyExists, "OFFER_EXISTS", None);
    let mut bad = o.clone();
    bad.end_time = bad.start_time;
    let err = c.create_offer(pb::CreateOfferRequest { request_id: "o1d".into(), offer: Some(bad) }).await.unwrap_err();
    assert_status(&err, Code::InvalidArgument, "INVALID_ARGUMENT", Some("offer.end_time"));

    let grant = |rid: &str, campaign: &str| pb::GrantOffersRequest {
        request_id: rid.into(),
        offer_id: "vip-10".into(),
        campaign_id: campaign.into(),
        customer_ids: vec!["vip".into(), "basic".into(), "stranger".into()],
    };
    let g = c.grant_offers(grant("g1", "camp-1")).await.unwrap().into_inner();
    assert_eq!((g.granted, g.already_granted), (1, 0));
    let reasons: Vec<_> = g.skipped.iter().map(|s| (s.customer_id.as_str(), s.reason.as_str())).collect();
    assert_eq!(reasons, vec![("basic", "TIER_NOT_ELIGIBLE"), ("stranger", "NOT_A_MEMBER")]);
    // the same campaign again (new request id, as after a crash): no second grant
    let g = c.grant_offers(grant("g2", "camp-1")).await.unwrap().into_inner();
    assert_eq!((g.granted, g.already_granted), (0, 1));

    let held = c
        .list_member_offers(pb::ListMemberOffersRequest { customer_id: "vip".into(), only_usable: true })
        .await
        .unwrap()
        .into_inner()
        .offers;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].uses_left, 2);
    let use_it = |rid: &str, who: &str| pb::RedeemOfferRequest {
        request_id: rid.into(),
        customer_id: who.into(),
        offer_id: "vip-10".into(),
        order_id: format!("order-{rid}"),
    };
    assert_eq!(c.redeem_offer(use_it("u1", "vip")).await.unwrap().into_inner().offer.unwrap().uses_left, 1);
    // a retry of the same use does not use it twice
    assert_eq!(c.redeem_offer(use_it("u1", "vip")).await.unwrap().into_inner().offer.unwrap().uses_left, 1);
    assert_eq!(c.redeem_offer(use_it("u2", "vip")).await.unwrap().into_inner().offer.unwrap().uses_left, 0);
    assert_status(
        &c.redeem_offer(use_it("u3", "vip")).await.unwrap_err(),
        Code::FailedPrecondition,
        "OFFER_USED_UP",
        None,
    );
    assert_status(
        &c.redeem_offer(use_it("u4", "basic")).await.unwrap_err(),
        Code::FailedPrecondition,
        "OFFER_NOT_HELD",
        None,
    );

    // outside validity
    let o2 = offer("short", pb::OfferKind::AmountOff, 500, vec![], 1, 1);
    c.create_offer(pb::CreateOfferRequest { request_id: "o2".into(), offer: Some(o2) }).await.unwrap();
    c.grant_offers(pb::GrantOffersRequest {
        request_id: "g3".into(),
        offer_id: "short".into(),
        campaign_id: "camp-2".into(),
        customer_ids: vec!["basic".into()],
    })
    .await
    .unwrap();
    app.clock.advance_days(2);
    let r = pb::RedeemOfferRequest {
        request_id: "u5".into(),
        customer_id: "basic".into(),
        offer_id: "short".into(),
        order_id: "o".into(),
    };
    assert_status(&c.redeem_offer(r).await.unwrap_err(), Code::FailedPrecondition, "OFFER_NOT_ACTIVE", None);
    let usable = c
        .list_member_offers(pb::ListMemberOffersRequest { customer_id: "basic".into(), only_usable: true })
        .await
        .unwrap()
        .into_inner()
        .offers;
    assert!(usable.is_empty());
    app.stop().await;
}

async fn personalised_prices(db: Db) {
    let app = spawn_app(db).await;
    let mut c = app.client.clone();
    app.enrol("gold").await;
    app.earn("e", "gold", 6_000).await.unwrap();
    let quote = |recurring: bool, sku: &str| pb::QuotePriceRequest {
        customer_id: "gold".into(),
        sku: sku.into(),
        base_price: Some(eur(100)),
        recurring,
    };
    let q = c.quote_price(quote(false, "sku-1")).await.unwrap().into_inner();
    assert_eq!(q.tier, i32::from(pb::Tier::Gold));
    assert_eq!(q.price.unwrap().units, 95);
    let q = c.quote_price(quote(true, "sku-1")).await.unwrap().into_inner();
    let p = q.price.unwrap();
    assert_eq!((p.units, p.nanos), (90, 250_000_000));
    assert_eq!(
        q.adjustments.iter().map(|a| a.kind.as_str()).collect::<Vec<_>>(),
        vec!["tier_discount", "recurring_price"]
    );
    // an offer for that SKU is applied when it is the best one
    let mut o = offer("sku-deal", pb::OfferKind::AmountOff, 1_500, vec![], 10, 1);
    o.sku = "sku-1".into();
    c.create_offer(pb::CreateOfferRequest { request_id: "o".into(), offer: Some(o) }).await.unwrap();
    c.grant_offers(pb::GrantOffersRequest {
        request_id: "g".into(),
        offer_id: "sku-deal".into(),
        campaign_id: "c".into(),
        customer_ids: vec!["gold".into()],
    })
    .await
    .unwrap();
    let q = c.quote_price(quote(true, "sku-1")).await.unwrap().into_inner();
    let p = q.price.unwrap();
    assert_eq!((p.units, p.nanos), (75, 250_000_000));
    assert_eq!(q.adjustments.last().unwrap().offer_id, "sku-deal");
    // not for another SKU
    let q = c.quote_price(quote(true, "sku-2")).await.unwrap().into_inner();
    assert_eq!(q.price.unwrap().units, 90);
    let err = c
        .quote_price(pb::QuotePriceRequest {
            customer_id: "nobody".into(),
            sku: "s".into(),
            base_price: Some(eur(1)),
            recurring: false,
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, "MEMBER_NOT_FOUND", None);
    app.stop().await;
}
