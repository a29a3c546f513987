//! Reads on one loyalty server on SQLite, each against the same server's health check in the same run: 8 HTTP/2
//! connections × 8 streams each, over real gRPC on loopback, with tracing installed as a service runs it. The time
//! of a read is then taken apart: the health check is the stack without the read (transport, auth, guard, span);
//! the store called directly, at the same concurrency, is the read's queries without the stack. Baseline for the
//! stack itself: a bare tonic server in the same process with only the health service (no auth, limits, tracing
//! or guard), called the same way (goal: the stack's health check at ≥ 0.75 of its throughput).
//! Results go to BENCHMARKS.md (between the `reads` markers).
//!
//! `cargo bench -p rapport-loyalty --bench reads` (env: BENCH_OPS per side, default 20000).
use std::{sync::Arc, time::Duration};

use rapport_kit::{
    auth::Role,
    client::{self, Outgoing},
    clock::SystemClock,
    db::testing,
    pseudonym::Pseudonyms,
    serve::ServeConfig,
    testing::{Run, drive},
};
use rapport_loyalty::{
    app::{Config, Loyalty},
    domain::Rules,
    store::Store,
};
use rapport_proto::loyalty::v1::{self as pb, loyalty_service_client::LoyaltyServiceClient};
use sea_orm::ConnectionTrait;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

const MEMBERS: usize = 256;
const ENTRIES: usize = 20;
const CONNECTIONS: usize = 8;
const STREAMS: usize = 8;

fn write_report(report: &str) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../BENCHMARKS.md");
    rapport_kit::testing::write_benchmark_section(path, "reads", report).expect("write BENCHMARKS.md");
}

fn row(name: &str, r: &Run, health: &Run) -> String {
    format!(
        "| {name} | {:.0} | {:.2} | {:.2} ms | {:.2} ms |\n",
        r.per_sec(),
        r.per_sec() / health.per_sec(),
        r.pct_ms(0.5),
        r.pct_ms(0.99)
    )
}

