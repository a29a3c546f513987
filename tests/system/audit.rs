//! A scripted day of work across the five services, by several people and by the services themselves: each
//! service's audit trail names the right actor for every change (an agent's adjustment and another's reversal, a
//! marketer's segment and campaign and the grants segmentation made for it in loyalty, the assigner's assignment of
//! a waiting case, an agent's answer and resolution, a referral voided, an improvement shipped, an operator's
//! replay of parked events); a retry adds nothing; the trail is filed by customer without naming them; only sre
//! reads it.
use std::collections::BTreeSet;

use rapport_kit::{
    auth::Role,
    client::OutgoingChannel,
    clock::{ManualClock, timestamp},
    db::testing::fresh_database,
};
use rapport_proto::{
    audit::v1::{AuditRecord, ListAuditRecordsRequest, audit_service_client::AuditServiceClient},
    common::v1::Channel,
    events::v1::{
        DeliverEventsRequest, Event, RetryParkedEventsRequest, ThemeSignal, event,
        event_sink_service_client::EventSinkServiceClient, outbox_service_client::OutboxServiceClient,
    },
    feedback::v1::{self as fpb, feedback_service_client::FeedbackServiceClient},
    improvement::v1::{self as ipb, improvement_service_client::ImprovementServiceClient},
    loyalty::v1::{self as lpb, loyalty_service_client::LoyaltyServiceClient},
    referrals::v1::{self as rpb, referrals_service_client::ReferralsServiceClient},
    segmentation::v1::{self as spb, condition::Node, segmentation_service_client::SegmentationServiceClient},
};

use crate::support::{Db, T0, any_port, eventually, feedback, improvement, loyalty, referrals, segmentation};

/// A channel to `addr` as `subject` with `role`.
fn as_person(addr: std::net::SocketAddr, role: Role, subject: &str) -> OutgoingChannel {
    crate::support::channel_as(addr, role, subject)
}

/// Every record of the trail at `addr` matching `req`, read as an operator.
async fn trail(addr: std::net::SocketAddr, req: ListAuditRecordsRequest) -> Vec<AuditRecord> {
    let mut c = AuditServiceClient::new(as_person(addr, Role::Sre, "ops-1"));
    c.list_audit_records(req).await.unwrap().into_inner().records
}

/// (action, role, actor, target) of every record, newest first.
fn who(records: &[AuditRecord]) -> Vec<(String, String, String, String)> {
    records
        .iter()
        .map(|r| (r.method.clone(), r.actor_role.clone(), r.actor_subject.clone(), r.target.clone()))
        .collect()
}

fn row(method: &str, role: &str, subject: &str, target: &str) -> (String, String, String, String) {
    (method.into(), role.into(), subject.into(), target.into())
}

rapport_kit::on_both!(a_scripted_day_names_every_actor);

