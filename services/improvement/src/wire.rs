//! Stored rows and domain values → protobuf, for the API's and the store's replies.
use rapport_kit::{clock::timestamp, guard::personal};
use rapport_proto::improvement::v1 as pb;
use rapport_stats::nps::{Difference, Nps};

use crate::{
    domain::{Settlements, Status, impact::Impact, pilot::Comparison, priority::Score},
    entities::{discovery_runs, improvement_history, improvements, pilots, signals, themes},
    error::ImprovementError,
};

/// A theme of feedback's taxonomy.
pub const TAXONOMY: &str = "taxonomy";
/// A theme found by discovery.
pub const DISCOVERED: &str = "discovered";
/// In use.
pub const ACTIVE: &str = "active";
/// Accepted into the taxonomy.
pub const ACCEPTED: &str = "accepted";
/// Merged into another theme.
pub const MERGED: &str = "merged";
/// Not found again.
pub const RETIRED: &str = "retired";

type Result<T> = std::result::Result<T, ImprovementError>;

/// A signal's origin on the wire.
fn origin_pb(origin: &str) -> pb::SignalOrigin {
    match origin {
        "case" => pb::SignalOrigin::Case,
        "survey_comment" => pb::SignalOrigin::SurveyComment,
        "suggestion" => pb::SignalOrigin::Suggestion,
        _ => pb::SignalOrigin::Unspecified,
    }
}

/// A signal on the wire.
pub fn signal_pb(s: &signals::Model, settled: &Settlements) -> pb::Signal {
    pb::Signal {
        signal_id: s.signal_id.clone(),
        origin: origin_pb(&s.origin).into(),
        reference: s.reference.clone(),
        customer_id: s.customer_id.clone().unwrap_or_default(),
        theme_id: s.theme.clone(),
        discovered_theme_id: s.discovered.clone().unwrap_or_default(),
        effective_theme_id: settled
            .effective(&s.theme, s.discovered.as_deref(), s.origin == "survey_comment")
            .to_string(),
        // A customer's words are personal; an agent's suggestion is not.
        text: match s.customer_id {
            Some(_) => personal(s.text.clone().unwrap_or_default()),
            None => s.text.clone().unwrap_or_default(),
        },
        severity: s.severity.clone(),
        channel: s.channel,
        nps: s.nps.unwrap_or(-1),
        tier: s.tier.clone(),
        occurred_at: Some(timestamp(s.occurred_at)),
        suggested_by: s.suggested_by.clone().unwrap_or_default(),
    }
}

/// A theme on the wire, with the representative texts to show.
pub fn theme_pb(t: &themes::Model, representative_texts: Vec<String>) -> Result<pb::Theme> {
    let top: Vec<(String, f64)> = serde_json::from_str(&t.top_terms)?;
    let status = match t.status.as_str() {
        ACTIVE => pb::ThemeStatus::Active,
        ACCEPTED => pb::ThemeStatus::Accepted,
        MERGED => pb::ThemeStatus::Merged,
        RETIRED => pb::ThemeStatus::Retired,
        _ => pb::ThemeStatus::Unspecified,
    };
    Ok(pb::Theme {
        theme_id: t.theme_id.clone(),
        kind: if t.kind == DISCOVERED { pb::ThemeKind::Discovered } else { pb::ThemeKind::Taxonomy }.into(),
        status: status.into(),
        top_terms: top.into_iter().map(|(term, weight)| pb::Term { term, weight }).collect(),
        representative_texts,
        size: t.size,
        accepted_as: t.accepted_as.clone().unwrap_or_default(),
        merged_into: t.merged_into.clone().unwrap_or_default(),
        first_run: t.first_run,
        last_run: t.last_run,
    })
}

