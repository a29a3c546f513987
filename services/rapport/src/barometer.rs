//! `rapport barometer …`: the satisfaction barometer — its criteria and weights, the staff's assessment, readings
//! per month with the three points of view, the trend and the priority axes.
use anyhow::{Context, bail};
use rapport_proto::feedback::v1::{self as pb, feedback_service_client::FeedbackServiceClient};

use crate::{
    cli::{BarometerArgs, BarometerCommand, Conn},
    conn::{channel, explain, request_id},
    output,
};

fn axis_name(a: i32) -> String {
    pb::BarometerAxis::try_from(a)
        .map(|a| a.as_str_name().trim_start_matches("BAROMETER_AXIS_").to_lowercase().replace('_', " "))
        .unwrap_or_else(|_| "?".into())
}

fn measure_name(m: i32) -> String {
    pb::BarometerMeasure::try_from(m)
        .map(|m| m.as_str_name().trim_start_matches("BAROMETER_MEASURE_").to_lowercase().replace('_', " "))
        .unwrap_or_else(|_| "?".into())
}

/// A 0-100 figure, `-` when there is none (-1 on the wire).
fn score(v: f64) -> String {
    if v < 0.0 { "-".into() } else { format!("{v:.1}") }
}

fn trend(has: bool, v: f64) -> String {
    if has { format!("{v:+.1}") } else { "-".into() }
}

fn print_reading(r: &pb::BarometerReading) {
    println!(
        "barometer {}: index {} (trend {}{})",
        r.period,
        score(r.index),
        trend(r.has_trend, r.trend),
        if r.previous_period.is_empty() { String::new() } else { format!(" since {}", r.previous_period) }
    );
    let mut t = output::table(&["axis", "customers (vs targets)", "staff", "staff − customers", "answers", "trend"]);
    for a in &r.axes {
        let gap = if a.customers >= 0.0 && a.staff >= 0.0 { format!("{:+.1}", a.perception_gap) } else { "-".into() };
        t.add_row(vec![
            axis_name(a.axis),
            score(a.customers),
            score(a.staff),
            gap,
            a.staff_answers.to_string(),
            trend(a.has_trend, a.trend),
        ]);
    }
    println!("{t}");
    let mut t = output::table(&["criterion", "axis", "measure", "value", "target", "score", "weight"]);
    for c in &r.criteria {
        let k = c.criterion.clone().unwrap_or_default();
        let value = if c.available { format!("{:.1}", c.value) } else { format!("n/a ({})", c.unavailable_reason) };
        let scored = if c.available { format!("{:.1}", c.score) } else { "-".into() };
        t.add_row(vec![
            k.criterion_id,
            axis_name(k.axis),
            measure_name(k.measure),
            value,
            format!("{}", k.target),
            scored,
            format!("{}", k.weight),
        ]);
    }
    println!("{t}");
    if r.priorities.is_empty() {
        println!("every measured criterion is on target");
    } else {
        let axes: Vec<String> = r.priority_axes.iter().map(|a| axis_name(*a)).collect();
        println!("improve first: {} (axes: {})", r.priorities.join(", "), axes.join(", "));
    }
}

/// Parses `axis=score` for the staff assessment.
fn axis_score(text: &str) -> anyhow::Result<pb::AxisScore> {
    let (axis, s) = text.split_once('=').context("a score is axis=0..10")?;
    let axis = match axis.trim() {
        "quality" | "quality_of_service" => pb::BarometerAxis::QualityOfService,
        "satisfaction" | "customer_satisfaction" => pb::BarometerAxis::CustomerSatisfaction,
        "loyalty" => pb::BarometerAxis::Loyalty,
        "profit" => pb::BarometerAxis::Profit,
        other => bail!("unknown axis {other:?} (quality, satisfaction, loyalty, profit)"),
    };
    Ok(pb::AxisScore { axis: axis.into(), score: s.trim().parse().context("a score is a whole number 0..10")? })
}

