//! A mixed workload over the whole suite, written to BENCHMARKS.md (between the `mixed` markers).
//!
//! `cargo bench -p rapport --bench mixed` (env: BENCH_RATE calls/s, default 200; BENCH_SECS, default 60). The
//! suite runs as a user starts it: `rapport up` in a process of its own, on fresh SQLite files, its events
//! delivered between the services as they are in production. After a setup (members, consenting customers, a
//! referral programme, codes) and a warm-up of 15 s, calls are offered at a fixed rate across every service — a
//! fixed cycle of the RPCs below — each on a task of its own, its latency taken from its scheduled start (a stall is
//! not hidden). Every call must succeed: each workload call is one a correct client makes, so any error is
//! unexpected. The suite's resident memory is sampled every second; growth is its last sample against its first
//! after the warm-up (goal under 10 %), and each half's is shown: caches that fill up flatten, a leak does not.
use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use rapport_kit::client::{self, Outgoing, OutgoingChannel};
use rapport_proto::{
    Timestamp,
    common::v1::{Channel, Money},
    feedback::v1::{self as fpb, feedback_service_client::FeedbackServiceClient},
    improvement::v1::{self as ipb, improvement_service_client::ImprovementServiceClient},
    loyalty::v1::{self as lpb, loyalty_service_client::LoyaltyServiceClient},
    referrals::v1::{self as rpb, referrals_service_client::ReferralsServiceClient},
    segmentation::v1::{self as spb, segmentation_service_client::SegmentationServiceClient},
};

const SERVICES: [&str; 5] = ["segmentation", "loyalty", "referrals", "feedback", "improvement"];
/// Customers the calls go round (prime, so that every customer meets every call of the cycle).
const CUSTOMERS: usize = 499;
const WARM_UP_SECS: u64 = 15;
const GOAL_GROWTH: f64 = 0.10;
const PROGRAMME: &str = "friends";

/// The RPCs of the workload, in the cycle's order (a name appearing n times is n shares of the calls).
const CYCLE: [Op; 22] = [
    Op::Earn,
    Op::Earn,
    Op::Earn,
    Op::Earn,
    Op::Redeem,
    Op::GetMember,
    Op::GetMember,
    Op::GetMember,
    Op::ListTransactions,
    Op::Ingest,
    Op::Ingest,
    Op::ListSegments,
    Op::Features,
    Op::OpenCase,
    Op::OpenCase,
    Op::Survey,
    Op::Context,
    Op::Nps,
    Op::IssueCode,
    Op::GetCode,
    Op::Suggest,
    Op::Themes,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Earn,
    Redeem,
    GetMember,
    ListTransactions,
    Ingest,
    ListSegments,
    Features,
    OpenCase,
    Survey,
    Context,
    Nps,
    IssueCode,
    GetCode,
    Suggest,
    Themes,
}

impl Op {
    fn label(self) -> &'static str {
        match self {
            Op::Earn => "loyalty EarnPoints",
            Op::Redeem => "loyalty RedeemPoints",
            Op::GetMember => "loyalty GetMember",
            Op::ListTransactions => "loyalty ListTransactions",
            Op::Ingest => "segmentation IngestEventBatch (10 events)",
            Op::ListSegments => "segmentation ListCustomerSegments",
            Op::Features => "segmentation GetCustomerFeatures",
            Op::OpenCase => "feedback OpenCase (classified, routed)",
            Op::Survey => "feedback ScheduleSurvey, then RecordResponse",
            Op::Context => "feedback GetCustomerContext (asks 3 services)",
            Op::Nps => "feedback GetNps (by day, 1 day)",
            Op::IssueCode => "referrals IssueCode",
            Op::GetCode => "referrals GetCode",
            Op::Suggest => "improvement SubmitSuggestion",
            Op::Themes => "improvement ListThemes",
        }
    }
}

#[derive(Clone)]
struct Suite {
    loyalty: LoyaltyServiceClient<OutgoingChannel>,
    segmentation: SegmentationServiceClient<OutgoingChannel>,
    feedback: FeedbackServiceClient<OutgoingChannel>,
    referrals: ReferralsServiceClient<OutgoingChannel>,
    improvement: ImprovementServiceClient<OutgoingChannel>,
    code: Arc<String>,
}

fn customer(k: usize) -> String {
    format!("mx-{}", k % CUSTOMERS)
}

fn now() -> Timestamp {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    rapport_kit::clock::timestamp(ms)
}

const COMPLAINTS: [&str; 6] = [
    "my parcel arrived two weeks late and nobody answered my emails",
    "le colis est arrivé en retard et le service client ne répond pas",
    "I was charged twice for the same order, please refund me",
    "j'ai été débité deux fois pour la même commande",
    "the product broke after three days, I want a replacement",
    "l'application plante à chaque fois que je veux payer",
];

