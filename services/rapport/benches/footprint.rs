//! Idle memory of each service, written to BENCHMARKS.md (between the `footprint` markers).
//!
//! `cargo bench -p rapport --bench footprint`. Each service runs alone in a process of its own (this bench binary
//! started again with `--child <service>`, running the service's own `main` on a fresh SQLite database, as its
//! binary does), answers a few health checks, then idles; its resident memory is sampled for 5 s and the highest
//! sample kept. Baseline in the same run: a bare tonic server with only the health service, started the same way.
//! Goal: at most 30 MB per service.
use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

const SERVICES: [&str; 5] = ["segmentation", "loyalty", "referrals", "feedback", "improvement"];
const GOAL_MB: f64 = 30.0;

fn child(name: &str) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let code = rt.block_on(async {
        match name {
            "bare" => {
                let addr = rapport_kit::testing::bare_health_server().await.expect("bare server");
                println!("bare listening on {addr}");
                std::future::pending::<()>().await;
                std::process::ExitCode::SUCCESS
            }
            "segmentation" => rapport_kit::service::main::<rapport_segmentation::app::Segmentation>().await,
            "loyalty" => rapport_kit::service::main::<rapport_loyalty::app::Loyalty>().await,
            "referrals" => rapport_kit::service::main::<rapport_referrals::app::Referrals>().await,
            "feedback" => rapport_kit::service::main::<rapport_feedback::app::Feedback>().await,
            "improvement" => rapport_kit::service::main::<rapport_improvement::app::Improvement>().await,
            other => panic!("no service {other}"),
        }
    });
    std::process::exit(if code == std::process::ExitCode::SUCCESS { 0 } else { 1 });
}

fn rss_mb(pid: u32) -> f64 {
    rapport_kit::testing::memory_mb(&pid.to_string(), "VmRSS").unwrap_or(f64::NAN)
}

/// Starts `name`, waits for its listening line, checks its health a few times, then samples its memory while idle.
fn measure(rt: &tokio::runtime::Runtime, name: &str, dir: &std::path::Path) -> (f64, f64) {
    let exe = std::env::current_exe().expect("bench binary");
    let mut child: Child = Command::new(exe)
        .args(["--child", name])
        .env(format!("RAPPORT_{}_LISTEN", name.to_uppercase()), "127.0.0.1:0")
        .env("DATABASE_URL", format!("sqlite://{}/{name}.db?mode=rwc", dir.display()))
        .env("RAPPORT_AUTH_DIR", rapport_kit::testing::key_dir())
        .env("RUST_LOG", "error")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::piped())
        .spawn()
        .expect("child");
    let stdout = child.stdout.take().expect("child's stdout");
    let addr = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.split_once(" listening on ").map(|(_, a)| a.to_string()))
        .expect("the listening line");
    let started = rss_mb(child.id());
    rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        let mut health = HealthClient::new(channel);
        for _ in 0..10 {
            health.check(HealthCheckRequest { service: String::new() }).await.expect("health check");
        }
    });
    let mut peak = started;
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(250));
        peak = peak.max(rss_mb(child.id()));
    }
    let _ = child.kill();
    let _ = child.wait();
    (started, peak)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1]);
        return;
    }
    let dir = std::env::temp_dir().join(format!("rapport-footprint-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (_, bare) = measure(&rt, "bare", &dir);
    let mut report = String::from(
        "Idle resident memory, each service alone in its own process on a fresh SQLite database, after 10 health \
         checks, highest of 5 s of samples, no OTLP export; baseline a bare tonic server with only the health service, same run \
         (`cargo bench -p rapport --bench footprint`):\n\n\
         | process | idle memory | − bare tonic | goal ≤ 30 MB |\n|---|---:|---:|---|\n",
    );
    report.push_str(&format!("| bare tonic health server (baseline) | {bare:.1} MB | — | — |\n"));
    let mut worst: f64 = 0.0;
    for name in SERVICES {
        let (_, idle) = measure(&rt, name, &dir);
        eprintln!("{name}: {idle:.1} MB");
        worst = worst.max(idle);
        report.push_str(&format!(
            "| {name} | {idle:.1} MB | +{:.1} MB | {} |\n",
            idle - bare,
            if idle <= GOAL_MB { "met" } else { "**not met**" }
        ));
    }
    report.push_str(&format!(
        "\nLargest idle service: **{worst:.1} MB** (goal ≤ {GOAL_MB:.0} MB: {}).\n",
        if worst <= GOAL_MB { "met" } else { "not met" }
    ));
    let _ = std::fs::remove_dir_all(&dir);
    println!("{report}");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../BENCHMARKS.md");
    rapport_kit::testing::write_benchmark_section(
        path,
        "footprint",
        &format!("## Idle memory per service\n\n{report}"),
    )
    .expect("write BENCHMARKS.md");
}
