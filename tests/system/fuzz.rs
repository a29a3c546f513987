//! Fuzzing every RPC of the five services on SQLite, as ordinary tests: bytes → decode → guard → handler. Each
//! RPC gets its checked-in seeds (`fuzz/corpus/<service>/<Method>/`), mutations of them, plausible and hostile
//! messages generated from the descriptors, and raw random bytes; every answer must be OK or a refusal that blames
//! the request with a stable reason, within the hang limit, and no server thread may panic. A finding is written
//! under `target/fuzz-findings/` (fix it, then add the file to the RPC's corpus as a regression). The seed is fixed
//! unless `RAPPORT_FUZZ_SEED` gives one (`random` for a fresh one, printed first); `RAPPORT_FUZZ_CASES` scales the cases; `RAPPORT_FUZZ_SEED_CORPUS=1`
//! writes seeds for an RPC that has none (its best plausible cases: answered OK first). The same harness runs
//! longer under `cargo fuzz` (the targets in `fuzz/`).
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use futures::future::join_all;
use rand::{Rng, SeedableRng, rngs::StdRng};
use rapport_fuzz::{Case, Harness, Mode, Rpc, Schema, case, corpus, generate, mutate, verdict, watch_panics};
use rapport_kit::{auth::Policy, clock::ManualClock, db::testing::fresh_database};
use tonic::Code;

use crate::support::{Db, T0, any_port, feedback, improvement, loyalty, referrals, segmentation};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus");
const FINDINGS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/fuzz-findings");
const THREADS: &str = "rapport-fuzz";
/// The seed of an ordinary run.
const DEFAULT_SEED: u64 = 20_261_204;

