//! Training and placing ten million customers within bounded memory, written to BENCHMARKS.md (between the `scale`
//! markers).
//!
//! `cargo bench -p rapport-segmentation --bench scale` (env: BENCH_SCALE_CUSTOMERS, default 10,000,000; BENCH_K, 8).
//!
//! The service's training pipeline — `model::fit_pages` then `Fitted::assign`, the code `TrainModel` runs — over
//! generated customers served in pages of 5,000, generated again on every pass as the service reads its pages
//! again from the database (the database itself is not in this measure: the pages' cost is the generator's).
//! Baseline in the same run: the whole population in memory (`model::train` on every row), as training worked
//! before it was paged. Each run is a process of its own, so each peak memory is that run's high-water mark; the
//! paged pipeline also runs on a tenth of the customers, to show its memory does not grow with their number.
use std::{process::Command, time::Instant};

use ndarray::{Array2, ArrayView2};
use rapport_segmentation::{
    domain::{
        DAY_MS,
        clustering::{ClusteringError, FitConfig},
        features::DEFAULT_MODEL_FEATURES,
        model::{self, Pages, Visit},
    },
    synthetic::from_synth,
};

const PAGE: u64 = 5_000;
const SAMPLE: usize = 100_000;
const SEED: u64 = 7;

/// Generated customers `0..n`, page by page, each page generated on all cores.
struct Generated {
    n: u64,
    now: i64,
    names: Vec<String>,
}

impl Generated {
    fn page(&self, from: u64, to: u64) -> Array2<f64> {
        let d = self.names.len();
        let threads = std::thread::available_parallelism().map(|t| t.get()).unwrap_or(1) as u64;
        let per = (to - from).div_ceil(threads).max(1);
        let parts: Vec<Vec<f64>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads)
                .map(|t| {
                    let (a, b) = ((from + t * per).min(to), (from + (t + 1) * per).min(to));
                    s.spawn(move || {
                        let mut out = Vec::with_capacity((b - a) as usize * d);
                        for i in a..b {
                            let f = from_synth(&rapport_synth::customer(SEED, i, self.now), self.now);
                            out.extend(self.names.iter().map(|name| f.value(name, self.now).unwrap_or(0.0)));
                        }
                        out
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().expect("generator thread")).collect()
        });
        let flat: Vec<f64> = parts.into_iter().flatten().collect();
        Array2::from_shape_vec(((to - from) as usize, d), flat).expect("page shape")
    }
}

impl Pages for Generated {
    type Id = u64;
    type Error = ClusteringError;
    fn count(&mut self) -> Result<usize, ClusteringError> {
        Ok(self.n as usize)
    }
    fn pass(&mut self, visit: &mut Visit<'_, u64, ClusteringError>) -> Result<(), ClusteringError> {
        let mut from = 0;
        while from < self.n {
            let to = (from + PAGE).min(self.n);
            let ids: Vec<u64> = (from..to).collect();
            let page = self.page(from, to);
            visit(&ids, ArrayView2::from(&page))?;
            from = to;
        }
        Ok(())
    }
}

fn config() -> FitConfig {
    let k = std::env::var("BENCH_K").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    FitConfig { k: Some(k), seed: SEED, ..FitConfig::default() }
}

fn names() -> Vec<String> {
    DEFAULT_MODEL_FEATURES.iter().map(|s| s.to_string()).collect()
}

/// One run in this process (the child): prints one JSON line.
fn child(mode: &str, n: u64) {
    let now = 20_000 * DAY_MS;
    let names = names();
    let progress = |phase: &str, x: f64| eprintln!("  {mode} {n}: {phase} {:.0} %", x * 100.0);
    let start = Instant::now();
    let (spec, placed) = if mode == "paged" {
        let mut pages = Generated { n, now, names: names.clone() };
        let fitted = model::fit_pages(&names, &mut pages, SAMPLE, &config(), None, &progress).expect("fit");
        let mut placed = 0usize;
        let spec = fitted
            .assign(&mut pages, &progress, &mut |ids, clusters| {
                assert_eq!(ids.len(), clusters.len());
                placed += ids.len();
                Ok(())
            })
            .expect("assign");
        (spec, placed)
    } else {
        let pages = Generated { n, now, names: names.clone() };
        let mut rows = Vec::with_capacity(n as usize);
        let mut from = 0;
        while from < n {
            let to = (from + PAGE * 20).min(n);
            rows.extend(pages.page(from, to).rows().into_iter().map(|r| r.to_vec()));
            from = to;
        }
        let (spec, ids) = model::train(&names, &rows, SAMPLE, &config(), None, &progress).expect("train");
        (spec, ids.len())
    };
    let seconds = start.elapsed().as_secs_f64();
    let sizes: Vec<i64> = spec.clusters.iter().map(|c| c.size).collect();
    println!(
        "{}",
        serde_json::json!({
            "seconds": seconds,
            "peak_mb": rapport_kit::testing::peak_memory_mb(),
            "placed": placed,
            "sizes": sizes,
            "centroids": spec.clusters.iter().map(|c| c.z.clone()).collect::<Vec<_>>(),
        })
    );
}

