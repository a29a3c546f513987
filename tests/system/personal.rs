//! Personal fields by role, from the matrices: every role a service's matrix lets call a read that carries personal
//! data (a member's display name, a customer's attributes and an attribute's value in an explanation, a survey
//! comment, a case's messages, a customer's words in improvement) gets them exactly when the matrix's `@personal`
//! line lists it, and an empty field otherwise; the rest of the answer is the same for everyone.
use std::net::SocketAddr;

use rapport_kit::{
    auth::{Policy, Role},
    client::OutgoingChannel,
    clock::{ManualClock, timestamp},
    db::testing::fresh_database,
};
use rapport_proto::{
    common::v1::Channel,
    events::v1::{DeliverEventsRequest, Event, ThemeSignal, event, event_sink_service_client::EventSinkServiceClient},
    feedback::v1::{self as fpb, feedback_service_client::FeedbackServiceClient},
    improvement::v1::{self as ipb, improvement_service_client::ImprovementServiceClient},
    loyalty::v1::{self as lpb, loyalty_service_client::LoyaltyServiceClient},
    segmentation::v1::{self as spb, condition::Node, segmentation_service_client::SegmentationServiceClient},
};

use crate::support::{Db, T0, any_port, feedback, improvement, loyalty, segmentation};

const CUSTOMER: &str = "cust-1";
const NAME: &str = "Ada Lovelace";
const COMMENT: &str = "the courier was rude to me";
const COMPLAINT: &str = "my parcel never arrived at 12 rue des Lilas";

/// A channel to `addr` as `role` (a customer's token is the customer's own).
fn as_role(addr: SocketAddr, role: Role) -> OutgoingChannel {
    let subject = if role == Role::Customer { CUSTOMER } else { role.as_str() };
    crate::support::channel_as(addr, role, subject)
}

/// The roles `policy` lets call `path`, each with whether it must see the personal fields; both kinds present, so
/// the check cannot pass by showing everything or nothing.
fn roles_of(policy: &Policy, path: &str) -> Vec<(Role, bool)> {
    let roles: Vec<(Role, bool)> =
        Role::ALL.into_iter().filter(|r| policy.allows(path, *r)).map(|r| (r, policy.sees_personal(path, r))).collect();
    assert!(roles.iter().any(|(_, sees)| *sees) && roles.iter().any(|(_, sees)| !sees), "{path}: {roles:?}");
    roles
}

rapport_kit::on_both!(staff_roles_see_personal_fields_only_where_the_matrix_says);