/// Runs `rapport barometer …`.
pub async fn run(conn: &Conn, args: BarometerArgs) -> anyhow::Result<()> {
    let mut c = FeedbackServiceClient::new(channel(conn, &conn.feedback_addr)?);
    match args.command {
        BarometerCommand::Criteria => {
            let r = c.get_barometer_criteria(pb::GetBarometerCriteriaRequest {}).await.map_err(explain)?.into_inner();
            let mut t = output::table(&["criterion", "axis", "measure", "target", "weight"]);
            for k in &r.criteria {
                t.add_row(vec![
                    k.criterion_id.clone(),
                    axis_name(k.axis),
                    measure_name(k.measure),
                    format!("{}", k.target),
                    format!("{}", k.weight),
                ]);
            }
            println!("{t}");
        }
        BarometerCommand::Set { criterion_id, weight, target } => {
            let mut criteria = c
                .get_barometer_criteria(pb::GetBarometerCriteriaRequest {})
                .await
                .map_err(explain)?
                .into_inner()
                .criteria;
            let Some(k) = criteria.iter_mut().find(|k| k.criterion_id == criterion_id) else {
                bail!("no criterion {criterion_id:?} (rapport barometer criteria lists them)");
            };
            if let Some(w) = weight {
                k.weight = w;
            }
            if let Some(t) = target {
                k.target = t;
            }
            c.set_barometer_criteria(pb::SetBarometerCriteriaRequest { request_id: request_id(), criteria })
                .await
                .map_err(explain)?;
            println!("criterion {criterion_id} saved; readings already taken keep their weights");
        }
        BarometerCommand::Assess { agent_id, period, scores, comment } => {
            let scores = scores.iter().map(|s| axis_score(s)).collect::<anyhow::Result<Vec<_>>>()?;
            let r = c
                .record_staff_assessment(pb::RecordStaffAssessmentRequest {
                    request_id: request_id(),
                    agent_id,
                    period: period.clone(),
                    scores,
                    comment,
                })
                .await
                .map_err(explain)?
                .into_inner();
            println!("assessment recorded: {} answer(s) for {period}", r.answers);
        }
        BarometerCommand::Staff { period } => {
            let r = c
                .list_staff_assessments(pb::ListStaffAssessmentsRequest { period: period.clone() })
                .await
                .map_err(explain)?
                .into_inner();
            let mut t = output::table(&["agent", "scores", "comment", "answered"]);
            for a in &r.assessments {
                let scores: Vec<String> =
                    a.scores.iter().map(|s| format!("{} {}", axis_name(s.axis), s.score)).collect();
                t.add_row(vec![
                    a.agent_id.clone(),
                    scores.join(", "),
                    a.comment.clone(),
                    output::when(a.answer_time.as_ref()),
                ]);
            }
            println!("{t}");
            println!("{} answer(s) for {period}", r.assessments.len());
        }
        BarometerCommand::Read { period, replace } => {
            let r = c
                .take_barometer_reading(pb::TakeBarometerReadingRequest { request_id: request_id(), period, replace })
                .await
                .map_err(explain)?
                .into_inner();
            print_reading(&r.reading.unwrap_or_default());
        }
        BarometerCommand::Show { last } => {
            let r = c
                .list_barometer_readings(pb::ListBarometerReadingsRequest { limit: last })
                .await
                .map_err(explain)?
                .into_inner();
            let Some(latest) = r.readings.first() else {
                println!("no reading yet: rapport barometer read YYYY-MM takes one");
                return Ok(());
            };
            let mut t = output::table(&["period", "index", "trend", "priorities"]);
            for x in &r.readings {
                t.add_row(vec![x.period.clone(), score(x.index), trend(x.has_trend, x.trend), x.priorities.join(", ")]);
            }
            println!("{t}");
            let indexes: Vec<f64> = r.readings.iter().rev().filter(|x| x.index >= 0.0).map(|x| x.index).collect();
            println!("index, oldest first: {}", output::sparkline(&indexes, 0.0, 100.0));
            print_reading(latest);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staff_scores_read_like_axis_equals_score() {
        let s = axis_score("quality=8").unwrap();
        assert_eq!((s.axis, s.score), (i32::from(pb::BarometerAxis::QualityOfService), 8));
        assert!(axis_score("mood=3").is_err());
        assert!(axis_score("profit").is_err());
        assert_eq!(axis_name(i32::from(pb::BarometerAxis::CustomerSatisfaction)), "customer satisfaction");
        assert_eq!((score(-1.0), score(42.25)), ("-".to_string(), "42.2".to_string()));
    }
}
