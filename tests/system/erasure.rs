//! Erasure across services: loyalty forgets a member, segmentation, feedback and referrals erase the customer and
//! keep a tombstone, and feedback passes the erasure on to improvement (which had the customer's words as theme
//! signals); a purchase event that arrives afterwards does not bring the customer back, and no text or binary column
//! of any of the five databases (stored replies and outbox payloads included) keeps the customer's id, name or e-mail.
use std::sync::Arc;

use rapport_kit::{
    auth::Role,
    clock::ManualClock,
    db::testing::fresh_database,
    testing::{Backend, TestServer},
};
use rapport_proto::{
    common::v1::Money,
    events::v1::{DeliverEventsRequest, Event, event, event_sink_service_client::EventSinkServiceClient},
    feedback::v1::{self as fpb, feedback_service_client::FeedbackServiceClient},
    loyalty::v1::{self as lpb, loyalty_service_client::LoyaltyServiceClient},
    referrals::v1::{self as rpb, referrals_service_client::ReferralsServiceClient},
    segmentation::v1::{self as spb, segmentation_service_client::SegmentationServiceClient},
};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::support::{
    T0, answer_survey, any_port, auth, channel, eventually, purchase_event, referrals, segmentation, serve_config,
};

/// Rows of any text or binary column of any table of `url` that contain one of `needles`, as `table.column`.
async fn text_holding(url: &str, needles: &[&str]) -> Vec<String> {
    let db = rapport_kit::db::connect(url).await.unwrap();
    let backend = db.get_database_backend();
    let columns: Vec<(String, String)> = match backend {
        DbBackend::Postgres => db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT table_name::text, column_name::text FROM information_schema.columns \
                 WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'bytea')",
            ))
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.try_get_by_index(0).unwrap(), r.try_get_by_index(1).unwrap()))
            .collect(),
        _ => {
            let tables: Vec<String> = db
                .query_all_raw(Statement::from_string(backend, "SELECT name FROM sqlite_master WHERE type = 'table'"))
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.try_get_by_index(0).unwrap())
                .collect();
            let mut out = Vec::new();
            for t in tables {
                let cols = db
                    .query_all_raw(Statement::from_string(backend, format!("PRAGMA table_info(\"{t}\")")))
                    .await
                    .unwrap();
                for c in cols {
                    let (name, ty): (String, String) = (c.try_get("", "name").unwrap(), c.try_get("", "type").unwrap());
                    let ty = ty.to_lowercase();
                    if ty.contains("text") || ty.contains("char") || ty.contains("string") || ty.contains("blob") {
                        out.push((t.clone(), name));
                    }
                }
            }
            out
        }
    };
    let mut found = Vec::new();
    for (t, c) in columns {
        for n in needles {
            let sql = match backend {
                DbBackend::Postgres => format!(
                    "SELECT COUNT(*) FROM \"{t}\" WHERE position(convert_to('{n}', 'UTF8') in convert_to(\"{c}\"::text, 'UTF8')) > 0 \
                     OR (pg_typeof(\"{c}\")::text = 'bytea' AND position(convert_to('{n}', 'UTF8') in \"{c}\"::bytea) > 0)"
                ),
                _ => format!("SELECT COUNT(*) FROM \"{t}\" WHERE instr(CAST(\"{c}\" AS TEXT), '{n}') > 0"),
            };
            let row = db.query_one_raw(Statement::from_string(backend, sql)).await.unwrap().unwrap();
            let count: i64 = row.try_get_by_index(0).unwrap();
            if count > 0 {
                found.push(format!("{t}.{c} holds {n:?}"));
            }
        }
    }
    found
}

