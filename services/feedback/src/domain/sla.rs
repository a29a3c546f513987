//! SLA clocks, pure: business hours in a fixed time zone, holidays, pauses (while the case waits for the customer),
//! and the policy targets per severity and tier. Every instant is Unix milliseconds; every duration is business
//! milliseconds, i.e. time the clock was running.
use std::collections::BTreeSet;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// When the clock runs: opening hours per weekday in a fixed UTC offset, minus holidays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    /// Offset of local time from UTC, in minutes (e.g. 60 for Paris in winter).
    pub utc_offset_minutes: i64,
    /// Opening hours per weekday, Monday first: minutes from local midnight, `[open, close)`; `None` = closed.
    pub hours: [Option<(i64, i64)>; 7],
    /// Closed local days (days since 1970-01-01 in local time).
    pub holidays: BTreeSet<i64>,
}

/// Why a calendar description was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CalendarError(pub String);

impl Calendar {
    /// Round the clock, every day.
    pub fn always() -> Self {
        Self { utc_offset_minutes: 0, hours: [Some((0, 24 * 60)); 7], holidays: BTreeSet::new() }
    }

    /// From `mon-fri 09:00-18:00` (ranges of days, `;` between groups, e.g. `mon-fri 09:00-18:00; sat 10:00-16:00`),
    /// holidays as `YYYY-MM-DD` dates and a UTC offset in minutes.
    pub fn parse(hours: &str, holidays: &[&str], utc_offset_minutes: i64) -> Result<Self, CalendarError> {
        const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        let bad = |what: &str| CalendarError(format!("business hours: {what}"));
        let mut cal = Self { utc_offset_minutes, hours: [None; 7], holidays: BTreeSet::new() };
        for group in hours.split(';').map(str::trim).filter(|g| !g.is_empty()) {
            let (days, span) =
                group.split_once(' ').ok_or_else(|| bad(&format!("{group:?} is not `days hh:mm-hh:mm`")))?;
            let day =
                |d: &str| DAYS.iter().position(|x| *x == d.trim()).ok_or_else(|| bad(&format!("unknown day {d:?}")));
            let (first, last) = match days.split_once('-') {
                Some((a, b)) => (day(a)?, day(b)?),
                None => (day(days)?, day(days)?),
            };
            let (open, close) =
                span.trim().split_once('-').ok_or_else(|| bad(&format!("{span:?} is not hh:mm-hh:mm")))?;
            let minutes = |t: &str| -> Result<i64, CalendarError> {
                let (h, m) = t.trim().split_once(':').ok_or_else(|| bad(&format!("{t:?} is not hh:mm")))?;
                let (h, m): (i64, i64) = (h.parse().map_err(|_| bad(t))?, m.parse().map_err(|_| bad(t))?);
                if !(0..=24).contains(&h) || !(0..60).contains(&m) || h * 60 + m > 24 * 60 {
                    return Err(bad(&format!("{t:?} is not a time of day")));
                }
                Ok(h * 60 + m)
            };
            let (open, close) = (minutes(open)?, minutes(close)?);
            if open >= close || first > last {
                return Err(bad(&format!("{group:?} is empty")));
            }
            for d in first..=last {
                cal.hours[d] = Some((open, close));
            }
        }
        for h in holidays.iter().map(|h| h.trim()).filter(|h| !h.is_empty()) {
            cal.holidays
                .insert(day_number(h).ok_or_else(|| CalendarError(format!("holiday {h:?} is not YYYY-MM-DD")))?);
        }
        if cal.hours.iter().all(Option::is_none) {
            return Err(bad("no opening hours"));
        }
        Ok(cal)
    }

    /// The open intervals (UTC instants, `[start, end)`) of the local day `day`.
    fn open_on(&self, day: i64) -> Option<(i64, i64)> {
        if self.holidays.contains(&day) {
            return None;
        }
        // 1970-01-01 was a Thursday (index 3 with Monday = 0).
        let weekday = usize::try_from((day + 3).rem_euclid(7)).ok()?;
        let (open, close) = self.hours[weekday]?;
        let local_midnight = day * DAY_MS - self.utc_offset_minutes * MINUTE_MS;
        Some((local_midnight + open * MINUTE_MS, local_midnight + close * MINUTE_MS))
    }

    /// The local day of an instant.
    fn day_of(&self, at: i64) -> i64 {
        (at + self.utc_offset_minutes * MINUTE_MS).div_euclid(DAY_MS)
    }

