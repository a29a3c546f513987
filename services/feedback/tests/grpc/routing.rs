//! Routing: ordered rules over theme, tier, detractor status (first match wins, `general` otherwise); agents within
//! capacity, round robin or least loaded; an agent going offline hands its cases on, and waiting cases go to an
//! agent back with room; loyalty down: routed anyway, within the deadline, the tier marked unknown.
use std::time::Duration;

use rapport_kit::{auth::Role, testing::eventually};
use rapport_proto::feedback::v1 as pb;
use tonic::Code;

use crate::support::{Db, TestApp, assert_status, on_both, spawn_app, spawn_with, tier_event};

async fn queue(app: &TestApp, id: &str, how: pb::Assignment) {
    app.client
        .clone()
        .put_queue(pb::PutQueueRequest {
            request_id: format!("q-{id}"),
            queue: Some(pb::Queue { queue_id: id.into(), assignment: how.into(), ..Default::default() }),
        })
        .await
        .unwrap();
}

async fn agent(app: &TestApp, id: &str, queues: &[&str], capacity: i32) {
    app.client
        .clone()
        .put_agent(pb::PutAgentRequest {
            request_id: format!("a-{id}-{capacity}-{}", queues.join("+")),
            agent: Some(pb::Agent {
                agent_id: id.into(),
                queue_ids: queues.iter().map(|q| q.to_string()).collect(),
                capacity,
                online: true,
                open_cases: 0,
            }),
        })
        .await
        .unwrap();
}

fn rule(id: &str, queue: &str) -> pb::RoutingRule {
    pb::RoutingRule { rule_id: id.into(), queue_id: queue.into(), ..Default::default() }
}

async fn rules(app: &TestApp, rules: Vec<pb::RoutingRule>) -> Result<(), tonic::Status> {
    app.client
        .clone()
        .set_routing_rules(pb::SetRoutingRulesRequest { request_id: uuid::Uuid::new_v4().to_string(), rules })
        .await
        .map(|_| ())
}

async fn the_first_matching_rule_routes(db: Db) {
    let app = spawn_app(db).await;
    for q in ["vip-desk", "logistics", "recovery"] {
        queue(&app, q, pb::Assignment::RoundRobin).await;
    }
    let e = rules(&app, vec![rule("r", "nowhere")]).await.unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "QUEUE_NOT_FOUND", None);
    rules(
        &app,
        vec![
            pb::RoutingRule { tiers: vec!["vip".into()], ..rule("vips", "vip-desk") },
            pb::RoutingRule { detractors_only: true, ..rule("unhappy", "recovery") },
            pb::RoutingRule { themes: vec!["delivery".into()], ..rule("parcels", "logistics") },
        ],
    )
    .await
    .unwrap();
    app.deliver(Role::Loyalty, vec![tier_event("v-1", "vip")]).await;
    let s = app.schedule("s-1", "d-1", "delivery").await.unwrap();
    app.answer("a-1", &s.survey_id, 2, "").await.unwrap();
    let route = |c: pb::Case| (c.queue_id, c.routed_by);
    let v = app.open_case("o-1", "v-1", pb::CaseKind::Complaint, "my parcel is late").await.unwrap();
    assert_eq!((v.tier.as_str(), v.tier_source.as_str()), ("vip", "events"));
    assert_eq!(route(v), ("vip-desk".into(), "vips".into()));
    let d = app.open_case("o-2", "d-1", pb::CaseKind::Complaint, "my parcel is late").await.unwrap();
    assert_eq!(route(d), ("recovery".into(), "unhappy".into()));
    let r = app.open_case("o-3", "r-1", pb::CaseKind::Complaint, "my parcel is late").await.unwrap();
    assert_eq!(route(r), ("logistics".into(), "parcels".into()));
    let b = app.open_case("o-4", "r-2", pb::CaseKind::Complaint, "I was charged twice").await.unwrap();
    assert_eq!(route(b), ("general".into(), "default".into()));
    let listed = app.client.clone().list_routing_rules(pb::ListRoutingRulesRequest {}).await.unwrap().into_inner();
    assert_eq!(listed.rules.iter().map(|r| r.rule_id.as_str()).collect::<Vec<_>>(), ["vips", "unhappy", "parcels"]);
    app.stop().await;
}

