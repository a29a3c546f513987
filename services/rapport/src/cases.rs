//! `rapport cases …` and `rapport themes …`: complaints and claims for agents, and the theme taxonomy.
use anyhow::bail;
use rapport_proto::{
    common::v1::Channel,
    feedback::v1::{self as pb, feedback_service_client::FeedbackServiceClient},
};

use crate::{
    cli::{CasesArgs, CasesCommand, Conn, ThemesArgs, ThemesCommand},
    conn::{channel, explain, request_id},
    output::{self, enum_name as name},
};

fn theme_cell(d: Option<&pb::ThemeDecision>) -> String {
    match d {
        Some(d) if d.keywords.is_empty() => format!("{} ({:.0} %)", d.theme, d.confidence * 100.0),
        Some(d) => format!("{} ({:.0} %; {})", d.theme, d.confidence * 100.0, d.keywords.join(", ")),
        None => String::new(),
    }
}

/// An SLA clock as `state, due …`.
fn clock_cell(c: Option<&pb::SlaClock>) -> String {
    let Some(c) = c else { return String::new() };
    let state = name(c.state().as_str_name(), "SLA_STATE_");
    match c.due_time.as_ref() {
        Some(due) => format!("{state}, due {}", output::when(Some(due))),
        None => state,
    }
}

fn print_cases(cases: &[pb::Case]) {
    let mut t = output::table(&[
        "case",
        "kind",
        "customer",
        "tier",
        "severity",
        "theme",
        "state",
        "opened",
        "first answer",
        "next answer",
        "resolution",
    ]);
    for c in cases {
        let waiting = if c.waiting { " (waiting)" } else { "" };
        t.add_row(vec![
            c.case_id.clone(),
            name(c.kind().as_str_name(), "CASE_KIND_"),
            c.customer_id.clone(),
            c.tier.clone(),
            name(c.severity().as_str_name(), "SEVERITY_"),
            theme_cell(c.theme.as_ref()),
            name(c.state().as_str_name(), "CASE_STATE_") + waiting,
            output::when(c.create_time.as_ref()),
            clock_cell(c.first_response.as_ref()),
            clock_cell(c.next_response.as_ref()),
            clock_cell(c.resolution_clock.as_ref()),
        ]);
    }
    println!("{t}");
}

/// Runs `rapport cases …`.
pub async fn run(conn: &Conn, args: CasesArgs) -> anyhow::Result<()> {
    let mut c = FeedbackServiceClient::new(channel(conn, &conn.feedback_addr)?);
    let case = match args.command {
        CasesCommand::Open { customer_id, text, claim, channel, severity, order } => {
            let Some(ch) = Channel::from_str_name(&format!("CHANNEL_{}", channel.to_uppercase())) else {
                bail!("--channel: unknown channel {channel:?} (web, mobile, store, phone, email, social, chat)");
            };
            let Some(sev) = pb::Severity::from_str_name(&format!("SEVERITY_{}", severity.to_uppercase())) else {
                bail!("--severity: unknown severity {severity:?} (low, medium, high, critical)");
            };
            let kind = if claim { pb::CaseKind::Claim } else { pb::CaseKind::Complaint };
            c.open_case(pb::OpenCaseRequest {
                request_id: request_id(),
                kind: kind.into(),
                customer_id,
                channel: ch.into(),
                severity: sev.into(),
                order_id: order,
                text,
                theme: String::new(),
            })
            .await
            .map_err(explain)?
            .into_inner()
            .case
        }
        CasesCommand::List { state, theme, customer, limit } => {
            let state = match state.as_deref() {
                None => pb::CaseState::Unspecified,
                Some("open") => pb::CaseState::Open,
                Some("resolved") => pb::CaseState::Resolved,
                Some(s) => bail!("--state: unknown state {s:?} (open, resolved)"),
            };
            let r = c
                .list_cases(pb::ListCasesRequest {
                    state: state.into(),
                    theme: theme.unwrap_or_default(),
                    customer_id: customer.unwrap_or_default(),
                    page_size: limit,
                    page_token: String::new(),
                })
                .await
                .map_err(explain)?
                .into_inner();
            print_cases(&r.cases);
            if !r.next_page_token.is_empty() {
                println!("(more: raise --limit)");
            }
            return Ok(());
        }
        CasesCommand::Report { days, by } => {
            return report(&mut c, days, &by).await;
        }
        CasesCommand::Show { case_id } => {
            let case = c.get_case(pb::GetCaseRequest { case_id }).await.map_err(explain)?.into_inner().case;
            let Some(case) = case else { bail!("the service answered without a case") };
            print_cases(std::slice::from_ref(&case));
            let mut t = output::table(&["when", "author", "message"]);
            for m in &case.messages {
                t.add_row(vec![output::when(m.create_time.as_ref()), m.author.clone(), m.text.clone()]);
            }
            println!("{t}");
            if !case.resolution.is_empty() {
                println!("resolution: {}", case.resolution);
            }
            if !case.root_cause.is_empty() {
                println!("root cause: {}\ncorrective action: {}", case.root_cause, case.corrective_action);
            }
            return Ok(());
        }
        CasesCommand::Respond { case_id, text } => {
            c.respond_to_case(pb::RespondToCaseRequest { request_id: request_id(), case_id, text })
                .await
                .map_err(explain)?
                .into_inner()
                .case
        }
        CasesCommand::Message { case_id, text } => {
            c.add_customer_message(pb::AddCustomerMessageRequest { request_id: request_id(), case_id, text })
                .await
                .map_err(explain)?
                .into_inner()
                .case
        }
        CasesCommand::Wait { case_id, done } => {
            c.set_case_waiting(pb::SetCaseWaitingRequest { request_id: request_id(), case_id, waiting: !done })
                .await
                .map_err(explain)?
                .into_inner()
                .case
        }
        CasesCommand::Resolve { case_id, resolution, root_cause, corrective_action } => {
            c.resolve_case(pb::ResolveCaseRequest {
                request_id: request_id(),
                case_id,
                resolution,
                root_cause,
                corrective_action,
            })
            .await
            .map_err(explain)?
            .into_inner()
            .case
        }
    };
    let Some(case) = case else { bail!("the service answered without a case") };
    print_cases(std::slice::from_ref(&case));
    Ok(())
}

