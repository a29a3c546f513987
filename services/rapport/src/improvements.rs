//! `rapport improvements …`: themes discovered in complaints and their figures, the ranked backlog and its lifecycle,
//! pilots against a holdout, and the company-wide digest (tables, or Markdown).
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use rapport_kit::client::OutgoingChannel;
use rapport_proto::improvement::v1::{self as pb, improvement_service_client::ImprovementServiceClient};

use crate::{
    cli::{Conn, ImprovementsArgs, ImprovementsCommand, PilotCommand},
    conn::{channel, channel_with_timeout, explain, request_id},
    output::{self, enum_name},
};

type Client = ImprovementServiceClient<OutgoingChannel>;

const DAY_MS: i64 = 86_400_000;

/// Runs `rapport improvements …`.
pub async fn run(conn: &Conn, args: ImprovementsArgs) -> anyhow::Result<()> {
    let mut c = ImprovementServiceClient::new(channel(conn, &conn.improvement_addr)?);
    match args.command {
        ImprovementsCommand::Discover { days, k } => {
            // Clustering many texts can take minutes: a longer deadline than other calls.
            let mut long = ImprovementServiceClient::new(channel_with_timeout(
                conn,
                &conn.improvement_addr,
                Duration::from_secs(1800),
            )?);
            discover(&mut long, days, k).await
        }
        ImprovementsCommand::Themes { all } => themes(&mut c, all).await,
        ImprovementsCommand::Theme { theme_id, weeks } => theme(&mut c, theme_id, weeks).await,
        ImprovementsCommand::Accept { theme_id, taxonomy_id } => {
            let r = c
                .accept_theme(pb::AcceptThemeRequest {
                    request_id: request_id(),
                    theme_id,
                    taxonomy_id,
                    keywords: vec![],
                    examples: vec![],
                })
                .await
                .map_err(explain)?
                .into_inner();
            let t = r.theme.context("the service answered without a theme")?;
            println!(
                "{} accepted as {}: feedback adds it to its taxonomy (retrain with `rapport themes train`)",
                t.theme_id, t.accepted_as
            );
            Ok(())
        }
        ImprovementsCommand::Merge { theme_id, into } => {
            let r = c
                .merge_theme(pb::MergeThemeRequest { request_id: request_id(), theme_id, into_theme_id: into })
                .await
                .map_err(explain)?
                .into_inner();
            let t = r.theme.context("the service answered without a theme")?;
            println!("{} merged into {}: its signals count there now", t.theme_id, t.merged_into);
            Ok(())
        }
        ImprovementsCommand::Suggest { text, theme } => {
            let r = c
                .submit_suggestion(pb::SubmitSuggestionRequest {
                    request_id: request_id(),
                    text,
                    theme_id: theme.unwrap_or_default(),
                })
                .await
                .map_err(explain)?
                .into_inner();
            let s = r.signal.context("the service answered without a signal")?;
            println!("suggestion {} recorded (theme {}, by {})", s.signal_id, s.effective_theme_id, s.suggested_by);
            Ok(())
        }
        ImprovementsCommand::Create { title, themes, confidence, effort, description } => {
            let r = c
                .create_improvement(pb::CreateImprovementRequest {
                    request_id: request_id(),
                    title,
                    description,
                    theme_ids: themes,
                    confidence,
                    effort_weeks: effort,
                })
                .await
                .map_err(explain)?
                .into_inner();
            print_backlog(&[r.improvement.context("the service answered without an improvement")?]);
            Ok(())
        }
        ImprovementsCommand::List { status } => {
            let status = match status {
                Some(s) => status_of(&s)?,
                None => pb::ImprovementStatus::Unspecified,
            };
            let r = c
                .list_improvements(pb::ListImprovementsRequest { status: status.into(), limit: 100 })
                .await
                .map_err(explain)?
                .into_inner();
            if r.improvements.is_empty() {
                println!("the backlog is empty");
            } else {
                print_backlog(&r.improvements);
            }
            Ok(())
        }
        ImprovementsCommand::Show { improvement_id } => show(&mut c, improvement_id).await,
        ImprovementsCommand::Status { improvement_id, status, note, duplicate_of, resurvey } => {
            let r = c
                .change_improvement_status(pb::ChangeImprovementStatusRequest {
                    request_id: request_id(),
                    improvement_id,
                    status: status_of(&status)?.into(),
                    note,
                    duplicate_of: duplicate_of.unwrap_or_default(),
                    resurvey,
                })
                .await
                .map_err(explain)?
                .into_inner();
            let i = r.improvement.context("the service answered without an improvement")?;
            println!("{} is {}", i.improvement_id, status_name(i.status()));
            if i.status() == pb::ImprovementStatus::Shipped {
                println!("feedback notes it on the open and recent cases of its themes");
            }
            Ok(())
        }
        ImprovementsCommand::Pilot { command } => pilot(&mut c, command).await,
        ImprovementsCommand::Report { weeks, markdown } => {
            let report = digest(&mut c, weeks).await?;
            for s in &report {
                println!("{}", s.title);
                println!("{}", s.table());
            }
            if let Some(path) = markdown {
                std::fs::write(&path, markdown_of(&report)).with_context(|| format!("writing {}", path.display()))?;
                println!("written to {}", path.display());
            }
            Ok(())
        }
    }
}