impl Suite {
    /// Call `i` of the workload (run `run` of the warm-up or the measure, so request ids never repeat).
    async fn call(mut self, op: Op, i: usize, run: &'static str) -> Result<(), tonic::Status> {
        let c = customer(i);
        let rid = format!("{run}-{i}");
        match op {
            Op::Earn => {
                let req = lpb::EarnPointsRequest {
                    request_id: rid,
                    customer_id: c,
                    points: 10,
                    reason: "order".into(),
                    reference: String::new(),
                };
                self.loyalty.earn_points(req).await.map(drop)
            }
            Op::Redeem => {
                let req =
                    lpb::RedeemPointsRequest { request_id: rid, customer_id: c, points: 1, reason: "gift".into() };
                self.loyalty.redeem_points(req).await.map(drop)
            }
            Op::GetMember => self.loyalty.get_member(lpb::GetMemberRequest { customer_id: c }).await.map(drop),
            Op::ListTransactions => {
                let req = lpb::ListTransactionsRequest { customer_id: c, page_size: 20, page_token: String::new() };
                self.loyalty.list_transactions(req).await.map(drop)
            }
            Op::Ingest => {
                let events = (0..10u32)
                    .map(|e| spb::BehaviourEvent {
                        event_id: format!("{rid}-{e}"),
                        customer_id: c.clone(),
                        kind: if e.is_multiple_of(3) { spb::EventKind::Purchase } else { spb::EventKind::Visit }.into(),
                        occurred_at: Some(now()),
                        channel: Channel::Web.into(),
                        amount: e.is_multiple_of(3).then(|| Money { currency_code: "EUR".into(), units: 40, nanos: 0 }),
                        ..Default::default()
                    })
                    .collect();
                self.segmentation.ingest_event_batch(spb::IngestEventBatchRequest { events }).await.map(drop)
            }
            Op::ListSegments => {
                let req = spb::ListCustomerSegmentsRequest { customer_id: c };
                self.segmentation.list_customer_segments(req).await.map(drop)
            }
            Op::Features => {
                let req = spb::GetCustomerFeaturesRequest { customer_id: c };
                self.segmentation.get_customer_features(req).await.map(drop)
            }
            Op::OpenCase => {
                let req = fpb::OpenCaseRequest {
                    request_id: rid,
                    kind: fpb::CaseKind::Complaint.into(),
                    customer_id: c,
                    channel: Channel::Email.into(),
                    text: COMPLAINTS[i % COMPLAINTS.len()].into(),
                    ..Default::default()
                };
                self.feedback.open_case(req).await.map(drop)
            }
            Op::Survey => {
                // A customer of its own: the anti-fatigue wait would rightly refuse a second survey within 7 days.
                let req = fpb::ScheduleSurveyRequest {
                    request_id: format!("{rid}-s"),
                    customer_id: format!("sv-{run}-{i}"),
                    touchpoint: "delivery".into(),
                    channel: Channel::Email.into(),
                    ..Default::default()
                };
                let survey = self.feedback.schedule_survey(req).await?.into_inner().survey.unwrap_or_default();
                let req = fpb::RecordResponseRequest {
                    request_id: format!("{rid}-a"),
                    survey_id: survey.survey_id,
                    score: (i % 11) as i32,
                    comment: if i.is_multiple_of(2) { "quick delivery, thanks".into() } else { String::new() },
                };
                self.feedback.record_response(req).await.map(drop)
            }
            Op::Context => {
                let req = fpb::GetCustomerContextRequest { customer_id: c };
                self.feedback.get_customer_context(req).await.map(drop)
            }
            Op::Nps => {
                let end = now();
                let start = Timestamp { seconds: end.seconds - 86_400, nanos: 0 };
                let req = fpb::GetNpsRequest {
                    start_time: Some(start),
                    end_time: Some(end),
                    group_by: fpb::NpsGrouping::Day.into(),
                };
                self.feedback.get_nps(req).await.map(drop)
            }
            Op::IssueCode => {
                let req = rpb::IssueCodeRequest {
                    request_id: rid,
                    customer_id: format!("amb-{run}-{i}"),
                    programme_id: PROGRAMME.into(),
                    ..Default::default()
                };
                self.referrals.issue_code(req).await.map(drop)
            }
            Op::GetCode => self.referrals.get_code(rpb::GetCodeRequest { code: self.code.to_string() }).await.map(drop),
            Op::Suggest => {
                let req = ipb::SubmitSuggestionRequest {
                    request_id: rid,
                    text: "let me change the delivery slot after ordering".into(),
                    theme_id: String::new(),
                };
                self.improvement.submit_suggestion(req).await.map(drop)
            }
            Op::Themes => self.improvement.list_themes(ipb::ListThemesRequest::default()).await.map(drop),
        }
    }
}

