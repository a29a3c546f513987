//! Clustering at scale and ingestion throughput, written to BENCHMARKS.md (between the `kmeans` markers).
//!
//! `cargo bench -p rapport-segmentation --bench kmeans` (env: BENCH_CUSTOMERS, default 1,000,000; BENCH_K, 8).
//!
//! 1. 1,000,000 generated customers × the 8 default features, scaled as the service scales them. Rapport's
//!    pipeline — linfa k-means from greedy k-means++ seeds (one seeding) on a 100,000-customer sample, three Lloyd passes over
//!    everyone, then every customer assigned in parallel — against scikit-learn's KMeans (Lloyd, one k-means++ init) fitted on all of them, same data, same
//!    thread count, in the same run when Python with scikit-learn is present. Inertia is measured on all points.
//! 2. Event ingestion through the streaming RPC (features, buckets, segment evaluation, one transaction per
//!    message), on SQLite and on PostgreSQL.
use std::{process::Command, sync::Arc, time::Instant};

use ndarray::Array2;
use rapport_kit::{
    auth::Role,
    client::{self, Outgoing},
    clock::{Clock, SystemClock},
    db::testing::{Backend, fresh_database},
};
use rapport_proto::segmentation::v1::{IngestEventsRequest, segmentation_service_client::SegmentationServiceClient};
use rapport_segmentation::{
    app::{Config, Segmentation},
    domain::{
        DAY_MS,
        clustering::{self, FitConfig, Scaler},
        features::DEFAULT_MODEL_FEATURES,
    },
    synthetic::from_synth,
};

fn data(n: u64, now: i64) -> (Vec<String>, Array2<f64>) {
    let names: Vec<String> = DEFAULT_MODEL_FEATURES.iter().map(|s| s.to_string()).collect();
    let threads = std::thread::available_parallelism().map(|t| t.get()).unwrap_or(1) as u64;
    let per = n.div_ceil(threads);
    let parts: Vec<Vec<f64>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let names = &names;
                s.spawn(move || {
                    let mut out = Vec::new();
                    for i in t * per..((t + 1) * per).min(n) {
                        let f = from_synth(&rapport_synth::customer(7, i, now), now);
                        out.extend(names.iter().map(|name| f.value(name, now).unwrap_or(0.0)));
                    }
                    out
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("generator thread")).collect()
    });
    let flat: Vec<f64> = parts.into_iter().flatten().collect();
    let rows = flat.len() / names.len();
    (names.clone(), Array2::from_shape_vec((rows, names.len()), flat).expect("shape"))
}