    /// Business time in `[from, to)`, not counting `pauses` (`[start, end)` intervals).
    pub fn elapsed(&self, from: i64, to: i64, pauses: &[(i64, i64)]) -> i64 {
        let mut total = 0;
        let mut day = self.day_of(from);
        while let Some(start) = day_start(self, day)
            && start < to
        {
            if let Some((a, b)) = self.open_on(day) {
                total += running(a.max(from), b.min(to), pauses);
            }
            day += 1;
        }
        total
    }

    /// The instant at which `budget` of business time has run since `from`, skipping `pauses`. A pause still
    /// running (end `i64::MAX`) stops the clock: the answer is `None` until it ends.
    pub fn deadline(&self, from: i64, budget: i64, pauses: &[(i64, i64)]) -> Option<i64> {
        let mut left = budget.max(0);
        // Far enough for any target (a year of closed days is a misconfiguration, not an SLA).
        let first = self.day_of(from);
        for day in first..first + 366 * 3 {
            if let Some((a, b)) = self.open_on(day) {
                let mut cursor = a.max(from);
                while cursor < b {
                    // The next pause that touches [cursor, b).
                    match pauses.iter().filter(|(ps, pe)| *pe > cursor && *ps < b).min_by_key(|(ps, _)| *ps) {
                        Some(&(ps, pe)) if ps <= cursor => {
                            if pe == i64::MAX {
                                return None;
                            }
                            cursor = pe;
                        }
                        next => {
                            let stop = next.map_or(b, |&(ps, _)| ps);
                            if stop - cursor >= left {
                                return Some(cursor + left);
                            }
                            left -= stop - cursor;
                            cursor = stop;
                        }
                    }
                }
            }
        }
        None
    }
}

fn day_start(cal: &Calendar, day: i64) -> Option<i64> {
    day.checked_mul(DAY_MS).map(|d| d - cal.utc_offset_minutes * MINUTE_MS)
}

/// Time in `[a, b)` outside every pause.
fn running(a: i64, b: i64, pauses: &[(i64, i64)]) -> i64 {
    if a >= b {
        return 0;
    }
    let mut covered: Vec<(i64, i64)> =
        pauses.iter().map(|&(s, e)| (s.max(a), e.min(b))).filter(|(s, e)| s < e).collect();
    covered.sort_unstable();
    let (mut paused, mut end) = (0, a);
    for (s, e) in covered {
        let s = s.max(end);
        if e > s {
            paused += e - s;
            end = e;
        }
    }
    (b - a) - paused
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date (Howard Hinnant's algorithm).
pub fn day_number(date: &str) -> Option<i64> {
    let mut p = date.split('-');
    let (y, m, d): (i64, i64, i64) = (p.next()?.parse().ok()?, p.next()?.parse().ok()?, p.next()?.parse().ok()?);
    if p.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// SLA targets of a case, in business milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Targets {
    /// Until the first answer.
    pub first_response: i64,
    /// From a customer's message (after the first answer) until the next answer.
    pub next_response: i64,
    /// Until resolution.
    pub resolution: i64,
}

/// One line of an SLA policy: the targets of the cases of a severity and a tier (`*`: any).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PolicyRule {
    /// `low`, `medium`, `high`, `critical` or `*`.
    pub severity: String,
    /// `bronze` … `vip`, `none`, `unknown` or `*`.
    pub tier: String,
    /// Its targets.
    pub targets: Targets,
}

/// The SLA policy: ordered rules (the first matching a case's severity and tier gives its targets, the last must
/// match any case), and the queue a case moves to when it breaches (none: it stays, its escalation level rises).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Policy {
    /// In order.
    pub rules: Vec<PolicyRule>,
    /// Where breached cases go.
    pub escalation_queue: Option<String>,
}

impl Policy {
    /// The policy of a fresh installation: B2C customers expect an answer within half a day; VIPs and critical
    /// cases get one within the hour.
    pub fn standard() -> Self {
        let h = |h: i64| h * 3_600_000;
        let rule = |severity: &str, tier: &str, first: i64, next: i64, resolution: i64| PolicyRule {
            severity: severity.into(),
            tier: tier.into(),
            targets: Targets { first_response: h(first), next_response: h(next), resolution: h(resolution) },
        };
        Self {
            rules: vec![
                rule("critical", "*", 1, 1, 8),
                rule("*", "vip", 1, 2, 16),
                rule("high", "*", 2, 4, 24),
                rule("low", "*", 8, 12, 72),
                rule("*", "*", 4, 8, 48),
            ],
            escalation_queue: None,
        }
    }