fn main() {
    let _telemetry = rapport_telemetry::init("loyalty-bench").expect("telemetry");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let ops: usize = std::env::var("BENCH_OPS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
        let conc = CONNECTIONS * STREAMS;
        let auth = rapport_kit::testing::authenticator();
        let database = testing::fresh_database(testing::Backend::Sqlite).await.expect("database");
        let mut config = Config::local(database.url());
        config.common.serve = ServeConfig { concurrency: 1024, ..ServeConfig::default() };
        config.sweep_interval = Duration::from_secs(3600);
        let server = rapport_kit::testing::TestServer::start::<Loyalty>(config, auth.clone(), Arc::new(SystemClock))
            .await
            .expect("loyalty");
        let token = auth.issue("bench", Role::Sre, 3600).expect("token");
        let channels: Vec<_> = (0..CONNECTIONS)
            .map(|_| {
                client::channel(
                    &format!("http://{}", server.addr),
                    Outgoing::new(Some(token.clone()), Duration::from_secs(30)),
                )
                .expect("channel")
            })
            .collect();
        let client = LoyaltyServiceClient::new(channels[0].clone());
        for m in 0..MEMBERS {
            let id = format!("m{m}");
            let req = pb::EnrolMemberRequest { request_id: format!("en-{m}"), customer_id: id.clone(), display_name: "Member".into() };
            client.clone().enrol_member(req).await.expect("enrol");
            for e in 0..ENTRIES {
                let req = pb::EarnPointsRequest { request_id: format!("e-{m}-{e}"), customer_id: id.clone(), points: 10, reason: "bench".into(), reference: String::new() };
                client.clone().earn_points(req).await.expect("earn");
            }
        }
        let health_clients: Arc<Vec<_>> = Arc::new(channels.iter().cloned().map(HealthClient::new).collect());
        // The bare tonic server: the health service and nothing else, on plain channels.
        let bare_addr = rapport_kit::testing::bare_health_server().await.expect("bare server");
        let bare_clients: Arc<Vec<_>> = Arc::new(
            (0..CONNECTIONS)
                .map(|_| {
                    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{bare_addr}")).expect("endpoint");
                    HealthClient::new(endpoint.connect_lazy())
                })
                .collect(),
        );
        let bare = |ops| {
            let cs = bare_clients.clone();
            drive(ops, conc, move |i| {
                let mut c = cs[i % CONNECTIONS].clone();
                async move {
                    c.check(HealthCheckRequest { service: String::new() }).await.expect("bare health");
                }
            })
        };
        let loyalty_clients: Arc<Vec<_>> = Arc::new(channels.iter().cloned().map(LoyaltyServiceClient::new).collect());
        let health = |ops| {
            let cs = health_clients.clone();
            drive(ops, conc, move |i| {
                let mut c = cs[i % CONNECTIONS].clone();
                async move {
                    c.check(HealthCheckRequest { service: String::new() }).await.expect("health");
                }
            })
        };
        let get_member = |ops| {
            let cs = loyalty_clients.clone();
            drive(ops, conc, move |i| {
                let mut c = cs[i % CONNECTIONS].clone();
                async move {
                    c.get_member(pb::GetMemberRequest { customer_id: format!("m{}", i % MEMBERS) }).await.expect("get member");
                }
            })
        };
        let list = |ops| {
            let cs = loyalty_clients.clone();
            drive(ops, conc, move |i| {
                let mut c = cs[i % CONNECTIONS].clone();
                async move {
                    let req = pb::ListTransactionsRequest { customer_id: format!("m{}", i % MEMBERS), page_size: 20, page_token: String::new() };
                    c.list_transactions(req).await.expect("list transactions");
                }
            })
        };
        // The store over the server's own pool: the read's queries, no gRPC.
        let store = Store::new(
            server.db.clone(),
            Arc::new(SystemClock),
            Arc::new(Rules::default()),
            rapport_outbox::Outbox::new("loyalty", ["segmentation".to_string()]),
            Pseudonyms::development(),
        );
        let direct = |ops| {
            let store = store.clone();
            drive(ops, conc, move |i| {
                let store = store.clone();
                async move {
                    store.member(&format!("m{}", i % MEMBERS)).await.expect("member");
                }
            })
        };

        let direct_list = |ops| {
            let store = store.clone();
            drive(ops, conc, move |i| {
                let store = store.clone();
                async move {
                    store.entries(&format!("m{}", i % MEMBERS), None, 20).await.expect("entries");
                }
            })
        };
        // The driver's floor: one trivial statement through the same pool.
        let select_one = |ops| {
            let db = server.db.clone();
            drive(ops, conc, move |_| {
                let db = db.clone();
                async move {
                    db.execute_unprepared("SELECT 1").await.expect("select 1");
                }
            })
        };
        // warm-up, then each side in turn; health twice (before and after) to show the machine's drift
        health(2_000).await;
        bare(2_000).await;
        get_member(2_000).await;
        list(2_000).await;
        let b1 = bare(ops).await;
        let h1 = health(ops).await;
        let gm = get_member(ops).await;
        let lt = list(ops).await;
        let st = direct(ops).await;
        let sl = direct_list(ops).await;
        let one = select_one(ops).await;
        let h2 = health(ops).await;
        let b2 = bare(ops).await;
        server.stop().await;

        let h = if h1.per_sec() >= h2.per_sec() { h1 } else { h2 };
        let b = if b1.per_sec() >= b2.per_sec() { b1 } else { b2 };
        let us = |r: &Run| 1e6 / r.per_sec();
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
        let report = format!(
            "Reads on one loyalty server, SQLite, {CONNECTIONS} connections × {STREAMS} streams, {ops} calls per side, \
             {MEMBERS} members of {ENTRIES} entries, tracing on, {cores} cores (`cargo bench -p rapport-loyalty --bench reads`):\n\n\
             | side | calls/s | × health | p50 | p99 |\n|---|---:|---:|---:|---:|\n\
             {}{}{}{}\
             | GetMember's queries, the store called directly (no gRPC) | {:.0} | {:.2} | {:.2} ms | {:.2} ms |\n\
             {}{}\n\
             Where a GetMember's time goes (1 / throughput at saturation, 2 cores shared by client and server): \
             {:.0} µs in all; the stack without the read (transport, auth, guard, span: the health check) {:.0} µs; \
             the query alone {:.0} µs, one statement (the member with its lots and qualifying entries summed by \
             the database) against {:.0} µs for the driver alone (`SELECT 1`). GetMember / health: **{:.2}** (goal ≥ 0.5), \
             ListTransactions / health: **{:.2}** (goal ≥ 0.5). GetMember reads in a read-only snapshot and never \
             waits for a writer. The stack's health check / the bare tonic server's: **{:.2}** (goal ≥ 0.75).\n",
            row("bare tonic server, health service only (baseline for the stack)", &b, &h),
            row("health check (the stack, no read)", &h, &h),
            row("GetMember", &gm, &h),
            row("ListTransactions (page of 20)", &lt, &h),
            st.per_sec(),
            st.per_sec() / h.per_sec(),
            st.pct_ms(0.5),
            st.pct_ms(0.99),
            row("ListTransactions' query, the store called directly (no gRPC)", &sl, &h),
            row("`SELECT 1` through the same pool (the driver's floor per statement)", &one, &h),
            us(&gm),
            us(&h),
            us(&st),
            us(&one),
            gm.per_sec() / h.per_sec(),
            lt.per_sec() / h.per_sec(),
            h.per_sec() / b.per_sec(),
        );
        println!("{report}");
        write_report(&report);
    });
}
