//! Complaint intake: OpenCase over real gRPC on loopback — validation, auth, classification, routing, SLA targets,
//! the case, its message and its events in one transaction, then the assigner giving it to an agent in the same
//! process — offered at a fixed rate (500 requests/s
//! for 60 s by default; latency measured from each request's scheduled time, so a stall is not hidden), then the
//! throughput ceiling with 32 callers. The baseline, in the same run on the same server: ClassifyText, the same
//! gRPC path and classification without the transaction. On SQLite and PostgreSQL; results in BENCHMARKS.md.
//!
//! `cargo bench -p rapport-feedback --bench intake` (env: BENCH_RATE, default 500; BENCH_SECONDS, 60;
//! BENCH_CEILING_SECONDS, 10).
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use rapport_feedback::app::{Config, Feedback};
use rapport_kit::{
    auth::Role,
    client::{self, Outgoing, OutgoingChannel},
    clock::SystemClock,
    serve::ServeConfig,
    testing::{Backend, TestServer, fresh_database},
};
use rapport_proto::{
    common::v1::Channel,
    feedback::v1::{self as pb, feedback_service_client::FeedbackServiceClient},
};

type Client = FeedbackServiceClient<OutgoingChannel>;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn texts() -> Vec<String> {
    include_str!("../tests/data/complaints.tsv")
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').nth(2))
        .map(String::from)
        .collect()
}