fn status_of(s: &str) -> anyhow::Result<pb::ImprovementStatus> {
    Ok(match s {
        "proposed" => pb::ImprovementStatus::Proposed,
        "planned" => pb::ImprovementStatus::Planned,
        "piloting" => pb::ImprovementStatus::Piloting,
        "shipped" => pb::ImprovementStatus::Shipped,
        "declined" => pb::ImprovementStatus::Declined,
        "duplicate" => pb::ImprovementStatus::Duplicate,
        other => bail!("status {other:?}: one of proposed, planned, piloting, shipped, declined, duplicate"),
    })
}

fn status_name(s: pb::ImprovementStatus) -> String {
    enum_name(s.as_str_name(), "IMPROVEMENT_STATUS_")
}

fn now_ms() -> anyhow::Result<i64> {
    Ok(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64)
}

async fn discover(c: &mut Client, days: i64, k: Option<i32>) -> anyhow::Result<()> {
    if !(1..=400).contains(&days) {
        bail!("--days must be 1 to 400");
    }
    let now = now_ms()?;
    let spinner = ProgressBar::new_spinner().with_style(ProgressStyle::with_template("{spinner} {msg} {elapsed}")?);
    spinner.set_message("clustering unclassified texts");
    spinner.enable_steady_tick(Duration::from_millis(100));
    let r = c
        .discover_themes(pb::DiscoverThemesRequest {
            request_id: request_id(),
            start_time: Some(rapport_kit::clock::timestamp(now - days * DAY_MS)),
            end_time: Some(rapport_kit::clock::timestamp(now + 1)),
            k: k.unwrap_or(0),
            ..Default::default()
        })
        .await;
    spinner.finish_and_clear();
    let r = r.map_err(explain)?.into_inner();
    let run = r.run.context("the service answered without a run")?;
    println!(
        "run {}: {} texts ({} without known words), {} themes, silhouette {:.3}, {} ms — {} new, {} found again, {} retired",
        run.run_id,
        run.texts,
        run.empty_texts,
        run.k,
        run.silhouette,
        run.duration_ms,
        run.created.len(),
        run.kept.len(),
        run.retired.len()
    );
    print_themes(&r.themes);
    Ok(())
}

fn terms(t: &pb::Theme, n: usize) -> String {
    t.top_terms.iter().take(n).map(|w| w.term.as_str()).collect::<Vec<_>>().join(", ")
}

fn print_themes(themes: &[pb::Theme]) {
    let mut t = output::table(&["theme", "kind", "status", "texts", "top terms", "a representative text"]);
    for th in themes {
        let status = match th.status() {
            pb::ThemeStatus::Accepted => format!("accepted as {}", th.accepted_as),
            pb::ThemeStatus::Merged => format!("merged into {}", th.merged_into),
            s => enum_name(s.as_str_name(), "THEME_STATUS_"),
        };
        t.add_row(vec![
            th.theme_id.clone(),
            enum_name(th.kind().as_str_name(), "THEME_KIND_"),
            status,
            th.size.to_string(),
            terms(th, 6),
            th.representative_texts.first().map(|s| s.chars().take(80).collect()).unwrap_or_default(),
        ]);
    }
    println!("{t}");
}

