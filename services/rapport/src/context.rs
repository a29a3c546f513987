//! `rapport context <customer>` and `rapport actions …`: the customer in front of an agent, and the rules that
//! suggest what to do next.
use anyhow::{Context, bail};
use rapport_proto::feedback::v1::{self as pb, feedback_service_client::FeedbackServiceClient};

use crate::{
    cli::{ActionsArgs, ActionsCommand, Conn},
    conn::{channel, explain, request_id},
    output,
};

/// The comparisons a condition may use, longest first so `>=` is not read as `>`.
const OPS: [(&str, pb::ActionOp); 6] = [
    (">=", pb::ActionOp::Gte),
    ("<=", pb::ActionOp::Lte),
    ("!=", pb::ActionOp::Ne),
    ("=", pb::ActionOp::Eq),
    (">", pb::ActionOp::Gt),
    ("<", pb::ActionOp::Lt),
];

/// Parses `id: fact>=value, fact=value -> action`.
pub fn parse_rule(text: &str) -> anyhow::Result<pb::ActionRule> {
    let (head, action) = text.rsplit_once("->").context("a rule ends with `-> action`")?;
    let (id, conditions) = head.split_once(':').context("a rule starts with `id:`")?;
    let mut r = pb::ActionRule { rule_id: id.trim().into(), action: action.trim().into(), ..Default::default() };
    for c in conditions.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let Some((fact, op, value)) = OPS
            .iter()
            .find_map(|(sym, op)| c.split_once(sym).map(|(f, v)| (f.trim().to_string(), *op, v.trim().to_string())))
        else {
            bail!("{c:?} is not fact<op>value (op: = != > >= < <=)");
        };
        r.conditions.push(pb::ActionCondition { fact, op: op.into(), value });
    }
    Ok(r)
}