fn open(i: usize, texts: &[String]) -> pb::OpenCaseRequest {
    pb::OpenCaseRequest {
        request_id: format!("bench-{}-{i}", std::process::id()),
        kind: pb::CaseKind::Complaint.into(),
        customer_id: format!("c-{}", i % 5_000),
        channel: Channel::Email.into(),
        severity: pb::Severity::Medium.into(),
        order_id: String::new(),
        text: texts[i % texts.len()].clone(),
        theme: String::new(),
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// Offers `rate` calls a second for `secs`; latencies from each call's scheduled start.
async fn fixed_rate(c: &Client, texts: Arc<Vec<String>>, rate: u64, secs: u64) -> (Vec<Duration>, usize) {
    let calls = rapport_kit::testing::at_rate(rate, secs, |i| {
        let (mut c, texts) = (c.clone(), texts.clone());
        async move { c.open_case(open(i, &texts)).await.is_ok() }
    })
    .await;
    let failed = calls.iter().filter(|(_, ok)| !ok).count() + (rate * secs) as usize - calls.len();
    let mut lat: Vec<Duration> = calls.into_iter().map(|(d, _)| d).collect();
    lat.sort();
    (lat, failed)
}

/// Calls a second with `callers` back to back for `secs`.
async fn ceiling<F, Fut>(callers: usize, secs: u64, call: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let until = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let workers: Vec<_> = (0..callers)
        .map(|w| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut n = 0usize;
                while Instant::now() < until {
                    if call(w * 10_000_000 + n).await {
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    let mut done = 0;
    for w in workers {
        done += w.await.expect("worker");
    }
    done as f64 / start.elapsed().as_secs_f64()
}

async fn run(backend: Backend, rate: u64, secs: u64, ceiling_secs: u64) -> String {
    let auth = rapport_kit::testing::authenticator();
    let database = fresh_database(backend).await.expect("database");
    let mut config = Config::local(database.url());
    config.common.serve = ServeConfig { concurrency: 2048, ..ServeConfig::default() };
    config.common.db_pool = 32;
    let server = TestServer::start::<Feedback>(config, auth.clone(), Arc::new(SystemClock)).await.expect("feedback");
    let c: Client = FeedbackServiceClient::new(
        client::channel(
            &server.url(),
            Outgoing::new(Some(auth.issue("bench", Role::Sre, 3600).expect("token")), Duration::from_secs(60)),
        )
        .expect("channel"),
    );
    // Routing as a shop would have it: a few queues, agents with room, rules.
    for q in ["logistics", "money", "vip-desk"] {
        let queue =
            pb::Queue { queue_id: q.into(), assignment: pb::Assignment::LeastLoaded.into(), ..Default::default() };
        c.clone()
            .put_queue(pb::PutQueueRequest { request_id: format!("q-{q}"), queue: Some(queue) })
            .await
            .expect("queue");
    }
    for (i, q) in ["logistics", "money", "general", "vip-desk"].iter().enumerate() {
        for a in 0..5 {
            let agent = pb::Agent {
                agent_id: format!("agent-{i}-{a}"),
                queue_ids: vec![q.to_string()],
                capacity: 100,
                online: true,
                open_cases: 0,
            };
            c.clone()
                .put_agent(pb::PutAgentRequest { request_id: format!("a-{i}-{a}"), agent: Some(agent) })
                .await
                .expect("agent");
        }
    }
    let rule = |id: &str, themes: &[&str], tiers: &[&str], queue: &str| pb::RoutingRule {
        rule_id: id.into(),
        themes: themes.iter().map(|s| s.to_string()).collect(),
        tiers: tiers.iter().map(|s| s.to_string()).collect(),
        queue_id: queue.into(),
        ..Default::default()
    };
    let rules = vec![
        rule("vips", &[], &["vip"], "vip-desk"),
        rule("parcels", &["delivery", "returns_refunds"], &[], "logistics"),
        rule("money", &["billing", "loyalty_program"], &[], "money"),
    ];
    c.clone().set_routing_rules(pb::SetRoutingRulesRequest { request_id: "rules".into(), rules }).await.expect("rules");
    let texts = Arc::new(texts());
    // Warm-up (the classifier is trained on first use).
    for i in 0..50 {
        c.clone().open_case(open(1_000_000 + i, &texts)).await.expect("warm-up");
    }
    let (lat, failed) = fixed_rate(&c, texts.clone(), rate, secs).await;
    let (c1, t1) = (c.clone(), texts.clone());
    let intake_ceiling = ceiling(32, ceiling_secs, move |i| {
        let (mut c, t) = (c1.clone(), t1.clone());
        async move { c.open_case(open(2_000_000 + i, &t)).await.is_ok() }
    })
    .await;
    let (c2, t2) = (c.clone(), texts.clone());
    let classify_ceiling = ceiling(32, ceiling_secs, move |i| {
        let (mut c, t) = (c2.clone(), t2.clone());
        async move { c.classify_text(pb::ClassifyTextRequest { text: t[i % t.len()].clone() }).await.is_ok() }
    })
    .await;
    server.stop().await;
    let name = if backend == Backend::Sqlite { "SQLite" } else { "PostgreSQL" };
    format!(
        "| {name} | {rate}/s for {secs} s: {} cases, {failed} failed | {:.1} ms | {:.1} ms | {:.1} ms | {} | {:.0}/s | {:.0}/s |\n",
        lat.len(),
        pct(&lat, 0.5).as_secs_f64() * 1000.0,
        pct(&lat, 0.99).as_secs_f64() * 1000.0,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
        if pct(&lat, 0.99) <= Duration::from_millis(10) && failed == 0 { "met" } else { "**not met**" },
        intake_ceiling,
        classify_ceiling,
    )
}

fn main() {
    let rate = env("BENCH_RATE", 500);
    let secs = env("BENCH_SECONDS", 60);
    let ceiling_secs = env("BENCH_CEILING_SECONDS", 10);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let rows: String = rt.block_on(async {
        let mut rows = String::new();
        for b in [Backend::Sqlite, Backend::Postgres] {
            rows.push_str(&run(b, rate, secs, ceiling_secs).await);
        }
        rows
    });
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let report = format!(
        "## Complaint intake (feedback)\n\n\
         `cargo bench -p rapport-feedback --bench intake`: OpenCase over gRPC on loopback (classification, routing, SLA \
         targets, case + message + 2 outbox events in one transaction; the assigner, woken by the commit, then gives \
         the case to one of 20 agents in the same process), offered at a fixed rate with latency from each call's \
         scheduled time; then the ceiling with 32 callers, next to the baseline ClassifyText (same gRPC path and \
         classifier, no transaction). Goal: p99 ≤ 10 ms at 500/s. Machine: {cores} cores shared by the callers, the \
         service and the database.\n\n\
         | database | offered | p50 | p99 | max | p99 goal | intake ceiling | baseline ClassifyText ceiling |\n\
         |---|---|---|---|---|---|---|---|\n{rows}\n"
    );
    print!("{report}");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../BENCHMARKS.md");
    rapport_kit::testing::write_benchmark_section(path, "intake", &report).expect("write BENCHMARKS.md");
}