async fn themes(c: &mut Client, all: bool) -> anyhow::Result<()> {
    let r = c.list_themes(pb::ListThemesRequest { include_settled: all }).await.map_err(explain)?.into_inner();
    match r.last_run {
        Some(run) => println!("last discovery: run {} on {} texts, {} themes", run.run_id, run.texts, run.k),
        None => println!("no discovery yet (rapport improvements discover)"),
    }
    print_themes(&r.themes);
    Ok(())
}

fn nps_cell(n: Option<&pb::NpsFigure>) -> String {
    match n {
        Some(n) if n.responses > 0 => {
            format!("{:+.1} [{:+.0}, {:+.0}] n={}", n.score, n.ci_low, n.ci_high, n.responses)
        }
        _ => "no answers".into(),
    }
}

fn difference_cell(d: Option<&pb::Difference>, scale: f64, unit: &str) -> String {
    match d {
        Some(d) => format!(
            "{:+.1}{unit} [{:+.1}, {:+.1}]{}",
            d.value * scale,
            d.ci_low * scale,
            d.ci_high * scale,
            if d.significant { " significant" } else { "" }
        ),
        None => String::new(),
    }
}

async fn analytics(
    c: &mut Client,
    theme_ids: Vec<String>,
    weeks: i32,
) -> anyhow::Result<pb::GetThemeAnalyticsResponse> {
    Ok(c.get_theme_analytics(pb::GetThemeAnalyticsRequest { theme_ids, end_time: None, weeks })
        .await
        .map_err(explain)?
        .into_inner())
}

async fn theme(c: &mut Client, theme_id: String, weeks: i32) -> anyhow::Result<()> {
    let r = analytics(c, vec![theme_id.clone()], weeks).await?;
    let Some(f) = r.themes.first() else { bail!("no figures for {theme_id}") };
    let max = f.weekly_volume.iter().copied().max().unwrap_or(0).max(1) as f64;
    let series: Vec<f64> = f.weekly_volume.iter().map(|v| *v as f64).collect();
    let mut t = output::table(&["theme", &theme_id]);
    t.add_row(vec![
        "signals per week".to_string(),
        format!("{} {:?}", output::sparkline(&series, 0.0, max), f.weekly_volume),
    ]);
    t.add_row(vec!["signals / customers".to_string(), format!("{} / {}", f.volume, f.customers)]);
    let spike = if f.spike {
        format!("SPIKE (threshold {:.1})", f.spike_threshold)
    } else {
        format!("no spike (threshold {:.1})", f.spike_threshold)
    };
    t.add_row(vec!["last week".to_string(), format!("{:+.0} % week over week, {spike}", f.week_over_week)]);
    t.add_row(vec!["NPS of those who raised it".to_string(), nps_cell(f.nps_raisers.as_ref())]);
    t.add_row(vec!["NPS of the others".to_string(), nps_cell(f.nps_others.as_ref())]);
    t.add_row(vec!["gap".to_string(), difference_cell(f.nps_gap.as_ref(), 1.0, "")]);
    t.add_row(vec!["VIPs among them".to_string(), format!("{:.0} %", 100.0 * f.vip_share)]);
    t.add_row(vec![
        "high-value among them".to_string(),
        format!(
            "{:.0} % of {} valued (365-day spend ≥ {:.0})",
            100.0 * f.high_value_share,
            f.customers_valued,
            r.high_value_threshold
        ),
    ]);
    t.add_row(vec!["revenue at risk".to_string(), format!("{:.2}", f.revenue_at_risk)]);
    t.add_row(vec!["mean severity".to_string(), format!("{:.2}", f.mean_severity)]);
    println!("{t}");
    let listed = c.list_themes(pb::ListThemesRequest { include_settled: true }).await.map_err(explain)?.into_inner();
    if let Some(th) = listed.themes.iter().find(|t| t.theme_id == theme_id) {
        if !th.top_terms.is_empty() {
            println!("top terms: {}", terms(th, 10));
        }
        for text in &th.representative_texts {
            println!("  “{text}”");
        }
    }
    Ok(())
}

