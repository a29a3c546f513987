//! `rapport sla …`: the SLA policy — first-answer, next-answer and resolution targets per severity and tier, and the
//! queue breached cases move to.
use anyhow::{Context, bail};
use rapport_proto::feedback::v1::{self as pb, feedback_service_client::FeedbackServiceClient};

use crate::{
    cli::{Conn, SlaArgs, SlaCommand},
    conn::{channel, explain, request_id},
    output,
};

/// Parses `90m`, `4h`, `2d` into milliseconds.
pub(crate) fn duration(text: &str) -> anyhow::Result<i64> {
    let (n, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = n.parse().with_context(|| format!("{text:?} is not a duration like 90m, 4h or 2d"))?;
    let ms = match unit {
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => bail!("{text:?}: the unit is m, h or d"),
    };
    Ok(n * ms)
}

/// Milliseconds as the shortest of `2d`, `4h`, `90m`.
fn short(ms: i64) -> String {
    match ms {
        m if m % 86_400_000 == 0 => format!("{}d", m / 86_400_000),
        m if m % 3_600_000 == 0 => format!("{}h", m / 3_600_000),
        m => format!("{}m", m / 60_000),
    }
}

/// Parses `severity tier first next resolution`.
fn line(text: &str) -> anyhow::Result<pb::SlaPolicyRule> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [severity, tier, first, next, resolution] = parts[..] else {
        bail!("{text:?}: a line is `severity tier first next resolution`, e.g. `* vip 1h 2h 16h`");
    };
    Ok(pb::SlaPolicyRule {
        severity: severity.into(),
        tier: tier.into(),
        first_response_ms: duration(first)?,
        next_response_ms: duration(next)?,
        resolution_ms: duration(resolution)?,
    })
}

/// Runs `rapport sla …`.
pub async fn run(conn: &Conn, args: SlaArgs) -> anyhow::Result<()> {
    let mut c = FeedbackServiceClient::new(channel(conn, &conn.feedback_addr)?);
    let policy = match args.command {
        SlaCommand::Show => c.get_sla_policy(pb::GetSlaPolicyRequest {}).await.map_err(explain)?.into_inner().policy,
        SlaCommand::Set { lines, escalate_to } => {
            let rules = lines.iter().map(|l| line(l)).collect::<anyhow::Result<Vec<_>>>()?;
            let policy = pb::SlaPolicy { rules, escalation_queue_id: escalate_to.unwrap_or_default() };
            c.set_sla_policy(pb::SetSlaPolicyRequest { request_id: request_id(), policy: Some(policy) })
                .await
                .map_err(explain)?
                .into_inner()
                .policy
        }
    };
    let policy = policy.unwrap_or_default();
    let mut t = output::table(&["#", "severity", "tier", "first answer", "next answer", "resolution"]);
    for (i, r) in policy.rules.iter().enumerate() {
        t.add_row(vec![
            (i + 1).to_string(),
            r.severity.clone(),
            r.tier.clone(),
            short(r.first_response_ms),
            short(r.next_response_ms),
            short(r.resolution_ms),
        ]);
    }
    println!("{t}");
    match policy.escalation_queue_id.as_str() {
        "" => println!("a breach raises the case's escalation level; it stays in its queue"),
        q => println!("a breach raises the case's escalation level and moves it to queue {q}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_lines_read_like_a_table() {
        let l = line("* vip 1h 90m 2d").unwrap();
        assert_eq!((l.severity.as_str(), l.tier.as_str()), ("*", "vip"));
        assert_eq!((l.first_response_ms, l.next_response_ms, l.resolution_ms), (3_600_000, 5_400_000, 172_800_000));
        assert_eq!(
            (short(l.first_response_ms), short(l.next_response_ms), short(l.resolution_ms)),
            ("1h".into(), "90m".into(), "2d".into())
        );
        assert!(line("* vip 1h 2h").is_err());
        assert!(line("* vip 1h 2h 3w").is_err());
        assert!(duration("h").is_err());
    }
}
