//! Persistence of referrals through sea-orm, one file per aggregate around the shared transaction frame
//! ([`rapport_kit::frame`]):
//!
//! - `programme.rs`: programmes, one row per version;
//! - `ambassador.rs`: ambassadors (once per customer and programme, from a person or a promoter's answer), review
//!   invitations, codes, invitations sent;
//! - `referral.rs`: sign-ups attributed and screened, agents' reviews, voiding, conversions from loyalty's
//!   purchases and voids from its returns, the block list;
//! - `reward.rs`: approving referrals whose delay is over, and recording what the payout worker got from loyalty;
//! - `reports.rs`: an ambassador's figures, the leaderboard, a programme's metrics;
//! - `erasure.rs`: forgetting a customer (on request, or on loyalty's erasure event).
use std::sync::Arc;

use rapport_kit::{clock::Clock, frame::Frame, pseudonym::Pseudonyms};
use rapport_outbox::Outbox;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};

use crate::{
    domain::Rules,
    entities::{programmes, referrals, rewards},
    error::ReferralsError,
    wire,
};

mod ambassador;
mod erasure;
mod programme;
mod referral;
mod reports;
mod reward;

pub use ambassador::{CodeCmd, EnrolCmd};
pub use referral::{BlockListCmd, ReferralFilter, SignupCmd};
pub use reward::{Clawback, Payout};

type Result<T> = std::result::Result<T, ReferralsError>;

/// The referrals database.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    frame: Frame,
    clock: Arc<dyn Clock>,
    outbox: Outbox,
    pseudonyms: Pseudonyms,
    /// Wakes the payout worker after a commit (a reward may be due).
    payouts: Arc<tokio::sync::Notify>,
}

impl Store {
    /// A store over `db`.
    pub fn new(db: DatabaseConnection, clock: Arc<dyn Clock>, outbox: Outbox, pseudonyms: &Pseudonyms) -> Self {
        let wake = outbox.clone();
        let payouts = Arc::new(tokio::sync::Notify::new());
        let payouts_wake = payouts.clone();
        let frame = Frame::new(db.clone(), clock.clone(), pseudonyms).after_commit(move || {
            wake.notify();
            payouts_wake.notify_one();
        });
        Self { db, frame, clock, outbox, pseudonyms: pseudonyms.clone(), payouts }
    }

    /// What wakes the payout worker.
    pub fn payout_waker(&self) -> Arc<tokio::sync::Notify> {
        self.payouts.clone()
    }

    /// The connection.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Now, by the service clock.
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Serialises, inside `txn`, an erasure of the customer and any write about it.
    async fn lock_customer<C: ConnectionTrait>(&self, txn: &C, customer_id: &str) -> Result<()> {
        Ok(rapport_kit::lease::lock_customer(txn, "referrals", &self.pseudonyms, customer_id).await?)
    }

    /// Whether the customer was erased (or `customer_id` is the pseudonym an erased customer's records are kept
    /// under).
    async fn is_erased<C: ConnectionTrait>(&self, db: &C, customer_id: &str) -> Result<bool> {
        Ok(rapport_outbox::sink::is_erased_or_pseudonym(db, &self.pseudonyms, customer_id).await?)
    }

    /// Whether the customer was erased, or `customer_id` is a pseudonym (asking by it would tie records together).
    pub async fn erased(&self, customer_id: &str) -> Result<bool> {
        self.is_erased(&self.db, customer_id).await
    }

    /// The rules of `programme_id` at `version` (0: the latest) with the version.
    async fn rules_in<C: ConnectionTrait>(&self, db: &C, programme_id: &str, version: i32) -> Result<(Rules, i32)> {
        let mut q = programmes::Entity::find().filter(programmes::Column::ProgrammeId.eq(programme_id));
        if version > 0 {
            q = q.filter(programmes::Column::Version.eq(version));
        }
        let row = q
            .order_by_desc(programmes::Column::Version)
            .one(db)
            .await?
            .ok_or_else(|| ReferralsError::ProgrammeNotFound(programme_id.into()))?;
        Ok((serde_json::from_str(&row.rules)?, row.version))
    }

    /// A referral as the API shows it, with its rewards.
    async fn referral_view<C: ConnectionTrait>(
        &self,
        db: &C,
        row: &referrals::Model,
    ) -> Result<rapport_proto::referrals::v1::Referral> {
        let rewards = rewards::Entity::find()
            .filter(rewards::Column::ReferralId.eq(&row.referral_id))
            .order_by_asc(rewards::Column::RewardId)
            .all(db)
            .await?;
        wire::referral_pb(row, &rewards)
    }
}
