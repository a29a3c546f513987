//! Tables people can read.
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

/// A table with a header row.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic).set_header(header.to_vec());
    t
}

/// A protobuf enum's wire name for people: `REFERRAL_STATE_PENDING` with prefix `REFERRAL_STATE_` is `pending`.
pub fn enum_name(wire: &str, prefix: &str) -> String {
    wire.trim_start_matches(prefix).to_lowercase()
}

/// The window of the last `days` days, today included: its start and its exclusive end, at midnight UTC.
pub fn last_days(days: i64) -> anyhow::Result<(prost_types_like::Timestamp, prost_types_like::Timestamp)> {
    const DAY_MS: i64 = 86_400_000;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    let end = (now / DAY_MS + 1) * DAY_MS;
    Ok((rapport_kit::clock::timestamp(end - days * DAY_MS), rapport_kit::clock::timestamp(end)))
}

/// One character per value on the `lo..hi` scale.
pub fn sparkline(values: &[f64], lo: f64, hi: f64) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    values.iter().map(|v| BARS[((v - lo) / (hi - lo) * 7.0).round().clamp(0.0, 7.0) as usize]).collect()
}

/// A protobuf timestamp as `YYYY-MM-DD HH:MM` (UTC).
pub fn when(ts: Option<&prost_types_like::Timestamp>) -> String {
    let Some(ts) = ts else { return String::new() };
    let secs = ts.seconds;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}", rem / 3600, (rem % 3600) / 60)
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The protobuf well-known types, by their crate-local name.
pub mod prost_types_like {
    pub use rapport_proto::Timestamp;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_span_the_scale() {
        assert_eq!(sparkline(&[-100.0, 0.0, 100.0], -100.0, 100.0), "▁▅█");
        assert_eq!(sparkline(&[0.0, 50.0, 100.0], 0.0, 100.0), "▁▅█");
        assert_eq!(sparkline(&[], 0.0, 1.0), "");
    }

    #[test]
    fn windows_end_at_the_next_midnight() {
        let (start, end) = last_days(30).unwrap();
        assert_eq!((end.seconds % 86_400, end.seconds - start.seconds), (0, 30 * 86_400));
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        assert!(start.seconds <= now - 29 * 86_400 && now < end.seconds);
        assert_eq!(enum_name("REWARD_STATE_CLAWBACK_DUE", "REWARD_STATE_"), "clawback_due");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(20_415), (2025, 11, 23));
        let ts = rapport_proto::Timestamp { seconds: 1_763_900_000, nanos: 0 };
        assert_eq!(when(Some(&ts)), "2025-11-23 12:13");
    }
}
