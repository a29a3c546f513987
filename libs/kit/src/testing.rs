//! Helpers the services' tests and benchmarks share: polling with a deadline (no sleeps to wait for things),
//! asserting a `google.rpc` error, and writing a benchmark's section of BENCHMARKS.md.
use std::{future::Future, time::Duration};

use tonic::{Code, Status};
use tonic_types::StatusExt;

pub use crate::db::testing::{BACKENDS, Backend, TestDb, fresh_database};
pub use crate::test_server::TestServer;

static DEVELOPMENT: std::sync::LazyLock<(std::sync::Arc<crate::auth::Authenticator>, crate::auth::DevelopmentKeys)> =
    std::sync::LazyLock::new(|| {
        let (auth, keys) = crate::auth::Authenticator::development_with_keys();
        (std::sync::Arc::new(auth), keys)
    });

/// One development key set for the whole test process (every service's key and the people's issuer's), so that
/// every server and client a test starts trusts the others.
pub fn authenticator() -> std::sync::Arc<crate::auth::Authenticator> {
    DEVELOPMENT.0.clone()
}

/// The same key set as a key folder (`RAPPORT_AUTH_DIR`), for the real binaries a test starts.
pub fn key_dir() -> std::path::PathBuf {
    static DIR: std::sync::LazyLock<std::path::PathBuf> = std::sync::LazyLock::new(|| {
        let dir = std::env::temp_dir().join(format!("rapport-test-keys-{}", uuid::Uuid::new_v4()));
        if let Err(e) = DEVELOPMENT.1.write(&dir) {
            panic!("writing the test keys: {e}");
        }
        dir
    });
    DIR.clone()
}

/// Declares, for each async test function `name(backend)`, a module `name` with one test per database:
/// `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::testing::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::testing::Backend::Postgres).await
                }
            }
        )*
    };
}

/// Polls `f` until it returns true; panics naming `what` after `secs` seconds.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if f().await {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts a status: gRPC code, `ErrorInfo` reason and domain, a violated field when given, a lowercase message.
pub fn assert_status(s: &Status, code: Code, reason: &str, domain: &str, field: Option<&str>) {
    assert_eq!(s.code(), code, "code of {s:?}");
    let d = s.get_error_details();
    let info = d.error_info().unwrap_or_else(|| panic!("no ErrorInfo in {s:?}"));
    assert_eq!(info.reason, reason, "reason of {s:?}");
    assert_eq!(info.domain, domain, "domain of {s:?}");
    if let Some(f) = field {
        let fields: Vec<String> =
            d.bad_request().map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect()).unwrap_or_default();
        assert!(fields.iter().any(|x| x == f), "field {f} not in {fields:?}");
    }
    assert!(s.message().chars().next().is_some_and(|c| !c.is_uppercase()), "lowercase message: {s:?}");
}

/// What a benchmark side measured: operations, wall time, each operation's latency.
pub struct Run {
    /// Operations done.
    pub ops: usize,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// Each operation's latency, in the order the workers finished.
    pub latencies: Vec<Duration>,
}

impl Run {
    /// Operations per second.
    pub fn per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    /// The latency at quantile `p` (0..=1), in milliseconds.
    pub fn pct_ms(&self, p: f64) -> f64 {
        let mut l = self.latencies.clone();
        l.sort();
        l.get(((l.len().max(1) as f64 - 1.0) * p) as usize).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    }
}

/// Runs `f(0..ops)` on `concurrency` tasks, each taking every `concurrency`-th index, and times it.
pub async fn drive<F, Fut>(ops: usize, concurrency: usize, f: F) -> Run
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let f = std::sync::Arc::new(f);
    let start = std::time::Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|w| {
            let f = f.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = w;
                while i < ops {
                    let t = std::time::Instant::now();
                    f(i).await;
                    lat.push(t.elapsed());
                    i += concurrency;
                }
                lat
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        if let Ok(l) = t.await {
            latencies.extend(l);
        }
    }
    Run { ops, elapsed: start.elapsed(), latencies }
}

/// Offers `rate` calls a second for `secs` (call `i` is due `i / rate` seconds after the start), each on a task of
/// its own so that a slow call holds back none after it; each call's latency is taken from its scheduled start, so
/// a stall is not hidden (an open loop). Returns each call's latency and output, in call order.
pub async fn at_rate<F, Fut, T>(rate: u64, secs: u64, f: F) -> Vec<(Duration, T)>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let start = std::time::Instant::now();
    let total = usize::try_from(rate * secs).unwrap_or(usize::MAX);
    let every = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let due = start + every * u32::try_from(i).unwrap_or(u32::MAX);
        tokio::time::sleep_until(due.into()).await;
        let call = f(i);
        tasks.push(tokio::spawn(async move {
            let out = call.await;
            (due.elapsed(), out)
        }));
    }
    let mut done = Vec::with_capacity(total);
    for t in tasks {
        if let Ok(r) = t.await {
            done.push(r);
        }
    }
    done
}

/// This process's peak resident memory (its high-water mark, `VmHWM`), in MB; 0 where `/proc` has none.
pub fn peak_memory_mb() -> f64 {
    memory_mb("self", "VmHWM").unwrap_or(0.0)
}

/// A memory figure of process `pid` (`self`, or a number) from `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in MB.
pub fn memory_mb(pid: &str, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse::<f64>().ok().map(|kb| kb / 1024.0)
}

/// Serves a bare tonic server on an ephemeral loopback port: the health service and nothing else (no auth, limits,
/// tracing or guard) — the baseline benchmarks compare the stack with. Returns its address; it serves until the
/// runtime stops.
pub async fn bare_health_server() -> std::io::Result<std::net::SocketAddr> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_service_status("", tonic_health::ServingStatus::Serving).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let incoming = crate::serve::accepted(listener);
    tokio::spawn(tonic::transport::Server::builder().add_service(health).serve_with_incoming(incoming));
    Ok(addr)
}

/// Replaces the section `name` of the Markdown file at `path` (between `<!-- name:start -->` and
/// `<!-- name:end -->`), appending it when missing.
pub fn write_benchmark_section(path: &str, name: &str, report: &str) -> std::io::Result<()> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let (start, end) = (format!("<!-- {name}:start -->"), format!("<!-- {name}:end -->"));
    let block = format!("{start}\n{report}{end}");
    let new = match (text.find(&start), text.find(&end)) {
        (Some(a), Some(b)) if a < b => format!("{}{}{}", &text[..a], block, &text[b + end.len()..]),
        _ => format!("{text}\n{block}\n"),
    };
    std::fs::write(path, new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benchmark_sections_are_replaced_in_place() {
        let path = std::env::temp_dir().join(format!("bench-{}.md", uuid::Uuid::new_v4()));
        let p = path.to_str().unwrap();
        std::fs::write(p, "# B\n\n<!-- a:start -->\nold\n<!-- a:end -->\ntail\n").unwrap();
        write_benchmark_section(p, "a", "new\n").unwrap();
        write_benchmark_section(p, "b", "other\n").unwrap();
        let text = std::fs::read_to_string(p).unwrap();
        assert!(text.contains("<!-- a:start -->\nnew\n<!-- a:end -->\ntail"));
        assert!(text.contains("<!-- b:start -->\nother\n<!-- b:end -->"));
        assert!(!text.contains("old"));
        let _ = std::fs::remove_file(p);
    }
}