/// A new row of a theme of feedback's taxonomy.
pub fn taxonomy_row(theme: &str, now: i64) -> themes::ActiveModel {
    use sea_orm::ActiveValue::Set;
    themes::ActiveModel {
        theme_id: Set(theme.to_string()),
        kind: Set(TAXONOMY.into()),
        status: Set(ACTIVE.into()),
        terms: Set("[]".into()),
        top_terms: Set("[]".into()),
        representatives: Set("[]".into()),
        size: Set(0),
        accepted_as: Set(None),
        merged_into: Set(None),
        first_run: Set(0),
        last_run: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

/// A discovery run on the wire.
pub fn run_pb(r: &discovery_runs::Model) -> Result<pb::DiscoveryRun> {
    Ok(pb::DiscoveryRun {
        run_id: r.run_id,
        texts: r.texts,
        empty_texts: r.empty_texts,
        k: r.k,
        silhouette: r.silhouette,
        created: serde_json::from_str(&r.created)?,
        kept: serde_json::from_str(&r.kept)?,
        retired: serde_json::from_str(&r.retired)?,
        ran_at: Some(timestamp(r.ran_at)),
        duration_ms: r.duration_ms,
    })
}

/// A status on the wire.
pub fn status_pb(s: Status) -> pb::ImprovementStatus {
    match s {
        Status::Proposed => pb::ImprovementStatus::Proposed,
        Status::Planned => pb::ImprovementStatus::Planned,
        Status::Piloting => pb::ImprovementStatus::Piloting,
        Status::Shipped => pb::ImprovementStatus::Shipped,
        Status::Declined => pb::ImprovementStatus::Declined,
        Status::Duplicate => pb::ImprovementStatus::Duplicate,
    }
}

/// A status from the wire.
pub fn status_of(s: pb::ImprovementStatus) -> Option<Status> {
    Status::ALL.into_iter().find(|x| status_pb(*x) == s)
}

fn stored_status(s: &str) -> pb::ImprovementStatus {
    Status::parse(s).map_or(pb::ImprovementStatus::Unspecified, status_pb)
}

/// An improvement on the wire with its score now.
pub fn improvement_pb(r: &improvements::Model, s: &Score) -> Result<pb::Improvement> {
    Ok(pb::Improvement {
        improvement_id: r.improvement_id.clone(),
        title: r.title.clone(),
        description: r.description.clone(),
        theme_ids: serde_json::from_str(&r.themes)?,
        status: stored_status(&r.status).into(),
        score: Some(pb::Score {
            score: s.score,
            reach: s.reach,
            impact: s.impact,
            mean_severity: s.mean_severity,
            vip_share: s.vip_share,
            confidence: s.confidence,
            effort_weeks: s.effort_weeks,
        }),
        duplicate_of: r.duplicate_of.clone().unwrap_or_default(),
        created_by: r.created_by.clone(),
        created_at: Some(timestamp(r.created_at)),
        shipped_at: r.shipped_at.map(timestamp),
    })
}

/// A change of status on the wire.
pub fn change_pb(c: &improvement_history::Model) -> pb::StatusChange {
    pb::StatusChange {
        from: c.from_status.as_deref().map_or(pb::ImprovementStatus::Unspecified, stored_status).into(),
        to: stored_status(&c.to_status).into(),
        actor: c.actor.clone(),
        note: c.note.clone(),
        at: Some(timestamp(c.at)),
    }
}

/// An NPS on the wire.
pub fn nps_pb(n: &Nps) -> pb::NpsFigure {
    let (ci_low, ci_high) = n.interval();
    pb::NpsFigure { responses: n.responses(), score: n.score(), ci_low, ci_high }
}

/// A difference on the wire.
pub fn difference_pb(d: &Difference) -> pb::Difference {
    pb::Difference { value: d.value, ci_low: d.low, ci_high: d.high, p_value: d.p_value, significant: d.significant() }
}

/// A before/after on the wire.
pub fn impact_pb(i: &Impact) -> pb::ShipImpact {
    pb::ShipImpact {
        window_days: i32::try_from(i.window_days).unwrap_or(i32::MAX),
        theme_signals_before: i.before.hits,
        theme_signals_after: i.after.hits,
        all_signals_before: i.before.total,
        all_signals_after: i.after.total,
        complaint_rate_before: i.before.share(),
        complaint_rate_after: i.after.share(),
        complaint_rate_change: Some(difference_pb(&i.rate_change)),
        nps_before: Some(nps_pb(&i.nps_before)),
        nps_after: Some(nps_pb(&i.nps_after)),
        nps_change: Some(difference_pb(&i.nps_change)),
    }
}

/// A pilot on the wire with its comparison.
pub fn pilot_pb(p: &pilots::Model, c: &Comparison) -> pb::Pilot {
    let group = |g: &crate::domain::pilot::GroupFigures| {
        let (lo, hi) = g.complaints.interval();
        pb::PilotGroup {
            customers: g.complaints.total,
            complainers: g.complaints.hits,
            complaint_rate: g.complaints.share(),
            complaint_rate_ci_low: lo,
            complaint_rate_ci_high: hi,
            nps: Some(nps_pb(&g.nps)),
        }
    };
    pb::Pilot {
        pilot_id: p.pilot_id.clone(),
        improvement_id: p.improvement_id.clone(),
        segment_id: p.segment_id.clone(),
        holdout_percent: p.holdout_percent,
        started_at: Some(timestamp(p.started_at)),
        ended_at: p.ended_at.map(timestamp),
        pilot: Some(group(&c.pilot)),
        holdout: Some(group(&c.holdout)),
        complaint_rate_difference: Some(difference_pb(&c.complaint_difference)),
        nps_difference: Some(difference_pb(&c.nps_difference)),
        verdict: c.verdict.clone(),
    }
}

/// Theme figures on the wire.
pub fn analytics_pb(t: &crate::store::ThemeFigures) -> pb::ThemeAnalytics {
    let f = &t.figures;
    pb::ThemeAnalytics {
        theme_id: t.theme_id.clone(),
        weekly_volume: f.weekly.clone(),
        volume: f.volume,
        customers: f.customers,
        week_over_week: f.week_over_week,
        spike: f.spike,
        spike_threshold: f.spike_threshold,
        nps_raisers: Some(nps_pb(&f.nps_raisers)),
        nps_others: Some(nps_pb(&f.nps_others)),
        nps_gap: Some(difference_pb(&f.nps_gap)),
        vip_share: f.vip_share,
        high_value_share: f.high_value_share,
        revenue_at_risk: f.revenue_at_risk,
        customers_valued: f.customers_valued,
        mean_severity: f.mean_severity,
    }
}
