//! The other services feedback asks, each within a deadline, and never so that their being down fails feedback:
//!
//! - the customer's loyalty tier at intake: loyalty down or slow never holds a case up, the answer is then `None`
//!   and the case is routed with the tier loyalty's events last gave feedback, or as `unknown`;
//! - the customer in front of an agent (`GetCustomerContext`): loyalty's and segmentation's parts are asked at once
//!   within what is left of the caller's deadline, each marked unavailable with its reason when it did not come, and
//!   the facts the next-best-action rules test are drawn from what came;
//! - the barometer's loyalty measures (repeat purchases, tier mix), each unavailable with its reason when loyalty
//!   did not answer.
use std::{future::Future, time::Duration};

use rapport_kit::{
    client::OutgoingChannel,
    clock::{millis, timestamp},
};
use rapport_proto::{
    feedback::v1 as pb,
    loyalty::v1::{
        GetMemberRequest, GetProgrammeStatsRequest, Member, Tier, loyalty_service_client::LoyaltyServiceClient,
    },
    segmentation::v1::{
        GetCustomerFeaturesRequest, ListCustomerSegmentsRequest, segmentation_service_client::SegmentationServiceClient,
    },
};
use tonic::{Code, Status};

use crate::{
    domain::{
        DAY_MS, NpsClass,
        actions::{Facts, UNKNOWN},
        barometer::{Measure, MeasureValue},
    },
    store::CustomerRecord,
};

/// Clients of the services feedback asks (none: never asks that one).
#[derive(Clone)]
pub struct Peers {
    loyalty: Option<LoyaltyServiceClient<OutgoingChannel>>,
    segmentation: Option<SegmentationServiceClient<OutgoingChannel>>,
    tier_deadline: Duration,
}

/// What the other services said of a customer (see [`Peers::ask`]).
pub struct Remote {
    loyalty: Part<Option<Member>>,
    segmentation: Part<SegmentationAnswer>,
}

/// One part of a customer context: what came, or why it did not.
enum Part<T> {
    Came(T),
    Missing(String),
}

impl<T> Part<T> {
    fn availability(&self) -> pb::Availability {
        match self {
            Part::Came(_) => pb::Availability { available: true, reason: String::new() },
            Part::Missing(reason) => pb::Availability { available: false, reason: reason.clone() },
        }
    }
}

/// Why a part did not come, in words.
fn reason(s: &Status) -> String {
    match s.code() {
        Code::DeadlineExceeded => "deadline exceeded".into(),
        Code::Unavailable => "unavailable".into(),
        c => format!("error: {}", c.description().to_lowercase()),
    }
}

/// Awaits `call` at most `wait`: its answer, `None` when the customer is unknown there, or why it did not come.
async fn within<T>(wait: Duration, call: impl Future<Output = Result<T, Status>>) -> Part<Option<T>> {
    match tokio::time::timeout(wait, call).await {
        Ok(Ok(v)) => Part::Came(Some(v)),
        Ok(Err(s)) if s.code() == Code::NotFound => Part::Came(None),
        Ok(Err(s)) => Part::Missing(reason(&s)),
        Err(_) => Part::Missing("deadline exceeded".into()),
    }
}

/// A tier as feedback writes it: `bronze` … `vip`.
fn tier_name(t: Tier) -> String {
    t.as_str_name().trim_start_matches("TIER_").to_lowercase()
}

impl Peers {
    /// Over `loyalty` and `segmentation`; the tier at intake is awaited at most `tier_deadline`.
    pub fn new(
        loyalty: Option<LoyaltyServiceClient<OutgoingChannel>>,
        segmentation: Option<SegmentationServiceClient<OutgoingChannel>>,
        tier_deadline: Duration,
    ) -> Self {
        Self { loyalty, segmentation, tier_deadline }
    }

    /// The customer's tier (`bronze` … `vip`, `none` when not a member), or `None` when loyalty did not answer in
    /// time.
    pub async fn tier(&self, customer_id: &str) -> Option<String> {
        let mut c = self.loyalty.clone()?;
        let call = c.get_member(GetMemberRequest { customer_id: customer_id.into() });
        match within(self.tier_deadline, async { Ok(call.await?.into_inner().member) }).await {
            Part::Came(m) => Some(tier_name(m.flatten().map(|m| m.tier()).unwrap_or(Tier::Unspecified))),
            Part::Missing(why) => {
                let deadline_ms = self.tier_deadline.as_millis() as u64;
                tracing::warn!(reason = %why, deadline_ms, "loyalty did not give the tier in time; routing without it");
                None
            }
        }
    }