    /// The targets of a case of `severity` opened under `tier` (the last rule matches any case; without one, the
    /// standard policy's catch-all).
    pub fn targets(&self, severity: &str, tier: &str) -> Targets {
        let hit = |want: &str, have: &str| want == "*" || want == have;
        self.rules.iter().find(|r| hit(&r.severity, severity) && hit(&r.tier, tier)).map_or(
            Targets { first_response: 4 * 3_600_000, next_response: 8 * 3_600_000, resolution: 48 * 3_600_000 },
            |r| r.targets,
        )
    }
}

/// Where a running SLA clock stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockState {
    /// Less than the warning share of the target used.
    Running,
    /// At or past the warning share (80 %).
    Warning,
    /// Past the target.
    Breached,
}

/// The state of a clock with `budget` that has run `elapsed` (business time).
pub fn clock_state(elapsed: i64, budget: i64) -> ClockState {
    if elapsed >= budget {
        ClockState::Breached
    } else if elapsed * 5 >= budget * 4 {
        ClockState::Warning
    } else {
        ClockState::Running
    }
}

/// An SLA clock seen at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockView {
    /// The target (business time).
    pub target: i64,
    /// Business time used so far, or until it stopped.
    pub elapsed: i64,
    /// When it falls due; `None` while paused or once stopped.
    pub due: Option<i64>,
    /// Where it stands.
    pub state: ViewState,
}

/// Where a clock stands, as shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewState {
    /// Running under 80 % of its target.
    Running,
    /// Running at 80 % or more.
    Warning,
    /// Past its target.
    Breached,
    /// Stopped within its target.
    Met,
    /// Standing still: the case waits for the customer.
    Paused,
}