/// How many cases of each kind an RPC gets (times `RAPPORT_FUZZ_CASES`, default 1).
struct Cases {
    mutations: usize,
    plausible: usize,
    hostile: usize,
    bytes: usize,
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn every_rpc_of_every_service_survives_hostile_bytes() {
    let panics = watch_panics(THREADS);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(THREADS)
        .enable_all()
        .build()
        .expect("runtime");
    // A fixed seed by default, so that a CI run can be replayed; `RAPPORT_FUZZ_SEED=random` draws a fresh one.
    let seed = match std::env::var("RAPPORT_FUZZ_SEED").ok().as_deref() {
        Some("random") => rand::rng().random(),
        _ => env_u64("RAPPORT_FUZZ_SEED").unwrap_or(DEFAULT_SEED),
    };
    println!("fuzz: seed {seed} (RAPPORT_FUZZ_SEED={seed} replays the run)");
    let scale = env_u64("RAPPORT_FUZZ_CASES").unwrap_or(1) as usize;
    let cases = Cases { mutations: 16 * scale, plausible: 12 * scale, hostile: 24 * scale, bytes: 4 * scale };
    let (findings, calls, missing) = runtime.block_on(fuzz_all(seed, &cases));
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    let panicked = panics.lock().map(|p| p.clone()).unwrap_or_default();
    println!("fuzz: {calls} calls");
    assert!(
        missing.is_empty(),
        "RPCs without a seed in fuzz/corpus (RAPPORT_FUZZ_SEED_CORPUS=1 writes them): {missing:?}"
    );
    assert!(
        panicked.is_empty() && findings.is_empty(),
        "seed {seed}: {} panics {panicked:#?}\n{} findings:\n{}",
        panicked.len(),
        findings.len(),
        findings.join("\n")
    );
}

/// One service under test: where it listens and who may call what.
struct Target {
    addr: SocketAddr,
    policy: Policy,
}

async fn fuzz_all(seed: u64, cases: &Cases) -> (Vec<String>, usize, Vec<String>) {
    let clock = ManualClock::new(T0);
    let mut dbs = Vec::new();
    for _ in 0..5 {
        dbs.push(fresh_database(Db::Sqlite).await.expect("database"));
    }
    let l = loyalty(any_port(), dbs[0].url(), None, &clock).await;
    let s = segmentation(any_port(), dbs[1].url(), l.addr, &clock).await;
    let i = improvement(any_port(), dbs[4].url(), None, &clock).await;
    let subscribers = [("segmentation", format!("http://{}", s.addr)), ("improvement", format!("http://{}", i.addr))];
    let f = feedback(any_port(), dbs[2].url(), &subscribers, &clock, |_| {}).await;
    let r = referrals(any_port(), dbs[3].url(), None, &clock, |_| {}).await;
    let targets = [
        Target { addr: l.addr, policy: rapport_loyalty::app::policy().expect("policy") },
        Target { addr: s.addr, policy: rapport_segmentation::app::policy().expect("policy") },
        Target { addr: f.addr, policy: rapport_feedback::app::policy().expect("policy") },
        Target { addr: r.addr, policy: rapport_referrals::app::policy().expect("policy") },
        Target { addr: i.addr, policy: rapport_improvement::app::policy().expect("policy") },
    ];
    let schema = Arc::new(Schema::rapport());
    let runs = targets.into_iter().enumerate().map(|(n, t)| {
        let schema = schema.clone();
        async move { fuzz_service(&schema, t, seed.wrapping_add(n as u64), cases).await }
    });
    let mut findings = Vec::new();
    let mut calls = 0;
    let mut missing = Vec::new();
    for (f, c, m) in join_all(runs).await {
        findings.extend(f);
        calls += c;
        missing.extend(m);
    }
    for server in [f, r, i, s, l] {
        server.stop().await;
    }
    (findings, calls, missing)
}

async fn fuzz_service(schema: &Schema, target: Target, seed: u64, cases: &Cases) -> (Vec<String>, usize, Vec<String>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut harness = Harness::new(target.addr, target.policy.clone());
    let rpcs: Vec<Rpc> = schema.all_rpcs().iter().filter(|r| harness.role(&r.path()).is_some()).cloned().collect();
    assert!(rpcs.len() >= 5, "the matrix lists this service's RPCs");
    let (mut findings, mut calls, mut missing) = (Vec::new(), 0, Vec::new());
    for rpc in &rpcs {
        let dir = corpus::dir(Path::new(CORPUS), rpc);
        let mut seeds: Vec<Vec<u8>> = corpus::load(&dir).expect("corpus").into_iter().map(|(_, b)| b).collect();
        if seeds.is_empty() {
            if std::env::var("RAPPORT_FUZZ_SEED_CORPUS").is_ok_and(|v| v == "1") {
                seeds = write_seeds(schema, &mut harness, rpc, &dir, &mut rng).await;
            } else {
                missing.push(rpc.path());
            }
        }
        let bytes = |b: Vec<u8>| Case { bytes: b, ..Case::default() };
        let mut inputs: Vec<(&str, Case)> = seeds.iter().map(|s| ("seed", bytes(s.clone()))).collect();
        for n in 0..cases.mutations {
            if let Some(s) = seeds.get(n % seeds.len().max(1)) {
                inputs.push(("mutated seed", bytes(mutate(s, &mut rng))));
            }
        }
        inputs.extend((0..cases.plausible).map(|_| ("plausible", case(schema, &rpc.input, Mode::Plausible, &mut rng))));
        inputs.extend((0..cases.hostile).map(|_| ("hostile", case(schema, &rpc.input, Mode::Hostile, &mut rng))));
        inputs.extend((0..cases.bytes).map(|_| {
            let len = rng.random_range(0..256);
            ("random bytes", bytes((0..len).map(|_| rng.random::<u8>()).collect()))
        }));
        for (kind, input) in inputs {
            calls += 1;
            let judged = match harness.send(rpc, input.bytes.clone()).await {
                Ok(answer) => verdict(&answer).and_then(|()| capped(&input, answer.is_ok())),
                Err(hang) => Err(hang),
            };
            if let Err(why) = judged {
                let saved = save_finding(rpc, &input.bytes);
                let size = input.bytes.len();
                findings.push(format!("{} ({kind}, {size} bytes, {}): {why}", rpc.path(), saved.display()));
            }
        }
    }
    (findings, calls, missing)
}

/// Seeds for an RPC without any: the best of 40 plausible cases by their answer (OK, then refusals other than
/// INVALID_ARGUMENT, which went deepest), three at most.
async fn write_seeds(schema: &Schema, harness: &mut Harness, rpc: &Rpc, dir: &Path, rng: &mut StdRng) -> Vec<Vec<u8>> {
    let mut ranked = Vec::new();
    for _ in 0..40 {
        let body = generate(schema, &rpc.input, Mode::Plausible, rng);
        let rank = match harness.send(rpc, body.clone()).await {
            Ok(Ok(())) => 0,
            Ok(Err(s)) if s.code() != Code::InvalidArgument => 1,
            _ => 2,
        };
        ranked.push((rank, body));
    }
    ranked.sort_by_key(|(rank, body)| (*rank, body.len()));
    ranked.dedup_by(|a, b| a.1 == b.1);
    let seeds: Vec<Vec<u8>> = ranked.into_iter().take(3).map(|(_, b)| b).collect();
    for s in &seeds {
        corpus::save(dir, s).expect("writing a seed");
    }
    seeds
}

/// Longest text and most repeats of one field a service may accept: every text field and every list has a cap
/// below these.
const MAX_ACCEPTED_TEXT: usize = 10_000;
const MAX_ACCEPTED_REPEATS: usize = 10_000;

/// A finding when a case holding more than the caps allow was accepted.
fn capped(input: &Case, accepted: bool) -> Result<(), String> {
    if accepted && input.longest_text > MAX_ACCEPTED_TEXT {
        return Err(format!("accepted a text of {} characters", input.longest_text));
    }
    if accepted && input.most_repeats > MAX_ACCEPTED_REPEATS {
        return Err(format!("accepted {} repeats of one field", input.most_repeats));
    }
    Ok(())
}

fn save_finding(rpc: &Rpc, body: &[u8]) -> PathBuf {
    corpus::save(&corpus::dir(Path::new(FINDINGS), rpc), body).unwrap_or_default()
}
