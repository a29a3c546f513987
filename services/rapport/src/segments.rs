//! `rapport segments ...` and `rapport campaign ...`: operator commands over gRPC, with progress bars for the
//! long ones and tables people can read.
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use rapport_proto::segmentation::v1::{
    self as pb, condition::Node, segmentation_service_client::SegmentationServiceClient,
};

use crate::{
    cli::{CampaignArgs, CampaignCommand, Conn, SegmentsArgs, SegmentsCommand},
    conn::{channel, explain},
    output::table,
};

fn bar(len: u64, what: &str) -> anyhow::Result<ProgressBar> {
    let b = ProgressBar::new(len).with_style(
        ProgressStyle::with_template("{spinner} {msg:<24} [{bar:40}] {pos}/{len} {elapsed}")?.progress_chars("=> "),
    );
    b.set_message(what.to_string());
    b.enable_steady_tick(Duration::from_millis(100));
    Ok(b)
}

/// Parses the small rule language of `rapport segments create`: conditions joined by `and`.
pub fn parse_rule(text: &str) -> Result<pb::Condition, String> {
    let mut leaves = Vec::new();
    for part in text.split(" and ").map(str::trim).filter(|p| !p.is_empty()) {
        let words: Vec<&str> = part.split_whitespace().collect();
        let [lhs, op, rhs] = words[..] else {
            return Err(format!("expected `<name> <op> <value>`, got {part:?}"));
        };
        let list = |s: &str| s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect::<Vec<_>>();
        let node = match (lhs, op) {
            ("cluster", "=" | "in") => Node::Cluster(pb::ClusterIn {
                cluster_ids: list(rhs)
                    .iter()
                    .map(|x| x.parse::<i32>().map_err(|_| format!("cluster ids are numbers: {x:?}")))
                    .collect::<Result<_, _>>()?,
            }),
            ("tier", "=" | "in") => Node::Tier(pb::ValuesIn { values: list(rhs) }),
            ("nps", "=" | "in") => Node::NpsClass(pb::ValuesIn { values: list(rhs) }),
            ("segment", "=") => Node::InSegment(rhs.to_string()),
            (a, "=") if a.starts_with("attribute.") => Node::Attribute(pb::AttributeEquals {
                name: a.trim_start_matches("attribute.").to_string(),
                value: rhs.to_string(),
            }),
            (name, op) => {
                let op = match op {
                    "<" => pb::Comparison::Lt,
                    "<=" => pb::Comparison::Le,
                    ">" => pb::Comparison::Gt,
                    ">=" => pb::Comparison::Ge,
                    "=" | "==" => pb::Comparison::Eq,
                    other => return Err(format!("unknown operator {other:?}")),
                };
                let value = rhs.parse::<f64>().map_err(|_| format!("{name} compares with a number, not {rhs:?}"))?;
                Node::Feature(pb::FeatureCompare { name: name.to_string(), op: op.into(), value })
            }
        };
        leaves.push(pb::Condition { node: Some(node) });
    }
    match leaves.len() {
        0 => Err("the rule is empty".into()),
        1 => Ok(leaves.remove(0)),
        _ => Ok(pb::Condition { node: Some(Node::All(pb::Conditions { conditions: leaves })) }),
    }
}

fn kind_name(k: i32) -> String {
    pb::EventKind::try_from(k)
        .map(|k| k.as_str_name().trim_start_matches("EVENT_KIND_").to_lowercase())
        .unwrap_or_else(|_| k.to_string())
}

/// A rule in words, for people.
pub fn describe(c: Option<&pb::Condition>) -> String {
    let Some(node) = c.and_then(|c| c.node.as_ref()) else {
        return "-".into();
    };
    let join =
        |cs: &pb::Conditions, sep: &str| cs.conditions.iter().map(|c| describe(Some(c))).collect::<Vec<_>>().join(sep);
    match node {
        Node::All(cs) => format!("({})", join(cs, " and ")),
        Node::Any(cs) => format!("({})", join(cs, " or ")),
        Node::Not(c) => format!("not {}", describe(Some(c))),
        Node::Feature(f) => {
            let op = match pb::Comparison::try_from(f.op).unwrap_or(pb::Comparison::Unspecified) {
                pb::Comparison::Lt => "<",
                pb::Comparison::Le => "<=",
                pb::Comparison::Gt => ">",
                pb::Comparison::Ge => ">=",
                pb::Comparison::Eq => "=",
                pb::Comparison::Unspecified => "?",
            };
            format!("{} {op} {}", f.name, f.value)
        }
        Node::Attribute(a) => format!("attribute.{} = {}", a.name, a.value),
        Node::Cluster(cl) => format!("cluster in {:?}", cl.cluster_ids),
        Node::Tier(t) => format!("tier in {:?}", t.values),
        Node::NpsClass(t) => format!("nps in {:?}", t.values),
        Node::EventCount(e) => {
            format!("{} × {} within {} days", e.times, kind_name(e.kind), e.days)
        }
        Node::EventAbsent(e) => format!("no {} within {} days", kind_name(e.kind), e.days),
        Node::InSegment(s) => format!("segment = {s}"),
        Node::RandomBucket(b) => format!("random bucket in [{}, {})", b.from, b.to),
    }
}

