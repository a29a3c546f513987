//! `rapport loyalty ...`: operator commands over gRPC.
use std::time::Duration;

use anyhow::Context;
use rapport_kit::client::{self, Outgoing};
use rapport_proto::loyalty::v1::{self as pb, loyalty_service_client::LoyaltyServiceClient};

use crate::{
    cli::{Conn, LoyaltyArgs, LoyaltyCommand, MemberCommand},
    output::{table, when},
};

fn tier(t: i32) -> &'static str {
    match pb::Tier::try_from(t).unwrap_or(pb::Tier::Unspecified) {
        pb::Tier::Bronze => "bronze",
        pb::Tier::Silver => "silver",
        pb::Tier::Gold => "gold",
        pb::Tier::Vip => "VIP",
        pb::Tier::Unspecified => "-",
    }
}

fn kind(k: i32) -> String {
    pb::EntryKind::try_from(k)
        .map(|k| {
            k.as_str_name()
                .trim_start_matches("ENTRY_KIND_")
                .to_lowercase()
        })
        .unwrap_or_default()
}

/// The token: the flag or variable, else the one `rapport up` wrote.
fn token(conn: &Conn) -> anyhow::Result<String> {
    if let Some(t) = &conn.token {
        return Ok(t.clone());
    }
    let path = crate::up::token_path("./data");
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .with_context(|| {
            format!(
                "no --token / RAPPORT_TOKEN and no {} (is `rapport up` running here?)",
                path.display()
            )
        })
}

fn explain(status: tonic::Status) -> anyhow::Error {
    use tonic_types::StatusExt;
    let d = status.get_error_details();
    let mut msg = format!("{:?}: {}", status.code(), status.message());
    if let Some(info) = d.error_info() {
        msg.push_str(&format!(" [{}]", info.reason));
    }
    if let Some(br) = d.bad_request() {
        for v in &br.field_violations {
            msg.push_str(&format!("\n  {}: {}", v.field, v.description));
        }
    }
    anyhow::anyhow!(msg)
}

fn print_member(m: &pb::Member) {
    let b = m.balance.unwrap_or_default();
    let mut t = table(&[
        "customer",
        "tier",
        "active",
        "pending",
        "spent",
        "expired",
        "expiring ≤30d",
        "qualifying",
        "to next tier",
    ]);
    let next = if m.next_tier == 0 {
        "-".to_string()
    } else {
        format!("{} to {}", m.points_to_next_tier, tier(m.next_tier))
    };
    t.add_row(vec![
        m.customer_id.clone(),
        tier(m.tier).to_string(),
        b.active.to_string(),
        b.pending.to_string(),
        b.spent.to_string(),
        b.expired.to_string(),
        b.expiring_soon.to_string(),
        m.qualifying_points.to_string(),
        next,
    ]);
    println!("{t}");
}

/// Runs a loyalty command.
pub async fn run(conn: &Conn, args: LoyaltyArgs) -> anyhow::Result<()> {
    let outgoing = Outgoing::new(Some(token(conn)?), Duration::from_secs(10));
    let mut c = LoyaltyServiceClient::new(client::channel(&conn.loyalty_addr, outgoing)?);
    let rid = |r: Option<String>| r.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    match args.command {
        LoyaltyCommand::Member {
            command: MemberCommand::Enrol { customer_id, name },
        } => {
            let r = c
                .enrol_member(pb::EnrolMemberRequest {
                    request_id: rid(None),
                    customer_id,
                    display_name: name,
                })
                .await
                .map_err(explain)?;
            print_member(&r.into_inner().member.unwrap_or_default());
        }
        LoyaltyCommand::Member {
            command: MemberCommand::Show { customer_id },
        } => {
            let r = c
                .get_member(pb::GetMemberRequest { customer_id })
                .await
                .map_err(explain)?;
            print_member(&r.into_inner().member.unwrap_or_default());
        }
        LoyaltyCommand::Earn {
            customer_id,
            points,
            reason,
            request_id,
        } => {
            let r = c
                .earn_points(pb::EarnPointsRequest {
                    request_id: rid(request_id),
                    customer_id: customer_id.clone(),
                    points,
                    reason,
                    reference: String::new(),
                })
                .await
                .map_err(explain)?
                .into_inner();
            let e = r.entry.unwrap_or_default();
            println!(
                "entry {}: +{} points for {customer_id}, active balance {}",
                e.entry_id,
                e.points,
                r.balance.unwrap_or_default().active
            );
        }
        LoyaltyCommand::Redeem {
            customer_id,
            points,
            reason,
            request_id,
        } => {
            let r = c
                .redeem_points(pb::RedeemPointsRequest {
                    request_id: rid(request_id),
                    customer_id: customer_id.clone(),
                    points,
                    reason,
                })
                .await
                .map_err(explain)?
                .into_inner();
            let e = r.entry.unwrap_or_default();
            println!(
                "entry {}: {} points for {customer_id}, active balance {}",
                e.entry_id,
                e.points,
                r.balance.unwrap_or_default().active
            );
        }
        LoyaltyCommand::Transactions { customer_id, limit } => {
            let r = c
                .list_transactions(pb::ListTransactionsRequest {
                    customer_id,
                    page_size: limit,
                    page_token: String::new(),
                })
                .await
                .map_err(explain)?
                .into_inner();
            let mut t = table(&["entry", "when", "kind", "points", "reason", "expires"]);
            for e in r.entries {
                t.add_row(vec![
                    e.entry_id,
                    when(e.create_time.as_ref()),
                    kind(e.kind),
                    format!("{:+}", e.points),
                    e.reason,
                    when(e.expire_time.as_ref()),
                ]);
            }
            println!("{t}");
            if !r.next_page_token.is_empty() {
                println!("(more entries: raise --limit)");
            }
        }
    }
    Ok(())
}