async fn erased_customers_stay_erased(backend: Backend) {
    let clock = ManualClock::new(T0);
    let (seg_db, loyalty_db) = (fresh_database(backend).await.unwrap(), fresh_database(backend).await.unwrap());
    let feedback_db = fresh_database(backend).await.unwrap();
    let referrals_db = fresh_database(backend).await.unwrap();
    let improvement_db = fresh_database(backend).await.unwrap();
    let placeholder = any_port();
    let s = segmentation(any_port(), seg_db.url(), placeholder, &clock).await;
    let i = {
        let mut config = rapport_improvement::app::Config::local(improvement_db.url());
        config.common.serve = serve_config();
        TestServer::start::<rapport_improvement::app::Improvement>(config, auth(), Arc::new(clock.clone()))
            .await
            .unwrap()
    };
    let f = {
        let mut config = rapport_feedback::app::Config::local(feedback_db.url());
        config.common.serve = serve_config();
        config.set_subscriber_url("segmentation", Some(format!("http://{}", s.addr)));
        config.set_subscriber_url("improvement", Some(i.url()));
        TestServer::start::<rapport_feedback::app::Feedback>(config, auth(), Arc::new(clock.clone())).await.unwrap()
    };
    let refs = referrals(any_port(), referrals_db.url(), None, &clock, |c| {
        c.set_subscriber_url("segmentation", Some(format!("http://{}", s.addr)));
    })
    .await;
    let l = {
        let mut config = rapport_loyalty::app::Config::local(loyalty_db.url());
        config.common.serve = serve_config();
        config.set_subscriber_url("segmentation", Some(format!("http://{}", s.addr)));
        config.set_subscriber_url("feedback", Some(f.url()));
        config.set_subscriber_url("referrals", Some(refs.url()));
        TestServer::start::<rapport_loyalty::app::Loyalty>(config, auth(), Arc::new(clock.clone())).await.unwrap()
    };
    // A survey whose comment names the customer.
    let mut fc = FeedbackServiceClient::new(channel(f.addr, Role::Agent));
    let survey_id = answer_survey(f.addr, "erin-7731", 2, "Erin Example here, write to erin.example@mail.test").await;
    // A claim in the customer's words, answered by name.
    let case = fc
        .open_case(fpb::OpenCaseRequest {
            request_id: "c-erin".into(),
            kind: fpb::CaseKind::Claim.into(),
            customer_id: "erin-7731".into(),
            channel: 5,
            severity: 0,
            order_id: "order-erin-7731".into(),
            text: "Erin Example: my parcel never came, write to erin.example@mail.test".into(),
            theme: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    fc.respond_to_case(fpb::RespondToCaseRequest {
        request_id: "r-erin".into(),
        case_id: case.case_id,
        text: "Dear Erin Example, a new parcel is on its way".into(),
    })
    .await
    .unwrap();
    // An ambassador with a vanity code made of its id and its own e-mail, and the referee of another ambassador.
    let mut rc = ReferralsServiceClient::new(channel(refs.addr, Role::Agent));
    let erin_signals = || Some(rpb::Signals { email: "erin.example@mail.test".into(), ..Default::default() });
    for (who, vanity) in [("erin-7731", "erin-7731"), ("amb-zoe", "ZOE-2026")] {
        rc.issue_code(rpb::IssueCodeRequest {
            request_id: format!("code-{who}"),
            customer_id: who.into(),
            programme_id: "default".into(),
            vanity: vanity.into(),
            signals: if who == "erin-7731" { erin_signals() } else { None },
            ..Default::default()
        })
        .await
        .unwrap();
    }
    rc.attribute_signup(rpb::AttributeSignupRequest {
        request_id: "su-erin".into(),
        code: "zoe-2026".into(),
        referee_id: "erin-7731".into(),
        signals: erin_signals(),
    })
    .await
    .unwrap();
    rc.attribute_signup(rpb::AttributeSignupRequest {
        request_id: "su-friend".into(),
        code: "erin-7731".into(),
        referee_id: "friend-of-erin".into(),
        signals: None,
    })
    .await
    .unwrap();
    // Improvement has the customer's words: the comment's and the claim's theme signals.
    let improvement_signals = || async {
        use sea_orm::EntityTrait;
        rapport_improvement::entities::signals::Entity::find().all(&i.db).await.unwrap()
    };
    eventually(30, "the theme signals in improvement", || async {
        let rows = improvement_signals().await;
        rows.len() == 2 && rows.iter().all(|r| r.text.as_deref().is_some_and(|t| t.contains("Erin Example")))
    })
    .await;
    let mut lc = LoyaltyServiceClient::new(channel(l.addr, Role::Sre));
    let mut sc = SegmentationServiceClient::new(channel(s.addr, Role::Sre));
    sc.upsert_customer(spb::UpsertCustomerRequest {
        request_id: "u-erin".into(),
        customer_id: "erin-7731".into(),
        attributes: [("email".to_string(), "erin.example@mail.test".to_string())].into(),
        consent_marketing: true,
        consent_profiling: true,
    })
    .await
    .unwrap();
    lc.enrol_member(lpb::EnrolMemberRequest {
        request_id: "e-erin".into(),
        customer_id: "erin-7731".into(),
        display_name: "Erin Example".into(),
    })
    .await
    .unwrap();
    let purchase = |order: &str| lpb::RecordPurchaseRequest {
        request_id: format!("p-{order}"),
        customer_id: "erin-7731".into(),
        order_id: order.into(),
        amount: Some(Money { currency_code: "EUR".into(), units: 80, nanos: 0 }),
        channel: 1,
        recurring: false,
    };
    lc.record_purchase(purchase("o-1")).await.unwrap();
    eventually(30, "the purchase in segmentation", || {
        let mut sc = sc.clone();
        async move {
            sc.get_customer_features(spb::GetCustomerFeaturesRequest { customer_id: "erin-7731".into() })
                .await
                .is_ok_and(|f| f.into_inner().features.is_some_and(|x| x.frequency_90d >= 1.0))
        }
    })
    .await;

    lc.forget_member(lpb::ForgetMemberRequest { request_id: "f-erin".into(), customer_id: "erin-7731".into() })
        .await
        .unwrap();
    eventually(30, "the erasure in segmentation", || {
        let mut sc = sc.clone();
        async move {
            sc.get_customer_features(spb::GetCustomerFeaturesRequest { customer_id: "erin-7731".into() })
                .await
                .is_err_and(|e| e.code() == tonic::Code::NotFound)
        }
    })
    .await;
    // Feedback got the erasure: the answer stays (NPS counts stay true) under a pseudonym, without its comment.
    eventually(30, "the erasure in feedback", || {
        let mut fc = fc.clone();
        let id = survey_id.clone();
        async move {
            let s = fc.get_survey(fpb::GetSurveyRequest { survey_id: id }).await.unwrap().into_inner().survey.unwrap();
            s.customer_id != "erin-7731" && s.answer.is_some_and(|a| a.score == 2 && a.comment.is_empty())
        }
    })
    .await;
    // Referrals got it: the code is answered as an erased ambassador's, the referrals stay under a pseudonym.
    eventually(30, "the erasure in referrals", || {
        let mut rc = rc.clone();
        async move {
            rc.get_code(rpb::GetCodeRequest { code: "ERIN-7731".into() })
                .await
                .is_err_and(|e| e.code() == tonic::Code::FailedPrecondition)
        }
    })
    .await;
    // Improvement got it from feedback: the signals stay (counts stay true) without their words, under a pseudonym.
    eventually(30, "the erasure in improvement", || async {
        let rows = improvement_signals().await;
        rows.len() == 2 && rows.iter().all(|r| r.text.is_none() && r.customer_id.as_deref() != Some("erin-7731"))
    })
    .await;
    let metrics = ReferralsServiceClient::new(channel(refs.addr, Role::Sre))
        .get_programme_metrics(rpb::GetProgrammeMetricsRequest {
            programme_id: "default".into(),
            start_time: Some(rapport_kit::clock::timestamp(T0)),
            end_time: Some(rapport_kit::clock::timestamp(T0 + 86_400_000)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((metrics.ambassadors, metrics.signups), (2, 2), "the programme's counts stay true");
    let lconn = rapport_kit::db::connect(loyalty_db.url()).await.unwrap();
    eventually(30, "loyalty's outbox scrubbed once the erasure was delivered", || async {
        use rapport_outbox::entities::outbox_event;
        use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
        outbox_event::Entity::find()
            .filter(outbox_event::Column::PartitionKey.eq("erin-7731"))
            .count(&lconn)
            .await
            .unwrap()
            == 0
    })
    .await;
    // A retry of a request about the forgotten member: its stored answer went with the member's data.
    let e = lc.record_purchase(purchase("o-1")).await.unwrap_err();
    rapport_kit::testing::assert_status(&e, tonic::Code::NotFound, "MEMBER_NOT_FOUND", "loyalty", None);

    // A late purchase event (a replica's relay that lagged behind): dropped, the customer does not come back.
    let mut sink = EventSinkServiceClient::new(channel(s.addr, Role::Loyalty));
    let late = purchase_event("late-purchase", "erin-7731", "o-late", 20, T0);
    let r = sink.deliver_events(DeliverEventsRequest { events: vec![late] }).await.unwrap().into_inner();
    assert_eq!((r.applied, r.duplicates), (0, 1), "dropped at the tombstone");
    let e = sc
        .get_customer_features(spb::GetCustomerFeaturesRequest { customer_id: "erin-7731".into() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    // Nor through ingestion or an upsert.
    let ev = spb::BehaviourEvent {
        event_id: "late-visit".into(),
        customer_id: "erin-7731".into(),
        kind: spb::EventKind::Visit.into(),
        occurred_at: Some(rapport_kit::clock::timestamp(T0)),
        channel: 1,
        amount: None,
        score: 0,
        tier: String::new(),
    };
    let r = sc.ingest_event_batch(spb::IngestEventBatchRequest { events: vec![ev] }).await.unwrap().into_inner();
    assert_eq!((r.applied, r.duplicates), (0, 1));
    let e = sc
        .upsert_customer(spb::UpsertCustomerRequest {
            request_id: "u-erin-2".into(),
            customer_id: "erin-7731".into(),
            attributes: Default::default(),
            consent_marketing: true,
            consent_profiling: true,
        })
        .await
        .unwrap_err();
    rapport_kit::testing::assert_status(&e, tonic::Code::FailedPrecondition, "CUSTOMER_ERASED", "segmentation", None);

    // A sender may only speak for itself.
    let mut forged = EventSinkServiceClient::new(channel(s.addr, Role::Loyalty));
    let mut e = Event { event_id: "forged".into(), source: "referrals".into(), ..Default::default() };
    e.customer_id = "zed".into();
    e.payload = Some(event::Payload::TierChanged(Default::default()));
    let err = forged.deliver_events(DeliverEventsRequest { events: vec![e] }).await.unwrap_err();
    rapport_kit::testing::assert_status(
        &err,
        tonic::Code::InvalidArgument,
        "INVALID_ARGUMENT",
        "segmentation",
        Some("events[0].source"),
    );

    l.stop().await;
    refs.stop().await;
    f.stop().await;
    i.stop().await;
    s.stop().await;
    for url in [seg_db.url(), loyalty_db.url(), feedback_db.url(), referrals_db.url(), improvement_db.url()] {
        let left = text_holding(url, &["erin-7731", "ERIN-7731", "Erin Example", "erin.example@mail.test"]).await;
        assert!(left.is_empty(), "personal data left behind: {left:?}");
    }
}

rapport_kit::on_both!(erased_customers_stay_erased);
