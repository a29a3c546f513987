//! `rapport referrals …`: codes for ambassadors, a referral with its screening and rewards, the leaderboard, and the
//! review of flagged referrals by an agent.
use anyhow::bail;
use rapport_kit::client::OutgoingChannel;
use rapport_proto::referrals::v1::{self as pb, referrals_service_client::ReferralsServiceClient};

use crate::{
    cli::{Conn, ReferralsArgs, ReferralsCommand, ReviewArgs, ReviewCommand},
    conn::{channel, explain, request_id},
    output::{self, enum_name},
};

type Client = ReferralsServiceClient<OutgoingChannel>;

/// Runs `rapport referrals …`.
pub async fn run(conn: &Conn, args: ReferralsArgs) -> anyhow::Result<()> {
    let mut c = ReferralsServiceClient::new(channel(conn, &conn.referrals_addr)?);
    match args.command {
        ReferralsCommand::Code { customer_id, programme, vanity, usage_limit } => {
            code(&mut c, customer_id, programme, vanity, usage_limit).await
        }
        ReferralsCommand::Show { referral_id } => show(&mut c, referral_id).await,
        ReferralsCommand::Leaderboard { programme, days, limit } => leaderboard(&mut c, programme, days, limit).await,
        ReferralsCommand::Review(args) => review(&mut c, args).await,
        ReferralsCommand::Retry { referral_id } => retry(&mut c, referral_id).await,
    }
}

/// Puts back in line the rewards loyalty refused too often.
async fn retry(c: &mut Client, referral_id: String) -> anyhow::Result<()> {
    let r = c
        .retry_rewards(pb::RetryRewardsRequest { request_id: request_id(), referral_id })
        .await
        .map_err(explain)?
        .into_inner();
    let Some(referral) = r.referral else { bail!("the service answered without a referral") };
    print_rewards(&referral.rewards);
    println!("{} reward(s) of referral {} put back in line", r.requeued, referral.referral_id);
    Ok(())
}

async fn code(
    c: &mut Client,
    customer_id: String,
    programme_id: String,
    vanity: Option<String>,
    usage_limit: i32,
) -> anyhow::Result<()> {
    let code = c
        .issue_code(pb::IssueCodeRequest {
            request_id: request_id(),
            customer_id,
            programme_id,
            vanity: vanity.unwrap_or_default(),
            valid_from: None,
            valid_until: None,
            usage_limit,
            signals: None,
        })
        .await
        .map_err(explain)?
        .into_inner()
        .code;
    let Some(code) = code else { bail!("the service answered without a code") };
    let mut t = output::table(&["code", "customer", "programme", "valid from", "valid until", "uses / limit"]);
    let until = if code.valid_until.is_some() { output::when(code.valid_until.as_ref()) } else { "no end".into() };
    let limit = if code.usage_limit == 0 { "no limit".to_string() } else { code.usage_limit.to_string() };
    t.add_row(vec![
        code.code,
        code.customer_id,
        code.programme_id,
        output::when(code.valid_from.as_ref()),
        until,
        format!("{} / {limit}", code.uses),
    ]);
    println!("{t}");
    Ok(())
}

fn state(r: &pb::Referral) -> String {
    enum_name(r.state().as_str_name(), "REFERRAL_STATE_")
}

/// The referral itself, a field a line (what is not known yet left out).
fn print_referral(r: &pb::Referral) {
    let mut t = output::table(&["referral", &r.referral_id]);
    let mut line = |name: &str, value: String| {
        if !value.is_empty() {
            t.add_row(vec![name.to_string(), value]);
        }
    };
    line("state", state(r));
    line("ambassador", r.referrer_id.clone());
    line("referee", r.referee_id.clone());
    line("code", r.code.clone());
    line("programme", format!("{} (version {})", r.programme_id, r.programme_version));
    line("fraud score", format!("{:.2}", r.fraud_score));
    line("signed up", output::when(r.signed_up_at.as_ref()));
    line("converted", output::when(r.converted_at.as_ref()));
    line("converting order", r.converted_order_id.clone());
    line("approved", output::when(r.approved_at.as_ref()));
    line("reviewed by", r.reviewed_by.clone());
    line("review note", r.reason.clone());
    line("voided", output::when(r.voided_at.as_ref()));
    line("voided by", r.voided_by.clone());
    line("void reason", r.void_reason.clone());
    println!("{t}");
}

fn print_signals(signals: &[pb::FraudSignal]) {
    let mut t = output::table(&["signal", "weight", "detail"]);
    for s in signals {
        t.add_row(vec![s.name.clone(), format!("{:.2}", s.weight), s.detail.clone()]);
    }
    println!("{t}");
}