/// The suite's process, stopped and its files removed however the benchmark ends.
struct Running {
    child: Child,
    dir: std::path::PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `rapport up` on fresh files under `dir`; the process and each service's address.
fn start_suite(dir: &std::path::Path) -> (Child, BTreeMap<String, String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rapport"))
        .args(["up", "--base-port", "0", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .env_remove("DATABASE_URL")
        .env_remove("RAPPORT_AUTH_DIR")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("suite.log")).expect("log file"))
        .spawn()
        .expect("rapport up");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut addrs = BTreeMap::new();
    for line in lines.by_ref().map_while(Result::ok) {
        let Some(at) = line.find("http://") else { continue };
        let addr: String = line[at..].chars().take_while(|c| !c.is_whitespace() && *c != '┆' && *c != '│').collect();
        if let Some(s) = SERVICES.iter().find(|s| line[..at].contains(*s)) {
            addrs.insert(s.to_string(), addr);
        }
        if addrs.len() == SERVICES.len() {
            break;
        }
    }
    assert_eq!(addrs.len(), SERVICES.len(), "rapport up did not list every service: {addrs:?}");
    // Keep draining its stdout so that it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, addrs)
}

async fn connect(addrs: &BTreeMap<String, String>, token: &str) -> Suite {
    let ch = |s: &str| {
        client::channel(&addrs[s], Outgoing::new(Some(token.to_string()), Duration::from_secs(30))).expect("channel")
    };
    Suite {
        loyalty: LoyaltyServiceClient::new(ch("loyalty")),
        segmentation: SegmentationServiceClient::new(ch("segmentation")),
        feedback: FeedbackServiceClient::new(ch("feedback")),
        referrals: ReferralsServiceClient::new(ch("referrals")),
        improvement: ImprovementServiceClient::new(ch("improvement")),
        code: Arc::new(String::new()),
    }
}

/// Members with points, consenting customers, a referral programme and one code to look up.
async fn set_up(s: &mut Suite) {
    for k in 0..CUSTOMERS {
        let c = customer(k);
        let req =
            lpb::EnrolMemberRequest { request_id: format!("en-{k}"), customer_id: c.clone(), display_name: "M".into() };
        s.loyalty.enrol_member(req).await.expect("enrol");
        let req = lpb::EarnPointsRequest {
            request_id: format!("first-{k}"),
            customer_id: c.clone(),
            points: 1000,
            reason: "welcome".into(),
            reference: String::new(),
        };
        s.loyalty.earn_points(req).await.expect("earn");
        let req = spb::UpsertCustomerRequest {
            request_id: format!("up-{k}"),
            customer_id: c,
            consent_marketing: true,
            consent_profiling: true,
            ..Default::default()
        };
        s.segmentation.upsert_customer(req).await.expect("upsert");
    }
    s.referrals
        .create_programme(rpb::CreateProgrammeRequest {
            request_id: "programme".into(),
            programme_id: PROGRAMME.into(),
            rules: Some(rpb::ProgrammeRules {
                name: "Friends".into(),
                qualifying_event: rpb::QualifyingEvent::FirstPurchase.into(),
                referrer_reward: Some(rpb::Reward { points: 500, share_bps: 0 }),
                referee_reward: Some(rpb::Reward { points: 100, share_bps: 0 }),
                attribution_window_days: 30,
                approval_delay_days: 7,
                returns_window_days: 14,
                ..Default::default()
            }),
        })
        .await
        .expect("programme");
    let req = rpb::IssueCodeRequest {
        request_id: "code".into(),
        customer_id: customer(0),
        programme_id: PROGRAMME.into(),
        ..Default::default()
    };
    let code = s.referrals.issue_code(req).await.expect("code").into_inner().code.expect("code").code;
    s.code = Arc::new(code);
}

type Calls = Vec<(Duration, (Op, Result<(), tonic::Status>))>;

async fn offer(s: &Suite, rate: u64, secs: u64, run: &'static str) -> Calls {
    rapport_kit::testing::at_rate(rate, secs, |i| {
        let (s, op) = (s.clone(), CYCLE[i % CYCLE.len()]);
        async move { (op, s.call(op, i, run).await) }
    })
    .await
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len().max(1)) - 1;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

fn main() {
    let rate: u64 = std::env::var("BENCH_RATE").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let secs: u64 = std::env::var("BENCH_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let dir = std::env::temp_dir().join(format!("rapport-mixed-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("data folder");
    let (child, addrs) = start_suite(&dir);
    let pid = child.id().to_string();
    let running = Running { child, dir: dir.clone() };
    let rss = move || rapport_kit::testing::memory_mb(&pid, "VmRSS").unwrap_or(f64::NAN);
    let token = std::fs::read_to_string(dir.join("dev-token")).expect("the development token");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let (calls, samples, started) = rt.block_on(async {
        let mut suite = connect(&addrs, token.trim()).await;
        let started = rss();
        set_up(&mut suite).await;
        let warm = offer(&suite, rate, WARM_UP_SECS, "warm").await;
        let warm_failed: Vec<_> = warm.iter().filter_map(|(_, (op, r))| r.as_ref().err().map(|e| (op, e))).collect();
        assert!(warm_failed.is_empty(), "the warm-up failed: {:?}", &warm_failed[..warm_failed.len().min(5)]);
        // Memory every second while the workload runs.
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let sampler = tokio::spawn(async move {
            let mut samples = vec![rss()];
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => samples.push(rss()),
                    _ = stop_rx.changed() => break,
                }
            }
            samples.push(rss());
            samples
        });
        let calls = offer(&suite, rate, secs, "run").await;
        let _ = stop_tx.send(true);
        (calls, sampler.await.expect("sampler"), started)
    });
    let log = std::fs::read_to_string(dir.join("suite.log")).unwrap_or_default();
    drop(running);
    let logged_errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();

