//! Who may do what (the matrix), bad requests naming their fields, requests applied once, suggestions with the
//! agent who made them, and erasure keeping the counts while no trace of the customer stays.
use rapport_kit::{auth::Role, clock::timestamp};
use rapport_proto::improvement::v1 as pb;
use sea_orm::{ConnectionTrait, Statement};
use tonic::Code;

use crate::support::*;

on_both!(
    only_the_matrix_roles_act,
    bad_requests_name_their_fields,
    requests_are_applied_once,
    suggestions_name_who_made_them,
    erasure_drops_the_words_and_keeps_the_counts,
);

#[test]
fn matrix_covers_every_rpc_and_names_no_other() {
    let policy = rapport_improvement::app::policy().unwrap();
    let service = rapport_improvement::app::SERVICE_NAME;
    for svc in [service, rapport_improvement::app::SINK_NAME] {
        let (missing, unknown) = policy.coverage(rapport_proto::FILE_DESCRIPTOR_SET, svc).unwrap();
        assert!(missing.is_empty(), "{svc}: RPCs missing from the matrix: {missing:?}");
        assert!(unknown.is_empty(), "{svc}: the matrix names RPCs that do not exist: {unknown:?}");
    }
    let sink = |r| policy.allows(&format!("/{}/DeliverEvents", rapport_improvement::app::SINK_NAME), r);
    assert!(sink(Role::Feedback) && !sink(Role::Sre) && !sink(Role::Marketing));
    let p = |m: &str| format!("/{service}/{m}");
    assert!(!policy.allows(&p("ListSignals"), Role::Reader), "customers' words are not for readers");
    assert!(policy.allows(&p("GetThemeAnalytics"), Role::Reader));
    assert!(!policy.allows(&p("ChangeImprovementStatus"), Role::Agent));
}

