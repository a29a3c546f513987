//! What feedback knows of a customer from the other services' events: the loyalty tier (`TierChanged`) and the
//! segments it is in (`SegmentMembershipChanged`), applied in delivery order inside the sink's transaction.
use rapport_proto::events::v1::{Event, event::Payload};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, sea_query::OnConflict,
};

use super::{Result, Store};
use crate::entities::{customer_segments, customer_tiers};

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