async fn agents_get_cases_within_capacity(db: Db) {
    let app = spawn_with(db, |c| c.sla_sweep_interval = Duration::from_millis(20)).await;
    queue(&app, "rr", pb::Assignment::RoundRobin).await;
    queue(&app, "ll", pb::Assignment::LeastLoaded).await;
    agent(&app, "ann", &["rr"], 2).await;
    agent(&app, "bob", &["rr"], 2).await;
    agent(&app, "cyd", &["ll"], 3).await;
    agent(&app, "dan", &["ll"], 3).await;
    rules(&app, vec![pb::RoutingRule { themes: vec!["billing".into()], ..rule("money", "ll") }, rule("rest", "rr")])
        .await
        .unwrap();
    // Intake routes; the assigner (woken by each commit) gives the cases to agents, oldest first.
    let agents = |ids: Vec<String>| {
        let c = app.client.clone();
        async move {
            let mut out = Vec::new();
            for id in ids {
                let got = c.clone().get_case(pb::GetCaseRequest { case_id: id }).await.unwrap().into_inner();
                out.push(got.case.unwrap().assigned_agent);
            }
            out
        }
    };
    let mut rr = Vec::new();
    for i in 0..5 {
        let c =
            app.open_case(&format!("o-{i}"), &format!("c-{i}"), pb::CaseKind::Complaint, "parcel late").await.unwrap();
        assert_eq!(c.queue_id, "rr");
        rr.push(c.case_id);
        // One at a time, so that the order of assignment is the order of intake.
        let want = rr.len().min(4);
        eventually(30, "the case assigned or waiting", || async {
            agents(rr.clone()).await.iter().filter(|a| !a.is_empty()).count() == want
        })
        .await;
    }
    let mut ll = Vec::new();
    for i in 0..3 {
        let c = app
            .open_case(&format!("b-{i}"), &format!("b-{i}"), pb::CaseKind::Complaint, "charged twice")
            .await
            .unwrap();
        ll.push(c.case_id);
        eventually(30, "the case assigned", || async { agents(ll.clone()).await.iter().all(|a| !a.is_empty()) }).await;
    }
    assert_eq!(agents(ll).await, ["cyd", "dan", "cyd"], "least loaded, ties by id");
    // The assigner has run since the fifth case came (it assigned the later ones): that one still waits.
    assert_eq!(
        agents(rr.clone()).await,
        ["ann", "bob", "ann", "bob", ""],
        "round robin within capacity, the fifth waits"
    );

    // Ann goes offline: bob is full, so her two cases wait with the fifth.
    let r = app
        .client
        .clone()
        .set_agent_online(pb::SetAgentOnlineRequest { request_id: "off".into(), agent_id: "ann".into(), online: false })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.handed_back, 2);
    // Eve joins with room for five: the sweeper gives her the three waiting cases.
    agent(&app, "eve", &["rr"], 5).await;
    let waiting = || async {
        let q = app.client.clone().list_queues(pb::ListQueuesRequest {}).await.unwrap().into_inner();
        let rr = q.queues.iter().find(|q| q.queue_id == "rr").unwrap().clone();
        let eve = q.agents.iter().find(|a| a.agent_id == "eve").unwrap().open_cases;
        (rr.open_cases, rr.unassigned_cases, eve)
    };
    eventually(30, "eve takes the waiting cases", || async { waiting().await == (5, 0, 3) }).await;
    let e = app
        .client
        .clone()
        .set_agent_online(pb::SetAgentOnlineRequest { request_id: "x".into(), agent_id: "nobody".into(), online: true })
        .await
        .unwrap_err();
    assert_status(&e, Code::NotFound, "AGENT_NOT_FOUND", None);
    app.stop().await;
}