    let mut by_op: BTreeMap<Op, (Vec<Duration>, usize)> = BTreeMap::new();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for (d, (op, r)) in &calls {
        let e = by_op.entry(*op).or_default();
        e.0.push(*d);
        if let Err(s) = r {
            e.1 += 1;
            *errors.entry(format!("{}: {:?} {}", op.label(), s.code(), s.message())).or_default() += 1;
        }
    }
    let lost = (rate * secs) as usize - calls.len();
    let failed: usize = by_op.values().map(|(_, f)| f).sum::<usize>() + lost;
    let mut all: Vec<Duration> = calls.iter().map(|(d, _)| *d).collect();
    all.sort();
    let mut rows = String::new();
    for (op, (lat, f)) in &mut by_op {
        lat.sort();
        rows += &format!(
            "| {} | {} | {f} | {:.1} ms | {:.1} ms | {:.1} ms |\n",
            op.label(),
            lat.len(),
            pct(lat, 0.5),
            pct(lat, 0.99),
            pct(lat, 1.0)
        );
    }
    let (first, last) = (samples.first().copied().unwrap_or(f64::NAN), samples.last().copied().unwrap_or(f64::NAN));
    let peak = samples.iter().copied().fold(f64::NAN, f64::max);
    let growth = (last - first) / first;
    let middle = samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN);
    let (first_half, second_half) = ((middle - first) / first, (last - middle) / middle);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let error_lines = if errors.is_empty() {
        String::new()
    } else {
        errors.iter().map(|(e, n)| format!("- {n} × {e}\n")).collect::<String>() + "\n"
    };
    let report = format!(
        "The suite as `rapport up` runs it (five services, one process, SQLite files, events delivered between \
         them), {CUSTOMERS} customers; {rate} calls/s offered for {secs} s across the RPCs below after a {WARM_UP_SECS}-s \
         warm-up, each call's latency from its scheduled start; {cores} cores shared by the callers and the suite \
         (`cargo bench -p rapport --bench mixed`):\n\n\
         | RPC | calls | errors | p50 | p99 | max |\n|---|---:|---:|---:|---:|---:|\n{rows}\
         | **all** | {} | {failed} | {:.1} ms | {:.1} ms | {:.1} ms |\n\n{error_lines}\
         Unexpected errors: **{failed}** (goal 0); errors the suite logged: {}. Resident memory of the suite: {started:.0} MB \
         at start, {first:.1} MB when the measure began, {middle:.1} MB half-way, {last:.1} MB at its end (peak \
         {peak:.1} MB): growth **{:+.1} %** (goal under {:.0} %): {:+.1} % in the first half, {:+.1} % in the second.\n",
        calls.len(),
        pct(&all, 0.5),
        pct(&all, 0.99),
        pct(&all, 1.0),
        logged_errors.len(),
        growth * 100.0,
        GOAL_GROWTH * 100.0,
        first_half * 100.0,
        second_half * 100.0,
    );
    println!("{report}");
    for l in logged_errors.iter().take(10) {
        println!("logged: {l}");
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../BENCHMARKS.md");
    rapport_kit::testing::write_benchmark_section(path, "mixed", &report).expect("write BENCHMARKS.md");
}
