//! Who may do what (the matrix), the figures (ambassador stats, leaderboard, programme metrics), and erasure keeping
//! programme counts true.
use rapport_kit::{auth::Role, clock::timestamp};
use rapport_proto::referrals::v1 as pb;
use tonic::Code;

use crate::support::*;

on_both!(only_the_matrix_roles_review_or_read_ambassadors, figures_count_and_erasure_keeps_them);

async fn only_the_matrix_roles_review_or_read_ambassadors(db: Db) {
    let app = spawn_app(db).await;
    let code = app.code("amb-1", "default", "").await.unwrap();
    let r = app.signup(&code.code, "new-1", None).await.unwrap();
    for role in [Role::Reader, Role::Marketing, Role::Segmentation, Role::Loyalty] {
        let mut c = app.as_role(role);
        let e = c
            .void_referral(pb::VoidReferralRequest {
                request_id: "v".into(),
                referral_id: r.referral_id.clone(),
                reason: "x".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{role:?} voids");
        let e = c
            .approve_referral(pb::ApproveReferralRequest {
                request_id: "a".into(),
                referral_id: r.referral_id.clone(),
                reason: "x".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{role:?} approves");
    }
    let mut reader = app.as_role(Role::Reader);
    let e = reader
        .get_ambassador_stats(pb::GetAmbassadorStatsRequest {
            customer_id: "amb-1".into(),
            programme_id: "default".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = reader.get_referral(pb::GetReferralRequest { referral_id: r.referral_id.clone() }).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = reader.list_referrals(pb::ListReferralsRequest::default()).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // Readers see figures without names.
    reader
        .get_programme_metrics(pb::GetProgrammeMetricsRequest {
            programme_id: "default".into(),
            start_time: Some(timestamp(T0)),
            end_time: Some(timestamp(T0 + DAY)),
        })
        .await
        .unwrap();
    // Marketing reads ambassadors; agents review.
    app.as_role(Role::Marketing)
        .get_ambassador_stats(pb::GetAmbassadorStatsRequest {
            customer_id: "amb-1".into(),
            programme_id: "default".into(),
        })
        .await
        .unwrap();
    app.as_role(Role::Agent)
        .void_referral(pb::VoidReferralRequest {
            request_id: "v".into(),
            referral_id: r.referral_id,
            reason: "x".into(),
        })
        .await
        .unwrap();
    app.stop().await;
}

async fn figures_count_and_erasure_keeps_them(db: Db) {
    let app = spawn_app(db).await;
    app.programme("friends", rules(pb::QualifyingEvent::FirstPurchase, 0)).await.unwrap();
    let a = app.code("amb-a", "friends", "ALICE").await.unwrap();
    let b = app.code("amb-b", "friends", "").await.unwrap();
    let mut c = app.client.clone();
    for (who, n) in [("amb-a", 8), ("amb-b", 2)] {
        c.record_invitations(pb::RecordInvitationsRequest {
            request_id: format!("inv-{who}"),
            customer_id: who.into(),
            programme_id: "friends".into(),
            count: n,
        })
        .await
        .unwrap();
    }
    for i in 0..3 {
        app.signup(&a.code, &format!("a-{i}"), None).await.unwrap();
    }
    app.signup(&b.code, "b-0", None).await.unwrap();
    let buys = vec![
        purchase("e1", "a-0", "o1", 20, T0),
        purchase("e2", "a-1", "o2", 20, T0),
        purchase("e3", "b-0", "o3", 20, T0),
    ];
    app.deliver(buys).await.unwrap();
    let window = (Some(timestamp(T0)), Some(timestamp(T0 + DAY)));
    let metrics = || {
        let mut m = app.as_role(Role::Marketing);
        let req =
            pb::GetProgrammeMetricsRequest { programme_id: "friends".into(), start_time: window.0, end_time: window.1 };
        async move { m.get_programme_metrics(req).await.unwrap().into_inner() }
    };
    let before = metrics().await;
    assert_eq!((before.ambassadors, before.invitations, before.signups, before.conversions), (2, 10, 4, 3));
    assert_eq!(before.inviting_ambassadors, 2);
    assert!((before.conversion_rate - 0.3).abs() < 1e-9);
    assert!((before.viral_coefficient - 5.0 * 0.3).abs() < 1e-9, "k = 10 / 2 × 0.3");
    let board = app
        .as_role(Role::Marketing)
        .get_leaderboard(pb::GetLeaderboardRequest {
            programme_id: "friends".into(),
            start_time: window.0,
            end_time: window.1,
            limit: 10,
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let rows: Vec<(String, i64, i64, i64)> =
        board.iter().map(|e| (e.customer_id.clone(), e.invited, e.signed_up, e.converted)).collect();
    assert_eq!(rows, [("amb-a".to_string(), 8, 3, 2), ("amb-b".to_string(), 2, 1, 1)]);
    // Erasing the top ambassador (blocked meanwhile): its code, name and data go; the programme's counts stay.
    c.set_block_list(pb::SetBlockListRequest {
        request_id: "bl".into(),
        block_list: Some(pb::BlockList { customer_ids: vec!["amb-a".into()], ..Default::default() }),
        emails: vec![],
    })
    .await
    .unwrap();
    let gone = c
        .forget_customer(pb::ForgetCustomerRequest { request_id: "f-a".into(), customer_id: "amb-a".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((gone.referrals_kept, gone.codes_removed), (3, 1));
    // Segmentation is told (it counted the referrals the ambassador made); the referrals' own events about it went.
    {
        use prost::Message;
        use rapport_outbox::entities::outbox_event;
        use rapport_proto::events::v1::{Event, event::Payload};
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let waiting = outbox_event::Entity::find()
            .filter(outbox_event::Column::Destination.eq("segmentation"))
            .filter(outbox_event::Column::PartitionKey.eq("amb-a"))
            .all(&app.db)
            .await
            .unwrap();
        let payloads: Vec<Option<Payload>> =
            waiting.iter().map(|r| Event::decode(r.payload.as_slice()).unwrap().payload).collect();
        assert!(matches!(payloads.as_slice(), [Some(Payload::CustomerForgotten(_))]), "{payloads:?}");
    }
    let after = metrics().await;
    assert_eq!(
        (after.ambassadors, after.invitations, after.signups, after.conversions),
        (before.ambassadors, before.invitations, before.signups, before.conversions)
    );
    let e = app
        .as_role(Role::Marketing)
        .get_ambassador_stats(pb::GetAmbassadorStatsRequest {
            customer_id: "amb-a".into(),
            programme_id: "friends".into(),
        })
        .await
        .unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "CUSTOMER_ERASED", None);
    let listed =
        c.list_referrals(pb::ListReferralsRequest { programme_id: "friends".into(), ..Default::default() }).await;
    for r in listed.unwrap().into_inner().referrals {
        assert_ne!(r.referrer_id, "amb-a");
        assert!(!r.code.contains("ALICE"), "the vanity code went with its owner");
    }
    // The erased ambassador leaves the leaderboard; a vanity code it had is free again only as a hash: still refused.
    let board = app
        .as_role(Role::Marketing)
        .get_leaderboard(pb::GetLeaderboardRequest {
            programme_id: "friends".into(),
            start_time: window.0,
            end_time: window.1,
            limit: 10,
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(board.iter().map(|e| e.customer_id.as_str()).collect::<Vec<_>>(), ["amb-b"]);
    let e = app.code("amb-c", "friends", "alice").await.unwrap_err();
    assert_status(&e, Code::AlreadyExists, "CODE_TAKEN", None);
    // Referrals' database keeps no trace of the erased ambassador's id or code in any column that could hold them.
    use sea_orm::{ConnectionTrait, Statement};
    let columns = [
        ("referrals", "referrer_id"),
        ("referrals", "referee_id"),
        ("referrals", "code_key"),
        ("referrals", "code"),
        ("codes", "code_key"),
        ("codes", "code"),
        ("codes", "customer_id"),
        ("ambassadors", "customer_id"),
        ("invitations", "customer_id"),
        ("rewards", "customer_id"),
        ("blocked", "value"),
    ];
    let mut seen = 0;
    for (table, column) in columns {
        let sql = format!("SELECT {column} FROM {table}");
        let rows = app.db.query_all_raw(Statement::from_string(app.db.get_database_backend(), sql)).await.unwrap();
        for row in rows {
            let value: String = row.try_get_by_index(0).unwrap();
            seen += 1;
            assert!(!value.contains("amb-a") && !value.to_uppercase().contains("ALICE"), "{table}.{column}: {value}");
        }
    }
    assert!(seen > 10, "the scan read the rows ({seen})");
    app.stop().await;
}

#[test]
fn matrix_covers_every_rpc_and_names_no_other() {
    let policy = rapport_referrals::app::policy().unwrap();
    let service = rapport_referrals::app::SERVICE_NAME;
    for svc in [service, rapport_referrals::app::SINK_NAME] {
        let (missing, unknown) = policy.coverage(rapport_proto::FILE_DESCRIPTOR_SET, svc).unwrap();
        assert!(missing.is_empty(), "{svc}: RPCs missing from the matrix: {missing:?}");
        assert!(unknown.is_empty(), "{svc}: the matrix names RPCs that do not exist: {unknown:?}");
    }
    let sink = |r| policy.allows(&format!("/{}/DeliverEvents", rapport_referrals::app::SINK_NAME), r);
    assert!(sink(Role::Loyalty) && sink(Role::Feedback) && !sink(Role::Sre) && !sink(Role::Agent));
    let p = |m: &str| format!("/{service}/{m}");
    for m in ["ApproveReferral", "VoidReferral"] {
        assert!(policy.allows(&p(m), Role::Agent));
        for r in [Role::Marketing, Role::Reader, Role::Loyalty, Role::Feedback, Role::Segmentation] {
            assert!(!policy.allows(&p(m), r), "{r:?} may {m}");
        }
    }
    for m in ["GetAmbassadorStats", "GetReferral", "ListReferrals", "GetCode"] {
        assert!(!policy.allows(&p(m), Role::Reader), "readers may not {m}");
    }
}
