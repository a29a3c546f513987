//! What the cargo fuzz targets share: a service started once per process on a SQLite file, and one case run
//! against it. An input is one request of `RAPPORT_FUZZ_RPC` (a method of the service) when set, else its first
//! byte picks the method and the rest is the request. A finding (an internal error, a hang, a refusal without a
//! reason) panics; a server panic aborts through libFuzzer's own hook.
use std::sync::{Arc, Mutex, OnceLock};

use rapport_fuzz::{Harness, Rpc, Schema, verdict};
use rapport_kit::{clock::ManualClock, testing::TestServer};

/// A started service and its RPCs.
pub struct Target {
    runtime: tokio::runtime::Runtime,
    harness: Mutex<Harness>,
    rpcs: Vec<Rpc>,
    fixed: Option<usize>,
    _server: TestServer,
}

/// The target of `service` (loyalty, segmentation, feedback, referrals, improvement), started on first use.
pub fn target(service: &'static str) -> &'static Target {
    static TARGET: OnceLock<Target> = OnceLock::new();
    TARGET.get_or_init(|| start(service))
}

fn start(service: &str) -> Target {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = std::env::temp_dir().join(format!("rapport-fuzz-{service}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.join("db.sqlite").display());
    let clock = Arc::new(ManualClock::new(rapport_fuzz::generate::NOW_SECS * 1000));
    let auth = rapport_kit::testing::authenticator();
    let (server, policy, name) = runtime.block_on(async {
        macro_rules! local {
            ($krate:ident, $app:ident $(, $peer:expr)?) => {{
                let config = $krate::app::Config::local(&url $(, $peer)?);
                let server = TestServer::start::<$krate::app::$app>(config, auth.clone(), clock.clone()).await;
                (server.expect("service"), $krate::app::policy().expect("policy"), $krate::app::SERVICE_NAME)
            }};
        }
        match service {
            "loyalty" => local!(rapport_loyalty, Loyalty),
            // Loyalty is not there: its part of a campaign waits, as it would for a loyalty that is down.
            "segmentation" => local!(rapport_segmentation, Segmentation, "http://127.0.0.1:9"),
            "feedback" => local!(rapport_feedback, Feedback),
            "referrals" => local!(rapport_referrals, Referrals),
            "improvement" => local!(rapport_improvement, Improvement),
            other => panic!("no fuzz target for {other}"),
        }
    });
    let rpcs = Schema::rapport().rpcs(name);
    let fixed = std::env::var("RAPPORT_FUZZ_RPC").ok().map(|m| {
        rpcs.iter().position(|r| r.method == m).unwrap_or_else(|| panic!("{name} has no method {m}"))
    });
    let harness = Mutex::new(Harness::new(server.addr, policy));
    Target { runtime, harness, rpcs, fixed, _server: server }
}

/// Runs one input; panics on a finding.
pub fn run(target: &Target, data: &[u8]) {
    let (rpc, body) = match target.fixed {
        Some(i) => (&target.rpcs[i], data),
        None => match data.split_first() {
            Some((first, rest)) => (&target.rpcs[usize::from(*first) % target.rpcs.len()], rest),
            None => return,
        },
    };
    let mut harness = target.harness.lock().unwrap_or_else(|e| e.into_inner());
    let judged = match target.runtime.block_on(harness.send(rpc, body.to_vec())) {
        Ok(answer) => verdict(&answer),
        Err(hang) => Err(hang),
    };
    if let Err(finding) = judged {
        panic!("{}: {finding}", rpc.path());
    }
}
