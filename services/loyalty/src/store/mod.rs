//! Persistence of loyalty through sea-orm, one file per aggregate around the shared transaction frame
//! ([`rapport_kit::frame`]): every mutation claims its request id, locks the member, settles what time has done
//! (expiry, period-end downgrade, in `tiers.rs`), applies the change, writes the outbox events and the encoded
//! protobuf reply, and commits. A retry with the same request id gets the stored reply back.
//!
//! - `member.rs`: enrolment, the member view, erasure;
//! - `ledger.rs`: earn, redeem, adjust, reverse, transfer, the ledger's pages and its building blocks (lots, entries);
//! - `purchases.rs`: purchases and their points;
//! - `offers.rs`: offers, grants, redemptions and the personalised price;
//! - `tiers.rs`: expiry and tier periods (the sweeper), upgrades.
use std::sync::Arc;

use rapport_kit::{clock::Clock, frame::Frame, pseudonym::Pseudonyms};
use rapport_outbox::Outbox;
use rapport_proto::events::v1::event;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QuerySelect,
};

use crate::{
    domain::{self, Balance, Lot, MemberView, Rules, Tier},
    entities::{ledger_entries, members, point_lots},
    error::LoyaltyError,
};

mod ledger;
mod member;
mod offers;
mod purchases;
mod tiers;

pub use purchases::{ProgrammeStats, PurchaseCmd, ReturnCmd};

type Result<T> = std::result::Result<T, LoyaltyError>;

/// The loyalty database.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    frame: Frame,
    clock: Arc<dyn Clock>,
    rules: Arc<Rules>,
    outbox: Outbox,
    pseudonyms: Pseudonyms,
}

/// A locked member and its open lots, kept in step with what is written.
struct State {
    member: members::Model,
    lots: Vec<Lot>,
}

impl Store {
    /// A store over `db`.
    pub fn new(
        db: DatabaseConnection,
        clock: Arc<dyn Clock>,
        rules: Arc<Rules>,
        outbox: Outbox,
        pseudonyms: Pseudonyms,
    ) -> Self {
        let wake = outbox.clone();
        let frame = Frame::new(db.clone(), clock.clone(), &pseudonyms).after_commit(move || wake.notify());
        Self { db, frame, clock, rules, outbox, pseudonyms }
    }

    /// The connection.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The rules.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Locks the member row (`SELECT … FOR UPDATE` on PostgreSQL) and reads its open lots.
    async fn lock(&self, txn: &DatabaseTransaction, customer_id: &str) -> Result<State> {
        let member = members::Entity::find_by_id(customer_id.to_string())
            .lock_exclusive()
            .one(txn)
            .await?
            .ok_or(LoyaltyError::MemberNotFound)?;
        self.state(txn, member).await
    }

    /// Reads the member row and its open lots without locking (reads).
    async fn read(&self, txn: &DatabaseTransaction, customer_id: &str) -> Result<State> {
        let member =
            members::Entity::find_by_id(customer_id.to_string()).one(txn).await?.ok_or(LoyaltyError::MemberNotFound)?;
        self.state(txn, member).await
    }

    async fn state(&self, txn: &DatabaseTransaction, member: members::Model) -> Result<State> {
        let customer_id = member.customer_id.clone();
        let lots = point_lots::Entity::find()
            .filter(point_lots::Column::CustomerId.eq(customer_id.as_str()))
            .filter(point_lots::Column::Remaining.gt(0))
            .all(txn)
            .await?
            .into_iter()
            .map(|l| Lot { id: l.id, remaining: l.remaining, available_at: l.available_at, expires_at: l.expires_at })
            .collect();
        Ok(State { member, lots })
    }

    async fn publish(
        &self,
        txn: &DatabaseTransaction,
        customer_id: &str,
        payload: event::Payload,
        now: i64,
    ) -> Result<()> {
        self.outbox.publish(txn, customer_id, payload, now).await?;
        Ok(())
    }

    fn balance(&self, st: &State, now: i64) -> Balance {
        domain::balance(&st.lots, now, st.member.spent, st.member.expired)
    }

    async fn view(&self, txn: &DatabaseTransaction, st: &State, now: i64) -> Result<MemberView> {
        let tier = Tier::parse(&st.member.tier).unwrap_or(Tier::Bronze);
        // What qualifies now, and what of it will still qualify when the period ends (a rolling 12 months).
        let (qualifying, at_end) =
            self.qualifying_at(txn, &st.member.customer_id, now, st.member.tier_period_end).await?;
        Ok(MemberView {
            customer_id: st.member.customer_id.clone(),
            display_name: st.member.display_name.clone(),
            tier,
            balance: self.balance(st, now),
            qualifying,
            progress: self.rules.progress(tier, qualifying),
            to_keep: self.rules.points_to_keep(tier, at_end),
            tier_period_end: st.member.tier_period_end,
            enrolled_at: st.member.enrolled_at,
        })
    }
}

/// Counts ledger entries of a member (tests and the CLI).
pub async fn count_entries<C: ConnectionTrait>(db: &C, customer_id: &str) -> Result<u64> {
    Ok(ledger_entries::Entity::find().filter(ledger_entries::Column::CustomerId.eq(customer_id)).count(db).await?)
}