async fn a_scripted_day_names_every_actor(db: Db) {
    let clock = ManualClock::new(T0);
    let dbs = [
        fresh_database(db).await.unwrap(),
        fresh_database(db).await.unwrap(),
        fresh_database(db).await.unwrap(),
        fresh_database(db).await.unwrap(),
        fresh_database(db).await.unwrap(),
    ];
    let l = loyalty(any_port(), dbs[0].url(), None, &clock).await;
    let s = segmentation(any_port(), dbs[1].url(), l.addr, &clock).await;
    let f = feedback(any_port(), dbs[2].url(), &[], &clock, |c| {
        c.assign_interval = std::time::Duration::from_millis(50);
    })
    .await;
    let r = referrals(any_port(), dbs[3].url(), None, &clock, |_| {}).await;
    let i = improvement(any_port(), dbs[4].url(), None, &clock).await;

    // Loyalty: ann (agent) credits a goodwill gesture and earns points for a customer; bob (agent) reverses the earn.
    let ann = LoyaltyServiceClient::new(as_person(l.addr, Role::Agent, "ann"));
    let bob = LoyaltyServiceClient::new(as_person(l.addr, Role::Agent, "bob"));
    ann.clone()
        .enrol_member(lpb::EnrolMemberRequest {
            request_id: "en".into(),
            customer_id: "cust-1".into(),
            display_name: String::new(),
        })
        .await
        .unwrap();
    let adjust = lpb::AdjustPointsRequest {
        request_id: "goodwill".into(),
        customer_id: "cust-1".into(),
        points: 50,
        reason: "late parcel".into(),
    };
    let adjusted = ann.clone().adjust_points(adjust.clone()).await.unwrap().into_inner().entry.unwrap();
    ann.clone().adjust_points(adjust).await.unwrap(); // a retry: no second record
    let earned = ann
        .clone()
        .earn_points(lpb::EarnPointsRequest {
            request_id: "earn".into(),
            customer_id: "cust-1".into(),
            points: 30,
            reason: "in-store purchase".into(),
            reference: "till-4".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .entry
        .unwrap();
    bob.clone()
        .reverse_points(lpb::ReversePointsRequest {
            request_id: "rev".into(),
            customer_id: "cust-1".into(),
            entry_id: earned.entry_id.clone(),
            points: 0,
            reason: "till error".into(),
        })
        .await
        .unwrap();
    // A refused change (a debit below zero) leaves no record.
    let refused = bob
        .clone()
        .adjust_points(lpb::AdjustPointsRequest {
            request_id: "too-much".into(),
            customer_id: "cust-1".into(),
            points: -1_000_000,
            reason: "oops".into(),
        })
        .await;
    assert!(refused.is_err());

    // Marketing: mia creates an offer, a segment and a campaign; segmentation grants the offer in loyalty.
    LoyaltyServiceClient::new(as_person(l.addr, Role::Marketing, "mia"))
        .create_offer(lpb::CreateOfferRequest {
            request_id: "offer".into(),
            offer: Some(lpb::Offer {
                offer_id: "sorry".into(),
                title: "sorry".into(),
                kind: lpb::OfferKind::PercentOff.into(),
                value: 1000,
                sku: String::new(),
                tiers: vec![],
                start_time: Some(timestamp(T0)),
                end_time: Some(timestamp(T0 + 30 * 86_400_000)),
                max_uses_per_customer: 1,
            }),
        })
        .await
        .unwrap();
    SegmentationServiceClient::new(as_person(s.addr, Role::Sre, "ops-1"))
        .upsert_customer(spb::UpsertCustomerRequest {
            request_id: "c1".into(),
            customer_id: "cust-1".into(),
            attributes: [("country".to_string(), "FR".to_string())].into(),
            consent_marketing: true,
            consent_profiling: true,
        })
        .await
        .unwrap();
    let mut mia = SegmentationServiceClient::new(as_person(s.addr, Role::Marketing, "mia"));
    mia.create_segment(spb::CreateSegmentRequest {
        request_id: "seg".into(),
        segment: Some(spb::Segment {
            segment_id: "french".into(),
            display_name: "french".into(),
            condition: Some(spb::Condition {
                node: Some(Node::Attribute(spb::AttributeEquals { name: "country".into(), value: "FR".into() })),
            }),
            size: 0,
            create_time: None,
        }),
    })
    .await
    .unwrap();
    mia.trigger_campaign(spb::TriggerCampaignRequest {
        request_id: "camp".into(),
        campaign_id: "sorry-fr".into(),
        segment_id: "french".into(),
        offer_id: "sorry".into(),
        holdout_percent: 0,
    })
    .await
    .unwrap();
    eventually(60, "the campaign's grants", || {
        let mut mia = mia.clone();
        async move {
            let c = mia
                .get_campaign(spb::GetCampaignRequest { campaign_id: "sorry-fr".into() })
                .await
                .unwrap()
                .into_inner()
                .campaign
                .unwrap();
            c.state == i32::from(spb::CampaignState::Completed)
        }
    })
    .await;

    // Care: a case opened by ann waits (nobody online), the assigner gives it to cara when she comes online, cara
    // answers and resolves it.
    let case = FeedbackServiceClient::new(as_person(f.addr, Role::Agent, "ann"))
        .open_case(fpb::OpenCaseRequest {
            request_id: "case".into(),
            kind: fpb::CaseKind::Complaint.into(),
            customer_id: "cust-1".into(),
            channel: Channel::Email.into(),
            severity: fpb::Severity::Medium.into(),
            order_id: String::new(),
            text: "my parcel never arrived".into(),
            theme: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert!(case.assigned_agent.is_empty(), "nobody online yet");
    let mut cara = FeedbackServiceClient::new(as_person(f.addr, Role::Agent, "cara"));
    FeedbackServiceClient::new(as_person(f.addr, Role::Sre, "ops-1"))
        .put_agent(fpb::PutAgentRequest {
            request_id: "cara".into(),
            agent: Some(fpb::Agent {
                agent_id: "cara".into(),
                queue_ids: vec!["general".into()],
                capacity: 5,
                online: true,
                open_cases: 0,
            }),
        })
        .await
        .unwrap();
    eventually(60, "the assigner", || {
        let (mut cara, case_id) = (cara.clone(), case.case_id.clone());
        async move {
            let c = cara.get_case(fpb::GetCaseRequest { case_id }).await.unwrap().into_inner().case.unwrap();
            c.assigned_agent == "cara"
        }
    })
    .await;
    cara.respond_to_case(fpb::RespondToCaseRequest {
        request_id: "answer".into(),
        case_id: case.case_id.clone(),
        text: "a new parcel leaves today".into(),
    })
    .await
    .unwrap();
    cara.resolve_case(fpb::ResolveCaseRequest {
        request_id: "resolve".into(),
        case_id: case.case_id.clone(),
        resolution: "parcel resent".into(),
        ..Default::default()
    })
    .await
    .unwrap();

    // Referrals: mia sets up a programme, ann issues a code and records a sign-up, dan (agent) voids the referral.
    ReferralsServiceClient::new(as_person(r.addr, Role::Marketing, "mia"))
        .create_programme(rpb::CreateProgrammeRequest {
            request_id: "p".into(),
            programme_id: "friends".into(),
            rules: Some(rpb::ProgrammeRules {
                name: "Friends".into(),
                qualifying_event: rpb::QualifyingEvent::FirstPurchase.into(),
                referrer_reward: Some(rpb::Reward { points: 500, share_bps: 0 }),
                referee_reward: Some(rpb::Reward { points: 100, share_bps: 0 }),
                attribution_window_days: 30,
                approval_delay_days: 7,
                returns_window_days: 14,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let mut ann_r = ReferralsServiceClient::new(as_person(r.addr, Role::Agent, "ann"));
    let code = ann_r
        .issue_code(rpb::IssueCodeRequest {
            request_id: "code".into(),
            customer_id: "cust-1".into(),
            programme_id: "friends".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .code
        .unwrap()
        .code;
    let referral = ann_r
        .attribute_signup(rpb::AttributeSignupRequest {
            request_id: "signup".into(),
            code,
            referee_id: "cust-2".into(),
            signals: None,
        })
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    ReferralsServiceClient::new(as_person(r.addr, Role::Agent, "dan"))
        .void_referral(rpb::VoidReferralRequest {
            request_id: "void".into(),
            referral_id: referral.referral_id.clone(),
            reason: "same household".into(),
        })
        .await
        .unwrap();

    // Improvement: feedback's theme signal arrives; pia (marketing) proposes a fix and ships it.
    let signal = Event {
        event_id: "sig-1".into(),
        source: "feedback".into(),
        customer_id: "cust-1".into(),
        occurred_at: Some(timestamp(T0)),
        traceparent: String::new(),
        payload: Some(event::Payload::ThemeSignal(ThemeSignal {
            origin: "case".into(),
            reference: case.case_id.clone(),
            theme: "delivery".into(),
            confidence: 0.9,
            text: "my parcel never arrived".into(),
            severity: "medium".into(),
            channel: 1,
            nps: None,
            tier: "silver".into(),
            segments: vec![],
            kind: "complaint".into(),
        })),
    };
    EventSinkServiceClient::new(as_person(i.addr, Role::Feedback, "feedback"))
        .deliver_events(DeliverEventsRequest { events: vec![signal] })
        .await
        .unwrap();
    let mut pia = ImprovementServiceClient::new(as_person(i.addr, Role::Marketing, "pia"));
    let fix = pia
        .create_improvement(ipb::CreateImprovementRequest {
            request_id: "fix".into(),
            title: "track parcels".into(),
            theme_ids: vec!["delivery".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .improvement
        .unwrap();
    pia.change_improvement_status(ipb::ChangeImprovementStatusRequest {
        request_id: "ship".into(),
        improvement_id: fix.improvement_id.clone(),
        status: ipb::ImprovementStatus::Shipped.into(),
        note: "tracking live".into(),
        ..Default::default()
    })
    .await
    .unwrap();

    // An operator replays loyalty's parked events for segmentation (none are parked: still a recorded request).
    OutboxServiceClient::new(as_person(l.addr, Role::Sre, "ops-1"))
        .retry_parked_events(RetryParkedEventsRequest {
            request_id: "replay".into(),
            destination: "segmentation".into(),
            event_ids: vec![],
        })
        .await
        .unwrap();

    // Each trail names who did what.
    let all = ListAuditRecordsRequest::default;
    let loyalty_trail = who(&trail(l.addr, all()).await);
    let grants = loyalty_trail.iter().filter(|r| r.0 == "GrantOffers").collect::<Vec<_>>();
    assert!(!grants.is_empty(), "{loyalty_trail:?}");
    assert!(grants.iter().all(|g| g.1 == "segmentation" && g.2 == "segmentation"), "{grants:?}");
    let expected = [
        row("EnrolMember", "agent", "ann", ""),
        row("AdjustPoints", "agent", "ann", &format!("entry:{}", adjusted.entry_id)),
        row("EarnPoints", "agent", "ann", &format!("entry:{}", earned.entry_id)),
        row("ReversePoints", "agent", "bob", &format!("entry:{}", earned.entry_id)),
        row("CreateOffer", "marketing", "mia", ""),
        row("RetryParkedEvents", "sre", "ops-1", "destination:segmentation"),
    ];
    let people: Vec<_> = loyalty_trail.iter().filter(|r| r.0 != "GrantOffers").cloned().rev().collect();
    assert_eq!(people, expected, "oldest first here; one record per change, none for the retry or the refusal");

    let seg_trail: Vec<_> = who(&trail(s.addr, all()).await).into_iter().rev().collect();
    assert_eq!(
        seg_trail,
        [
            row("UpsertCustomer", "sre", "ops-1", ""),
            row("CreateSegment", "marketing", "mia", "segment:french"),
            row("TriggerCampaign", "marketing", "mia", "campaign:sorry-fr"),
        ]
    );

    let case_target = format!("case:{}", case.case_id);
    let fb_trail: BTreeSet<_> = who(&trail(f.addr, all()).await).into_iter().collect();
    for expected in [
        row("OpenCase", "agent", "ann", &case_target),
        row("PutAgent", "sre", "ops-1", "agent:cara"),
        row("AssignCase", "system", "feedback.assigner", &case_target),
        row("RespondToCase", "agent", "cara", &case_target),
        row("ResolveCase", "agent", "cara", &case_target),
    ] {
        assert!(fb_trail.contains(&expected), "{expected:?} missing from {fb_trail:?}");
    }

    let ref_trail = who(&trail(r.addr, all()).await);
    assert_eq!(ref_trail[0], row("VoidReferral", "agent", "dan", &format!("referral:{}", referral.referral_id)));
    assert!(ref_trail.contains(&row("CreateProgramme", "marketing", "mia", "")));

    let imp_trail: Vec<_> = who(&trail(i.addr, all()).await).into_iter().rev().collect();
    let imp_target = format!("improvement:{}", fix.improvement_id);
    assert_eq!(
        imp_trail,
        [
            row("CreateImprovement", "marketing", "pia", &imp_target),
            row("ChangeImprovementStatus", "marketing", "pia", &imp_target)
        ]
    );

    // Filed by customer: what was done about cust-1 in loyalty, and by bob; the customer's id is never shown.
    let about = trail(l.addr, ListAuditRecordsRequest { customer_id: "cust-1".into(), ..all() }).await;
    assert!(about.iter().any(|r| r.method == "ReversePoints") && about.iter().all(|r| r.customers == 1));
    assert_eq!(about.len(), loyalty_trail.len() - 2, "all but the offer's creation and the replay");
    let by_bob = trail(l.addr, ListAuditRecordsRequest { actor_subject: "bob".into(), ..all() }).await;
    assert_eq!(who(&by_bob), [row("ReversePoints", "agent", "bob", &format!("entry:{}", earned.entry_id))]);
    let voided = trail(r.addr, ListAuditRecordsRequest { customer_id: "cust-2".into(), ..all() }).await;
    assert_eq!(voided.iter().map(|r| r.method.as_str()).collect::<Vec<_>>(), ["VoidReferral", "AttributeSignup"]);
    assert_eq!(voided[0].customers, 2, "the referrer and the referee");

    // Only operators read the trail.
    for (role, subject) in
        [(Role::Agent, "ann"), (Role::Marketing, "mia"), (Role::Reader, "rex"), (Role::Loyalty, "loyalty")]
    {
        let e = AuditServiceClient::new(as_person(l.addr, role, subject)).list_audit_records(all()).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{role:?}");
    }

    i.stop().await;
    r.stop().await;
    f.stop().await;
    s.stop().await;
    l.stop().await;
}
