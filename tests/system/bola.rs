//! Object-level authorisation: a customer's token reaches its own data through every self-service RPC (own member
//! view, transactions and offers; own referral code and stats; answering its own survey; opening a case), and
//! 1,000 other customers' ids — existing, missing and random — get one identical refusal on every one of them
//! (same code, message and details: no oracle of who exists). Nothing the refused calls asked for was written, and
//! the RPCs outside self-service stay closed to a customer whatever id it names.
use std::sync::Arc;

use futures::StreamExt;
use rapport_kit::{
    auth::Role,
    client::OutgoingChannel,
    clock::{ManualClock, timestamp},
    db::testing::fresh_database,
    testing::TestServer,
};
use rapport_proto::{
    common::v1::{Channel, Money},
    feedback::v1::{self as fpb, feedback_service_client::FeedbackServiceClient},
    loyalty::v1::{self as lpb, loyalty_service_client::LoyaltyServiceClient},
    referrals::v1::{self as rpb, referrals_service_client::ReferralsServiceClient},
};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::support::{Db, T0, any_port, auth, channel, issue_code, loyalty, referrals, serve_config};

rapport_kit::on_both!(a_customer_reaches_only_its_own_data);

const ME: &str = "c-own";
/// Other customers that exist in every service.
const NEIGHBOURS: usize = 50;
const PROBES: usize = 1_000;

/// A client acting as customer `subject`.
fn as_customer(addr: std::net::SocketAddr, subject: &str) -> OutgoingChannel {
    crate::support::channel_as(addr, Role::Customer, subject)
}

struct Clients {
    loyalty: LoyaltyServiceClient<OutgoingChannel>,
    referrals: ReferralsServiceClient<OutgoingChannel>,
    feedback: FeedbackServiceClient<OutgoingChannel>,
}

/// What another customer's data is named by: its customer id, one of its surveys, one of its codes.
#[derive(Clone)]
struct Probe {
    n: usize,
    customer: String,
    survey: String,
    code: String,
}

fn complaint(request_id: String, customer: &str) -> fpb::OpenCaseRequest {
    fpb::OpenCaseRequest {
        request_id,
        kind: fpb::CaseKind::Complaint.into(),
        customer_id: customer.into(),
        channel: Channel::Chat.into(),
        severity: fpb::Severity::Medium.into(),
        order_id: String::new(),
        text: "my parcel never arrived".into(),
        theme: String::new(),
    }
}

/// Every self-service RPC asked about `p`; each answer by name.
async fn ask(mut c: Clients, p: Probe) -> Vec<(&'static str, Result<(), Status>)> {
    let customer = p.customer.clone();
    vec![
        ("GetMember", c.loyalty.get_member(lpb::GetMemberRequest { customer_id: customer.clone() }).await.map(drop)),
        (
            "ListTransactions",
            c.loyalty
                .list_transactions(lpb::ListTransactionsRequest {
                    customer_id: customer.clone(),
                    page_size: 10,
                    page_token: String::new(),
                })
                .await
                .map(drop),
        ),
        (
            "ListMemberOffers",
            c.loyalty
                .list_member_offers(lpb::ListMemberOffersRequest { customer_id: customer.clone(), only_usable: false })
                .await
                .map(drop),
        ),
        (
            "IssueCode",
            c.referrals
                .issue_code(rpb::IssueCodeRequest {
                    request_id: format!("issue-{}", p.n),
                    customer_id: customer.clone(),
                    programme_id: "friends".into(),
                    ..Default::default()
                })
                .await
                .map(drop),
        ),
        (
            "GetAmbassadorStats",
            c.referrals
                .get_ambassador_stats(rpb::GetAmbassadorStatsRequest {
                    customer_id: customer.clone(),
                    programme_id: "friends".into(),
                })
                .await
                .map(drop),
        ),
        ("GetCode", c.referrals.get_code(rpb::GetCodeRequest { code: p.code.clone() }).await.map(drop)),
        ("GetSurvey", c.feedback.get_survey(fpb::GetSurveyRequest { survey_id: p.survey.clone() }).await.map(drop)),
        (
            "RecordResponse",
            c.feedback
                .record_response(fpb::RecordResponseRequest {
                    request_id: format!("answer-{}", p.n),
                    survey_id: p.survey.clone(),
                    score: 0,
                    comment: "terrible".into(),
                })
                .await
                .map(drop),
        ),
        ("OpenCase", c.feedback.open_case(complaint(format!("case-{}", p.n), &customer)).await.map(drop)),
    ]
}