fn print_rewards(rewards: &[pb::ReferralReward]) {
    let mut t = output::table(&["side", "customer", "points", "state", "due", "entry", "last error"]);
    for w in rewards {
        t.add_row(vec![
            w.side.clone(),
            w.customer_id.clone(),
            w.points.to_string(),
            enum_name(w.state().as_str_name(), "REWARD_STATE_"),
            output::when(w.due_at.as_ref()),
            w.entry_id.clone(),
            w.last_error.clone(),
        ]);
    }
    println!("{t}");
}

async fn show(c: &mut Client, referral_id: String) -> anyhow::Result<()> {
    let r = c.get_referral(pb::GetReferralRequest { referral_id }).await.map_err(explain)?.into_inner().referral;
    let Some(r) = r else { bail!("the service answered without a referral") };
    print_referral(&r);
    if !r.signals.is_empty() {
        print_signals(&r.signals);
    }
    if r.rewards.is_empty() {
        println!("no rewards yet");
    } else {
        print_rewards(&r.rewards);
    }
    Ok(())
}

async fn leaderboard(c: &mut Client, programme_id: String, days: i64, limit: i32) -> anyhow::Result<()> {
    if !(1..=400).contains(&days) {
        bail!("--days must be 1 to 400");
    }
    let (start, end) = output::last_days(days)?;
    let r = c
        .get_leaderboard(pb::GetLeaderboardRequest {
            programme_id: programme_id.clone(),
            start_time: Some(start),
            end_time: Some(end),
            limit,
        })
        .await
        .map_err(explain)?
        .into_inner();
    let mut t =
        output::table(&["rank", "ambassador", "invited", "signed up", "converted", "rewarded", "flagged", "points"]);
    for (rank, e) in r.entries.iter().enumerate() {
        t.add_row(vec![
            (rank + 1).to_string(),
            e.customer_id.clone(),
            e.invited.to_string(),
            e.signed_up.to_string(),
            e.converted.to_string(),
            e.rewarded.to_string(),
            e.flagged.to_string(),
            e.points_earned.to_string(),
        ]);
    }
    println!("{t}");
    println!(
        "programme {programme_id}, referrals signed up in the last {days} days: {} ambassador(s)",
        r.entries.len()
    );
    Ok(())
}

async fn review(c: &mut Client, args: ReviewArgs) -> anyhow::Result<()> {
    if args.command.is_some() && args.programme.is_some() {
        bail!("--programme only narrows the list of flagged referrals, not a decision on one");
    }
    let r = match args.command {
        None => return flagged(c, args.programme.unwrap_or_default()).await,
        Some(ReviewCommand::Approve { referral_id, reason }) => {
            c.approve_referral(pb::ApproveReferralRequest { request_id: request_id(), referral_id, reason })
                .await
                .map_err(explain)?
                .into_inner()
                .referral
        }
        Some(ReviewCommand::Void { referral_id, reason }) => {
            c.void_referral(pb::VoidReferralRequest { request_id: request_id(), referral_id, reason })
                .await
                .map_err(explain)?
                .into_inner()
                .referral
        }
    };
    let Some(r) = r else { bail!("the service answered without a referral") };
    print_referral(&r);
    println!("referral {} is now {}", r.referral_id, state(&r));
    Ok(())
}

/// Every flagged referral, newest first, a page at a time.
async fn flagged(c: &mut Client, programme_id: String) -> anyhow::Result<()> {
    let mut t = output::table(&["referral", "ambassador", "referee", "score", "signals"]);
    let (mut token, mut n) = (String::new(), 0);
    loop {
        let page = c
            .list_referrals(pb::ListReferralsRequest {
                state: pb::ReferralState::Flagged.into(),
                programme_id: programme_id.clone(),
                referrer_id: String::new(),
                page_size: 500,
                page_token: token,
            })
            .await
            .map_err(explain)?
            .into_inner();
        for r in page.referrals {
            n += 1;
            let signals: Vec<&str> = r.signals.iter().map(|s| s.name.as_str()).collect();
            t.add_row(vec![
                r.referral_id.clone(),
                r.referrer_id.clone(),
                r.referee_id.clone(),
                format!("{:.2}", r.fraud_score),
                signals.join(", "),
            ]);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    println!("{t}");
    if n == 0 {
        println!("no flagged referral waits for review");
    } else {
        println!("{n} flagged referral(s): rapport referrals review approve|void <referral> --reason … decides one");
    }
    Ok(())
}
