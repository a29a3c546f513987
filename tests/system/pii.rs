//! The PII scan: a workload with seeded names, e-mail addresses and phone numbers across the five services — a
//! member's display name, a customer's attributes, a complaint, a survey comment, a customer's message, a sign-up's
//! e-mail, a blocked address, a suggestion — accepted and refused (too long, badly formed), with feedback's events
//! delivered to segmentation and improvement; no seeded value appears in any log line (at the default level),
//! any exported span or any error's message or details.

use rapport_kit::{auth::Role, clock::ManualClock, db::testing::fresh_database};
use rapport_proto::{
    common::v1::Channel,
    feedback::v1::{self as fpb, feedback_service_client::FeedbackServiceClient},
    improvement::v1::{self as ipb, improvement_service_client::ImprovementServiceClient},
    loyalty::v1::{self as lpb, loyalty_service_client::LoyaltyServiceClient},
    referrals::v1::{self as rpb, referrals_service_client::ReferralsServiceClient},
    segmentation::v1::{self as spb, segmentation_service_client::SegmentationServiceClient},
};
use tonic::Status;

use crate::support::{
    Db, T0, answer_survey, any_port, channel, eventually, exporter, feedback, improvement, logs, loyalty, referrals,
    segmentation,
};

/// The seeded personal values; each must never be seen outside the data it was given as.
const NAME: &str = "Zéphyrine Quillfeather";
const NAME_2: &str = "Barnabé Oukrainetz";
const EMAIL: &str = "zephyrine.quill@example.org";
const EMAIL_2: &str = "b.oukrainetz+care@example.net";
const PHONE: &str = "+33 6 12 34 56 78";
const PHONE_2: &str = "+44 7700 900461";

/// What a scan looks for: each seeded value whole and its most telling parts (a surname, an address's local part,
/// a number's digits written without spaces).
fn needles() -> Vec<String> {
    let mut n: Vec<String> = [NAME, NAME_2, EMAIL, EMAIL_2, PHONE, PHONE_2].iter().map(|s| s.to_string()).collect();
    n.extend(
        ["Quillfeather", "Oukrainetz", "zephyrine.quill", "b.oukrainetz", "612345678", "7700900461", "7700 900461"]
            .map(String::from),
    );
    n
}

/// Every needle found in `haystack`.
fn found(haystack: &str) -> Vec<String> {
    needles().into_iter().filter(|n| haystack.contains(n.as_str())).collect()
}

/// What a refusal shows its caller: the message, the details (protobuf bytes read as text) and the metadata.
fn shown(e: &Status) -> String {
    format!("{} {} {:?}", e.message(), String::from_utf8_lossy(e.details()), e.metadata())
}

/// A complaint that names the customer and says how to reach them.
fn complaint() -> String {
    format!("I am {NAME}, my parcel never arrived. Call me on {PHONE} or write to {EMAIL}.")
}

rapport_kit::on_both!(no_seeded_personal_value_leaves_the_data);