fn describe(r: &pb::ActionRule) -> String {
    r.conditions
        .iter()
        .map(|c| {
            let sym = OPS.iter().find(|(_, op)| i32::from(*op) == c.op).map_or("?", |(s, _)| s);
            format!("{}{sym}{}", c.fact, c.value)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn availability(a: Option<&pb::Availability>) -> String {
    match a {
        Some(a) if a.available => "yes".into(),
        Some(a) => format!("no ({})", a.reason),
        None => "no".into(),
    }
}

/// Runs `rapport context <customer>`.
pub async fn show(conn: &Conn, customer_id: String) -> anyhow::Result<()> {
    let mut c = FeedbackServiceClient::new(channel(conn, &conn.feedback_addr)?);
    let r = c.get_customer_context(pb::GetCustomerContextRequest { customer_id }).await.map_err(explain)?.into_inner();
    let mut t = output::table(&["part", "available", "what it says"]);
    let l = r.loyalty.unwrap_or_default();
    let said = if !l.member && l.availability.as_ref().is_some_and(|a| a.available) {
        "not a member".to_string()
    } else if l.member {
        let next = if l.next_tier.is_empty() {
            "top tier".to_string()
        } else {
            format!("{} points to {}", l.points_to_next_tier, l.next_tier)
        };
        let keep = if l.points_to_keep_tier > 0 {
            format!(", {} points to keep it by {}", l.points_to_keep_tier, output::when(l.tier_period_end.as_ref()))
        } else {
            String::new()
        };
        format!("{} · {} points · {next}{keep}", l.tier, l.points)
    } else {
        String::new()
    };
    t.add_row(vec!["loyalty".into(), availability(l.availability.as_ref()), said]);
    let s = r.segmentation.unwrap_or_default();
    let said = if s.availability.as_ref().is_some_and(|a| a.available) {
        let cluster = if s.cluster_label.is_empty() { "no cluster".into() } else { s.cluster_label.clone() };
        let recency = if s.recency_days < 0.0 { "never bought".into() } else { format!("{:.0} days", s.recency_days) };
        format!(
            "{cluster} · segments: {} · last purchase {recency} ago · {:.0} spent over a year",
            if s.segment_ids.is_empty() { "none".into() } else { s.segment_ids.join(", ") },
            s.monetary_365d
        )
    } else {
        String::new()
    };
    t.add_row(vec!["segmentation".into(), availability(s.availability.as_ref()), said]);
    let rf = r.referrals.unwrap_or_default();
    let said = if rf.availability.as_ref().is_some_and(|a| a.available) {
        if rf.has_code { "has a referral code".into() } else { "no referral code".into() }
    } else {
        String::new()
    };
    t.add_row(vec!["referrals".into(), availability(rf.availability.as_ref()), said]);
    println!("{t}");

    let mut t = output::table(&["case", "kind", "state", "theme", "opened", "queue"]);
    for x in &r.recent_cases {
        let name = |s: &str, p: &str| s.trim_start_matches(p).to_lowercase();
        t.add_row(vec![
            x.case_id.clone(),
            name(x.kind().as_str_name(), "CASE_KIND_"),
            name(x.state().as_str_name(), "CASE_STATE_"),
            x.theme.as_ref().map(|d| d.theme.clone()).unwrap_or_default(),
            output::when(x.create_time.as_ref()),
            x.queue_id.clone(),
        ]);
    }
    println!("{t}");
    let scores: Vec<String> =
        r.nps_history.iter().rev().filter_map(|s| s.answer.as_ref()).map(|a| a.score.to_string()).collect();
    println!("NPS answers, oldest first: {}", if scores.is_empty() { "none".into() } else { scores.join(" ") });

    let mut t = output::table(&["suggested action", "why", "facts"]);
    for x in &r.suggestions {
        let facts: Vec<String> = x.facts.iter().map(|f| format!("{} = {}", f.name, f.value)).collect();
        t.add_row(vec![x.action.clone(), x.description.clone(), facts.join("\n")]);
    }
    if r.suggestions.is_empty() {
        t.add_row(vec!["none".into(), "no rule fired".into(), String::new()]);
    }
    println!("{t}");
    Ok(())
}

/// Runs `rapport actions …`.
pub async fn actions(conn: &Conn, args: ActionsArgs) -> anyhow::Result<()> {
    let mut c = FeedbackServiceClient::new(channel(conn, &conn.feedback_addr)?);
    match args.command {
        ActionsCommand::List => {
            let r = c.list_action_rules(pb::ListActionRulesRequest {}).await.map_err(explain)?.into_inner();
            let mut t = output::table(&["#", "rule", "when", "action"]);
            for (i, x) in r.rules.iter().enumerate() {
                t.add_row(vec![(i + 1).to_string(), x.rule_id.clone(), describe(x), x.action.clone()]);
            }
            println!("{t}");
            let mut t = output::table(&["fact", "what it holds"]);
            for f in &r.facts {
                t.add_row(vec![f.name.clone(), f.description.clone()]);
            }
            println!("{t}");
        }
        ActionsCommand::Set { rules } => {
            if rules.is_empty() {
                bail!("give at least one --rule (the service would take an empty list as: suggest nothing)");
            }
            let rules = rules.iter().map(|r| parse_rule(r)).collect::<anyhow::Result<Vec<_>>>()?;
            let r = c
                .set_action_rules(pb::SetActionRulesRequest { request_id: request_id(), rules })
                .await
                .map_err(explain)?
                .into_inner();
            println!("{} rules saved", r.rules.len());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_rules_read_like_sentences() {
        let r = parse_rule("callback: nps.class=detractor, cases.open>=1 -> call back today").unwrap();
        assert_eq!((r.rule_id.as_str(), r.action.as_str()), ("callback", "call back today"));
        assert_eq!(r.conditions.len(), 2);
        assert_eq!(r.conditions[1].op, i32::from(pb::ActionOp::Gte));
        assert_eq!(r.conditions[1].value, "1");
        assert_eq!(describe(&r), "nps.class=detractor, cases.open>=1");
        let r = parse_rule("x: referrals.has_code != true -> invite").unwrap();
        assert_eq!(
            (r.conditions[0].fact.as_str(), r.conditions[0].op),
            ("referrals.has_code", i32::from(pb::ActionOp::Ne))
        );
        assert!(parse_rule("no arrow").is_err());
        assert!(parse_rule("x: cases.open ~ 1 -> y").is_err());
    }
}
