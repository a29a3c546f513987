//! Theme discovery on 100,000 complaint texts: time and peak memory of Rapport's discovery (k chosen by silhouette,
//! and k given), against scikit-learn's TF-IDF + LSA + k-means on the same texts in the same run, each in a process
//! of its own so the peak memory is its own. The texts are generated from the two labelled corpora of the tests
//! (each a corpus text of a theme with a sixth of its words dropped, half of them followed by a one-line complaint of
//! the same theme), so the adjusted Rand index against the planted themes is reported too. Writes its section of
//! `BENCHMARKS.md`.
//!
//! `cargo bench -p rapport-improvement --bench discovery` (`RAPPORT_BENCH_TEXTS` to change the count,
//! `RAPPORT_BENCH_PYTHON` for a Python with scikit-learn; without one the baseline row says so).
use std::{io::Write, process::Command, time::Instant};

use rapport_improvement::domain::discovery::{Config, discover, labelled};
use rapport_stats::cluster::adjusted_rand_index;

fn corpus(name: &str) -> Vec<(String, String)> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    labelled(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

/// `n` labelled texts, deterministic.
fn generate(n: usize) -> Vec<(String, String)> {
    let (long, short) = (corpus("discovery.tsv"), corpus("short.tsv"));
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..n)
        .map(|_| {
            let (theme, text) = &long[(next() % long.len() as u64) as usize];
            let mut words: Vec<&str> = text.split(' ').filter(|_| next() % 6 != 0).collect();
            let same: Vec<&(String, String)> = short.iter().filter(|(t, _)| t == theme).collect();
            let extra;
            if next() % 2 == 0 && !same.is_empty() {
                extra = same[(next() % same.len() as u64) as usize].1.clone();
                words.extend(extra.split(' '));
            }
            (theme.clone(), words.join(" "))
        })
        .collect()
}

/// One discovery in this process (the child): prints a JSON line.
fn child(n: usize, k: Option<usize>) {
    let texts = generate(n);
    let names: Vec<String> = {
        let mut v: Vec<String> = texts.iter().map(|t| t.0.clone()).collect();
        v.sort();
        v.dedup();
        v
    };
    let truth: Vec<usize> = texts.iter().map(|t| names.iter().position(|x| *x == t.0).unwrap_or(0)).collect();
    let only: Vec<String> = texts.into_iter().map(|t| t.1).collect();
    let start = Instant::now();
    let d = discover(&only, &[], &Config { k, ..Config::default() }).expect("discovery");
    let seconds = start.elapsed().as_secs_f64();
    let found: Vec<usize> = d.labels.iter().map(|l| l.unwrap_or(usize::MAX)).collect();
    let ari = adjusted_rand_index(&truth, &found);
    println!(
        "{{\"seconds\": {seconds}, \"peak_mb\": {}, \"ari\": {ari}, \"k\": {}}}",
        rapport_kit::testing::peak_memory_mb(),
        d.k
    );
}

fn field(json: &str, name: &str) -> Option<f64> {
    let at = json.find(&format!("\"{name}\":"))? + name.len() + 3;
    json[at..].trim_start().split([',', '}']).next()?.trim().parse().ok()
}

fn run_child(n: usize, k: Option<usize>) -> String {
    let exe = std::env::current_exe().expect("bench binary");
    let mut cmd = Command::new(exe);
    cmd.arg("--child").arg(n.to_string());
    if let Some(k) = k {
        cmd.arg(k.to_string());
    }
    let out = cmd.output().expect("child");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_string()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let n = args[i + 1].parse().expect("count");
        child(n, args.get(i + 2).and_then(|k| k.parse().ok()));
        return;
    }
    let n: usize = std::env::var("RAPPORT_BENCH_TEXTS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let texts = generate(n);
    let words: usize = texts.iter().map(|t| t.1.split(' ').count()).sum();
    let path = std::env::temp_dir().join(format!("rapport-discovery-{}.tsv", std::process::id()));
    let mut f = std::fs::File::create(&path).expect("temp file");
    for (theme, text) in &texts {
        writeln!(f, "{theme}\t{text}").expect("write");
    }
    drop(f);
    drop(texts);
    eprintln!("discovery benchmark: {n} texts, {:.1} words each", words as f64 / n as f64);
    let chosen = run_child(n, None);
    eprintln!("rapport, k by silhouette: {chosen}");
    let given = run_child(n, Some(8));
    eprintln!("rapport, k = 8: {given}");
    let python = std::env::var("RAPPORT_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/discovery_sklearn.py");
    let sk = Command::new(&python).arg(script).arg(&path).arg("8").output().ok().filter(|o| o.status.success());
    let sk = sk.map(|o| String::from_utf8_lossy(&o.stdout).lines().last().unwrap_or_default().to_string());
    eprintln!("scikit-learn: {sk:?}");
    let _ = std::fs::remove_file(&path);
    let row = |name: &str, json: &str, k: String| {
        format!(
            "| {name} | {k} | {:.1} s | {:.0} MB | {:.3} |\n",
            field(json, "seconds").unwrap_or(f64::NAN),
            field(json, "peak_mb").unwrap_or(f64::NAN),
            field(json, "ari").unwrap_or(f64::NAN)
        )
    };
    let mut report = format!(
        "Theme discovery on {n} generated complaint texts (French and English, 8 planted themes, {:.1} words each), \
         each pipeline in a process of its own on 2 cores (`cargo bench -p rapport-improvement --bench discovery`):\n\n\
         | pipeline | k | time | peak memory (process) | adjusted Rand index |\n|---|---|---:|---:|---:|\n",
        words as f64 / n as f64
    );
    let k_of = |json: &str| field(json, "k").map_or("?".into(), |k| format!("{k:.0}"));
    report.push_str(&row(
        "Rapport: terms (glossary, stems), TF-IDF, LSA (100) fitted on a 5,000-text sample, linfa k-means, all placed, 3 Lloyd passes",
        &chosen,
        format!("{} (silhouette over 2-12)", k_of(&chosen)),
    ));
    report.push_str(&row("the same, k given", &given, "8 (given)".into()));
    match &sk {
        Some(json) => report.push_str(&row(
            "scikit-learn: TfidfVectorizer, TruncatedSVD (100) on all texts, k-means (one init) — baseline",
            json,
            "8 (given)".into(),
        )),
        None => report.push_str(
            "| scikit-learn baseline | — | not run: no Python with scikit-learn (set RAPPORT_BENCH_PYTHON) | | |\n",
        ),
    }
    if let (Some(a), Some(b)) = (field(&given, "seconds"), sk.as_deref().and_then(|j| field(j, "seconds"))) {
        report.push_str(&format!(
            "\nTime ratio Rapport (k given) / scikit-learn: **{:.2}** (below 1 is faster).\n",
            a / b
        ));
    }
    print!("{report}");
    let bench = concat!(env!("CARGO_MANIFEST_DIR"), "/../../BENCHMARKS.md");
    rapport_kit::testing::write_benchmark_section(
        bench,
        "discovery",
        &format!("## Improvement: theme discovery\n\n{report}"),
    )
    .expect("BENCHMARKS.md");
}