fn score_cells(s: Option<&pb::Score>) -> Vec<String> {
    let s = s.copied().unwrap_or_default();
    vec![
        format!("{:.1}", s.score),
        s.reach.to_string(),
        format!("{:.2} (severity {:.2} × (1 + {:.0} % VIP))", s.impact, s.mean_severity, 100.0 * s.vip_share),
        format!("{:.0} %", 100.0 * s.confidence),
        format!("{:.1}", s.effort_weeks),
    ]
}

const BACKLOG_HEADER: [&str; 9] =
    ["#", "improvement", "title", "status", "score", "reach", "impact", "confidence", "effort (weeks)"];

fn backlog_rows(items: &[pb::Improvement]) -> Vec<Vec<String>> {
    items
        .iter()
        .enumerate()
        .map(|(i, imp)| {
            let mut row =
                vec![(i + 1).to_string(), imp.improvement_id.clone(), imp.title.clone(), status_name(imp.status())];
            row.extend(score_cells(imp.score.as_ref()));
            row
        })
        .collect()
}

fn print_backlog(items: &[pb::Improvement]) {
    let mut t = output::table(&BACKLOG_HEADER);
    for row in backlog_rows(items) {
        t.add_row(row);
    }
    println!("{t}");
}

fn pilot_rows(p: &pb::Pilot) -> Vec<Vec<String>> {
    let group = |name: &str, g: Option<&pb::PilotGroup>| {
        let g = g.cloned().unwrap_or_default();
        vec![
            name.to_string(),
            g.customers.to_string(),
            format!(
                "{:.1} % [{:.1}, {:.1}] ({})",
                100.0 * g.complaint_rate,
                100.0 * g.complaint_rate_ci_low,
                100.0 * g.complaint_rate_ci_high,
                g.complainers
            ),
            nps_cell(g.nps.as_ref()),
        ]
    };
    vec![
        group("pilot", p.pilot.as_ref()),
        group("holdout", p.holdout.as_ref()),
        vec![
            "difference".into(),
            String::new(),
            difference_cell(p.complaint_rate_difference.as_ref(), 100.0, " pts"),
            difference_cell(p.nps_difference.as_ref(), 1.0, ""),
        ],
    ]
}

fn print_pilot(p: &pb::Pilot) {
    let ended =
        if p.ended_at.is_some() { format!("ended {}", output::when(p.ended_at.as_ref())) } else { "running".into() };
    println!(
        "pilot {} of {} on segment {} ({} % held out), started {}, {ended}",
        p.pilot_id,
        p.improvement_id,
        p.segment_id,
        p.holdout_percent,
        output::when(p.started_at.as_ref())
    );
    let mut t = output::table(&["group", "customers", "complaint rate (complainers)", "NPS"]);
    for row in pilot_rows(p) {
        t.add_row(row);
    }
    println!("{t}");
    println!("{}", p.verdict);
}

fn impact_rows(i: &pb::ShipImpact) -> Vec<Vec<String>> {
    vec![
        vec![
            "complaint rate of its themes".into(),
            format!(
                "{:.1} % ({} of {})",
                100.0 * i.complaint_rate_before,
                i.theme_signals_before,
                i.all_signals_before
            ),
            format!("{:.1} % ({} of {})", 100.0 * i.complaint_rate_after, i.theme_signals_after, i.all_signals_after),
            difference_cell(i.complaint_rate_change.as_ref(), 100.0, " pts"),
        ],
        vec![
            "NPS of the customers affected".into(),
            nps_cell(i.nps_before.as_ref()),
            nps_cell(i.nps_after.as_ref()),
            difference_cell(i.nps_change.as_ref(), 1.0, ""),
        ],
    ]
}

