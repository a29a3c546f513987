//! Earn throughput on PostgreSQL at 16 concurrent callers: the loyalty service over real gRPC (auth, guard,
//! idempotency, domain, sea-orm, outbox) next to a plain-SQL baseline doing the same writes, in the same run.
//! Results go to BENCHMARKS.md (between the `earn` markers).
//!
//! `cargo bench -p rapport-loyalty --bench earn` (env: BENCH_OPS per side, default 8000; BENCH_CONCURRENCY, 16).
use std::{sync::Arc, time::Duration};

use rapport_kit::{
    auth::Role,
    client::{self, Outgoing},
    clock::SystemClock,
    db::{self, testing},
    serve::ServeConfig,
    testing::drive,
};
use rapport_loyalty::app::{Config, Loyalty};
use rapport_proto::loyalty::v1::{self as pb, loyalty_service_client::LoyaltyServiceClient};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait};

const MEMBERS: usize = 256;

/// The same writes as one earn, in plain SQL: claim the request id, lock the member, read its lots, write the
/// entry and the lot, sum the qualifying points, store the response.
async fn plain_earn(db: &DatabaseConnection, i: usize, now: i64) {
    let pg = |sql: &str, values: Vec<sea_orm::Value>| Statement::from_sql_and_values(DbBackend::Postgres, sql, values);
    let member = format!("m{}", i % MEMBERS);
    let rid = format!("plain-{i}");
    let txn = db.begin().await.expect("begin");
    txn.execute_raw(pg(
        "INSERT INTO idempotency_keys (request_id, method, fingerprint, response, created_at) VALUES ($1, 'EarnPoints', 'f', ''::bytea, $2) ON CONFLICT (request_id) DO NOTHING",
        vec![rid.clone().into(), now.into()],
    ))
    .await
    .expect("claim");
    txn.query_one_raw(pg("SELECT * FROM members WHERE customer_id = $1 FOR UPDATE", vec![member.clone().into()]))
        .await
        .expect("lock");
    txn.query_all_raw(pg(
        "SELECT * FROM point_lots WHERE customer_id = $1 AND remaining > 0",
        vec![member.clone().into()],
    ))
    .await
    .expect("lots");
    let row = txn
        .query_one_raw(pg(
            "INSERT INTO ledger_entries (customer_id, kind, points, qualifying, reason, reference, created_at, available_at, expires_at) VALUES ($1, 'earn', 10, 10, 'bench', '', $2, $2, $3) RETURNING id",
            vec![member.clone().into(), now.into(), (now + 1).into()],
        ))
        .await
        .expect("entry")
        .expect("id");
    let entry: i64 = row.try_get("", "id").expect("id");
    txn.execute_raw(pg(
        "INSERT INTO point_lots (customer_id, entry_id, initial, remaining, available_at, expires_at) VALUES ($1, $2, 10, 10, $3, $4)",
        vec![member.clone().into(), entry.into(), now.into(), (now + 1).into()],
    ))
    .await
    .expect("lot");
    txn.query_all_raw(pg(
        "SELECT qualifying FROM ledger_entries WHERE customer_id = $1 AND created_at > $2 AND qualifying <> 0",
        vec![member.into(), (now - 1).into()],
    ))
    .await
    .expect("qualifying");
    txn.execute_raw(pg(
        "UPDATE idempotency_keys SET response = $1 WHERE request_id = $2",
        vec![vec![1u8; 200].into(), rid.into()],
    ))
    .await
    .expect("response");
    txn.commit().await.expect("commit");
}

