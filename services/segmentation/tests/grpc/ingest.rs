//! Ingestion is idempotent by event id and keeps features current; windows age out as days pass.
use rapport_proto::segmentation::v1 as pb;

use crate::support::{DAY, Db, T0, event, on_both, purchase, spawn_app};

on_both!(features_follow_events_and_age_with_time);

async fn features_follow_events_and_age_with_time(db: Db) {
    let app = spawn_app(db).await;
    let mut survey = event("s1", "ana", pb::EventKind::SurveyResponse, T0 - 3 * DAY);
    survey.score = 10;
    let batch = vec![
        purchase("p1", "ana", T0 - 100 * DAY, 40),
        purchase("p2", "ana", T0 - 10 * DAY, 60),
        event("c1", "ana", pb::EventKind::Complaint, T0 - 5 * DAY),
        survey,
    ];
    let r = app.ingest(batch.clone()).await.unwrap();
    assert_eq!((r.applied, r.duplicates), (4, 0));
    let r = app.ingest(batch).await.unwrap();
    assert_eq!((r.applied, r.duplicates), (0, 4), "each event id once");
    let f = app.features("ana").await;
    assert_eq!((f.frequency_90d, f.monetary_90d, f.frequency_365d, f.monetary_365d), (1.0, 60.0, 2.0, 100.0));
    assert_eq!((f.complaints_90d, f.average_basket, f.last_nps, f.nps_class.as_str()), (1.0, 50.0, 10, "promoter"));
    assert!((f.recency_days - 10.0).abs() < 1e-6);
    assert_eq!(f.channel_mix["mobile"], 1.0);

    // 85 days later the recent purchase and the complaint leave the 90-day window
    app.clock.advance_days(85);
    let r = app.refresh().await;
    assert_eq!(r.customers_aged, 1);
    let f = app.features("ana").await;
    assert_eq!((f.frequency_90d, f.complaints_90d, f.frequency_365d), (0.0, 0.0, 2.0));
    assert!((f.recency_days - 95.0).abs() < 1e-6);
    // an event arriving later ages the windows on its own, without a refresh
    app.clock.advance_days(200);
    app.ingest(vec![purchase("p3", "ana", T0 + 284 * DAY, 10)]).await.unwrap();
    let f = app.features("ana").await;
    assert_eq!(
        (f.frequency_90d, f.frequency_365d, f.monetary_365d),
        (1.0, 2.0, 70.0),
        "the purchase of day -100 left the year"
    );
    // a tier change from loyalty
    let mut tier = event("t1", "ana", pb::EventKind::TierChange, T0 + 284 * DAY);
    tier.tier = "gold".into();
    app.ingest(vec![tier]).await.unwrap();
    assert_eq!(app.features("ana").await.tier, "gold");
    app.stop().await;
}

on_both!(a_batch_adds_to_the_days_already_stored);

/// A batch's events are counted into the daily buckets in one write that adds to what an earlier batch stored, an
/// id repeated within the batch counting once: when the day leaves the window, all of its events leave with it.
async fn a_batch_adds_to_the_days_already_stored(db: Db) {
    let app = spawn_app(db).await;
    let day = T0 - 10 * DAY;
    app.ingest(vec![purchase("d1", "bo", day, 10)]).await.unwrap();
    let again = purchase("d2", "bo", day + 1000, 20);
    // "Zed" sorts first byte-wise and last in a linguistic collation (en_US): each customer keeps its own events
    // whatever order the database returns them in.
    let batch = vec![
        again.clone(),
        purchase("d3", "bo", day + 2000, 30),
        again,
        purchase("d4", "cy", day, 5),
        purchase("d5", "Zed", day, 7),
        purchase("d6", "Zed", day + 1000, 7),
    ];
    let r = app.ingest(batch).await.unwrap();
    assert_eq!((r.applied, r.duplicates), (5, 1), "the repeated id once");
    let f = app.features("bo").await;
    assert_eq!((f.frequency_90d, f.monetary_90d), (3.0, 60.0));
    assert_eq!(app.features("cy").await.frequency_90d, 1.0);
    let f = app.features("Zed").await;
    assert_eq!((f.frequency_90d, f.monetary_90d), (2.0, 14.0));
    // 81 days later that day is 91 days old: its three purchases leave the 90-day window together.
    app.clock.advance_days(81);
    app.refresh().await;
    let f = app.features("bo").await;
    assert_eq!((f.frequency_90d, f.monetary_90d, f.frequency_365d, f.monetary_365d), (0.0, 0.0, 3.0, 60.0));
    app.stop().await;
}

on_both!(outbox_events_apply_in_delivery_order);