async fn show(c: &mut Client, improvement_id: String) -> anyhow::Result<()> {
    let r = c
        .get_improvement(pb::GetImprovementRequest { improvement_id, impact_window_days: 0 })
        .await
        .map_err(explain)?
        .into_inner();
    let imp = r.improvement.context("the service answered without an improvement")?;
    print_backlog(std::slice::from_ref(&imp));
    println!("themes: {}", imp.theme_ids.join(", "));
    if !imp.description.is_empty() {
        println!("{}", imp.description);
    }
    let mut t = output::table(&["when", "from", "to", "by", "note"]);
    for h in &r.history {
        t.add_row(vec![
            output::when(h.at.as_ref()),
            status_name(h.from()),
            status_name(h.to()),
            h.actor.clone(),
            h.note.clone(),
        ]);
    }
    println!("{t}");
    for p in &r.pilots {
        print_pilot(p);
    }
    match (&r.impact, imp.status()) {
        (Some(i), _) => {
            println!("before / after shipping, {} days each side:", i.window_days);
            let mut t = output::table(&["", "before", "after", "change"]);
            for row in impact_rows(i) {
                t.add_row(row);
            }
            println!("{t}");
        }
        (None, pb::ImprovementStatus::Shipped) => println!("shipped less than a day ago: no before/after yet"),
        _ => {}
    }
    Ok(())
}

async fn pilot(c: &mut Client, command: PilotCommand) -> anyhow::Result<()> {
    let p = match command {
        PilotCommand::Start { improvement_id, segment, holdout } => {
            c.start_pilot(pb::StartPilotRequest {
                request_id: request_id(),
                improvement_id,
                segment_id: segment,
                holdout_percent: holdout,
            })
            .await
            .map_err(explain)?
            .into_inner()
            .pilot
        }
        PilotCommand::Show { pilot_id } => {
            c.get_pilot(pb::GetPilotRequest { pilot_id }).await.map_err(explain)?.into_inner().pilot
        }
        PilotCommand::End { pilot_id } => {
            c.end_pilot(pb::EndPilotRequest { request_id: request_id(), pilot_id })
                .await
                .map_err(explain)?
                .into_inner()
                .pilot
        }
    };
    print_pilot(&p.context("the service answered without a pilot")?);
    Ok(())
}

/// A section of the digest: a title and a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// Title.
    pub title: String,
    /// Column names.
    pub header: Vec<String>,
    /// Rows (an empty section says so).
    pub rows: Vec<Vec<String>>,
}

impl Section {
    fn new(title: &str, header: &[&str], rows: Vec<Vec<String>>) -> Self {
        Self { title: title.into(), header: header.iter().map(|h| h.to_string()).collect(), rows }
    }

    fn table(&self) -> comfy_table::Table {
        let header: Vec<&str> = self.header.iter().map(String::as_str).collect();
        let mut t = output::table(&header);
        if self.rows.is_empty() {
            t.add_row(vec!["(none)".to_string()]);
        }
        for r in &self.rows {
            t.add_row(r.clone());
        }
        t
    }
}