    /// The barometer's measures from loyalty over `[start, end)`, awaited at most `wait`: the repeat-purchase rate
    /// of the period's buyers and the share of members in gold or VIP — each unavailable with its reason.
    pub async fn loyalty_measures(&self, start: i64, end: i64, wait: Duration) -> Vec<(Measure, MeasureValue)> {
        let stats = match self.loyalty.clone() {
            Some(mut c) => {
                let req =
                    GetProgrammeStatsRequest { start_time: Some(timestamp(start)), end_time: Some(timestamp(end)) };
                within(wait, async { Ok(c.get_programme_stats(req).await?.into_inner()) }).await
            }
            None => Part::Missing("not deployed".into()),
        };
        let (repeat, premium) = match stats {
            Part::Came(Some(s)) => {
                let premium: i64 = ["gold", "vip"].iter().filter_map(|t| s.members_by_tier.get(*t)).sum();
                (
                    if s.buyers > 0 {
                        Ok(100.0 * s.repeat_buyers as f64 / s.buyers as f64)
                    } else {
                        Err("no purchases in the period".to_string())
                    },
                    if s.members > 0 {
                        Ok(100.0 * premium as f64 / s.members as f64)
                    } else {
                        Err("no members".to_string())
                    },
                )
            }
            Part::Came(None) => (Err("loyalty: not found".to_string()), Err("loyalty: not found".to_string())),
            Part::Missing(why) => (Err(format!("loyalty: {why}")), Err(format!("loyalty: {why}"))),
        };
        vec![(Measure::RepeatPurchasePct, repeat), (Measure::PremiumTierPct, premium)]
    }

    /// Loyalty's and segmentation's parts of the customer in front of an agent, asked at once and awaited at most
    /// `wait`.
    pub async fn ask(&self, customer_id: &str, wait: Duration) -> Remote {
        let loyalty = async {
            match self.loyalty.clone() {
                Some(mut c) => {
                    let call = c.get_member(GetMemberRequest { customer_id: customer_id.into() });
                    match within(wait, async { Ok(call.await?.into_inner().member) }).await {
                        Part::Came(m) => Part::Came(m.flatten()),
                        Part::Missing(r) => Part::Missing(r),
                    }
                }
                None => Part::Missing("not deployed".into()),
            }
        };
        let segmentation = async {
            match self.segmentation.clone() {
                Some(c) => {
                    let (mut a, mut b) = (c.clone(), c);
                    let segments = within(wait, async {
                        Ok(a.list_customer_segments(ListCustomerSegmentsRequest { customer_id: customer_id.into() })
                            .await?
                            .into_inner())
                    });
                    let features = within(wait, async {
                        Ok(b.get_customer_features(GetCustomerFeaturesRequest { customer_id: customer_id.into() })
                            .await?
                            .into_inner()
                            .features)
                    });
                    match tokio::join!(segments, features) {
                        (Part::Came(s), Part::Came(f)) => Part::Came((s, f.flatten())),
                        (Part::Missing(r), _) | (_, Part::Missing(r)) => Part::Missing(r),
                    }
                }
                None => Part::Missing("not deployed".into()),
            }
        };
        let (loyalty, segmentation) = tokio::join!(loyalty, segmentation);
        Remote { loyalty, segmentation }
    }