/// Loyalty's outbox delivers a purchase and then the customer's erasure in one batch: the erasure comes last, so
/// nothing of the customer remains. Only services may deliver.
async fn outbox_events_apply_in_delivery_order(db: Db) {
    use rapport_kit::{
        auth::Role,
        client::{self, Outgoing},
        clock::timestamp,
    };
    use rapport_proto::events::v1::{
        CustomerForgotten, DeliverEventsRequest, Event, PurchaseRecorded, event,
        event_sink_service_client::EventSinkServiceClient,
    };
    let app = spawn_app(db).await;
    let sink = |role: Role| {
        let ch = client::channel(
            &format!("http://{}", app.addr),
            Outgoing::new(Some(app.auth.issue("t", role, 60).unwrap()), std::time::Duration::from_secs(30)),
        )
        .unwrap();
        EventSinkServiceClient::new(ch)
    };
    let ev = |id: &str, payload: event::Payload| Event {
        event_id: id.into(),
        source: "loyalty".into(),
        customer_id: "gone".into(),
        occurred_at: Some(timestamp(T0)),
        traceparent: String::new(),
        payload: Some(payload),
    };
    let purchase = event::Payload::PurchaseRecorded(PurchaseRecorded {
        order_id: "o".into(),
        amount: Some(rapport_proto::common::v1::Money { currency_code: "EUR".into(), units: 20, nanos: 0 }),
        channel: rapport_proto::common::v1::Channel::Web.into(),
        recurring: false,
        points: 20,
    });
    let batch = DeliverEventsRequest {
        events: vec![ev("l-1", purchase), ev("l-2", event::Payload::CustomerForgotten(CustomerForgotten {}))],
    };
    let err = sink(Role::Sre).deliver_events(batch.clone()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    let r = sink(Role::Loyalty).deliver_events(batch.clone()).await.unwrap().into_inner();
    assert_eq!((r.applied, r.duplicates), (2, 0));
    let gone =
        app.client.clone().get_customer_features(pb::GetCustomerFeaturesRequest { customer_id: "gone".into() }).await;
    assert_eq!(gone.unwrap_err().code(), tonic::Code::NotFound);
    // a redelivery changes nothing
    let r = sink(Role::Loyalty).deliver_events(batch).await.unwrap().into_inner();
    assert_eq!((r.applied, r.duplicates), (0, 2));
    app.stop().await;
}

on_both!(an_event_during_an_erasure_waits_and_is_dropped);

/// An event about a customer delivered while the customer's erasure is under way (its transaction open, holding the
/// customer's lock as every erasure does): the delivery waits for the erasure and is then dropped at the tombstone,
/// instead of bringing the customer back with a row the erasure had just deleted.
async fn an_event_during_an_erasure_waits_and_is_dropped(db: Db) {
    use rapport_kit::{
        auth::Role,
        client::{self, Outgoing},
        clock::timestamp,
        db::begin_write,
        pseudonym::Pseudonyms,
    };
    use rapport_proto::events::v1::{
        DeliverEventsRequest, Event, ReferralMade, event, event_sink_service_client::EventSinkServiceClient,
    };
    let app = spawn_app(db).await;
    let pseudonyms = Pseudonyms::development();
    // The erasure, in a transaction this test holds open.
    let txn = begin_write(&app.db).await.unwrap();
    rapport_kit::lease::lock_customer(&txn, "segmentation", &pseudonyms, "race-1").await.unwrap();
    rapport_outbox::sink::bury(&txn, &pseudonyms, "race-1", T0).await.unwrap();
    let ch = client::channel(
        &format!("http://{}", app.addr),
        Outgoing::new(Some(app.auth.issue("t", Role::Referrals, 60).unwrap()), std::time::Duration::from_secs(30)),
    )
    .unwrap();
    let made = Event {
        event_id: "ref-race".into(),
        source: "referrals".into(),
        customer_id: "race-1".into(),
        occurred_at: Some(timestamp(T0)),
        traceparent: String::new(),
        payload: Some(event::Payload::ReferralMade(ReferralMade {
            referral_id: "r-1".into(),
            programme_id: "default".into(),
            flagged: false,
        })),
    };
    let mut delivery = tokio::spawn(async move {
        EventSinkServiceClient::new(ch).deliver_events(DeliverEventsRequest { events: vec![made] }).await
    });
    // It must not get through while the erasure is under way (without the lock it does, at once, on PostgreSQL).
    let early = tokio::time::timeout(std::time::Duration::from_secs(2), &mut delivery).await;
    assert!(early.is_err(), "the delivery went through during the erasure: {early:?}");
    txn.commit().await.unwrap();
    let r = delivery.await.unwrap().unwrap().into_inner();
    assert_eq!((r.applied, r.duplicates), (0, 1), "dropped at the tombstone");
    let gone =
        app.client.clone().get_customer_features(pb::GetCustomerFeaturesRequest { customer_id: "race-1".into() }).await;
    assert_eq!(gone.unwrap_err().code(), tonic::Code::NotFound);
    app.stop().await;
}
