//! The caps on hostile input, each refused at once with the code and the field a client can act on: a request
//! over the message cap (RESOURCE_EXHAUSTED) and bytes that do not decode (INVALID_ARGUMENT MALFORMED_MESSAGE) on
//! every service; a rule tree too deep, too large or deeper than the decoder allows; batches, k and sample sizes,
//! block lists and texts over their caps; page sizes coerced to their maximum (AIP-158), a negative one refused.
use rapport_fuzz::{Harness, Schema};
use rapport_kit::{
    auth::{Policy, Role},
    clock::ManualClock,
    db::testing::fresh_database,
};
use rapport_proto::{
    feedback::v1::{self as fpb, feedback_service_client::FeedbackServiceClient},
    improvement::v1::{self as ipb, improvement_service_client::ImprovementServiceClient},
    loyalty::v1::{self as lpb, loyalty_service_client::LoyaltyServiceClient},
    referrals::v1::{self as rpb, referrals_service_client::ReferralsServiceClient},
    segmentation::v1::{self as spb, condition::Node, segmentation_service_client::SegmentationServiceClient},
};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::support::{Db, T0, any_port, channel, feedback, improvement, loyalty, referrals, segmentation};

/// Asserts `e` is `code` with `reason`, naming `field` among its violations when given.
fn refused(e: &Status, code: Code, reason: &str, field: Option<&str>) {
    assert_eq!(e.code(), code, "{e:?}");
    assert_eq!(e.get_details_error_info().map(|i| i.reason), Some(reason.to_string()), "{e:?}");
    if let Some(field) = field {
        let fields: Vec<String> = e
            .get_details_bad_request()
            .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
            .unwrap_or_default();
        assert!(fields.iter().any(|f| f == field), "{field} among {fields:?}");
    }
    assert!(e.message().len() < 1_000, "a short message: {} bytes", e.message().len());
}

fn leaf() -> spb::Condition {
    spb::Condition { node: Some(Node::Tier(spb::ValuesIn { values: vec!["gold".into()] })) }
}

/// A chain of `levels` conditions: `not` above `not` … above a leaf.
fn chain(levels: usize) -> spb::Condition {
    (1..levels).fold(leaf(), |c, _| spb::Condition { node: Some(Node::Not(Box::new(c))) })
}