async fn only_the_matrix_roles_act(db: Db) {
    let app = spawn_app(db).await;
    for role in [Role::Reader, Role::Agent, Role::Feedback] {
        let e = app
            .as_role(role, "x")
            .create_improvement(pb::CreateImprovementRequest {
                request_id: "c".into(),
                title: "t".into(),
                theme_ids: vec!["delivery".into()],
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{role:?}");
    }
    let e = app
        .as_role(Role::Reader, "r")
        .list_signals(pb::ListSignalsRequest { theme_id: "delivery".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    app.as_role(Role::Reader, "r").list_improvements(pb::ListImprovementsRequest::default()).await.unwrap();
    // Only feedback delivers events here.
    let mut as_loyalty = app.clone_sink_as(Role::Loyalty);
    let e = as_loyalty
        .deliver_events(rapport_proto::events::v1::DeliverEventsRequest {
            events: vec![signal("s", "a", "x", "t", T0)],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "a loyalty caller cannot speak for feedback");
    app.stop().await;
}

async fn bad_requests_name_their_fields(db: Db) {
    let app = spawn_app(db).await;
    let mut c = app.client.clone();
    let e = c
        .create_improvement(pb::CreateImprovementRequest {
            request_id: String::new(),
            title: " ".into(),
            theme_ids: vec!["Bad Theme".into(), "unclassified".into()],
            confidence: 1.5,
            effort_weeks: -1.0,
            ..Default::default()
        })
        .await
        .unwrap_err();
    for field in ["request_id", "title", "theme_ids[0]", "theme_ids[1]", "confidence", "effort_weeks"] {
        assert_status(&e, Code::InvalidArgument, "INVALID_ARGUMENT", Some(field));
    }
    let e = c
        .create_improvement(pb::CreateImprovementRequest {
            request_id: "r".into(),
            title: "t".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_status(&e, Code::InvalidArgument, "INVALID_ARGUMENT", Some("theme_ids"));
    let e = c
        .get_theme_analytics(pb::GetThemeAnalyticsRequest { theme_ids: vec![], end_time: None, weeks: 60 })
        .await
        .unwrap_err();
    assert_status(&e, Code::InvalidArgument, "INVALID_ARGUMENT", Some("weeks"));
    let e = c
        .discover_themes(pb::DiscoverThemesRequest {
            request_id: "d".into(),
            start_time: Some(timestamp(T0)),
            end_time: Some(timestamp(T0 - DAY)),
            k: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_status(&e, Code::InvalidArgument, "INVALID_ARGUMENT", Some("end_time"));
    assert_status(&e, Code::InvalidArgument, "INVALID_ARGUMENT", Some("k"));
    let e = c
        .merge_theme(pb::MergeThemeRequest {
            request_id: "m".into(),
            theme_id: "d-a".into(),
            into_theme_id: "d-a".into(),
        })
        .await
        .unwrap_err();
    assert_status(&e, Code::InvalidArgument, "INVALID_ARGUMENT", Some("into_theme_id"));
    let e = c
        .submit_suggestion(pb::SubmitSuggestionRequest {
            request_id: "s".into(),
            text: "x".repeat(2_001),
            theme_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_status(&e, Code::InvalidArgument, "INVALID_ARGUMENT", Some("text"));
    let e = c
        .list_signals(pb::ListSignalsRequest { theme_id: "delivery".into(), page_size: 5, page_token: "forged".into() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = c
        .get_improvement(pb::GetImprovementRequest { improvement_id: "imp-none".into(), impact_window_days: 0 })
        .await
        .unwrap_err();
    assert_status(&e, Code::NotFound, "IMPROVEMENT_NOT_FOUND", None);
    let e = c.get_pilot(pb::GetPilotRequest { pilot_id: "pil-none".into() }).await.unwrap_err();
    assert_status(&e, Code::NotFound, "PILOT_NOT_FOUND", None);
    app.stop().await;
}

async fn requests_are_applied_once(db: Db) {
    let app = spawn_app(db).await;
    app.deliver(vec![signal("d1", "c1", "delivery", "late", T0)]).await.unwrap();
    let a = app.improvement("one", &["delivery"], 0.5, 1.0).await;
    let again = app.improvement("one", &["delivery"], 0.5, 1.0).await;
    assert_eq!(a.improvement_id, again.improvement_id);
    let listed =
        app.client.clone().list_improvements(pb::ListImprovementsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.improvements.len(), 1);
    let e = app
        .client
        .clone()
        .create_improvement(pb::CreateImprovementRequest {
            request_id: "imp-one".into(),
            title: "another".into(),
            theme_ids: vec!["delivery".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_status(&e, Code::AlreadyExists, "REQUEST_ID_REUSED", None);
    // An event delivered twice is one signal.
    app.deliver(vec![signal("d1", "c1", "delivery", "late", T0)]).await.unwrap();
    let signals = app
        .client
        .clone()
        .list_signals(pb::ListSignalsRequest { theme_id: "delivery".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .signals;
    assert_eq!(signals.len(), 1);
    app.stop().await;
}

async fn suggestions_name_who_made_them(db: Db) {
    let app = spawn_app(db).await;
    app.deliver(vec![signal("d1", "c1", "delivery", "late", T0)]).await.unwrap();
    let mut ann = app.as_role(Role::Agent, "ann");
    let s = ann
        .submit_suggestion(pb::SubmitSuggestionRequest {
            request_id: "sug-1".into(),
            text: "Offer a delivery window by SMS".into(),
            theme_id: "delivery".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .signal
        .unwrap();
    assert_eq!(
        (s.origin(), s.suggested_by.as_str(), s.effective_theme_id.as_str()),
        (pb::SignalOrigin::Suggestion, "ann", "delivery")
    );
    assert!(s.customer_id.is_empty());
    let e = ann
        .submit_suggestion(pb::SubmitSuggestionRequest {
            request_id: "sug-2".into(),
            text: "x".into(),
            theme_id: "nowhere".into(),
        })
        .await
        .unwrap_err();
    assert_status(&e, Code::NotFound, "THEME_NOT_FOUND", None);
    let signals = ann
        .list_signals(pb::ListSignalsRequest { theme_id: "delivery".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .signals;
    assert_eq!(signals.len(), 2);
    app.stop().await;
}

async fn erasure_drops_the_words_and_keeps_the_counts(db: Db) {
    let app = spawn_app(db).await;
    let words = "my parcel from Lyon never came, call me on 0612345678";
    app.deliver(vec![
        signal("e1", "ann-secret", "delivery", words, T0),
        signal("e2", "bob", "delivery", "late again", T0),
        answer("a1", "ann-secret", 3, T0),
        signal("e3", "cy-secret", "delivery", "cy's own words", T0),
    ])
    .await
    .unwrap();
    // Discovery and an acceptance before the erasure: nothing they keep may hold the customer's words either.
    let mut corpus = corpus_signals("s");
    corpus.push(signal(
        "e5",
        "ann-secret",
        "unclassified",
        "mon colis de Lyon n'est jamais arrivé, appelez le 0612345678",
        T0 - 1,
    ));
    app.deliver(corpus).await.unwrap();
    let found = app.discover("d-1").await.unwrap().themes;
    app.client
        .clone()
        .accept_theme(pb::AcceptThemeRequest {
            request_id: "acc".into(),
            theme_id: found[0].theme_id.clone(),
            taxonomy_id: "accepted_one".into(),
            keywords: vec![],
            examples: vec![],
        })
        .await
        .unwrap();
    let mut c = app.as_role(Role::Sre, "sre");
    let r = c
        .forget_customer(pb::ForgetCustomerRequest { request_id: "f1".into(), customer_id: "ann-secret".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.texts_dropped, 2);
    // Feedback's erasure event does the same.
    app.deliver(vec![forgotten("f-cy", "cy-secret")]).await.unwrap();
    // Later events about them are dropped.
    app.deliver(vec![signal("e4", "ann-secret", "delivery", "again", T0 + 1)]).await.unwrap();
    let figures = c
        .get_theme_analytics(pb::GetThemeAnalyticsRequest {
            theme_ids: vec!["delivery".into()],
            end_time: Some(timestamp(T0 + DAY)),
            weeks: 2,
        })
        .await
        .unwrap()
        .into_inner()
        .themes;
    assert_eq!((figures[0].volume, figures[0].customers), (3, 3), "counts stay, under pseudonyms");
    assert_eq!(figures[0].nps_raisers.unwrap().responses, 1);
    // No column of any table holds their ids or words.
    let backend = app.db.get_database_backend();
    let tables = [
        "signals",
        "answers",
        "customers",
        "themes",
        "pilot_members",
        "outbox_events",
        "idempotency_keys",
        "inbox_events",
    ];
    let mut seen = 0;
    for table in tables {
        let rows =
            app.db.query_all_raw(Statement::from_string(backend, format!("SELECT * FROM {table}"))).await.unwrap();
        for row in rows {
            seen += 1;
            // Binary columns (stored replies, outbox payloads) read as text too.
            let mut text = format!("{row:?}");
            for column in ["response", "payload"] {
                if let Ok(bytes) = row.try_get::<Vec<u8>>("", column) {
                    text.push_str(&String::from_utf8_lossy(&bytes));
                }
            }
            for secret in ["ann-secret", "cy-secret", "0612345678", "Lyon", "cy's own words"] {
                assert!(!text.contains(secret), "{table} holds {secret}: {text}");
            }
        }
    }
    assert!(seen > 3, "the scan read the rows ({seen})");
    app.stop().await;
}
