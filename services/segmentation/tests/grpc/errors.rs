//! Every validation error, with its code, reason and field path (table-driven).
use rapport_proto::segmentation::v1::{self as pb, condition::Node};
use tonic::Code;

use crate::support::{Db, T0, assert_status, cond, event, feature, on_both, purchase, spawn_app};

on_both!(validation_errors);

async fn validation_errors(db: Db) {
    let app = spawn_app(db).await;
    let mut c = app.client.clone();
    app.ingest(vec![purchase("p", "known", T0, 10)]).await.unwrap();
    app.segment("existing", feature("frequency_90d", pb::Comparison::Ge, 1.0)).await.unwrap();

    // segment definitions
    let list = |cs: Vec<pb::Condition>| Node::All(pb::Conditions { conditions: cs });
    let seg_cases: Vec<(&str, Option<Node>, Code, &str, &str)> = vec![
        ("no condition", None, Code::InvalidArgument, "INVALID_ARGUMENT", "segment.condition"),
        (
            "empty all",
            Some(list(vec![])),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            "segment.condition.all.conditions",
        ),
        (
            "unknown feature",
            Some(list(vec![cond(feature("shoe_size", pb::Comparison::Gt, 1.0))])),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            "segment.condition.all.conditions[0].feature.name",
        ),
        (
            "no operator",
            Some(feature("monetary_90d", pb::Comparison::Unspecified, 1.0)),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            "segment.condition.feature.op",
        ),
        (
            "not a number",
            Some(feature("monetary_90d", pb::Comparison::Gt, f64::NAN)),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            "segment.condition.feature.value",
        ),
        (
            "bad tier",
            Some(Node::Tier(pb::ValuesIn { values: vec!["platinum".into()] })),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            "segment.condition.tier.values",
        ),
        (
            "bad nps class",
            Some(Node::NpsClass(pb::ValuesIn { values: vec!["fan".into()] })),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            "segment.condition.nps_class.values",
        ),
        (
            "no cluster",
            Some(Node::Cluster(pb::ClusterIn { cluster_ids: vec![] })),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            "segment.condition.cluster.cluster_ids",
        ),
        (
            "empty attribute",
            Some(Node::Attribute(pb::AttributeEquals { name: String::new(), value: "x".into() })),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            "segment.condition.attribute.name",
        ),
        (
            "count zero times",
            Some(Node::EventCount(pb::EventCount { kind: pb::EventKind::Visit.into(), times: 0, days: 7 })),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            "segment.condition.event_count.times",
        ),
        (
            "count zero days",
            Some(Node::EventCount(pb::EventCount { kind: pb::EventKind::Visit.into(), times: 1, days: 0 })),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            "segment.condition.event_count.days",
        ),
        (
            "count no kind",
            Some(Node::EventCount(pb::EventCount { kind: 0, times: 1, days: 7 })),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            "segment.condition.event_count.kind",
        ),
        (
            "absent too long",
            Some(Node::EventAbsent(pb::EventAbsent { kind: pb::EventKind::Purchase.into(), days: 400 })),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            "segment.condition.event_absent.days",
        ),
        (
            "unknown segment",
            Some(Node::InSegment("ghost".into())),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            "segment.condition.in_segment",
        ),
        (
            "itself",
            Some(Node::InSegment("new".into())),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            "segment.condition.in_segment",
        ),
        (
            "bucket backwards",
            Some(Node::RandomBucket(pb::RandomBucket { from: 50, to: 20 })),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            "segment.condition.random_bucket",
        ),
        (
            "not of nothing",
            Some(Node::Not(Box::new(pb::Condition { node: None }))),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            "segment.condition.not",
        ),
        (
            "deep path",
            Some(Node::Any(pb::Conditions {
                conditions: vec![
                    cond(Node::InSegment("existing".into())),
                    cond(Node::Not(Box::new(cond(feature("x", pb::Comparison::Gt, 1.0))))),
                ],
            })),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            "segment.condition.any.conditions[1].not.feature.name",
        ),
    ];
    for (name, node, code, reason, field) in seg_cases {
        let r = pb::CreateSegmentRequest {
            request_id: format!("bad-{name}"),
            segment: Some(pb::Segment {
                segment_id: "new".into(),
                display_name: "new".into(),
                condition: node.map(cond),
                size: 0,
                create_time: None,
            }),
        };
        let err = c.create_segment(r).await.expect_err(name);
        assert_status(&err, code, reason, Some(field));
    }
    let dup = app.segment("existing", feature("frequency_90d", pb::Comparison::Ge, 1.0)).await;
    // the same request id and body replays; a new request for an existing id is refused
    assert!(dup.is_ok());
    let err = c
        .create_segment(pb::CreateSegmentRequest {
            request_id: "other".into(),
            segment: Some(pb::Segment {
                segment_id: "existing".into(),
                display_name: "x".into(),
                condition: Some(cond(feature("frequency_90d", pb::Comparison::Ge, 2.0))),
                size: 0,
                create_time: None,
            }),
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::AlreadyExists, "SEGMENT_EXISTS", None);

    // events
    let mut no_amount = purchase("e1", "x", T0, 1);
    no_amount.amount = None;
    let mut bad_score = event("e2", "x", pb::EventKind::SurveyResponse, T0);
    bad_score.score = 11;
    let mut no_time = event("e3", "x", pb::EventKind::Visit, T0);
    no_time.occurred_at = None;
    let mut bad_tier = event("e4", "x", pb::EventKind::TierChange, T0);
    bad_tier.tier = "diamond".into();
    let event_cases: Vec<(&str, Vec<pb::BehaviourEvent>, &str)> = vec![
        ("empty batch", vec![], "events"),
        ("too many", (0..1001).map(|i| event(&format!("m{i}"), "x", pb::EventKind::Visit, T0)).collect(), "events"),
        ("no kind", vec![event("e0", "x", pb::EventKind::Unspecified, T0)], "events[0].kind"),
        ("purchase without amount", vec![no_amount], "events[0].amount"),
        ("score out of range", vec![bad_score], "events[0].score"),
        ("no time", vec![no_time], "events[0].occurred_at"),
        ("bad tier", vec![bad_tier], "events[0].tier"),
        ("bad customer", vec![event("e5", "a b", pb::EventKind::Visit, T0)], "events[0].customer_id"),
        ("no event id", vec![event("", "x", pb::EventKind::Visit, T0)], "events[0].event_id"),
    ];
    for (name, events, field) in event_cases {
        let err = app.ingest(events).await.expect_err(name);
        assert_status(&err, Code::InvalidArgument, "INVALID_ARGUMENT", Some(field));
    }
    assert_eq!(app.features("known").await.frequency_90d, 1.0, "refused batches changed nothing");

    // training, campaigns, pages, lookups
    let train = |k: i32, k_min: i32, k_max: i32, features: Vec<String>| pb::TrainModelRequest {
        request_id: format!("t{k}{k_min}{k_max}{}", features.len()),
        features,
        k,
        k_min,
        k_max,
        sample_size: 0,
        seed: 0,
        algorithm: 0,
    };
    assert_status(
        &c.train_model(train(1, 0, 0, vec![])).await.unwrap_err(),
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
        Some("k"),
    );
    assert_status(
        &c.train_model(train(0, 5, 3, vec![])).await.unwrap_err(),
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
        Some("k_max"),
    );
    assert_status(
        &c.train_model(train(3, 0, 0, vec!["height".into()])).await.unwrap_err(),
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
        Some("features[0]"),
    );
    let mut bad_algorithm = train(3, 0, 0, vec![]);
    bad_algorithm.algorithm = 9;
    assert_status(
        &c.train_model(bad_algorithm).await.unwrap_err(),
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
        Some("algorithm"),
    );
    let trigger = |segment: &str, holdout: i32| pb::TriggerCampaignRequest {
        request_id: format!("c-{segment}-{holdout}"),
        campaign_id: String::new(),
        segment_id: segment.into(),
        offer_id: "o".into(),
        holdout_percent: holdout,
    };
    assert_status(
        &c.trigger_campaign(trigger("existing", 60)).await.unwrap_err(),
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
        Some("holdout_percent"),
    );
    assert_status(
        &c.trigger_campaign(trigger("ghost", 10)).await.unwrap_err(),
        Code::NotFound,
        "SEGMENT_NOT_FOUND",
        None,
    );
    let members = |size: i32, token: &str| pb::ListSegmentMembersRequest {
        segment_id: "existing".into(),
        page_size: size,
        page_token: token.into(),
    };
    assert_status(
        &c.list_segment_members(members(-1, "")).await.unwrap_err(),
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
        Some("page_size"),
    );
    assert_status(
        &c.list_segment_members(members(10, "AAAAAAAAAAAAAAAAAAAAAA")).await.unwrap_err(),
        Code::InvalidArgument,
        "INVALID_PAGE_TOKEN",
        Some("page_token"),
    );
    assert_status(
        &c.get_customer_features(pb::GetCustomerFeaturesRequest { customer_id: "nobody".into() }).await.unwrap_err(),
        Code::NotFound,
        "CUSTOMER_NOT_FOUND",
        None,
    );
    assert_status(
        &c.explain_membership(pb::ExplainMembershipRequest { customer_id: "known".into(), segment_id: String::new() })
            .await
            .unwrap_err(),
        Code::FailedPrecondition,
        "NO_MODEL",
        None,
    );
    assert_status(
        &c.get_model(pb::GetModelRequest { version: 0 }).await.unwrap_err(),
        Code::FailedPrecondition,
        "NO_MODEL",
        None,
    );
    assert_status(
        &c.get_training_job(pb::GetTrainingJobRequest { job_id: "job-x".into() }).await.unwrap_err(),
        Code::NotFound,
        "JOB_NOT_FOUND",
        None,
    );
    assert_status(
        &c.get_campaign(pb::GetCampaignRequest { campaign_id: "nope".into() }).await.unwrap_err(),
        Code::NotFound,
        "CAMPAIGN_NOT_FOUND",
        None,
    );
    // too few customers for the clusters asked: the job fails and says why
    let job = c.train_model(train(5, 0, 0, vec![])).await.unwrap().into_inner().job_id;
    crate::support::eventually(30, "the failed job", || {
        let mut c = c.clone();
        let job = job.clone();
        async move {
            let j = c.get_training_job(pb::GetTrainingJobRequest { job_id: job }).await.unwrap().into_inner();
            j.state == i32::from(pb::JobState::Failed) && j.error.contains("cannot make 5 clusters")
        }
    })
    .await;
    app.stop().await;
}