async fn no_seeded_personal_value_leaves_the_data(db: Db) {
    let spans = exporter();
    let clock = ManualClock::new(T0);
    let mut dbs = Vec::new();
    for _ in 0..5 {
        dbs.push(fresh_database(db).await.unwrap());
    }
    let l = loyalty(any_port(), dbs[0].url(), None, &clock).await;
    let s = segmentation(any_port(), dbs[1].url(), l.addr, &clock).await;
    let i = improvement(any_port(), dbs[4].url(), None, &clock).await;
    let subscribers = [("segmentation", format!("http://{}", s.addr)), ("improvement", format!("http://{}", i.addr))];
    let f = feedback(any_port(), dbs[2].url(), &subscribers, &clock, |_| {}).await;
    let r = referrals(any_port(), dbs[3].url(), None, &clock, |_| {}).await;
    let mut refusals: Vec<Status> = Vec::new();

    // Loyalty: a member with a display name; one too long, one made of a name and an address.
    let mut lc = LoyaltyServiceClient::new(channel(l.addr, Role::Agent));
    let enrol = |id: &str, name: String| lpb::EnrolMemberRequest {
        request_id: format!("en-{id}"),
        customer_id: id.into(),
        display_name: name,
    };
    lc.enrol_member(enrol("pii-1", NAME.into())).await.unwrap();
    refusals.push(lc.enrol_member(enrol("pii-2", format!("{NAME} {EMAIL} ").repeat(10))).await.unwrap_err());
    let shown_name = lc
        .get_member(lpb::GetMemberRequest { customer_id: "pii-1".into() })
        .await
        .unwrap()
        .into_inner()
        .member
        .unwrap()
        .display_name;
    assert_eq!(shown_name, NAME, "the name is kept where it belongs");

    // Segmentation: attributes holding a name, an address and a number; an attribute named after an address and
    // one whose value is too long.
    let mut sc = SegmentationServiceClient::new(channel(s.addr, Role::Sre));
    let upsert = |id: &str, attributes: Vec<(String, String)>| spb::UpsertCustomerRequest {
        request_id: format!("up-{id}"),
        customer_id: id.into(),
        attributes: attributes.into_iter().collect(),
        consent_marketing: true,
        consent_profiling: true,
    };
    let personal = vec![
        ("name".to_string(), NAME.to_string()),
        ("email".to_string(), EMAIL.to_string()),
        ("phone".to_string(), PHONE.to_string()),
    ];
    sc.upsert_customer(upsert("pii-1", personal)).await.unwrap();
    let named_after = vec![(format!("contact of {NAME_2} at {EMAIL_2} on {PHONE_2}"), "yes".to_string())];
    refusals.push(sc.upsert_customer(upsert("pii-2", named_after)).await.unwrap_err());
    let too_long = vec![("note".to_string(), format!("{NAME_2} {EMAIL_2} {PHONE_2} ").repeat(20))];
    refusals.push(sc.upsert_customer(upsert("pii-2", too_long)).await.unwrap_err());
    let bad_customer = spb::UpsertCustomerRequest { customer_id: EMAIL_2.into(), ..upsert("pii-3", vec![]) };
    refusals.push(sc.upsert_customer(bad_customer).await.unwrap_err());

    // Feedback: a complaint, a comment and a customer's message that name and reach the customer; a complaint too
    // long; a survey answered by a detractor (a follow-up case, events to segmentation and improvement).
    let mut fc = FeedbackServiceClient::new(channel(f.addr, Role::Agent));
    let open = |id: &str, text: String| fpb::OpenCaseRequest {
        request_id: format!("case-{id}"),
        kind: fpb::CaseKind::Complaint.into(),
        customer_id: id.into(),
        channel: Channel::Email.into(),
        severity: fpb::Severity::High.into(),
        order_id: String::new(),
        text,
        theme: String::new(),
    };
    let case = fc.open_case(open("pii-1", complaint())).await.unwrap().into_inner().case.unwrap();
    fc.add_customer_message(fpb::AddCustomerMessageRequest {
        request_id: "msg".into(),
        case_id: case.case_id.clone(),
        text: format!("Still nothing. {NAME_2} here, my husband: {PHONE_2}, {EMAIL_2}"),
    })
    .await
    .unwrap();
    refusals.push(fc.open_case(open("pii-2", complaint().repeat(100))).await.unwrap_err());
    refusals.push(fc.open_case(open(&format!("{EMAIL} {PHONE}"), complaint())).await.unwrap_err());
    answer_survey(f.addr, "pii-1", 2, &format!("Awful. Ask {NAME} at {EMAIL} or {PHONE}")).await;

    // Referrals: a sign-up with the referee's address; a blocked address; a badly formed payment hash.
    let mut rc = ReferralsServiceClient::new(channel(r.addr, Role::Sre));
    rc.create_programme(rpb::CreateProgrammeRequest {
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
    let code = crate::support::issue_code(r.addr, "pii-1", "friends", "").await;
    let signup = |id: &str, signals: rpb::Signals| rpb::AttributeSignupRequest {
        request_id: format!("su-{id}"),
        code: code.clone(),
        referee_id: id.into(),
        signals: Some(signals),
    };
    rc.attribute_signup(signup("pii-4", rpb::Signals { email: EMAIL_2.into(), ..Default::default() })).await.unwrap();
    let bad_hash = rpb::Signals { email: EMAIL.into(), payment_hash: format!("{NAME} {PHONE}"), ..Default::default() };
    refusals.push(rc.attribute_signup(signup("pii-5", bad_hash)).await.unwrap_err());
    rc.set_block_list(rpb::SetBlockListRequest {
        request_id: "block".into(),
        block_list: None,
        emails: vec![EMAIL_2.into()],
    })
    .await
    .unwrap();
    refusals.push(
        rc.set_block_list(rpb::SetBlockListRequest {
            request_id: "block-bad".into(),
            block_list: None,
            emails: vec![format!("{NAME} <{EMAIL}> {PHONE}").repeat(20)],
        })
        .await
        .unwrap_err(),
    );

    // Improvement: a suggestion signed with a name and a number; one too long.
    let mut ic = ImprovementServiceClient::new(channel(i.addr, Role::Agent));
    let suggest = |id: &str, text: String| ipb::SubmitSuggestionRequest {
        request_id: format!("sg-{id}"),
        text,
        theme_id: String::new(),
    };
    ic.submit_suggestion(suggest("1", format!("Let customers track parcels. — {NAME_2}, {PHONE_2}"))).await.unwrap();
    refusals.push(ic.submit_suggestion(suggest("2", format!("{NAME_2} {EMAIL_2} ").repeat(100))).await.unwrap_err());

    // Feedback's events reach segmentation and improvement (the complaint's text goes to improvement as a theme
    // signal, the answer to segmentation as a behaviour event).
    let fconn = rapport_kit::db::connect(dbs[2].url()).await.unwrap();
    eventually(60, "feedback's events delivered", || async {
        rapport_outbox::pending(&fconn, "segmentation").await.unwrap() == 0
            && rapport_outbox::pending(&fconn, "improvement").await.unwrap() == 0
    })
    .await;
    assert_eq!(rapport_outbox::admin::parked(&fconn, "improvement").await.unwrap(), 0);
    use rapport_outbox::entities::outbox_event::{Column, Entity};
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let sent = Entity::find().filter(Column::Destination.eq("improvement")).count(&fconn).await.unwrap();
    assert!(sent >= 2, "the complaint's and the comment's theme signals went to improvement ({sent})");

    // Nothing seeded shows in a refusal.
    assert_eq!(refusals.len(), 9);
    for e in &refusals {
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{}", e.message());
        let leaked = found(&shown(e));
        assert!(leaked.is_empty(), "a refusal shows {leaked:?}: {}", e.message());
    }

    // Nor in a span: every span this process exported (its name, attributes, events, links and status).
    let exported = spans.get_finished_spans().unwrap();
    assert!(
        exported.iter().any(|s| s.name.contains("OpenCase")) && exported.iter().any(|s| s.name == "outbox.deliver"),
        "the workload's spans were exported"
    );
    for span in &exported {
        let text = format!("{span:?}");
        let leaked = found(&text);
        assert!(leaked.is_empty(), "span {} shows {leaked:?}", span.name);
    }

    // Nor in a log line.
    tracing::info!(canary = "pii-scan-canary", "the scan reads this process's log lines");
    let lines = logs();
    assert!(lines.contains("pii-scan-canary"), "the log capture works");
    for line in lines.lines() {
        let leaked = found(line);
        assert!(leaked.is_empty(), "a log line shows {leaked:?}: {line}");
    }

    r.stop().await;
    f.stop().await;
    i.stop().await;
    s.stop().await;
    l.stop().await;
}