    /// The customer in front of an agent from the other services' parts and feedback's own `record`, and the facts
    /// drawn from them all (at `now`).
    pub fn context(
        customer_id: &str,
        record: CustomerRecord,
        remote: Remote,
        now: i64,
    ) -> (pb::GetCustomerContextResponse, Facts) {
        let Remote { loyalty, segmentation } = remote;
        let mut facts = Facts::default();
        own_facts(&mut facts, &record);
        let loyalty_pb = loyalty_part(&mut facts, &loyalty, now);
        let segmentation_pb = segmentation_part(&mut facts, &segmentation);
        // Referrals is not deployed yet: its part says so, and rules on its facts do not fire.
        let referrals = pb::ReferralContext {
            availability: Some(Part::<()>::Missing("not deployed".into()).availability()),
            has_code: false,
        };
        let reply = pb::GetCustomerContextResponse {
            customer_id: customer_id.into(),
            loyalty: Some(loyalty_pb),
            segmentation: Some(segmentation_pb),
            referrals: Some(referrals),
            open_cases: record.open_cases,
            recent_cases: record.recent_cases,
            nps_history: record.nps_history,
            suggestions: vec![],
            facts: Default::default(),
        };
        (reply, facts)
    }
}

/// Facts from feedback's own record.
fn own_facts(facts: &mut Facts, r: &CustomerRecord) {
    let last = r.nps_history.first().and_then(|s| s.answer.as_ref()).map(|a| a.score);
    facts.set(
        "nps.class",
        match last.map(NpsClass::of) {
            Some(NpsClass::Promoter) => "promoter",
            Some(NpsClass::Passive) => "passive",
            Some(NpsClass::Detractor) => "detractor",
            None => "none",
        },
    );
    facts.set("nps.last_score", last.map_or("none".to_string(), |s| s.to_string()));
    facts.set("cases.open", r.open_cases.len());
    facts.set("cases.recent", r.cases_recent);
}

/// Loyalty's part, and its facts.
fn loyalty_part(facts: &mut Facts, part: &Part<Option<Member>>, now: i64) -> pb::LoyaltyContext {
    let mut out = pb::LoyaltyContext { availability: Some(part.availability()), ..Default::default() };
    match part {
        Part::Came(Some(m)) => {
            let end = m.tier_period_end.as_ref().map_or(now, millis);
            let next = m.next_tier();
            out.member = true;
            out.tier = tier_name(m.tier());
            out.points = m.balance.as_ref().map_or(0, |b| b.active);
            out.next_tier = if next == Tier::Unspecified { String::new() } else { tier_name(next) };
            out.points_to_next_tier = m.points_to_next_tier;
            out.points_to_keep_tier = m.points_to_keep_tier;
            out.tier_period_end = Some(timestamp(end));
            facts.set("loyalty.tier", &out.tier);
            facts.set("loyalty.points", out.points);
            facts.set("loyalty.points_to_next_tier", out.points_to_next_tier);
            facts.set("loyalty.tier_drops_at_period_end", m.points_to_keep_tier > 0);
            facts.set("loyalty.days_to_period_end", ((end - now) / DAY_MS).max(0));
        }
        Part::Came(None) => {
            out.tier = "none".into();
            facts.set("loyalty.tier", "none");
        }
        Part::Missing(_) => facts.set("loyalty.tier", UNKNOWN),
    }
    out
}

type SegmentationAnswer = (
    Option<rapport_proto::segmentation::v1::ListCustomerSegmentsResponse>,
    Option<rapport_proto::segmentation::v1::CustomerFeatures>,
);

/// Segmentation's part, and its facts.
fn segmentation_part(facts: &mut Facts, part: &Part<SegmentationAnswer>) -> pb::SegmentationContext {
    let mut out = pb::SegmentationContext {
        availability: Some(part.availability()),
        cluster_id: -1,
        recency_days: -1.0,
        ..Default::default()
    };
    if let Part::Came((segments, features)) = part {
        if let Some(s) = segments {
            out.segment_ids = s.segment_ids.clone();
            out.cluster_id = s.cluster_id;
            out.cluster_label = s.cluster_label.clone();
        }
        if let Some(f) = features {
            out.recency_days = f.recency_days;
            out.frequency_365d = f.frequency_365d;
            out.monetary_365d = f.monetary_365d;
        }
        let recency = if out.recency_days < 0.0 { "none".to_string() } else { out.recency_days.to_string() };
        facts.set("segmentation.recency_days", recency);
        facts.set("segmentation.frequency_365d", out.frequency_365d);
        facts.set("segmentation.monetary_365d", out.monetary_365d);
        let label = if out.cluster_label.is_empty() { "none" } else { out.cluster_label.as_str() };
        facts.set("segmentation.cluster", label);
    }
    out
}
