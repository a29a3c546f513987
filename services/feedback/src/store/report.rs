//! Care reports: the cases opened in a window, each seen with its clocks at the time of the report, grouped, and
//! summed up by the pure `domain::report`.
use std::collections::{BTreeMap, HashMap};

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::{Result, Store};
use crate::{
    domain::report::{CareStats, CaseTimes},
    entities::{cases, customer_segments},
};

/// How to group a care report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CareGrouping {
    /// Overall only.
    None,
    /// By queue (team).
    Queue,
    /// By channel (wire value's name).
    Channel,
    /// By tier at intake.
    Tier,
    /// By the customer's segments now.
    Segment,
    /// By theme.
    Theme,
    /// By the agent holding the case (`unassigned` when none).
    Agent,
}

/// Ids per query (well under every database's limit on bound parameters).
const CHUNK: usize = 1_000;

impl Store {
    /// The report of cases opened in `[start, end)`, overall and per group.
    pub async fn care_report(
        &self,
        start: i64,
        end: i64,
        by: CareGrouping,
    ) -> Result<(CareStats, BTreeMap<String, CareStats>)> {
        let now = self.now();
        // Erased cases are no one's any more: left out.
        let rows = cases::Entity::find()
            .filter(cases::Column::State.ne(crate::domain::cases::ERASED))
            .filter(cases::Column::CreatedAt.gte(start))
            .filter(cases::Column::CreatedAt.lt(end))
            .order_by_asc(cases::Column::Seq)
            .all(&self.db)
            .await?;
        let mut pauses: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
        for chunk in rows.chunks(CHUNK) {
            pauses.extend(self.pauses_of(&self.db, chunk.iter().map(|c| c.case_id.clone()).collect()).await?);
        }
        let mut segments: HashMap<String, Vec<String>> = HashMap::new();
        if by == CareGrouping::Segment {
            let mut customers: Vec<String> = rows.iter().map(|c| c.customer_id.clone()).collect();
            customers.sort();
            customers.dedup();
            for chunk in customers.chunks(CHUNK) {
                let found = customer_segments::Entity::find()
                    .filter(customer_segments::Column::CustomerId.is_in(chunk.to_vec()))
                    .all(&self.db)
                    .await?;
                for s in found {
                    segments.entry(s.customer_id).or_default().push(s.segment_id);
                }
            }
        }
        let mut all = Vec::with_capacity(rows.len());
        let mut groups: BTreeMap<String, Vec<CaseTimes>> = BTreeMap::new();
        for c in &rows {
            let view = self.sla_view(c, pauses.get(&c.case_id).map_or(&[][..], Vec::as_slice), now);
            let t = CaseTimes {
                first_response: c.first_response_at.map(|a| a - c.created_at),
                resolution: c.resolved_at.map(|a| a - c.created_at),
                first_state: view.first.state,
                resolution_state: view.resolution.state,
            };
            all.push(t);
            let keys: Vec<String> = match by {
                CareGrouping::None => vec![],
                CareGrouping::Queue => vec![c.queue_id.clone()],
                CareGrouping::Channel => vec![channel_name(c.channel)],
                CareGrouping::Tier => vec![c.tier.clone()],
                CareGrouping::Theme => vec![c.theme.clone()],
                CareGrouping::Agent => vec![c.assigned_agent.clone().unwrap_or_else(|| "unassigned".into())],
                CareGrouping::Segment => segments.get(&c.customer_id).cloned().unwrap_or_default(),
            };
            for k in keys {
                groups.entry(k).or_default().push(t);
            }
        }
        Ok((CareStats::of(&all), groups.into_iter().map(|(k, v)| (k, CareStats::of(&v))).collect()))
    }
}

/// The name of a wire channel (`web`, `email`, ...).
pub(super) fn channel_name(channel: i32) -> String {
    rapport_proto::common::v1::Channel::try_from(channel)
        .map(|c| c.as_str_name().trim_start_matches("CHANNEL_").to_lowercase())
        .unwrap_or_else(|_| "unspecified".into())
}