async fn loyalty_down_routes_anyway_with_the_tier_unknown(db: Db) {
    // Loyalty "listens" but never answers: the connection is accepted by the kernel and nothing more comes, so
    // only the deadline lets intake go on.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = silent.local_addr().unwrap();
    let app = spawn_with(db, |c| {
        c.loyalty_url = Some(format!("http://{nowhere}"));
        c.tier_deadline = Duration::from_millis(200);
    })
    .await;
    let c = app.open_case("o-1", "c-1", pb::CaseKind::Complaint, "my parcel is late").await.unwrap();
    assert_eq!((c.tier.as_str(), c.tier_source.as_str(), c.queue_id.as_str()), ("unknown", "unknown", "general"));
    // What loyalty's events said still counts.
    app.deliver(Role::Loyalty, vec![tier_event("v-1", "vip")]).await;
    let v = app.open_case("o-2", "v-1", pb::CaseKind::Complaint, "my parcel is late").await.unwrap();
    assert_eq!((v.tier.as_str(), v.tier_source.as_str()), ("vip", "events"));
    assert_eq!(v.first_response.unwrap().target_ms, 3_600_000, "the VIP's tight SLA");
    drop(silent);
    app.stop().await;
}

on_both!(
    the_first_matching_rule_routes,
    agents_get_cases_within_capacity,
    loyalty_down_routes_anyway_with_the_tier_unknown,
);

on_both!(two_replicas_never_give_an_agent_more_than_its_capacity);

/// Open cases per agent, read from the database.
async fn load(app: &TestApp) -> std::collections::BTreeMap<String, u64> {
    use rapport_feedback::entities::cases;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let mut out = std::collections::BTreeMap::new();
    for c in cases::Entity::find().filter(cases::Column::State.eq("open")).all(&app.db).await.unwrap() {
        if let Some(a) = c.assigned_agent {
            *out.entry(a).or_default() += 1;
        }
    }
    out
}

async fn two_replicas_never_give_an_agent_more_than_its_capacity(db: Db) {
    let app = spawn_with(db, |c| c.assign_interval = Duration::from_millis(10)).await;
    let (other, other_client) = app.replica().await;
    queue(&app, "rr", pb::Assignment::RoundRobin).await;
    agent(&app, "ann", &["rr"], 3).await;
    agent(&app, "bob", &["rr"], 2).await;
    rules(&app, vec![rule("rest", "rr")]).await.unwrap();
    // Twelve cases at once, half through each replica: both replicas' assigners are woken by their commits.
    let opens: Vec<_> = (0..12)
        .map(|i| {
            let mut c = if i % 2 == 0 { app.client.clone() } else { other_client.clone() };
            tokio::spawn(async move {
                c.open_case(pb::OpenCaseRequest {
                    request_id: format!("o-{i}"),
                    kind: pb::CaseKind::Complaint.into(),
                    customer_id: format!("c-{i}"),
                    channel: rapport_proto::common::v1::Channel::Email.into(),
                    severity: pb::Severity::Medium.into(),
                    order_id: String::new(),
                    text: "my parcel is late".into(),
                    theme: String::new(),
                })
                .await
                .unwrap()
            })
        })
        .collect();
    for o in opens {
        o.await.unwrap();
    }
    // Every look on the way shows no agent above its capacity; in the end both are full and seven cases wait.
    eventually(30, "both agents full", || async {
        let l = load(&app).await;
        let (ann, bob) = (l.get("ann").copied().unwrap_or(0), l.get("bob").copied().unwrap_or(0));
        assert!(ann <= 3 && bob <= 2, "over capacity: {l:?}");
        ann == 3 && bob == 2
    })
    .await;
    // Bob gets room for two more: only two more are given, whichever replica's assigner runs.
    agent(&app, "bob", &["rr"], 4).await;
    eventually(30, "bob full again", || async {
        let l = load(&app).await;
        assert!(l.get("ann").copied().unwrap_or(0) <= 3 && l.get("bob").copied().unwrap_or(0) <= 4, "{l:?}");
        l.get("bob") == Some(&4)
    })
    .await;
    assert_eq!(load(&app).await.values().sum::<u64>(), 7);
    other.stop().await;
    app.stop().await;
}