fn sklearn(path: &std::path::Path, rows: usize, cols: usize, k: usize, threads: usize) -> Option<serde_json::Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/kmeans_sklearn.py");
    let out = Command::new("python3")
        .args([
            script,
            &path.display().to_string(),
            &rows.to_string(),
            &cols.to_string(),
            &k.to_string(),
            &threads.to_string(),
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("scikit-learn side skipped: {}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or(""));
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

async fn ingestion(backend: Backend, customers: u64) -> (usize, f64) {
    let auth = rapport_kit::testing::authenticator();
    let database = fresh_database(backend).await.expect("database");
    let mut config = Config::local(database.url(), "http://127.0.0.1:9");
    config.campaign_poll = std::time::Duration::from_secs(3600);
    let server = rapport_kit::testing::TestServer::start::<Segmentation>(config, auth.clone(), Arc::new(SystemClock))
        .await
        .expect("segmentation");
    let addr = server.addr;
    let ch = client::channel(
        &format!("http://{addr}"),
        Outgoing::new(Some(auth.issue("bench", Role::Sre, 3600).expect("token")), std::time::Duration::from_secs(600)),
    )
    .expect("channel");
    let mut c = SegmentationServiceClient::new(ch);
    let now = SystemClock.now_ms();
    let mut messages = Vec::new();
    let mut batch = Vec::new();
    for cu in rapport_synth::customers(9, customers, now) {
        let ev = rapport_synth::behaviour_events(&cu);
        if batch.len() + ev.len() > 500 {
            messages.push(IngestEventsRequest { events: std::mem::take(&mut batch) });
        }
        batch.extend(ev);
    }
    messages.push(IngestEventsRequest { events: batch });
    let events: usize = messages.iter().map(|m| m.events.len()).sum();
    let start = Instant::now();
    let r = c.ingest_events(tokio_stream::iter(messages)).await.expect("ingest").into_inner();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(r.applied as usize, events);
    server.stop().await;
    (events, events as f64 / secs)
}

fn write_report(report: &str) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../BENCHMARKS.md");
    rapport_kit::testing::write_benchmark_section(path, "kmeans", report).expect("write BENCHMARKS.md");
}

fn main() {
    let n: u64 = std::env::var("BENCH_CUSTOMERS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let k: usize = std::env::var("BENCH_K").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let threads = std::thread::available_parallelism().map(|t| t.get()).unwrap_or(1);
    let now = 20_000 * DAY_MS;

    let t = Instant::now();
    let (names, mut x) = data(n, now);
    eprintln!("generated {} × {} in {:.1} s", x.nrows(), x.ncols(), t.elapsed().as_secs_f64());
    let scaler = Scaler::fit(&names, x.view());
    scaler.transform(&mut x);
    let path = std::env::temp_dir().join(format!("rapport-kmeans-{n}.f64"));
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&path, bytes).expect("write matrix");

    // Rapport: greedy k-means++ seeding and linfa k-means on a sample, three Lloyd passes over everyone, parallel assignment —
    // what the service's training does.
    let cfg =
        FitConfig { k: Some(k), n_runs: 1, max_iterations: 300, tolerance: 1e-4, seed: 0, ..FitConfig::default() };
    let sample_n = 100_000.min(x.nrows());
    let t = Instant::now();
    let idx = clustering::sample_indices(x.nrows(), sample_n, 0);
    let sample = x.select(ndarray::Axis(0), &idx);
    let (sample_centroids, _) = clustering::kmeans(sample.view(), k, &cfg).expect("kmeans");
    let centroids = clustering::refine(x.view(), &sample_centroids, 3);
    let fit_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let labels = clustering::assign(x.view(), centroids.view());
    let assign_s = t.elapsed().as_secs_f64();
    let inertia = clustering::inertia(x.view(), centroids.view());
    assert_eq!(labels.len(), x.nrows());
    // linfa with one init on all points, for reference.
    let t = Instant::now();
    let one = FitConfig { n_runs: 1, ..cfg.clone() };
    let (full_centroids, _) = clustering::kmeans(x.view(), k, &one).expect("kmeans");
    let full_fit_s = t.elapsed().as_secs_f64();
    let full_inertia = clustering::inertia(x.view(), full_centroids.view());

    let sk = sklearn(&path, x.nrows(), x.ncols(), k, threads);
    let _ = std::fs::remove_file(&path);

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let ingest_customers = 2_000;
    let (events_sqlite, eps_sqlite) = rt.block_on(ingestion(Backend::Sqlite, ingest_customers));
    let (events_pg, eps_pg) = rt.block_on(ingestion(Backend::Postgres, ingest_customers));

    let ours_total = fit_s + assign_s;
    let mut report = format!(
        "K-means, {} customers × {} features (the default model features of generated customers, scaled as the \
         service scales them), k = {k}, {threads} threads (`cargo bench -p rapport-segmentation --bench kmeans`):\n\n\
         | pipeline | fit | assign all | total | inertia (all points) |\n|---|---:|---:|---:|---:|\n\
         | Rapport: linfa k-means from greedy k-means++ seeds (one seeding) on a {sample_n} sample, 3 Lloyd passes on all, parallel assignment | {fit_s:.2} s | {assign_s:.2} s | {ours_total:.2} s | {inertia:.1} |\n\
         | the same k-means (one seeding) on all points (reference) | {full_fit_s:.2} s | — | {full_fit_s:.2} s | {full_inertia:.1} |\n",
        x.nrows(),
        x.ncols()
    );
    match &sk {
        Some(v) => {
            let sk_fit = v["fit_s"].as_f64().unwrap_or(f64::NAN);
            let sk_pred = v["predict_s"].as_f64().unwrap_or(f64::NAN);
            let sk_inertia = v["inertia"].as_f64().unwrap_or(f64::NAN);
            let sk_total = sk_fit + sk_pred;
            report.push_str(&format!(
                "| scikit-learn KMeans (Lloyd, one k-means++ init) on all points | {sk_fit:.2} s | {sk_pred:.2} s | {sk_total:.2} s | {sk_inertia:.1} |\n\n\
                 Time ratio Rapport / scikit-learn: **{:.2}** (below 1 is faster). Inertia ratio: **{:.4}** (target ≤ 1.01).\n",
                ours_total / sk_total,
                inertia / sk_inertia
            ));
        }
        None => report.push_str("\nscikit-learn was not available in this run: no comparison.\n"),
    }
    report.push_str(&format!(
        "\nEvent ingestion through `IngestEvents` (client streaming, 500 events per message, features + buckets + \
         segment evaluation per message transaction), {ingest_customers} generated customers:\n\n\
         | database | events | events/s |\n|---|---:|---:|\n| SQLite | {events_sqlite} | {eps_sqlite:.0} |\n| PostgreSQL | {events_pg} | {eps_pg:.0} |\n"
    ));
    println!("{report}");
    write_report(&report);
}