/// The clock started at `start` with `target`, stopped at `stop` (if it did), with `pauses` (an open one ends at
/// `i64::MAX`), seen at `now`.
pub fn view(cal: &Calendar, start: i64, target: i64, stop: Option<i64>, pauses: &[(i64, i64)], now: i64) -> ClockView {
    let end = stop.unwrap_or(now).max(start);
    let elapsed = cal.elapsed(start, end, pauses);
    let paused = stop.is_none() && pauses.iter().any(|(s, e)| *s <= now && now < *e);
    let state = match (stop, clock_state(elapsed, target)) {
        (_, ClockState::Breached) => ViewState::Breached,
        (Some(_), _) => ViewState::Met,
        (None, _) if paused => ViewState::Paused,
        (None, ClockState::Warning) => ViewState::Warning,
        (None, _) => ViewState::Running,
    };
    let due = if stop.is_none() && !paused { cal.deadline(start, target, pauses) } else { None };
    ClockView { target, elapsed, due, state }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    /// Local midnight of a date for a calendar at UTC+1.
    fn at(date: &str, hh: i64, mm: i64) -> i64 {
        day_number(date).unwrap() * DAY_MS + (hh * 60 + mm - 60) * MINUTE_MS
    }

    fn office() -> Calendar {
        Calendar::parse("mon-fri 09:00-18:00; sat 10:00-13:00", &["2026-12-25"], 60).unwrap()
    }

    #[test]
    fn dates_and_weekdays() {
        assert_eq!(day_number("1970-01-01"), Some(0));
        assert_eq!(day_number("2026-12-01"), Some(20_788));
        assert_eq!(day_number("2026-13-01"), None);
        // 2026-12-01 is a Tuesday: open 09:00-18:00 local (08:00-17:00 UTC).
        let c = office();
        assert_eq!(c.open_on(20_788), Some((at("2026-12-01", 9, 0), at("2026-12-01", 18, 0))));
        assert_eq!(c.open_on(day_number("2026-12-06").unwrap()), None, "sunday");
        assert_eq!(c.open_on(day_number("2026-12-25").unwrap()), None, "holiday");
    }

    #[test]
    fn parsing_refuses_nonsense() {
        assert!(Calendar::parse("mon-fri 18:00-09:00", &[], 0).is_err());
        assert!(Calendar::parse("funday 09:00-18:00", &[], 0).is_err());
        assert!(Calendar::parse("mon-fri 09:00-25:00", &[], 0).is_err());
        assert!(Calendar::parse("", &[], 0).is_err());
        assert!(Calendar::parse("mon 09:00-10:00", &["christmas"], 0).is_err());
    }

    #[test]
    fn deadlines_skip_nights_weekends_and_holidays() {
        let c = office();
        // Tuesday 16:00 + 4 business hours: 2 on Tuesday, 2 on Wednesday from 09:00.
        assert_eq!(c.deadline(at("2026-12-01", 16, 0), 4 * H, &[]), Some(at("2026-12-02", 11, 0)));
        // Friday 17:00 + 3 h: 1 on Friday, 2 on Saturday's 10:00-13:00.
        assert_eq!(c.deadline(at("2026-12-04", 17, 0), 3 * H, &[]), Some(at("2026-12-05", 12, 0)));
        // Saturday 12:00 + 2 h: 1 on Saturday, Sunday closed, 1 on Monday from 09:00.
        assert_eq!(c.deadline(at("2026-12-05", 12, 0), 2 * H, &[]), Some(at("2026-12-07", 10, 0)));
        // Thursday 24 December 17:00 + 2 h: 1 on the 24th, Christmas closed, 1 on the 26th (a Saturday).
        assert_eq!(c.deadline(at("2026-12-24", 17, 0), 2 * H, &[]), Some(at("2026-12-26", 11, 0)));
        // Opened at night: the clock starts at opening.
        assert_eq!(c.deadline(at("2026-12-01", 3, 0), H, &[]), Some(at("2026-12-01", 10, 0)));
        assert_eq!(Calendar::always().deadline(5, 10, &[]), Some(15));
    }

    #[test]
    fn pauses_stop_the_clock() {
        let c = office();
        let from = at("2026-12-01", 9, 0);
        // Waiting for the customer 10:00-12:00: a 4 h target ends at 15:00 instead of 13:00.
        let pause = [(at("2026-12-01", 10, 0), at("2026-12-01", 12, 0))];
        assert_eq!(c.deadline(from, 4 * H, &pause), Some(at("2026-12-01", 15, 0)));
        assert_eq!(c.elapsed(from, at("2026-12-01", 15, 0), &pause), 4 * H);
        // A pause still running: no deadline until the customer answers.
        assert_eq!(c.deadline(from, 4 * H, &[(at("2026-12-01", 10, 0), i64::MAX)]), None);
        // Overlapping pauses count once; a pause at night changes nothing.
        let pauses = [
            (at("2026-12-01", 10, 0), at("2026-12-01", 11, 0)),
            (at("2026-12-01", 10, 30), at("2026-12-01", 11, 30)),
            (at("2026-12-01", 20, 0), at("2026-12-02", 8, 0)),
        ];
        assert_eq!(c.elapsed(from, at("2026-12-02", 10, 0), &pauses), 9 * H - 90 * MINUTE_MS + H);
    }

    #[test]
    fn elapsed_is_the_inverse_of_deadline() {
        let c = office();
        let from = at("2026-12-03", 14, 17);
        for budget in [1, MINUTE_MS, H, 7 * H, 30 * H, 100 * H] {
            let due = c.deadline(from, budget, &[]).unwrap();
            assert_eq!(c.elapsed(from, due, &[]), budget, "budget {budget}");
        }
    }

    #[test]
    fn a_clock_seen_at_an_instant() {
        let c = office();
        let start = at("2026-12-01", 9, 0);
        let v = view(&c, start, 4 * H, None, &[], at("2026-12-01", 12, 30));
        assert_eq!(
            (v.elapsed, v.state, v.due),
            (3 * H + 30 * MINUTE_MS, ViewState::Warning, Some(at("2026-12-01", 13, 0)))
        );
        let v = view(&c, start, 4 * H, Some(at("2026-12-01", 10, 0)), &[], at("2026-12-02", 12, 0));
        assert_eq!((v.elapsed, v.state, v.due), (H, ViewState::Met, None));
        let waiting = [(at("2026-12-01", 10, 0), i64::MAX)];
        let v = view(&c, start, 4 * H, None, &waiting, at("2026-12-03", 12, 0));
        assert_eq!((v.elapsed, v.state, v.due), (H, ViewState::Paused, None));
        let v = view(&c, start, 4 * H, None, &[], at("2026-12-02", 9, 30));
        assert_eq!(v.state, ViewState::Breached);
    }

    #[test]
    fn vips_and_critical_cases_are_answered_within_the_hour() {
        let p = Policy::standard();
        assert_eq!(p.targets("medium", "vip").first_response, H);
        assert_eq!(p.targets("critical", "unknown").first_response, H);
        assert_eq!(p.targets("medium", "gold").first_response, 4 * H);
        assert_eq!(p.targets("medium", "gold").next_response, 8 * H);
        assert!(p.targets("low", "none").resolution > p.targets("high", "none").resolution);
        // first match wins: a critical VIP case takes the critical line
        assert_eq!(p.targets("critical", "vip").resolution, 8 * H);
        let only_vips = Policy { rules: vec![Policy::standard().rules[1].clone()], escalation_queue: None };
        assert_eq!(only_vips.targets("low", "bronze").first_response, 4 * H, "no line matched: the catch-all");
        assert_eq!(clock_state(79, 100), ClockState::Running);
        assert_eq!(clock_state(80, 100), ClockState::Warning);
        assert_eq!(clock_state(100, 100), ClockState::Breached);
    }
}