fn segment(n: u32, condition: spb::Condition) -> spb::CreateSegmentRequest {
    spb::CreateSegmentRequest {
        request_id: format!("seg-{n}"),
        segment: Some(spb::Segment {
            segment_id: format!("s{n}"),
            display_name: "hostile".into(),
            condition: Some(condition),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn every_cap_refuses_at_once_with_its_field() {
    let clock = ManualClock::new(T0);
    let mut dbs = Vec::new();
    for _ in 0..5 {
        dbs.push(fresh_database(Db::Sqlite).await.unwrap());
    }
    let l = loyalty(any_port(), dbs[0].url(), None, &clock).await;
    let s = segmentation(any_port(), dbs[1].url(), l.addr, &clock).await;
    let f = feedback(any_port(), dbs[2].url(), &[], &clock, |_| {}).await;
    let r = referrals(any_port(), dbs[3].url(), None, &clock, |_| {}).await;
    let i = improvement(any_port(), dbs[4].url(), None, &clock).await;

    // Every service, and the operator services each one serves: over the message cap (4 MiB), and bytes that are not
    // a message.
    let schema = Schema::rapport();
    let services: [(_, Policy, &str); 5] = [
        (l.addr, rapport_loyalty::app::policy().unwrap(), rapport_loyalty::app::SERVICE_NAME),
        (s.addr, rapport_segmentation::app::policy().unwrap(), rapport_segmentation::app::SERVICE_NAME),
        (f.addr, rapport_feedback::app::policy().unwrap(), rapport_feedback::app::SERVICE_NAME),
        (r.addr, rapport_referrals::app::policy().unwrap(), rapport_referrals::app::SERVICE_NAME),
        (i.addr, rapport_improvement::app::policy().unwrap(), rapport_improvement::app::SERVICE_NAME),
    ];
    for (addr, policy, name) in services {
        let mut h = Harness::new(addr, policy);
        for name in [name, "rapport.events.v1.OutboxService", "rapport.audit.v1.AuditService"] {
            let rpc = schema.rpcs(name).into_iter().next().unwrap();
            let big = h.send(&rpc, vec![0x0a; 5 * 1024 * 1024]).await.unwrap().unwrap_err();
            refused(&big, Code::ResourceExhausted, "MESSAGE_TOO_LARGE", None);
            let broken = h.send(&rpc, vec![0x0a, 0xff, 0xff, 0x01]).await.unwrap().unwrap_err();
            refused(&broken, Code::InvalidArgument, "MALFORMED_MESSAGE", None);
            let not_utf8 = h.send(&rpc, vec![0x0a, 0x02, 0xff, 0xfe]).await.unwrap().unwrap_err();
            refused(&not_utf8, Code::InvalidArgument, "MALFORMED_MESSAGE", None);
        }
    }

    // Segmentation: rule trees, batches, k and sample sizes.
    let mut sc = SegmentationServiceClient::new(channel(s.addr, Role::Marketing));
    sc.create_segment(segment(1, chain(16))).await.expect("16 levels are allowed");
    let deep = sc.create_segment(segment(2, chain(17))).await.unwrap_err();
    refused(&deep, Code::InvalidArgument, "INVALID_ARGUMENT", Some("segment.condition"));
    let wide =
        spb::Condition { node: Some(Node::Any(spb::Conditions { conditions: (0..200).map(|_| leaf()).collect() })) };
    let wide = sc.create_segment(segment(3, wide)).await.unwrap_err();
    refused(&wide, Code::InvalidArgument, "INVALID_ARGUMENT", Some("segment.condition"));
    let abyss = sc.create_segment(segment(4, chain(300))).await.unwrap_err();
    refused(&abyss, Code::InvalidArgument, "MALFORMED_MESSAGE", None);
    let tiers = spb::Condition { node: Some(Node::Tier(spb::ValuesIn { values: vec!["gold".into(); 51] })) };
    let tiers = sc.create_segment(segment(5, tiers)).await.unwrap_err();
    refused(&tiers, Code::InvalidArgument, "INVALID_ARGUMENT", Some("segment.condition.tier.values"));
    let batch = spb::IngestEventBatchRequest { events: vec![spb::BehaviourEvent::default(); 1_001] };
    let mut ingest = SegmentationServiceClient::new(channel(s.addr, Role::Sre));
    let batch = ingest.ingest_event_batch(batch).await.unwrap_err();
    refused(&batch, Code::InvalidArgument, "INVALID_ARGUMENT", Some("events"));
    assert!(batch.get_details_bad_request().unwrap().field_violations.len() <= 51, "violations are capped");
    let train = |k, sample_size| spb::TrainModelRequest {
        request_id: format!("train-{k}-{sample_size}"),
        k,
        sample_size,
        ..Default::default()
    };
    refused(&sc.train_model(train(51, 0)).await.unwrap_err(), Code::InvalidArgument, "INVALID_ARGUMENT", Some("k"));
    let sample = sc.train_model(train(3, 1_000_001)).await.unwrap_err();
    refused(&sample, Code::InvalidArgument, "INVALID_ARGUMENT", Some("sample_size"));

    // Loyalty: a grant batch over 1,000; page sizes.
    let mut lc = LoyaltyServiceClient::new(channel(l.addr, Role::Marketing));
    let grant = lpb::GrantOffersRequest {
        request_id: "grant".into(),
        offer_id: "o".into(),
        campaign_id: "c".into(),
        customer_ids: (0..1_001).map(|n| format!("c-{n}")).collect(),
    };
    let grant = lc.grant_offers(grant).await.unwrap_err();
    refused(&grant, Code::InvalidArgument, "INVALID_ARGUMENT", Some("customer_ids"));
    let mut agent = LoyaltyServiceClient::new(channel(l.addr, Role::Agent));
    agent
        .enrol_member(lpb::EnrolMemberRequest {
            request_id: "en".into(),
            customer_id: "m".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let list = |page_size| lpb::ListTransactionsRequest { customer_id: "m".into(), page_size, ..Default::default() };
    agent.list_transactions(list(i32::MAX)).await.expect("a huge page size is served the maximum");
    let negative = agent.list_transactions(list(-1)).await.unwrap_err();
    refused(&negative, Code::InvalidArgument, "INVALID_ARGUMENT", Some("page_size"));

    // Feedback: a complaint over 5,000 characters.
    let mut fc = FeedbackServiceClient::new(channel(f.addr, Role::Agent));
    let case = fpb::OpenCaseRequest {
        request_id: "case".into(),
        customer_id: "c-1".into(),
        text: "a".repeat(5_001),
        ..Default::default()
    };
    refused(&fc.open_case(case).await.unwrap_err(), Code::InvalidArgument, "INVALID_ARGUMENT", Some("text"));

    // Referrals: a block list over 10,000 entries.
    let mut rc = ReferralsServiceClient::new(channel(r.addr, Role::Sre));
    let block = rpb::SetBlockListRequest {
        request_id: "block".into(),
        block_list: Some(rpb::BlockList {
            customer_ids: (0..10_001).map(|n| format!("c-{n}")).collect(),
            ..Default::default()
        }),
        emails: vec![],
    };
    let block = rc.set_block_list(block).await.unwrap_err();
    refused(&block, Code::InvalidArgument, "INVALID_ARGUMENT", Some("block_list"));

    // Improvement: a suggestion over 2,000 characters.
    let mut ic = ImprovementServiceClient::new(channel(i.addr, Role::Agent));
    let suggestion =
        ipb::SubmitSuggestionRequest { request_id: "sug".into(), text: "é".repeat(2_001), theme_id: String::new() };
    let suggestion = ic.submit_suggestion(suggestion).await.unwrap_err();
    refused(&suggestion, Code::InvalidArgument, "INVALID_ARGUMENT", Some("text"));

    for server in [i, r, f, s, l] {
        server.stop().await;
    }
}
