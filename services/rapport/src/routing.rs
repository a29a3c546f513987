//! `rapport routing …`: queues, agents and the ordered rules that route cases.
use anyhow::{Context, bail};
use rapport_proto::{
    common::v1::Channel,
    feedback::v1::{self as pb, feedback_service_client::FeedbackServiceClient},
};

use crate::{
    cli::{Conn, RoutingArgs, RoutingCommand},
    conn::{channel, explain, request_id},
    output,
};

/// Parses `id: key=a|b, detractors -> queue`.
pub fn parse_rule(text: &str) -> anyhow::Result<pb::RoutingRule> {
    let (head, queue) = text.rsplit_once("->").context("a rule ends with `-> queue`")?;
    let (id, conditions) = head.split_once(':').context("a rule starts with `id:`")?;
    let mut r = pb::RoutingRule { rule_id: id.trim().into(), queue_id: queue.trim().into(), ..Default::default() };
    for c in conditions.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        if c == "detractors" {
            r.detractors_only = true;
            continue;
        }
        let (key, values) = c.split_once('=').with_context(|| format!("{c:?} is not key=value"))?;
        let values = values.split('|').map(|v| v.trim().to_string());
        match key.trim() {
            "theme" => r.themes.extend(values),
            "tier" => r.tiers.extend(values),
            "segment" => r.segments.extend(values),
            "channel" => {
                for v in values {
                    let ch = Channel::from_str_name(&format!("CHANNEL_{}", v.to_uppercase()))
                        .with_context(|| format!("unknown channel {v:?}"))?;
                    r.channels.push(ch.into());
                }
            }
            "severity" => {
                for v in values {
                    let s = pb::Severity::from_str_name(&format!("SEVERITY_{}", v.to_uppercase()))
                        .with_context(|| format!("unknown severity {v:?}"))?;
                    r.severities.push(s.into());
                }
            }
            other => bail!("unknown condition {other:?} (theme, channel, severity, tier, segment, detractors)"),
        }
    }
    Ok(r)
}

fn describe(r: &pb::RoutingRule) -> String {
    let mut parts = Vec::new();
    let list = |name: &str, v: &[String]| (!v.is_empty()).then(|| format!("{name}={}", v.join("|")));
    parts.extend(list("theme", &r.themes));
    let channels: Vec<String> =
        r.channels().map(|c| c.as_str_name().trim_start_matches("CHANNEL_").to_lowercase()).collect();
    parts.extend(list("channel", &channels));
    let severities: Vec<String> =
        r.severities().map(|s| s.as_str_name().trim_start_matches("SEVERITY_").to_lowercase()).collect();
    parts.extend(list("severity", &severities));
    parts.extend(list("tier", &r.tiers));
    parts.extend(list("segment", &r.segments));
    if r.detractors_only {
        parts.push("detractors".into());
    }
    if parts.is_empty() { "any case".into() } else { parts.join(", ") }
}

/// Runs `rapport routing …`.
pub async fn run(conn: &Conn, args: RoutingArgs) -> anyhow::Result<()> {
    let mut c = FeedbackServiceClient::new(channel(conn, &conn.feedback_addr)?);
    match args.command {
        RoutingCommand::Show => {
            let q = c.list_queues(pb::ListQueuesRequest {}).await.map_err(explain)?.into_inner();
            let mut t = output::table(&["queue", "assignment", "open", "waiting", "agents"]);
            for x in &q.queues {
                let how = x.assignment().as_str_name().trim_start_matches("ASSIGNMENT_").to_lowercase();
                t.add_row(vec![
                    x.queue_id.clone(),
                    how,
                    x.open_cases.to_string(),
                    x.unassigned_cases.to_string(),
                    x.agent_ids.join(", "),
                ]);
            }
            println!("{t}");
            let mut t = output::table(&["agent", "online", "open / capacity", "queues"]);
            for a in &q.agents {
                t.add_row(vec![
                    a.agent_id.clone(),
                    if a.online { "yes".into() } else { "no".into() },
                    format!("{} / {}", a.open_cases, a.capacity),
                    a.queue_ids.join(", "),
                ]);
            }
            println!("{t}");
            let r = c.list_routing_rules(pb::ListRoutingRulesRequest {}).await.map_err(explain)?.into_inner();
            let mut t = output::table(&["#", "rule", "when", "queue"]);
            for (i, x) in r.rules.iter().enumerate() {
                t.add_row(vec![(i + 1).to_string(), x.rule_id.clone(), describe(x), x.queue_id.clone()]);
            }
            t.add_row(vec![String::new(), "default".into(), "no rule matched".into(), "general".into()]);
            println!("{t}");
        }
        RoutingCommand::Queue { queue_id, least_loaded } => {
            let how = if least_loaded { pb::Assignment::LeastLoaded } else { pb::Assignment::RoundRobin };
            let q = pb::Queue { queue_id, assignment: how.into(), ..Default::default() };
            c.put_queue(pb::PutQueueRequest { request_id: request_id(), queue: Some(q) }).await.map_err(explain)?;
            println!("queue saved");
        }
        RoutingCommand::Agent { agent_id, queues, capacity, offline } => {
            let a = pb::Agent { agent_id, queue_ids: queues, capacity, online: !offline, open_cases: 0 };
            c.put_agent(pb::PutAgentRequest { request_id: request_id(), agent: Some(a) }).await.map_err(explain)?;
            println!("agent saved");
        }
        RoutingCommand::Online { agent_id } => {
            online(&mut c, agent_id, true).await?;
        }
        RoutingCommand::Offline { agent_id } => {
            online(&mut c, agent_id, false).await?;
        }
        RoutingCommand::Rules { rules } => {
            let rules = rules.iter().map(|r| parse_rule(r)).collect::<anyhow::Result<Vec<_>>>()?;
            let r = c
                .set_routing_rules(pb::SetRoutingRulesRequest { request_id: request_id(), rules })
                .await
                .map_err(explain)?
                .into_inner();
            println!("{} rules saved", r.rules.len());
        }
    }
    Ok(())
}

async fn online(
    c: &mut FeedbackServiceClient<rapport_kit::client::OutgoingChannel>,
    agent_id: String,
    online: bool,
) -> anyhow::Result<()> {
    let r = c
        .set_agent_online(pb::SetAgentOnlineRequest { request_id: request_id(), agent_id, online })
        .await
        .map_err(explain)?
        .into_inner();
    if online {
        println!("online");
    } else {
        println!("offline: {} open cases back in their queues, for the other agents with room", r.handed_back);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_like_sentences() {
        let r = parse_rule("vips: tier=vip|gold, channel=email, detractors -> vip-desk").unwrap();
        assert_eq!((r.rule_id.as_str(), r.queue_id.as_str()), ("vips", "vip-desk"));
        assert_eq!(r.tiers, ["vip", "gold"]);
        assert_eq!(r.channels, [i32::from(Channel::Email)]);
        assert!(r.detractors_only);
        assert_eq!(describe(&r), "channel=email, tier=vip|gold, detractors");
        assert_eq!(describe(&parse_rule("all: -> general").unwrap()), "any case");
        assert!(parse_rule("no arrow").is_err());
        assert!(parse_rule("x: colour=red -> q").is_err());
    }
}
