//! The README's first command and the operator CLI, as a person runs them: `rapport up` in a fresh folder, then
//! `rapport gen`, training, a segment, an offer and a campaign, then Ctrl-C's SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use opentelemetry_proto::tonic as otlp;
use otlp::collector::{
    metrics::v1::{
        ExportMetricsServiceRequest, ExportMetricsServiceResponse,
        metrics_service_server::{MetricsService, MetricsServiceServer},
    },
    trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

/// The addresses `rapport up` printed: (segmentation, loyalty, feedback, referrals, improvement).
struct Addrs(String, String, String, String, String);

fn rapport(dir: &Path, addrs: &Addrs, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_rapport"))
        .current_dir(dir)
        .env("RAPPORT_SEGMENTATION_ADDR", &addrs.0)
        .env("RAPPORT_LOYALTY_ADDR", &addrs.1)
        .env("RAPPORT_FEEDBACK_ADDR", &addrs.2)
        .env("RAPPORT_IMPROVEMENT_ADDR", &addrs.4)
        .env_remove("RAPPORT_TOKEN")
        .env_remove("RAPPORT_AUTH_DIR")
        .env_remove("RAPPORT_REFERRALS_ADDR")
        // Referrals' address as the global flag, the others through the environment: both ways are exercised.
        .args(["--referrals-addr", &addrs.3])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "rapport {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

async fn serving(addr: &str) -> bool {
    let Ok(ch) = tonic::transport::Endpoint::from_shared(addr.to_string()).unwrap().connect().await else {
        return false;
    };
    HealthClient::new(ch)
        .check(HealthCheckRequest { service: String::new() })
        .await
        .is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32)
}

fn stop(child: &mut Child) -> std::process::ExitStatus {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(std::time::Instant::now() < deadline, "rapport up did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `rapport up --base-port 0` in `dir` with `env` and waits until its five services answer their health check.
async fn up(dir: &Path, env: &[(&str, &str)]) -> (Child, Addrs) {
    std::fs::create_dir_all(dir).unwrap();
    let mut up = Command::new(env!("CARGO_BIN_EXE_rapport"))
        .current_dir(dir)
        .args(["up", "--base-port", "0"])
        .env("RAPPORT_DRAIN_DELAY_MS", "100")
        .env("RUST_LOG", "warn")
        .env_remove("RAPPORT_AUTH_DIR")
        .env_remove("RAPPORT_AUTH_SERVICE_JWKS")
        .env_remove("DATABASE_URL")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("OTEL_SERVICE_NAME")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The table of services comes first on stdout.
    let mut lines = BufReader::new(up.stdout.take().unwrap()).lines();
    let printed: Vec<String> = (&mut lines).map_while(Result::ok).take_while(|l| !l.starts_with("try:")).collect();
    let addr_of = |service: &str| {
        printed
            .iter()
            .find(|l| l.contains(service))
            .and_then(|l| l.split_whitespace().find(|w| w.starts_with("http://")))
            .unwrap_or_else(|| panic!("no address of {service} in {printed:?}"))
            .to_string()
    };
    let addrs = Addrs(
        addr_of("segmentation"),
        addr_of("loyalty"),
        addr_of("feedback"),
        addr_of("referrals"),
        addr_of("improvement"),
    );
    assert!(printed.iter().any(|l| l.contains("development token")));
    // The rest of its output read to the end, so that the pipe stays open while it runs.
    std::thread::spawn(move || lines.for_each(drop));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !(serving(&addrs.0).await
        && serving(&addrs.1).await
        && serving(&addrs.2).await
        && serving(&addrs.3).await
        && serving(&addrs.4).await)
    {
        assert!(tokio::time::Instant::now() < deadline, "the suite did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (up, addrs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_then_the_walk_through_of_the_readme() {
    let dir = std::env::temp_dir().join(format!("rapport-up-{}", std::process::id()));
    let (mut up, addrs) = up(&dir, &[]).await;
    assert!(dir.join("data/dev-token").exists() && dir.join("data/loyalty.db").exists());
    assert!(dir.join("data/referrals.db").exists() && dir.join("data/improvement.db").exists());

    let out = rapport(&dir, &addrs, &["gen", "--customers", "120", "--seed", "4"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("120 customers"));
    let out = rapport(&dir, &addrs, &["segments", "train", "--k", "4", "--wait"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("model version 1") && text.contains("promoters"), "{text}");
    rapport(&dir, &addrs, &["segments", "create", "fans", "nps = promoter"]);
    let out = rapport(&dir, &addrs, &["segments", "show", "fans"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("nps in [\"promoter\"]"));
    // A person's token from the development issuer's key `rapport up` keeps under data/keys.
    let out = rapport(&dir, &addrs, &["token", "issue", "--role", "reader", "--ttl", "10m", "--subject", "rae"]);
    let reader = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let out = rapport(&dir, &addrs, &["--token", &reader, "segments", "show", "fans"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("promoter"));
    let out = rapport(&dir, &addrs, &["keys", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("loyalty.") && text.contains("people.") && text.contains("EdDSA"), "{text}");
    rapport(&dir, &addrs, &["loyalty", "offer", "create", "thanks", "--title", "thank you", "--percent", "15"]);
    let out = rapport(
        &dir,
        &addrs,
        &["campaign", "trigger", "spring", "--segment", "fans", "--offer", "thanks", "--holdout", "10", "--wait"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("completed"), "{text}");
    let out = rapport(&dir, &addrs, &["segments", "explain", "cust-4-0"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("cluster"));
    // A survey after a delivery, its answer, and the NPS.
    let out = rapport(&dir, &addrs, &["survey", "schedule", "cust-4-1", "--touchpoint", "delivery"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let survey =
        text.split_whitespace().find(|w| w.starts_with("srv-")).unwrap_or_else(|| panic!("{text}")).to_string();
    let out = rapport(&dir, &addrs, &["survey", "answer", &survey, "--score", "10", "--comment", "on time"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("promoter"));
    let out = rapport(&dir, &addrs, &["nps", "--by", "touchpoint"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("delivery") && text.contains("+100.0") && text.contains("daily NPS"), "{text}");
    // A complaint: classified with its explanation, answered, resolved; the taxonomy shown.
    let out = rapport(&dir, &addrs, &["cases", "open", "cust-4-1", "Mon colis n'est jamais arrivé"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("delivery") && text.contains("colis"), "{text}");
    let case = text.split_whitespace().find(|w| w.starts_with("case-")).unwrap_or_else(|| panic!("{text}")).to_string();
    rapport(&dir, &addrs, &["cases", "respond", &case, "a new parcel leaves today"]);
    let out = rapport(&dir, &addrs, &["cases", "resolve", &case, "--resolution", "reshipped"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("resolved"));
    let out = rapport(&dir, &addrs, &["cases", "show", &case]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("a new parcel leaves today") && text.contains("reshipped"), "{text}");
    let out = rapport(&dir, &addrs, &["themes", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("taxonomy version 1"));
    // Routing: a queue, an agent, a rule; a complaint about a parcel lands with the agent.
    rapport(&dir, &addrs, &["routing", "queue", "logistics"]);
    rapport(&dir, &addrs, &["routing", "agent", "ann", "--queues", "logistics", "--capacity", "3"]);
    rapport(&dir, &addrs, &["routing", "rules", "--rule", "parcels: theme=delivery -> logistics"]);
    let out = rapport(&dir, &addrs, &["cases", "open", "cust-4-2", "my parcel is lost"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("delivery"), "{text}");
    let parcel =
        text.split_whitespace().find(|w| w.starts_with("case-")).unwrap_or_else(|| panic!("{text}")).to_string();
    let out = rapport(&dir, &addrs, &["cases", "report", "--by", "queue"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("logistics") && text.contains("general") && text.contains("all"), "{text}");
    // The assigner gives the case to ann moments after intake.
    rapport_kit::testing::eventually(30, "the parcel case with ann", || async {
        let out = rapport(&dir, &addrs, &["routing", "show"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("logistics") && text.contains("theme=delivery"), "{text}");
        text.contains("1 / 3")
    })
    .await;
    // Answered, the customer writes again: a next-answer clock runs. The SLA policy sends breaches to a queue.
    rapport(&dir, &addrs, &["cases", "respond", &parcel, "it is on its way"]);
    let out = rapport(&dir, &addrs, &["cases", "message", &parcel, "any news?"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("next answer") && text.contains("running, due"), "{text}");
    rapport(&dir, &addrs, &["routing", "queue", "escalations"]);
    let line = ["sla", "set", "--line", "* vip 1h 2h 16h", "--line", "* * 4h 8h 48h", "--escalate-to", "escalations"];
    let out = rapport(&dir, &addrs, &line);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("16h") && text.contains("moves it to queue escalations"), "{text}");
    // The customer in front of an agent, and the rules behind the suggestions.
    let out = rapport(&dir, &addrs, &["context", "cust-4-2"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("loyalty") && text.contains("segmentation") && text.contains("suggested action"), "{text}");
    assert!(text.contains(&parcel), "{text}");
    let out = rapport(&dir, &addrs, &["actions", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("callback_today"));
    // The barometer of a month that is over: ann's own view, the reading, the history.
    rapport(&dir, &addrs, &["barometer", "assess", "ann", "2026-01", "--score", "quality=8", "--comment", "busy"]);
    let out = rapport(&dir, &addrs, &["barometer", "staff", "2026-01"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("busy"));
    let out = rapport(&dir, &addrs, &["barometer", "read", "2026-01"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("barometer 2026-01") && text.contains("quality of service"), "{text}");
    let out = rapport(&dir, &addrs, &["barometer", "show"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("index, oldest first"));
    // Referrals: a code for a customer (one per programme), the leaderboard, the review queue.
    let out = rapport(&dir, &addrs, &["referrals", "code", "cust-4-3", "--usage-limit", "5"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("cust-4-3") && text.contains("default") && text.contains("0 / 5"), "{text}");
    assert!(text.contains("uses / limit") && text.contains("no end"), "{text}");
    let again = Command::new(env!("CARGO_BIN_EXE_rapport"))
        .current_dir(&dir)
        .args(["referrals", "code", "cust-4-3", "--referrals-addr", &addrs.3])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("CUSTOMER_HAS_CODE"));
    let out = rapport(&dir, &addrs, &["referrals", "leaderboard", "--days", "7"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for header in ["rank", "ambassador", "invited", "signed up", "converted", "rewarded", "flagged", "points"] {
        assert!(text.contains(header), "no {header:?} in {text}");
    }
    let out = rapport(&dir, &addrs, &["referrals", "review"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for header in ["referral", "ambassador", "referee", "score", "signals"] {
        assert!(text.contains(header), "no {header:?} in {text}");
    }
    assert!(text.contains("no flagged referral"), "{text}");
    // Improvements: feedback's complaints reach improvement as theme signals; an agent's suggestion; an improvement
    // for the delivery theme, ranked, shipped; the digest as tables and as Markdown.
    rapport_kit::testing::eventually(30, "delivery among improvement's themes", || async {
        let out = rapport(&dir, &addrs, &["improvements", "themes"]);
        String::from_utf8_lossy(&out.stdout).contains("delivery")
    })
    .await;
    let out =
        rapport(&dir, &addrs, &["improvements", "suggest", "send the tracking link by sms", "--theme", "delivery"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("theme delivery"));
    let out = rapport(
        &dir,
        &addrs,
        &["improvements", "create", "parcel lockers", "--themes", "delivery", "--confidence", "0.8", "--effort", "2"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("parcel lockers") && text.contains("proposed") && text.contains("80 %"), "{text}");
    let improvement =
        text.split_whitespace().find(|w| w.starts_with("imp-")).unwrap_or_else(|| panic!("{text}")).to_string();
    let out = rapport(&dir, &addrs, &["improvements", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&improvement));
    rapport(&dir, &addrs, &["improvements", "status", &improvement, "planned", "--note", "q1"]);
    let out = rapport(&dir, &addrs, &["improvements", "status", &improvement, "shipped", "--note", "lockers live"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("shipped"));
    let out = rapport(&dir, &addrs, &["improvements", "show", &improvement]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("lockers live") && text.contains("no before/after yet"), "{text}");
    // Feedback notes the shipped improvement on the open and recent delivery cases.
    rapport_kit::testing::eventually(30, "the note on the parcel case", || async {
        let out = rapport(&dir, &addrs, &["cases", "show", &parcel]);
        String::from_utf8_lossy(&out.stdout).contains("improvement shipped: parcel lockers")
    })
    .await;
    let out = rapport(&dir, &addrs, &["improvements", "report", "--markdown", "digest.md"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Ranked backlog") && text.contains("Shipped fixes, before and after"), "{text}");
    let md = std::fs::read_to_string(dir.join("digest.md")).unwrap();
    assert!(md.starts_with("# Product improvement digest") && md.contains("parcel lockers"), "{md}");

    // The audit trail: who changed what, across the suite and in one service.
    let out = rapport(&dir, &addrs, &["audit", "--method", "ChangeImprovementStatus"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("improvement:{improvement}")) && text.contains("2 records"), "{text}");
    for header in ["time (UTC)", "service", "action", "role", "actor", "target", "customers"] {
        assert!(text.contains(header), "no {header:?} in {text}");
    }
    let out = rapport(&dir, &addrs, &["audit", "--service", "loyalty", "--limit", "3"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("3 records, newest first") && text.contains("loyalty"), "{text}");
    let out = rapport(&dir, &addrs, &["audit", "--role", "system", "--method", "NoSuchAction"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no audit records match"));

    // bad input: a clear error and a failing exit status
    let bad = Command::new(env!("CARGO_BIN_EXE_rapport"))
        .current_dir(&dir)
        .env("RAPPORT_LOYALTY_ADDR", &addrs.1)
        .args(["loyalty", "earn", "nobody", "0"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("points: must be between 1 and 1000000000"));

    let status = stop(&mut up);
    assert!(status.success(), "exit status {status}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// What an OTLP collector received: each span with the `service.name` of its resource.
#[derive(Clone, Default)]
struct Collector(std::sync::Arc<std::sync::Mutex<Vec<(String, otlp::trace::v1::Span)>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                .map(|v| match v {
                    otlp::common::v1::any_value::Value::StringValue(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            spans.extend(rs.scope_spans.into_iter().flat_map(|ss| ss.spans).map(|s| (service.clone(), s)));
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

/// The histogram and gauge points an OTLP collector received: (metric name, attributes as text, count; 1 for a
/// gauge).
#[derive(Clone, Default)]
struct Meters(std::sync::Arc<std::sync::Mutex<Vec<Point>>>);

/// A metric's name, its point's attributes as text, and the point's count.
/// A metric's name, a point's attributes, its count (histograms; 1 otherwise) and its value (gauges and sums).
type Point = (String, Vec<(String, String)>, u64, f64);

fn text(v: Option<&otlp::common::v1::AnyValue>) -> String {
    use otlp::common::v1::any_value::Value;
    match v.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        other => format!("{other:?}"),
    }
}

#[tonic::async_trait]
impl MetricsService for Meters {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        use otlp::metrics::v1::{metric::Data, number_data_point::Value};
        let number = |p: &otlp::metrics::v1::NumberDataPoint| match p.value {
            Some(Value::AsDouble(d)) => d,
            Some(Value::AsInt(i)) => i as f64,
            None => f64::NAN,
        };
        let mut points = self.0.lock().unwrap();
        for metric in
            request.into_inner().resource_metrics.into_iter().flat_map(|r| r.scope_metrics).flat_map(|s| s.metrics)
        {
            let each: Vec<(&[otlp::common::v1::KeyValue], u64, f64)> = match &metric.data {
                Some(Data::Histogram(h)) => {
                    h.data_points.iter().map(|p| (&p.attributes[..], p.count, f64::NAN)).collect()
                }
                Some(Data::Gauge(g)) => g.data_points.iter().map(|p| (&p.attributes[..], 1, number(p))).collect(),
                Some(Data::Sum(g)) => g.data_points.iter().map(|p| (&p.attributes[..], 1, number(p))).collect(),
                _ => Vec::new(),
            };
            for (attributes, count, value) in each {
                let attributes = attributes.iter().map(|kv| (kv.key.clone(), text(kv.value.as_ref()))).collect();
                points.push((metric.name.clone(), attributes, count, value));
            }
        }
        Ok(tonic::Response::new(ExportMetricsServiceResponse { partial_success: None }))
    }
}

/// `rapport up` exporting to a real OTLP endpoint: one process, yet every span under its own service's name, a
/// campaign's grant batches linked to the call that triggered them, and deliveries parenting the receiver's spans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_exports_each_service_under_its_own_name() {
    let collector = Collector::default();
    let meters = Meters::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .add_service(MetricsServiceServer::new(meters.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let dir = std::env::temp_dir().join(format!("rapport-otlp-{}", std::process::id()));
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
        ("RAPPORT_FEEDBACK_GAUGES_MS", "200"),
    ];
    let (mut up, addrs) = up(&dir, &env).await;
    rapport(&dir, &addrs, &["gen", "--customers", "30", "--seed", "7"]);
    rapport(&dir, &addrs, &["segments", "create", "fans", "nps = promoter"]);
    rapport(&dir, &addrs, &["loyalty", "offer", "create", "thanks", "--title", "thank you", "--percent", "15"]);
    let trigger = ["campaign", "trigger", "spring", "--segment", "fans", "--offer", "thanks", "--holdout", "10"];
    let out = rapport(&dir, &addrs, &[&trigger[..], &["--wait"]].concat());
    assert!(String::from_utf8_lossy(&out.stdout).contains("completed"));

    let found = |spans: &[(String, otlp::trace::v1::Span)]| -> Result<(), String> {
        fn named<'a>(
            spans: &'a [(String, otlp::trace::v1::Span)],
            service: &'a str,
            name: &'a str,
        ) -> impl Iterator<Item = &'a otlp::trace::v1::Span> {
            spans.iter().filter(move |(s, sp)| s == service && sp.name.ends_with(name)).map(|(_, sp)| sp)
        }
        let trigger = named(spans, "rapport-segmentation", "SegmentationService/TriggerCampaign")
            .next()
            .ok_or("no TriggerCampaign span under rapport-segmentation")?;
        let grant = named(spans, "rapport-segmentation", "campaign.grant")
            .find(|g| g.links.iter().any(|l| l.span_id == trigger.span_id && l.trace_id == trigger.trace_id))
            .ok_or("no campaign.grant span linked to TriggerCampaign")?;
        named(spans, "rapport-loyalty", "LoyaltyService/GrantOffers")
            .find(|g| g.trace_id == grant.trace_id && !g.parent_span_id.is_empty())
            .ok_or("no GrantOffers span under rapport-loyalty in the grant's trace")?;
        let delivered = spans.iter().any(|(from, d)| {
            d.name == "outbox.deliver"
                && spans
                    .iter()
                    .any(|(to, s)| to != from && s.name.ends_with("/DeliverEvents") && s.parent_span_id == d.span_id)
        });
        if !delivered {
            return Err("no DeliverEvents span of one service under another's outbox.deliver".into());
        }
        // Every service span is exported under a service, none under the process.
        match spans.iter().find(|(s, sp)| s == "rapport" && sp.name.contains("Service/")) {
            Some((_, sp)) => Err(format!("{} exported under the process", sp.name)),
            None => Ok(()),
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let answer = found(&collector.0.lock().unwrap());
        match answer {
            Ok(()) => break,
            Err(why) => assert!(tokio::time::Instant::now() < deadline, "{why}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // RED metrics: the campaign's trigger counted under segmentation with its status code, and a refusal under
    // its own code (a reader may not trigger campaigns); the outbox backlog gauge.
    let out = rapport(&dir, &addrs, &["token", "issue", "--role", "reader", "--ttl", "10m", "--subject", "rae"]);
    let reader = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let denied = Command::new(env!("CARGO_BIN_EXE_rapport"))
        .current_dir(&dir)
        .env("RAPPORT_SEGMENTATION_ADDR", &addrs.0)
        .args(["--token", &reader])
        .args(trigger)
        .output()
        .unwrap();
    assert!(!denied.status.success());
    let has = |points: &[Point], method: &str, code: &str| {
        points.iter().any(|(name, attributes, count, _)| {
            let is = |k: &str, v: &str| attributes.iter().any(|(key, value)| key == k && value == v);
            name == "rpc.server.call.duration"
                && *count > 0
                && is("rpc.method", method)
                && is("rpc.grpc.status_code", code)
                && is("rapport.service", "segmentation")
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (ok, denied, backlog) = {
            let points = meters.0.lock().unwrap();
            // Loyalty's outbox towards segmentation, counted by the relay that holds its lease.
            let backlog = points.iter().any(|(name, attributes, _, _)| {
                name == "rapport.outbox.backlog"
                    && attributes.contains(&("rapport.service".into(), "loyalty".into()))
                    && attributes.contains(&("messaging.destination.name".into(), "segmentation".into()))
            });
            (has(&points, "TriggerCampaign", "0"), has(&points, "TriggerCampaign", "7"), backlog)
        };
        if ok && denied && backlog {
            break;
        }
        let why = format!("TriggerCampaign ok {ok}, denied {denied}; loyalty's backlog {backlog}");
        assert!(tokio::time::Instant::now() < deadline, "{why}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Business gauges: a promoter's answer and an answered case make today's NPS +100, an SLA attainment of 1 and a
    // first-response median; the campaign's progress reaches 1.
    let out = rapport(&dir, &addrs, &["survey", "schedule", "cust-4-1", "--touchpoint", "delivery"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let survey = text.split_whitespace().find(|w| w.starts_with("srv-")).unwrap_or_else(|| panic!("{text}"));
    rapport(&dir, &addrs, &["survey", "answer", survey, "--score", "10"]);
    let out = rapport(&dir, &addrs, &["cases", "open", "cust-4-1", "Mon colis n'est jamais arrivé"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let case = text.split_whitespace().find(|w| w.starts_with("case-")).unwrap_or_else(|| panic!("{text}"));
    rapport(&dir, &addrs, &["cases", "respond", case, "a new parcel leaves today"]);
    rapport(&dir, &addrs, &["routing", "queue", "logistics"]);
    rapport(&dir, &addrs, &["routing", "agent", "ann", "--queues", "logistics", "--capacity", "3"]);
    rapport(&dir, &addrs, &["barometer", "assess", "ann", "2026-01", "--score", "quality=8"]);
    rapport(&dir, &addrs, &["barometer", "read", "2026-01"]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (nps, attainment, first_response, progress, staff) = {
            let points = meters.0.lock().unwrap();
            let last = |metric: &str, attribute: Option<(&str, &str)>| {
                points
                    .iter()
                    .rev()
                    .find(|(name, attributes, _, _)| {
                        name == metric && attribute.is_none_or(|(k, v)| attributes.contains(&(k.into(), v.into())))
                    })
                    .map(|p| p.3)
            };
            (
                last("rapport.feedback.nps", None),
                last("rapport.feedback.sla.attainment", None),
                last("rapport.feedback.first_response.median", None),
                last("rapport.segmentation.campaign.progress", Some(("rapport.campaign.id", "spring"))),
                last("rapport.feedback.barometer.axis", Some(("rapport.barometer.view", "staff"))),
            )
        };
        if nps == Some(100.0)
            && attainment == Some(1.0)
            && first_response.is_some_and(|s| s >= 0.0)
            && progress == Some(1.0)
            && staff == Some(80.0)
        {
            break;
        }
        let why = format!(
            "nps {nps:?}, attainment {attainment:?}, first response {first_response:?}, campaign {progress:?}, staff {staff:?}"
        );
        assert!(tokio::time::Instant::now() < deadline, "{why}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = stop(&mut up);
    assert!(status.success(), "exit status {status}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The help of `rapport <path>`, or `None` when that is no command.
fn help(path: &[&str]) -> Option<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_rapport")).args(path).arg("--help").output().unwrap();
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The subcommands a help text lists under `Commands:`.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// docs/operations.md names only what exists: each `rapport` command line's subcommands and flags, each service
/// binary's entry point, each manifest folder, and each setting (read by some binary's source).
#[test]
fn operations_guide_commands_are_real() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let guide = std::fs::read_to_string(root.join("docs/operations.md")).unwrap();
    let mut sources = String::new();
    for dir in ["libs", "services"] {
        let mut stack = vec![root.join(dir)];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap().map(Result::unwrap) {
                let path = entry.path();
                if path.is_dir() && !path.ends_with("tests") {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    sources += &std::fs::read_to_string(&path).unwrap();
                }
            }
        }
    }
    let services = ["loyalty", "segmentation", "referrals", "feedback", "improvement"];
    let mut in_block = false;
    let mut commands = 0;
    for line in guide.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if !in_block {
            continue;
        }
        // Leading settings (`DATABASE_URL=... rapport-loyalty migrate`) are settings, checked below.
        let words: Vec<&str> = line.split_whitespace().skip_while(|w| w.contains('=') && !w.starts_with('-')).collect();
        match words.first().copied() {
            Some("rapport") => {
                // Flags are checked against the help of the command they follow; other words are subcommands,
                // arguments or values.
                let mut path: Vec<&str> = Vec::new();
                let mut text = help(&path).unwrap();
                for w in &words[1..] {
                    if let Some(flag) = w.strip_prefix("--") {
                        let flag = flag.split('=').next().unwrap();
                        assert!(text.contains(&format!("--{flag} ")), "`{line}`: rapport {path:?} has no --{flag}");
                    } else if subcommands(&text).iter().any(|s| s == w) {
                        path.push(w);
                        text = help(&path).unwrap_or_else(|| panic!("rapport {path:?} has no help"));
                    }
                }
                assert!(!path.is_empty(), "`{line}`: no rapport subcommand");
                assert!(subcommands(&text).is_empty(), "`{line}`: rapport {path:?} needs a subcommand");
                commands += 1;
            }
            Some(binary) if binary.starts_with("rapport-") => {
                let service = binary.trim_start_matches("rapport-");
                assert!(services.contains(&service), "`{line}`: no service {service}");
                assert!(
                    words[1..] == ["migrate"] || words.len() == 1,
                    "`{line}`: a service binary takes only `migrate`"
                );
                commands += 1;
            }
            Some("kubectl") => {
                for w in words.iter().filter(|w| w.starts_with("k8s/")) {
                    assert!(root.join(w).join("kustomization.yaml").exists(), "`{line}`: no kustomization in {w}");
                }
                commands += 1;
            }
            _ => {}
        }
    }
    assert!(commands >= 10, "only {commands} commands found in the guide");
    // Settings: every RAPPORT_* / OTEL_* / DATABASE_URL the guide names is read somewhere.
    let mut named = 0;
    for word in guide.split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')) {
        if (word.starts_with("RAPPORT_") || word.starts_with("OTEL_") || word == "DATABASE_URL") && word.len() > 8 {
            // A subscriber's address is read by a name built from it (`RAPPORT_{}_URL`, the outbox's subscribers).
            let subscriber = word.strip_prefix("RAPPORT_").and_then(|w| w.strip_suffix("_URL")).is_some_and(|name| {
                services.contains(&name.to_lowercase().as_str()) && sources.contains("\"RAPPORT_{}_URL\"")
            });
            let read = subscriber || sources.contains(&format!("\"{word}\""));
            assert!(read, "the guide names {word}, which nothing reads");
            named += 1;
        }
    }
    assert!(named >= 10, "only {named} settings named");
}