/// Milliseconds as `1h05` (or `-` for none).
fn hours(ms: i64, any: bool) -> String {
    if !any {
        return "-".into();
    }
    let minutes = ms / 60_000;
    format!("{}h{:02}", minutes / 60, minutes % 60)
}

async fn report(
    c: &mut FeedbackServiceClient<rapport_kit::client::OutgoingChannel>,
    days: i64,
    by: &str,
) -> anyhow::Result<()> {
    let Some(grouping) = pb::CareGrouping::from_str_name(&format!("CARE_GROUPING_{}", by.to_uppercase())) else {
        bail!("--by: unknown grouping {by:?} (queue, channel, tier, segment, theme, agent)");
    };
    let (start, end) = output::last_days(days)?;
    let r = c
        .get_care_report(pb::GetCareReportRequest {
            start_time: Some(start),
            end_time: Some(end),
            group_by: grouping.into(),
        })
        .await
        .map_err(explain)?
        .into_inner();
    let mut t = output::table(&[
        by,
        "cases",
        "answered",
        "first answer p50 / p90",
        "resolution p50 / p90",
        "SLA met",
        "within 12 h",
        "≤1h ≤4h ≤12h ≤24h ≤72h more none",
    ]);
    let overall = r.overall.map(|mut o| {
        o.key = "all".into();
        o
    });
    for s in r.groups.iter().chain(overall.iter()) {
        t.add_row(vec![
            s.key.clone(),
            s.cases.to_string(),
            s.answered.to_string(),
            format!(
                "{} / {}",
                hours(s.first_response_p50_ms, s.answered > 0),
                hours(s.first_response_p90_ms, s.answered > 0)
            ),
            format!("{} / {}", hours(s.resolution_p50_ms, s.resolved > 0), hours(s.resolution_p90_ms, s.resolved > 0)),
            format!("{:.0} %", s.sla_attainment * 100.0),
            format!("{:.0} %", s.within_half_day * 100.0),
            s.first_response_distribution.iter().map(|n| format!("{n:>4}")).collect::<Vec<_>>().join(""),
        ]);
    }
    println!("{t}");
    Ok(())
}

/// Runs `rapport themes …`.
pub async fn themes(conn: &Conn, args: ThemesArgs) -> anyhow::Result<()> {
    let mut c = FeedbackServiceClient::new(channel(conn, &conn.feedback_addr)?);
    match args.command {
        ThemesCommand::List => {
            let r = c.list_themes(pb::ListThemesRequest {}).await.map_err(explain)?.into_inner();
            let mut t = output::table(&["theme", "examples", "keywords"]);
            for th in &r.themes {
                t.add_row(vec![th.theme_id.clone(), th.examples.len().to_string(), th.keywords.join(", ")]);
            }
            println!("{t}");
            let behind = if r.retrain_needed { " (themes changed since: run `rapport themes train`)" } else { "" };
            println!("classifying with taxonomy version {}{behind}", r.taxonomy_version);
        }
        ThemesCommand::Classify { text } => {
            let r = c.classify_text(pb::ClassifyTextRequest { text }).await.map_err(explain)?.into_inner();
            let d = r.decision.unwrap_or_default();
            let mut t = output::table(&["theme", "confidence", "keywords", "tie broken", "taxonomy"]);
            t.add_row(vec![
                d.theme,
                format!("{:.0} %", d.confidence * 100.0),
                d.keywords.join(", "),
                if d.tie_broken { "yes".into() } else { "no".into() },
                d.taxonomy_version.to_string(),
            ]);
            println!("{t}");
        }
        ThemesCommand::Train => {
            let r =
                c.train_classifier(pb::TrainClassifierRequest { request_id: request_id() }).await.map_err(explain)?;
            let r = r.into_inner();
            println!("taxonomy version {}: {} themes, {} examples", r.taxonomy_version, r.themes, r.examples);
        }
    }
    Ok(())
}