/// The digest as Markdown: a heading per section, a table each (pipes in cells escaped).
pub fn markdown_of(sections: &[Section]) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut out = String::from("# Product improvement digest\n");
    for s in sections {
        out.push_str(&format!("\n## {}\n\n", s.title));
        if s.rows.is_empty() {
            out.push_str("None.\n");
            continue;
        }
        out.push_str(&format!("| {} |\n", s.header.iter().map(|h| cell(h)).collect::<Vec<_>>().join(" | ")));
        out.push_str(&format!("|{}\n", " --- |".repeat(s.header.len())));
        for r in &s.rows {
            out.push_str(&format!("| {} |\n", r.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | ")));
        }
    }
    out
}

/// Gathers the digest: the open backlog ranked, rising themes (spikes first, then by week-over-week growth), pilots,
/// and the before/after of shipped improvements.
async fn digest(c: &mut Client, weeks: i32) -> anyhow::Result<Vec<Section>> {
    let all = c
        .list_improvements(pb::ListImprovementsRequest { status: 0, limit: 500 })
        .await
        .map_err(explain)?
        .into_inner()
        .improvements;
    let open: Vec<pb::Improvement> = all
        .iter()
        .filter(|i| {
            !matches!(
                i.status(),
                pb::ImprovementStatus::Shipped | pb::ImprovementStatus::Declined | pb::ImprovementStatus::Duplicate
            )
        })
        .cloned()
        .collect();
    let mut sections = vec![Section::new("Ranked backlog", &BACKLOG_HEADER, backlog_rows(&open))];
    let mut figures = analytics(c, vec![], weeks).await?.themes;
    figures.retain(|f| f.spike || f.week_over_week > 0.0);
    figures.sort_by(|a, b| {
        b.spike.cmp(&a.spike).then(b.week_over_week.total_cmp(&a.week_over_week)).then(a.theme_id.cmp(&b.theme_id))
    });
    let rising = figures
        .iter()
        .map(|f| {
            let series: Vec<f64> = f.weekly_volume.iter().map(|v| *v as f64).collect();
            let max = series.iter().copied().fold(1.0, f64::max);
            vec![
                f.theme_id.clone(),
                output::sparkline(&series, 0.0, max),
                f.volume.to_string(),
                format!("{:+.0} %", f.week_over_week),
                if f.spike { "spike".into() } else { String::new() },
                nps_cell(f.nps_raisers.as_ref()),
                format!("{:.0} %", 100.0 * f.vip_share),
                format!("{:.2}", f.revenue_at_risk),
            ]
        })
        .collect();
    sections.push(Section::new(
        "Rising themes",
        &["theme", "weekly", "signals", "week over week", "alert", "NPS of raisers", "VIPs", "revenue at risk"],
        rising,
    ));
    let pilots = c.list_pilots(pb::ListPilotsRequest::default()).await.map_err(explain)?.into_inner().pilots;
    let pilot_rows: Vec<Vec<String>> = pilots
        .iter()
        .map(|p| {
            let rows = pilot_rows(p);
            vec![
                p.pilot_id.clone(),
                p.improvement_id.clone(),
                p.segment_id.clone(),
                if p.ended_at.is_some() { "ended".into() } else { "running".into() },
                rows[0][2].clone(),
                rows[1][2].clone(),
                rows[2][2].clone(),
                p.verdict.clone(),
            ]
        })
        .collect();
    sections.push(Section::new(
        "Pilots",
        &[
            "pilot",
            "improvement",
            "segment",
            "state",
            "pilot complaints",
            "holdout complaints",
            "difference",
            "verdict",
        ],
        pilot_rows,
    ));
    let mut shipped_rows = Vec::new();
    for imp in all.iter().filter(|i| i.status() == pb::ImprovementStatus::Shipped) {
        let r = c
            .get_improvement(pb::GetImprovementRequest {
                improvement_id: imp.improvement_id.clone(),
                impact_window_days: 0,
            })
            .await
            .map_err(explain)?
            .into_inner();
        let (rate, nps) = match &r.impact {
            Some(i) => {
                let rows = impact_rows(i);
                (
                    format!("{} → {} ({})", rows[0][1], rows[0][2], rows[0][3]),
                    format!("{} → {}", rows[1][1], rows[1][2]),
                )
            }
            None => ("too early".into(), "too early".into()),
        };
        shipped_rows.push(vec![
            imp.improvement_id.clone(),
            imp.title.clone(),
            output::when(imp.shipped_at.as_ref()),
            rate,
            nps,
        ]);
    }
    sections.push(Section::new(
        "Shipped fixes, before and after",
        &["improvement", "title", "shipped", "complaint rate of its themes", "NPS of the customers affected"],
        shipped_rows,
    ));
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_reads_as_markdown() {
        let sections = vec![
            Section::new("Ranked backlog", &["#", "title"], vec![vec!["1".into(), "a | b".into()]]),
            Section::new("Pilots", &["pilot"], vec![]),
        ];
        let md = markdown_of(&sections);
        assert_eq!(
            md,
            "# Product improvement digest\n\n## Ranked backlog\n\n| # | title |\n| --- | --- |\n| 1 | a \\| b |\n\n## Pilots\n\nNone.\n"
        );
        assert_eq!(status_of("shipped").unwrap(), pb::ImprovementStatus::Shipped);
        assert!(status_of("done").is_err());
    }
}