fn run_child(mode: &str, n: u64) -> serde_json::Value {
    eprintln!("{mode}, {n} customers");
    let exe = std::env::current_exe().expect("bench binary");
    let out = Command::new(exe)
        .args(["--child", mode, &n.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("child");
    assert!(out.status.success(), "{mode} {n} failed");
    let line = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_string();
    serde_json::from_str(&line).expect("child's JSON line")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1], args[i + 2].parse().expect("count"));
        return;
    }
    let n: u64 = std::env::var("BENCH_SCALE_CUSTOMERS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
    let threads = std::thread::available_parallelism().map(|t| t.get()).unwrap_or(1);
    let paged = run_child("paged", n);
    let small = run_child("paged", n / 10);
    let whole = run_child("memory", n);
    let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    // The paged pipeline computes what the in-memory one does: the same sample, the same passes.
    let same = paged["sizes"] == whole["sizes"];
    let max_shift = paged["centroids"]
        .as_array()
        .into_iter()
        .flatten()
        .zip(whole["centroids"].as_array().into_iter().flatten())
        .flat_map(|(a, b)| {
            let (a, b) = (a.as_array().cloned().unwrap_or_default(), b.as_array().cloned().unwrap_or_default());
            a.into_iter().zip(b).map(|(x, y)| (x.as_f64().unwrap_or(0.0) - y.as_f64().unwrap_or(0.0)).abs())
        })
        .fold(0.0f64, f64::max);
    let growth = f(&paged, "peak_mb") / f(&small, "peak_mb");
    let d = DEFAULT_MODEL_FEATURES.len();
    let matrix_mb = (n as usize * d * 8) as f64 / 1e6;
    let row = |name: &str, v: &serde_json::Value, count: u64| {
        format!(
            "| {name} | {count} | {:.1} s | {:.0} | {:.0} MB |\n",
            f(v, "seconds"),
            count as f64 / f(v, "seconds"),
            f(v, "peak_mb")
        )
    };
    let mut report = format!(
        "Training and placing every customer, k = {k} on {SAMPLE} sampled, three Lloyd passes over everyone, the 8 \
         default model features of generated customers, pages of {PAGE}, {threads} threads, each run a process of \
         its own; the pages are generated, not read from a database (reading, decoding and the re-placement's \
         writes are not in these times) (`cargo bench -p rapport-segmentation --bench scale`):\n\n\
         | pipeline | customers | time | customers/s | peak memory (process) |\n|---|---:|---:|---:|---:|\n",
        k = config().k.unwrap_or(0),
    );
    report.push_str(&row("paged: the pipeline `TrainModel` runs (sample + one page in memory)", &paged, n));
    report.push_str(&row("paged, a tenth of the customers", &small, n / 10));
    report.push_str(&row("baseline: every customer's features loaded first, as `TrainModel` loaded them before paging, then the same passes", &whole, n));
    report.push_str(&format!(
        "\nPeak memory paged / in memory: **{:.2}**; paged at {n} / at {}: **{growth:.2}** ({}). The feature matrix \
         alone would be {matrix_mb:.0} MB. Same clusters held in memory or paged: **{}** (sizes {}, largest centroid \
         difference {max_shift:.1e}).\n",
        f(&paged, "peak_mb") / f(&whole, "peak_mb"),
        n / 10,
        if growth < 1.5 {
            "ten times the customers, about the same memory"
        } else {
            "memory grew with the customers: below the sample size everyone is the sample"
        },
        if same { "yes" } else { "no" },
        if same { "equal" } else { "differ" },
    ));
    println!("{report}");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../BENCHMARKS.md");
    rapport_kit::testing::write_benchmark_section(
        path,
        "scale",
        &format!("## Segmentation: ten million customers in bounded memory\n\n{report}"),
    )
    .expect("write BENCHMARKS.md");
}