async fn a_customer_reaches_only_its_own_data(db: Db) {
    let clock = ManualClock::new(T0);
    let (l_db, r_db, f_db) =
        (fresh_database(db).await.unwrap(), fresh_database(db).await.unwrap(), fresh_database(db).await.unwrap());
    let l = loyalty(any_port(), l_db.url(), None, &clock).await;
    let r = referrals(any_port(), r_db.url(), None, &clock, |_| {}).await;
    let mut config = rapport_feedback::app::Config::local(f_db.url());
    config.common.serve = serve_config();
    let f = TestServer::start::<rapport_feedback::app::Feedback>(config, auth(), Arc::new(clock.clone()))
        .await
        .expect("feedback");

    // Staff set up the customer and its neighbours in every service.
    let mut staff_l = LoyaltyServiceClient::new(channel(l.addr, Role::Sre));
    let mut staff_f = FeedbackServiceClient::new(channel(f.addr, Role::Agent));
    ReferralsServiceClient::new(channel(r.addr, Role::Marketing))
        .create_programme(rpb::CreateProgrammeRequest {
            request_id: "p".into(),
            programme_id: "friends".into(),
            rules: Some(rpb::ProgrammeRules {
                name: "Friends".into(),
                qualifying_event: rpb::QualifyingEvent::FirstPurchase.into(),
                referrer_reward: Some(rpb::Reward { points: 500, share_bps: 0 }),
                referee_reward: Some(rpb::Reward { points: 100, share_bps: 0 }),
                attribution_window_days: 30,
                active_from: Some(timestamp(T0)),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let mut surveys = Vec::new();
    let mut codes = Vec::new();
    let everyone: Vec<String> =
        std::iter::once(ME.to_string()).chain((0..NEIGHBOURS).map(|i| format!("c-{i}"))).collect();
    for who in &everyone {
        staff_l
            .enrol_member(lpb::EnrolMemberRequest {
                request_id: format!("e-{who}"),
                customer_id: who.clone(),
                display_name: String::new(),
            })
            .await
            .unwrap();
        staff_l
            .record_purchase(lpb::RecordPurchaseRequest {
                request_id: format!("b-{who}"),
                customer_id: who.clone(),
                order_id: format!("o-{who}"),
                amount: Some(Money { currency_code: "EUR".into(), units: 40, nanos: 0 }),
                channel: 1,
                recurring: false,
            })
            .await
            .unwrap();
        let survey = staff_f
            .schedule_survey(fpb::ScheduleSurveyRequest {
                request_id: format!("s-{who}"),
                customer_id: who.clone(),
                touchpoint: "delivery".into(),
                channel: Channel::Email.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .survey
            .unwrap();
        surveys.push(survey.survey_id);
        if who != ME {
            codes.push(issue_code(r.addr, who, "friends", "").await);
        }
    }
    let mine = Clients {
        loyalty: LoyaltyServiceClient::new(as_customer(l.addr, ME)),
        referrals: ReferralsServiceClient::new(as_customer(r.addr, ME)),
        feedback: FeedbackServiceClient::new(as_customer(f.addr, ME)),
    };
    let clients = || Clients {
        loyalty: mine.loyalty.clone(),
        referrals: mine.referrals.clone(),
        feedback: mine.feedback.clone(),
    };

    // Its own data, through every self-service RPC (its code issued by itself first: asking again is a replay).
    let mut own_code = clients().referrals;
    let code = own_code
        .issue_code(rpb::IssueCodeRequest {
            request_id: "issue-0".into(),
            customer_id: ME.into(),
            programme_id: "friends".into(),
            ..Default::default()
        })
        .await
        .expect("its own code")
        .into_inner()
        .code
        .unwrap()
        .code;
    let own = Probe { n: 0, customer: ME.into(), survey: surveys[0].clone(), code };
    for (rpc, answer) in ask(clients(), own).await {
        answer.unwrap_or_else(|e| panic!("{rpc} on its own data: {e:?}"));
    }

    // A thousand other customers: neighbours that exist, ids nobody has, random ones; their surveys and codes, or
    // ones that do not exist.
    let probes: Vec<Probe> = (0..PROBES)
        .map(|n| {
            let existing = n < NEIGHBOURS;
            let random = uuid::Uuid::new_v4().simple().to_string();
            let customer = match n % 3 {
                _ if existing => format!("c-{n}"),
                0 => format!("missing-{n}"),
                1 => random.clone(),
                _ => format!("c-{}", NEIGHBOURS + n),
            };
            let (survey, code) = if existing {
                (surveys[n + 1].clone(), codes[n].clone())
            } else {
                (random.clone(), format!("NOPE-{}", &random[..12]))
            };
            Probe { n: n + 1, customer, survey, code }
        })
        .collect();
    let answers: Vec<_> = futures::stream::iter(probes)
        .map(|p| ask(clients(), p))
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(answers.len(), PROBES * 9);
    // One refusal per service (each names its own ErrorInfo domain), identical across every RPC and every id.
    let service = |rpc: &str| match rpc {
        "GetMember" | "ListTransactions" | "ListMemberOffers" => "loyalty",
        "IssueCode" | "GetAmbassadorStats" | "GetCode" => "referrals",
        _ => "feedback",
    };
    let mut first: std::collections::BTreeMap<&str, Status> = std::collections::BTreeMap::new();
    for (rpc, answer) in &answers {
        let e = answer.as_ref().err().unwrap_or_else(|| panic!("{rpc}: another customer's data was answered"));
        let reference = first.entry(service(rpc)).or_insert_with(|| e.clone());
        assert_eq!(
            (e.code(), e.message(), e.details()),
            (reference.code(), reference.message(), reference.details()),
            "{rpc}: a refusal unlike the others is an oracle"
        );
    }
    assert_eq!(first.len(), 3);
    for (svc, e) in &first {
        assert_eq!(e.code(), Code::PermissionDenied, "{svc}");
        let info = e.get_error_details().error_info().cloned().expect("error info");
        assert_eq!((info.reason.as_str(), info.domain.as_str()), ("NOT_OWN_DATA", *svc));
    }

    // Nothing the refused calls asked for was written: the neighbours' surveys are unanswered, every case is the
    // customer's own, no code was issued to anyone it named.
    for survey in &surveys[1..] {
        let s = staff_f.get_survey(fpb::GetSurveyRequest { survey_id: survey.clone() }).await.unwrap().into_inner();
        assert!(s.survey.unwrap().answer.is_none(), "a neighbour's survey was answered");
    }
    let cases = staff_f.list_cases(fpb::ListCasesRequest { page_size: 100, ..Default::default() }).await.unwrap();
    let owners: Vec<String> = cases.into_inner().cases.into_iter().map(|c| c.customer_id).collect();
    // Its own complaint and the follow-up its own detractor answer opened; nobody else's.
    assert_eq!(owners, vec![ME.to_string(); 2], "cases opened for others");
    let mut staff_r = ReferralsServiceClient::new(channel(r.addr, Role::Agent));
    for who in ["missing-51", "c-103"] {
        let e = staff_r
            .get_ambassador_stats(rpb::GetAmbassadorStatsRequest {
                customer_id: who.into(),
                programme_id: "friends".into(),
            })
            .await;
        assert!(e.is_err_and(|e| e.code() == Code::NotFound), "{who} became an ambassador");
    }

    // Outside self-service a customer is refused by role, whoever it names.
    let mut c = clients();
    let earn = c
        .loyalty
        .adjust_points(lpb::AdjustPointsRequest {
            request_id: "x".into(),
            customer_id: ME.into(),
            points: 1_000,
            reason: "self-service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(earn.code(), Code::PermissionDenied);
    assert_eq!(earn.get_error_details().error_info().map(|i| i.reason.as_str()), Some("ROLE_NOT_ALLOWED"));
    let list = c.feedback.list_cases(fpb::ListCasesRequest::default()).await.unwrap_err();
    assert_eq!(list.code(), Code::PermissionDenied);
    for s in [l, r, f] {
        s.stop().await;
    }
}
