//! `rapport survey …` and `rapport nps`: surveys by hand, and the NPS as a table with a sparkline of its days.
use anyhow::bail;
use rapport_proto::{
    common::v1::Channel,
    feedback::v1::{self as pb, feedback_service_client::FeedbackServiceClient},
};

use crate::{
    cli::{Conn, NpsArgs, SurveyArgs, SurveyCommand},
    conn::{channel, explain, request_id},
    output,
};

/// Runs `rapport survey …`.
pub async fn survey(conn: &Conn, args: SurveyArgs) -> anyhow::Result<()> {
    let mut c = FeedbackServiceClient::new(channel(conn, &conn.feedback_addr)?);
    let s = match args.command {
        SurveyCommand::Schedule { customer_id, touchpoint, channel, min_days, after_case } => {
            let Some(ch) = Channel::from_str_name(&format!("CHANNEL_{}", channel.to_uppercase())) else {
                bail!("--channel: unknown channel {channel:?} (web, mobile, store, phone, email, social, chat)");
            };
            c.schedule_survey(pb::ScheduleSurveyRequest {
                request_id: request_id(),
                customer_id,
                touchpoint,
                channel: ch.into(),
                min_days_between_surveys: min_days,
                valid_days: 0,
                after_case_id: after_case.unwrap_or_default(),
            })
            .await
            .map_err(explain)?
            .into_inner()
            .survey
        }
        SurveyCommand::Answer { survey_id, score, comment } => {
            c.record_response(pb::RecordResponseRequest { request_id: request_id(), survey_id, score, comment })
                .await
                .map_err(explain)?
                .into_inner()
                .survey
        }
        SurveyCommand::Show { survey_id } => {
            c.get_survey(pb::GetSurveyRequest { survey_id }).await.map_err(explain)?.into_inner().survey
        }
    };
    let Some(s) = s else { bail!("the service answered without a survey") };
    let mut t = output::table(&["survey", "customer", "touchpoint", "state", "expires", "score", "class", "comment"]);
    let answer = s.answer.clone().unwrap_or_default();
    t.add_row(vec![
        s.survey_id.clone(),
        s.customer_id.clone(),
        s.touchpoint.clone(),
        output::enum_name(s.state().as_str_name(), "SURVEY_STATE_"),
        output::when(s.expire_time.as_ref()),
        s.answer.as_ref().map(|a| a.score.to_string()).unwrap_or_default(),
        s.answer.as_ref().map(|_| output::enum_name(answer.class().as_str_name(), "NPS_CLASS_")).unwrap_or_default(),
        answer.comment,
    ]);
    println!("{t}");
    Ok(())
}

/// Runs `rapport nps`.
pub async fn nps(conn: &Conn, args: NpsArgs) -> anyhow::Result<()> {
    if !(1..=400).contains(&args.days) {
        bail!("--days must be 1 to 400");
    }
    let group_by = match args.by.as_str() {
        "day" => pb::NpsGrouping::Day,
        "channel" => pb::NpsGrouping::Channel,
        "touchpoint" => pb::NpsGrouping::Touchpoint,
        "tier" => pb::NpsGrouping::Tier,
        "segment" => pb::NpsGrouping::Segment,
        other => bail!("--by: unknown grouping {other:?} (day, channel, touchpoint, tier or segment)"),
    };
    let (start, end) = output::last_days(args.days)?;
    let mut c = FeedbackServiceClient::new(channel(conn, &conn.feedback_addr)?);
    let r = c
        .get_nps(pb::GetNpsRequest { start_time: Some(start), end_time: Some(end), group_by: group_by.into() })
        .await
        .map_err(explain)?
        .into_inner();
    let mut t = output::table(&[&args.by, "answers", "promoters", "passives", "detractors", "NPS", "95 % interval"]);
    let row = |s: &pb::NpsScore, key: &str| {
        vec![
            key.to_string(),
            s.responses.to_string(),
            s.promoters.to_string(),
            s.passives.to_string(),
            s.detractors.to_string(),
            format!("{:+.1}", s.score),
            format!("{:+.1} … {:+.1}", s.ci_low, s.ci_high),
        ]
    };
    for g in &r.groups {
        t.add_row(row(g, &g.key));
    }
    let overall = r.overall.unwrap_or_default();
    t.add_row(row(&overall, "all"));
    println!("{t}");
    let scores: Vec<f64> = r.daily.iter().map(|d| d.score).collect();
    println!(
        "daily NPS, last {} days: {}  (target {:+.0}; {} day(s) with answers)",
        args.days,
        output::sparkline(&scores, -100.0, 100.0),
        r.target,
        scores.len()
    );
    if let Some(rec) = r.recovery.as_ref().filter(|rec| rec.responses > 0) {
        println!(
            "after a resolved case: NPS {:+.1} from {} answer(s) ({} promoters, {} detractors)",
            rec.score, rec.responses, rec.promoters, rec.detractors
        );
    }
    if overall.responses > 0 && overall.ci_high < r.target {
        println!("below target: even the top of the interval is under {:+.0}", r.target);
    }
    Ok(())
}
