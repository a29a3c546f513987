//! `rapport loyalty ...`: operator commands over gRPC.
use rapport_proto::loyalty::v1::{self as pb, loyalty_service_client::LoyaltyServiceClient};

use crate::{
    cli::{Conn, LoyaltyArgs, LoyaltyCommand, MemberCommand, OfferCommand},
    conn::explain,
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
        .map(|k| k.as_str_name().trim_start_matches("ENTRY_KIND_").to_lowercase())
        .unwrap_or_default()
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
    let next =
        if m.next_tier == 0 { "-".to_string() } else { format!("{} to {}", m.points_to_next_tier, tier(m.next_tier)) };
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
    let mut c = LoyaltyServiceClient::new(crate::conn::channel(conn, &conn.loyalty_addr)?);
    let rid = |r: Option<String>| r.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    match args.command {
        LoyaltyCommand::Member { command: MemberCommand::Enrol { customer_id, name } } => {
            let r = c
                .enrol_member(pb::EnrolMemberRequest { request_id: rid(None), customer_id, display_name: name })
                .await
                .map_err(explain)?;
            print_member(&r.into_inner().member.unwrap_or_default());
        }
        LoyaltyCommand::Member { command: MemberCommand::Show { customer_id } } => {
            let r = c.get_member(pb::GetMemberRequest { customer_id }).await.map_err(explain)?;
            print_member(&r.into_inner().member.unwrap_or_default());
        }
        LoyaltyCommand::Earn { customer_id, points, reason, request_id } => {
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
        LoyaltyCommand::Redeem { customer_id, points, reason, request_id } => {
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
        LoyaltyCommand::Offer { command: OfferCommand::Create { offer_id, title, percent, days, tiers } } => {
            let tiers = tiers
                .iter()
                .map(|t| match t.as_str() {
                    "bronze" => Ok(pb::Tier::Bronze),
                    "silver" => Ok(pb::Tier::Silver),
                    "gold" => Ok(pb::Tier::Gold),
                    "vip" => Ok(pb::Tier::Vip),
                    other => Err(anyhow::anyhow!("unknown tier {other:?}")),
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
            let offer = pb::Offer {
                offer_id: offer_id.clone(),
                title,
                kind: pb::OfferKind::PercentOff.into(),
                value: percent * 100,
                sku: String::new(),
                tiers: tiers.into_iter().map(Into::into).collect(),
                start_time: Some(rapport_proto::Timestamp { seconds: now, nanos: 0 }),
                end_time: Some(rapport_proto::Timestamp { seconds: now + days * 86_400, nanos: 0 }),
                max_uses_per_customer: 1,
            };
            c.create_offer(pb::CreateOfferRequest { request_id: rid(None), offer: Some(offer) })
                .await
                .map_err(explain)?;
            println!("offer {offer_id} created: {percent} % off for {days} days");
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
