//! What feedback knows of a customer from the other services' events: the loyalty tier (`TierChanged`) and the
//! segments it is in (`SegmentMembershipChanged`), applied in delivery order inside the sink's transaction.
use rapport_proto::events::v1::{Event, event::Payload};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, sea_query::OnConflict,
};

use super::{CaseFilter, Result, Store};
use crate::{
    domain::{
        DAY_MS,
        cases::{ERASED, OPEN},
    },
    entities::{cases, customer_segments, customer_tiers, surveys},
    wire,
};

/// What feedback holds of one customer, for the agent in front of it.
#[derive(Debug, Clone, Default)]
pub struct CustomerRecord {
    /// Open cases, newest first.
    pub open_cases: Vec<rapport_proto::feedback::v1::Case>,
    /// The 10 latest cases, newest first.
    pub recent_cases: Vec<rapport_proto::feedback::v1::Case>,
    /// Cases opened in the last 90 days.
    pub cases_recent: u64,
    /// The last 20 answers, newest first.
    pub nps_history: Vec<rapport_proto::feedback::v1::Survey>,
}

impl Store {
    /// Applies delivered events; events feedback does not use are skipped. The customers' locks are taken first, in
    /// order, and the tombstones read again under them: an erasure committed meanwhile is not written around.
    pub async fn apply_in(&self, txn: &DatabaseTransaction, events: &[Event]) -> Result<()> {
        let customers: std::collections::BTreeSet<&str> = events.iter().map(|e| e.customer_id.as_str()).collect();
        let mut erased = std::collections::BTreeSet::new();
        for c in customers {
            self.lock_customer(txn, c).await?;
            if rapport_outbox::sink::is_erased(txn, &self.pseudonyms, c).await? {
                erased.insert(c);
            }
        }
        for e in events.iter().filter(|e| !erased.contains(e.customer_id.as_str())) {
            match &e.payload {
                Some(Payload::TierChanged(t)) => {
                    let row = customer_tiers::ActiveModel {
                        customer_id: Set(e.customer_id.clone()),
                        tier: Set(t.to_tier.clone()),
                    };
                    customer_tiers::Entity::insert(row)
                        .on_conflict(
                            OnConflict::column(customer_tiers::Column::CustomerId)
                                .update_column(customer_tiers::Column::Tier)
                                .to_owned(),
                        )
                        .exec_without_returning(txn)
                        .await?;
                }
                Some(Payload::SegmentMembershipChanged(m)) if m.entered => {
                    let row = customer_segments::ActiveModel {
                        customer_id: Set(e.customer_id.clone()),
                        segment_id: Set(m.segment_id.clone()),
                    };
                    customer_segments::Entity::insert(row)
                        .on_conflict_do_nothing_on([
                            customer_segments::Column::CustomerId,
                            customer_segments::Column::SegmentId,
                        ])
                        .exec_without_returning(txn)
                        .await?;
                }
                Some(Payload::SegmentMembershipChanged(m)) => {
                    customer_segments::Entity::delete_many()
                        .filter(customer_segments::Column::CustomerId.eq(e.customer_id.as_str()))
                        .filter(customer_segments::Column::SegmentId.eq(m.segment_id.as_str()))
                        .exec(txn)
                        .await?;
                }
                // Only the improvement service speaks of themes accepted and improvements shipped.
                Some(Payload::ThemeAccepted(t)) if e.source == "improvement" => {
                    self.theme_accepted_in(txn, t, self.now()).await?
                }
                Some(Payload::ImprovementShipped(s)) if e.source == "improvement" => {
                    self.improvement_shipped_in(txn, s, self.now()).await?
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The customer's tier and segments as last heard.
    pub(super) async fn context_of(
        &self,
        txn: &DatabaseTransaction,
        customer_id: &str,
    ) -> Result<(Option<String>, Vec<String>)> {
        let tier = customer_tiers::Entity::find_by_id(customer_id.to_string()).one(txn).await?.map(|t| t.tier);
        let segments = customer_segments::Entity::find()
            .filter(customer_segments::Column::CustomerId.eq(customer_id))
            .order_by_asc(customer_segments::Column::SegmentId)
            .all(txn)
            .await?
            .into_iter()
            .map(|r| r.segment_id)
            .collect();
        Ok((tier, segments))
    }

    /// What feedback itself holds of a customer for an agent: its open cases and its 10 latest (newest first), how
    /// many were opened in the last 90 days, and its last 20 answers (newest first).
    pub async fn customer_record(&self, customer_id: &str) -> Result<CustomerRecord> {
        let mine = |state| CaseFilter { state, theme: None, customer_id: Some(customer_id.to_string()) };
        let (open_cases, _) = self.cases(&mine(Some(OPEN)), None, 50).await?;
        let (mut recent_cases, _) = self.cases(&mine(None), None, 10).await?;
        recent_cases.retain(|c| c.state != i32::from(rapport_proto::feedback::v1::CaseState::Erased));
        let since = self.now() - 90 * DAY_MS;
        let cases_recent = cases::Entity::find()
            .filter(cases::Column::CustomerId.eq(customer_id))
            .filter(cases::Column::CreatedAt.gte(since))
            .filter(cases::Column::State.ne(ERASED))
            .count(&self.db)
            .await?;
        let now = self.now();
        let nps_history = surveys::Entity::find()
            .filter(surveys::Column::CustomerId.eq(customer_id))
            .filter(surveys::Column::Score.is_not_null())
            .order_by_desc(surveys::Column::AnsweredAt)
            .limit(20)
            .all(&self.db)
            .await?
            .iter()
            .map(|s| wire::survey_pb(s, now))
            .collect();
        Ok(CustomerRecord { open_cases, recent_cases, cases_recent, nps_history })
    }

    /// Part of an erasure: forgets the customer's tier and segments.
    pub(super) async fn forget_context(&self, txn: &DatabaseTransaction, customer_id: &str) -> Result<()> {
        customer_tiers::Entity::delete_by_id(customer_id.to_string()).exec(txn).await?;
        customer_segments::Entity::delete_many()
            .filter(customer_segments::Column::CustomerId.eq(customer_id))
            .exec(txn)
            .await?;
        Ok(())
    }
}