/// Runs a segmentation command.
pub async fn run(conn: &Conn, args: SegmentsArgs) -> anyhow::Result<()> {
    let mut c = SegmentationServiceClient::new(channel(conn, &conn.segmentation_addr)?);
    match args.command {
        SegmentsCommand::Train { k, seed, wait, gmm } => {
            let req = pb::TrainModelRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                features: vec![],
                k,
                k_min: 0,
                k_max: 0,
                sample_size: 0,
                seed,
                algorithm: if gmm { pb::Algorithm::Gmm } else { pb::Algorithm::Kmeans }.into(),
            };
            let job = c.train_model(req).await.map_err(explain)?.into_inner().job_id;
            println!("training job {job}");
            if !wait {
                return Ok(());
            }
            let b = bar(100, "queued")?;
            loop {
                let j = c
                    .get_training_job(pb::GetTrainingJobRequest { job_id: job.clone() })
                    .await
                    .map_err(explain)?
                    .into_inner();
                b.set_position((j.progress * 100.0) as u64);
                b.set_message(j.phase.clone());
                if j.state == i32::from(pb::JobState::Failed) {
                    b.abandon();
                    anyhow::bail!("training failed: {}", j.error);
                }
                if j.state == i32::from(pb::JobState::Succeeded) {
                    b.finish_with_message(format!("model version {}", j.model_version));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            print_model(&mut c).await?;
        }
        SegmentsCommand::Model => print_model(&mut c).await?,
        SegmentsCommand::Create { segment_id, rule, name } => {
            let condition = parse_rule(&rule).map_err(anyhow::Error::msg)?;
            let s = c
                .create_segment(pb::CreateSegmentRequest {
                    request_id: uuid::Uuid::new_v4().to_string(),
                    segment: Some(pb::Segment {
                        display_name: name.unwrap_or_else(|| segment_id.clone()),
                        segment_id,
                        condition: Some(condition),
                        size: 0,
                        create_time: None,
                    }),
                })
                .await
                .map_err(explain)?
                .into_inner()
                .segment
                .unwrap_or_default();
            println!("segment {} created with {} members", s.segment_id, s.size);
        }
        SegmentsCommand::List => {
            let all = c.list_segments(pb::ListSegmentsRequest {}).await.map_err(explain)?.into_inner().segments;
            let mut t = table(&["segment", "name", "members", "created"]);
            for s in all {
                t.add_row(vec![
                    s.segment_id,
                    s.display_name,
                    s.size.to_string(),
                    crate::output::when(s.create_time.as_ref()),
                ]);
            }
            println!("{t}");
        }
        SegmentsCommand::Show { segment_id } => {
            let s = c
                .get_segment(pb::GetSegmentRequest { segment_id })
                .await
                .map_err(explain)?
                .into_inner()
                .segment
                .unwrap_or_default();
            let mut t = table(&["segment", "name", "members", "created"]);
            t.add_row(vec![
                s.segment_id,
                s.display_name,
                s.size.to_string(),
                crate::output::when(s.create_time.as_ref()),
            ]);
            println!("{t}");
            println!("rule: {}", describe(s.condition.as_ref()));
        }
        SegmentsCommand::Members { segment_id, limit } => {
            let r = c
                .list_segment_members(pb::ListSegmentMembersRequest {
                    segment_id,
                    page_size: limit,
                    page_token: String::new(),
                })
                .await
                .map_err(explain)?
                .into_inner();
            let mut t = table(&["customer"]);
            for id in r.customer_ids {
                t.add_row(vec![id]);
            }
            println!("{t}");
            if !r.next_page_token.is_empty() {
                println!("(more members: raise --limit)");
            }
        }
        SegmentsCommand::Explain { customer_id, segment } => {
            let r = c
                .explain_membership(pb::ExplainMembershipRequest {
                    customer_id: customer_id.clone(),
                    segment_id: segment.clone().unwrap_or_default(),
                })
                .await
                .map_err(explain)?
                .into_inner();
            if segment.is_some() {
                println!("{customer_id} is {}a member", if r.member { "" } else { "not " });
                let mut t = table(&["where", "condition", "value", "held"]);
                for s in r.conditions {
                    t.add_row(vec![s.path, s.description, s.actual, if s.held { "yes" } else { "no" }.to_string()]);
                }
                println!("{t}");
            } else {
                println!("{customer_id}: cluster {} \"{}\", distance {:.2}", r.cluster_id, r.cluster_label, r.distance);
                let mut t = table(&["feature", "value", "z-score", "cluster z-score"]);
                for f in r.features {
                    t.add_row(vec![
                        f.name,
                        format!("{:.2}", f.value),
                        format!("{:+.2}", f.z_score),
                        format!("{:+.2}", f.centroid_z_score),
                    ]);
                }
                println!("{t}");
            }
        }
    }
    Ok(())
}

async fn print_model(c: &mut SegmentationServiceClient<rapport_kit::client::OutgoingChannel>) -> anyhow::Result<()> {
    let m =
        c.get_model(pb::GetModelRequest { version: 0 }).await.map_err(explain)?.into_inner().model.unwrap_or_default();
    println!("model version {}: k = {}, silhouette {:.3}, inertia {:.1}", m.version, m.k, m.silhouette, m.inertia);
    let mut t = table(&["cluster", "label", "customers", "spend 365d", "purchases 365d", "recency (days)", "last nps"]);
    for cl in m.clusters {
        let v = |n: &str| cl.centroid.get(n).copied().unwrap_or_default();
        t.add_row(vec![
            cl.cluster_id.to_string(),
            cl.label,
            cl.size.to_string(),
            format!("{:.0}", v("monetary_365d")),
            format!("{:.1}", v("frequency_365d")),
            format!("{:.0}", v("recency_days")),
            format!("{:.1}", v("last_nps")),
        ]);
    }
    println!("{t}");
    Ok(())
}

/// Runs a campaign command.
pub async fn campaign(conn: &Conn, args: CampaignArgs) -> anyhow::Result<()> {
    let mut c = SegmentationServiceClient::new(channel(conn, &conn.segmentation_addr)?);
    let id = match args.command {
        CampaignCommand::Trigger { campaign_id, segment, offer, holdout, wait } => {
            let r = c
                .trigger_campaign(pb::TriggerCampaignRequest {
                    request_id: format!("cli-{campaign_id}"),
                    campaign_id: campaign_id.clone(),
                    segment_id: segment,
                    offer_id: offer,
                    holdout_percent: holdout,
                })
                .await
                .map_err(explain)?
                .into_inner()
                .campaign
                .unwrap_or_default();
            if wait {
                let b = bar(u64::try_from(r.targeted).unwrap_or(0), "granting")?;
                loop {
                    let s = c
                        .get_campaign(pb::GetCampaignRequest { campaign_id: campaign_id.clone() })
                        .await
                        .map_err(explain)?
                        .into_inner()
                        .campaign
                        .unwrap_or_default();
                    b.set_position(u64::try_from(s.granted + s.held_out + s.failed).unwrap_or(0));
                    if s.state == i32::from(pb::CampaignState::Completed) {
                        b.finish_with_message("completed");
                        break;
                    }
                    if s.state == i32::from(pb::CampaignState::Paused) {
                        b.abandon_with_message("paused");
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
            campaign_id
        }
        CampaignCommand::Show { campaign_id } => campaign_id,
    };
    let s = c
        .get_campaign(pb::GetCampaignRequest { campaign_id: id })
        .await
        .map_err(explain)?
        .into_inner()
        .campaign
        .unwrap_or_default();
    let mut t = table(&["campaign", "segment", "offer", "state", "targeted", "granted", "held out", "failed"]);
    let state = match pb::CampaignState::try_from(s.state) {
        Ok(pb::CampaignState::Completed) => "completed",
        Ok(pb::CampaignState::Paused) => "paused",
        _ => "running",
    };
    let (reason, by_reason) = (s.state_reason.clone(), s.failed_by_reason.clone());
    t.add_row(vec![
        s.campaign_id,
        s.segment_id,
        s.offer_id,
        state.into(),
        s.targeted.to_string(),
        s.granted.to_string(),
        s.held_out.to_string(),
        s.failed.to_string(),
    ]);
    println!("{t}");
    if !reason.is_empty() {
        println!("paused: {reason}\nfix the cause, then trigger the campaign again with the same parameters to resume");
    }
    if !by_reason.is_empty() {
        let mut r = table(&["failed because", "targets"]);
        let mut rows: Vec<(String, i64)> = by_reason.into_iter().collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        for (why, n) in rows {
            r.add_row(vec![why, n.to_string()]);
        }
        println!("{r}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse() {
        let c = parse_rule("monetary_365d >= 500 and nps = promoter and cluster in 1,2 and attribute.country = FR")
            .unwrap();
        let Some(Node::All(all)) = c.node else { panic!("an all node") };
        assert_eq!(all.conditions.len(), 4);
        assert!(
            matches!(&all.conditions[0].node, Some(Node::Feature(f)) if f.name == "monetary_365d" && f.value == 500.0)
        );
        assert!(matches!(&all.conditions[2].node, Some(Node::Cluster(cl)) if cl.cluster_ids == vec![1, 2]));
        assert!(parse_rule("tier in gold,vip").is_ok());
        assert!(parse_rule("monetary_365d >= lots").is_err());
        assert!(parse_rule("").is_err());
        assert!(parse_rule("a ~ 1").is_err());
        let c = parse_rule("monetary_365d >= 500 and segment = fans").unwrap();
        assert_eq!(describe(Some(&c)), "(monetary_365d >= 500 and segment = fans)");
    }
}