fn write_report(report: &str) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../BENCHMARKS.md");
    rapport_kit::testing::write_benchmark_section(path, "earn", report).expect("write BENCHMARKS.md");
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let ops: usize = std::env::var("BENCH_OPS").ok().and_then(|v| v.parse().ok()).unwrap_or(8_000);
        let conc: usize = std::env::var("BENCH_CONCURRENCY").ok().and_then(|v| v.parse().ok()).unwrap_or(16);
        let auth = rapport_kit::testing::authenticator();

        // The service, over gRPC on loopback.
        let database = testing::fresh_database(testing::Backend::Postgres).await.expect("database");
        let mut config = Config::local(database.url());
        config.common.serve = ServeConfig { concurrency: 1024, ..ServeConfig::default() };
        config.common.db_pool = 32;
        config.sweep_interval = Duration::from_secs(3600);
        let server = rapport_kit::testing::TestServer::start::<Loyalty>(config, auth.clone(), Arc::new(SystemClock)).await.expect("loyalty");
        let addr = server.addr;
        let channel = client::channel(&format!("http://{addr}"), Outgoing::new(Some(auth.issue("bench", Role::Sre, 3600).expect("token")), Duration::from_secs(30))).expect("channel");
        let client = LoyaltyServiceClient::new(channel);
        for m in 0..MEMBERS {
            client
                .clone()
                .enrol_member(pb::EnrolMemberRequest { request_id: format!("en-{m}"), customer_id: format!("m{m}"), display_name: String::new() })
                .await
                .expect("enrol");
        }
        // warm-up
        let c = client.clone();
        drive(200, conc, move |i| {
            let mut c = c.clone();
            async move {
                c.earn_points(pb::EarnPointsRequest { request_id: format!("warm-{i}"), customer_id: format!("m{}", i % MEMBERS), points: 10, reason: "bench".into(), reference: String::new() })
                    .await
                    .expect("earn");
            }
        })
        .await;
        let c = client.clone();
        let service = drive(ops, conc, move |i| {
            let mut c = c.clone();
            async move {
                c.earn_points(pb::EarnPointsRequest { request_id: format!("bench-{i}"), customer_id: format!("m{}", i % MEMBERS), points: 10, reason: "bench".into(), reference: String::new() })
                    .await
                    .expect("earn");
            }
        })
        .await;
        server.stop().await;

        // The baseline: the same schema and rows, plain SQL on a pool of the same size, no gRPC, no ORM.
        let database2 = testing::fresh_database(testing::Backend::Postgres).await.expect("database");
        let db2 = db::connect_and_migrate_with::<rapport_loyalty::migration::Migrator>(database2.url(), 32).await.expect("migrate");
        for m in 0..MEMBERS {
            db2.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO members (customer_id, display_name, tier, tier_period_end, enrolled_at, spent, expired) VALUES ($1, NULL, 'bronze', 0, 0, 0, 0)",
                vec![format!("m{m}").into()],
            ))
            .await
            .expect("member");
        }
        let now = 1_800_000_000_000i64;
        let d = db2.clone();
        drive(200, conc, move |i| {
            let d = d.clone();
            async move { plain_earn(&d, 1_000_000 + i, now).await }
        })
        .await;
        let d = db2.clone();
        let baseline = drive(ops, conc, move |i| {
            let d = d.clone();
            async move { plain_earn(&d, i, now).await }
        })
        .await;

        let ratio = service.per_sec() / baseline.per_sec();
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
        let report = format!(
            "Earn throughput, PostgreSQL, {conc} concurrent callers, {ops} earns per side, {MEMBERS} members, {cores} cores \
             (`cargo bench -p rapport-loyalty --bench earn`):\n\n\
             | side | earns/s | p50 | p99 |\n|---|---:|---:|---:|\n\
             | loyalty over gRPC (auth, guard, idempotency, domain, sea-orm) | {:.0} | {:.1} ms | {:.1} ms |\n\
             | plain SQL, same writes, same pool (baseline) | {:.0} | {:.1} ms | {:.1} ms |\n\n\
             Service / baseline throughput: **{:.2}**.\n",
            service.per_sec(),
            service.pct_ms(0.5),
            service.pct_ms(0.99),
            baseline.per_sec(),
            baseline.pct_ms(0.5),
            baseline.pct_ms(0.99),
            ratio
        );
        println!("{report}");
        write_report(&report);
    });
}