async fn staff_roles_see_personal_fields_only_where_the_matrix_says(db: Db) {
    let clock = ManualClock::new(T0);
    let dbs = [
        fresh_database(db).await.unwrap(),
        fresh_database(db).await.unwrap(),
        fresh_database(db).await.unwrap(),
        fresh_database(db).await.unwrap(),
    ];
    let l = loyalty(any_port(), dbs[0].url(), None, &clock).await;
    let s = segmentation(any_port(), dbs[1].url(), l.addr, &clock).await;
    // Feedback publishes to no one (on either transport): the test delivers improvement's signal itself.
    let f = feedback(any_port(), dbs[2].url(), &[], &clock, |c| c.subscribers.clear()).await;
    let i = improvement(any_port(), dbs[3].url(), None, &clock).await;

    // What the customer gave: a name, an attribute, a survey comment, a complaint; an agent's suggestion.
    LoyaltyServiceClient::new(as_role(l.addr, Role::Agent))
        .enrol_member(lpb::EnrolMemberRequest {
            request_id: "en".into(),
            customer_id: CUSTOMER.into(),
            display_name: NAME.into(),
        })
        .await
        .unwrap();
    let mut sc = SegmentationServiceClient::new(as_role(s.addr, Role::Sre));
    sc.upsert_customer(spb::UpsertCustomerRequest {
        request_id: "c1".into(),
        customer_id: CUSTOMER.into(),
        attributes: [("city".to_string(), "Lyon".to_string())].into(),
        consent_marketing: true,
        consent_profiling: true,
    })
    .await
    .unwrap();
    sc.create_segment(spb::CreateSegmentRequest {
        request_id: "seg".into(),
        segment: Some(spb::Segment {
            segment_id: "parisians".into(),
            display_name: "parisians".into(),
            condition: Some(spb::Condition {
                node: Some(Node::Attribute(spb::AttributeEquals { name: "city".into(), value: "Paris".into() })),
            }),
            size: 0,
            create_time: None,
        }),
    })
    .await
    .unwrap();
    let mut fc = FeedbackServiceClient::new(as_role(f.addr, Role::Agent));
    let survey = fc
        .schedule_survey(fpb::ScheduleSurveyRequest {
            request_id: "s".into(),
            customer_id: CUSTOMER.into(),
            touchpoint: "delivery".into(),
            channel: Channel::Email.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .survey
        .unwrap();
    FeedbackServiceClient::new(as_role(f.addr, Role::Customer))
        .record_response(fpb::RecordResponseRequest {
            request_id: "a".into(),
            survey_id: survey.survey_id.clone(),
            score: 8,
            comment: COMMENT.into(),
        })
        .await
        .unwrap();
    let case = fc
        .open_case(fpb::OpenCaseRequest {
            request_id: "case".into(),
            kind: fpb::CaseKind::Complaint.into(),
            customer_id: CUSTOMER.into(),
            channel: Channel::Email.into(),
            severity: fpb::Severity::High.into(),
            order_id: String::new(),
            text: COMPLAINT.into(),
            theme: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    let signal = Event {
        event_id: "sig-1".into(),
        source: "feedback".into(),
        customer_id: CUSTOMER.into(),
        occurred_at: Some(timestamp(T0)),
        traceparent: String::new(),
        payload: Some(event::Payload::ThemeSignal(ThemeSignal {
            origin: "case".into(),
            reference: case.case_id.clone(),
            theme: "delivery".into(),
            confidence: 0.9,
            text: COMPLAINT.into(),
            severity: "high".into(),
            channel: Channel::Email.into(),
            nps: None,
            tier: "unknown".into(),
            segments: vec![],
            kind: "complaint".into(),
        })),
    };
    EventSinkServiceClient::new(as_role(i.addr, Role::Feedback))
        .deliver_events(DeliverEventsRequest { events: vec![signal] })
        .await
        .unwrap();
    ImprovementServiceClient::new(as_role(i.addr, Role::Agent))
        .submit_suggestion(ipb::SubmitSuggestionRequest {
            request_id: "idea".into(),
            text: "offer a delivery slot".into(),
            theme_id: "delivery".into(),
        })
        .await
        .unwrap();

    // Loyalty: GetMember.
    let policy = rapport_loyalty::app::policy().unwrap();
    for (role, sees) in roles_of(&policy, "/rapport.loyalty.v1.LoyaltyService/GetMember") {
        let m = LoyaltyServiceClient::new(as_role(l.addr, role))
            .get_member(lpb::GetMemberRequest { customer_id: CUSTOMER.into() })
            .await
            .unwrap()
            .into_inner()
            .member
            .unwrap();
        assert_eq!(m.display_name, if sees { NAME } else { "" }, "{role}");
        assert_eq!(m.customer_id, CUSTOMER, "{role}: the rest of the member is there");
    }

    // Segmentation: GetCustomerFeatures and ExplainMembership.
    let policy = rapport_segmentation::app::policy().unwrap();
    for (role, sees) in roles_of(&policy, "/rapport.segmentation.v1.SegmentationService/GetCustomerFeatures") {
        let feat = SegmentationServiceClient::new(as_role(s.addr, role))
            .get_customer_features(spb::GetCustomerFeaturesRequest { customer_id: CUSTOMER.into() })
            .await
            .unwrap()
            .into_inner()
            .features
            .unwrap();
        assert_eq!(feat.attributes.get("city").map(String::as_str), sees.then_some("Lyon"), "{role}");
        assert_eq!(feat.customer_id, CUSTOMER, "{role}");
    }
    for (role, sees) in roles_of(&policy, "/rapport.segmentation.v1.SegmentationService/ExplainMembership") {
        let ex = SegmentationServiceClient::new(as_role(s.addr, role))
            .explain_membership(spb::ExplainMembershipRequest {
                customer_id: CUSTOMER.into(),
                segment_id: "parisians".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(!ex.member, "{role}");
        let [cond] = &ex.conditions[..] else { panic!("{role}: one condition: {:?}", ex.conditions) };
        assert!(!cond.held && cond.description.contains("Paris"), "{role}: the rule and its outcome are for all");
        assert_eq!(cond.actual.contains("Lyon"), sees, "{role}: {:?}", cond.actual);
    }

    // Feedback: GetSurvey, GetCase, GetCustomerContext.
    let policy = rapport_feedback::app::policy().unwrap();
    for (role, sees) in roles_of(&policy, "/rapport.feedback.v1.FeedbackService/GetSurvey") {
        let got = FeedbackServiceClient::new(as_role(f.addr, role))
            .get_survey(fpb::GetSurveyRequest { survey_id: survey.survey_id.clone() })
            .await
            .unwrap()
            .into_inner()
            .survey
            .unwrap();
        let answer = got.answer.unwrap();
        assert_eq!(answer.comment, if sees { COMMENT } else { "" }, "{role}");
        assert_eq!(answer.score, 8, "{role}: the score is for all");
    }
    for (role, sees) in roles_of(&policy, "/rapport.feedback.v1.FeedbackService/GetCase") {
        let got = FeedbackServiceClient::new(as_role(f.addr, role))
            .get_case(fpb::GetCaseRequest { case_id: case.case_id.clone() })
            .await
            .unwrap()
            .into_inner()
            .case
            .unwrap();
        let texts: Vec<&str> = got.messages.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, [if sees { COMPLAINT } else { "" }], "{role}");
        assert_eq!(got.messages[0].author, "customer", "{role}");
    }
    for (role, sees) in roles_of(&policy, "/rapport.feedback.v1.FeedbackService/GetCustomerContext") {
        let ctx = FeedbackServiceClient::new(as_role(f.addr, role))
            .get_customer_context(fpb::GetCustomerContextRequest { customer_id: CUSTOMER.into() })
            .await
            .unwrap()
            .into_inner();
        let comments: Vec<&str> =
            ctx.nps_history.iter().filter_map(|s| s.answer.as_ref()).map(|a| a.comment.as_str()).collect();
        assert_eq!(comments, [if sees { COMMENT } else { "" }], "{role}");
        assert_eq!(ctx.open_cases.len(), 1, "{role}");
    }

    // Improvement: ListSignals (a customer's words are personal, an agent's suggestion is not).
    let policy = rapport_improvement::app::policy().unwrap();
    for (role, sees) in roles_of(&policy, "/rapport.improvement.v1.ImprovementService/ListSignals") {
        let signals = ImprovementServiceClient::new(as_role(i.addr, role))
            .list_signals(ipb::ListSignalsRequest { theme_id: "delivery".into(), ..Default::default() })
            .await
            .unwrap()
            .into_inner()
            .signals;
        let mut texts: Vec<(&str, &str)> = signals.iter().map(|s| (s.customer_id.as_str(), s.text.as_str())).collect();
        texts.sort();
        let complaint = if sees { COMPLAINT } else { "" };
        assert_eq!(texts, [("", "offer a delivery slot"), (CUSTOMER, complaint)], "{role}");
    }
}
