//! Rewards after conversion: the payout worker approves referrals whose approval delay is over (their held rewards
//! become due, and an ambassador's milestone bonus is added), then pays and claws back through loyalty and records
//! here what loyalty answered. Loyalty is called outside any transaction with a request id made of the reward id, so
//! a payment retried after a crash, a restart or a second replica is applied once there; what is recorded here only
//! moves a reward forward from the state it was read in.
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{OnConflict, Query},
};

use super::{Result, Store, referral::locked};
use crate::{
    domain::{State, reward},
    entities::{referrals as rows, rewards},
};

/// Refusals after which a reward is no longer tried (it stays with its last error for an agent).
pub const MAX_REFUSALS: i32 = 5;

/// A reward to pay.
#[derive(Debug, Clone)]
pub struct Payout {
    /// The reward.
    pub reward_id: String,
    /// Its referral.
    pub referral_id: String,
    /// Who receives it.
    pub customer_id: String,
    /// Points.
    pub points: i64,
    /// referrer, referee or milestone.
    pub side: String,
}

/// A paid reward to claw back.
#[derive(Debug, Clone)]
pub struct Clawback {
    /// The reward.
    pub reward_id: String,
    /// Who received it.
    pub customer_id: String,
    /// Loyalty's entry of the payment.
    pub entry_id: String,
}

impl Store {
    /// Approves referrals with held rewards now due (pending ones, or approved and rewarded ones with a later
    /// purchase's rewards): their rewards become due; a referral approved for the first time may bring its
    /// ambassador a milestone bonus. Returns how many referrals moved.
    pub async fn approve_due(&self, limit: u64) -> Result<usize> {
        let now = self.now();
        // Flagged referrals wait for an agent and voided ones pay nothing: their held rewards are not looked at.
        let payable = Query::select()
            .column(rows::Column::ReferralId)
            .from(rows::Entity)
            .and_where(rows::Column::State.is_in([State::Pending, State::Approved, State::Rewarded].map(State::as_str)))
            .to_owned();
        let due: Vec<String> = rewards::Entity::find()
            .select_only()
            .column(rewards::Column::ReferralId)
            .filter(rewards::Column::State.eq(reward::HELD))
            .filter(rewards::Column::DueAt.lte(now))
            .filter(rewards::Column::ReferralId.in_subquery(payable))
            .order_by_asc(rewards::Column::DueAt)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut seen = std::collections::HashSet::new();
        let ids: Vec<String> = due.into_iter().filter(|id| seen.insert(id.clone())).collect();
        let mut moved = 0;
        for referral_id in ids {
            let _turn = self.frame.write_turn().await;
            let txn = rapport_kit::db::begin_write(&self.db).await?;
            let row = locked(&txn, &referral_id).await?;
            let state = State::parse(&row.state).unwrap_or(State::Flagged);
            // Flagged or voided since it was read.
            if matches!(state, State::Flagged | State::Voided) {
                continue;
            }
            self.approve_in(&txn, row, now).await?;
            txn.commit().await?;
            moved += 1;
        }
        if moved > 0 {
            self.payouts.notify_one();
        }
        Ok(moved)
    }

    async fn approve_in(&self, txn: &DatabaseTransaction, row: rows::Model, now: i64) -> Result<()> {
        let held = rewards::Entity::find()
            .filter(rewards::Column::ReferralId.eq(&row.referral_id))
            .filter(rewards::Column::State.eq(reward::HELD))
            .filter(rewards::Column::DueAt.lte(now))
            .all(txn)
            .await?;
        for r in held {
            let mut a: rewards::ActiveModel = r.into();
            a.state = Set(reward::DUE.into());
            rewards::Entity::update(a).exec(txn).await?;
        }
        let first_approval = row.approved_at.is_none();
        let mut a: rows::ActiveModel = row.clone().into();
        a.state = Set(State::Approved.as_str().into());
        if first_approval {
            a.approved_at = Set(Some(now));
        }
        rows::Entity::update(a).exec(txn).await?;
        if first_approval {
            // The ambassador's n-th approved referral in the programme (this one included).
            let approved = rows::Entity::find()
                .filter(rows::Column::ReferrerId.eq(&row.referrer_id))
                .filter(rows::Column::ProgrammeId.eq(&row.programme_id))
                .filter(rows::Column::ApprovedAt.is_not_null())
                .count(txn)
                .await?;
            let (rules, _) = self.rules_in(txn, &row.programme_id, row.programme_version).await?;
            if let Some(bonus) = rules.milestone_bonus(i64::try_from(approved).unwrap_or(i64::MAX)) {
                let r = rewards::ActiveModel {
                    reward_id: Set(format!("{}:m{approved}:referrer", row.referral_id)),
                    referral_id: Set(row.referral_id.clone()),
                    side: Set("milestone".into()),
                    customer_id: Set(row.referrer_id.clone()),
                    points: Set(bonus),
                    state: Set(reward::DUE.into()),
                    due_at: Set(now),
                    order_id: Set(String::new()),
                    converted_at: Set(row.converted_at.unwrap_or(now)),
                    entry_id: Set(String::new()),
                    last_error: Set(String::new()),
                    attempts: Set(0),
                    paid_at: Set(None),
                    clawed_back_at: Set(None),
                };
                rewards::Entity::insert(r)
                    .on_conflict(OnConflict::column(rewards::Column::RewardId).do_nothing().to_owned())
                    .exec_without_returning(txn)
                    .await?;
                tracing::info!(referral_id = %row.referral_id, milestone = approved, bonus, "milestone reached");
            }
        }
        tracing::info!(referral_id = %row.referral_id, "referral approved");
        Ok(())
    }

    /// Rewards due, oldest first.
    pub async fn due_payouts(&self, limit: u64) -> Result<Vec<Payout>> {
        let rows = rewards::Entity::find()
            .filter(rewards::Column::State.eq(reward::DUE))
            .filter(rewards::Column::Attempts.lt(MAX_REFUSALS))
            .order_by_asc(rewards::Column::DueAt)
            .order_by_asc(rewards::Column::RewardId)
            .limit(limit)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Payout {
                reward_id: r.reward_id,
                referral_id: r.referral_id,
                customer_id: r.customer_id,
                points: r.points,
                side: r.side,
            })
            .collect())
    }

    /// Records a payment loyalty made: a due reward is paid; one cancelled meanwhile (the referral was voided while
    /// the payment was on its way) is to be clawed back. A referral whose rewards are all settled is rewarded.
    pub async fn record_paid(&self, reward_id: &str, entry_id: &str) -> Result<()> {
        let now = self.now();
        let _turn = self.frame.write_turn().await;
        let txn = rapport_kit::db::begin_write(&self.db).await?;
        let Some(r) = rewards::Entity::find_by_id(reward_id.to_string()).one(&txn).await? else { return Ok(()) };
        let row = locked(&txn, &r.referral_id).await?;
        let Some(r) = rewards::Entity::find_by_id(reward_id.to_string()).one(&txn).await? else { return Ok(()) };
        let next = match r.state.as_str() {
            reward::DUE => reward::PAID,
            reward::CANCELLED => reward::CLAWBACK_DUE,
            _ => return Ok(()),
        };
        let mut a: rewards::ActiveModel = r.into();
        a.state = Set(next.into());
        a.entry_id = Set(entry_id.into());
        a.paid_at = Set(Some(now));
        a.last_error = Set(String::new());
        rewards::Entity::update(a).exec(&txn).await?;
        if row.state == State::Approved.as_str() {
            let unsettled = rewards::Entity::find()
                .filter(rewards::Column::ReferralId.eq(&row.referral_id))
                .filter(rewards::Column::State.is_in([reward::HELD, reward::DUE]))
                .count(&txn)
                .await?;
            if unsettled == 0 {
                let mut a: rows::ActiveModel = row.into();
                a.state = Set(State::Rewarded.as_str().into());
                let row = rows::Entity::update(a).exec(&txn).await?;
                tracing::info!(referral_id = %row.referral_id, "referral rewarded");
            }
        }
        txn.commit().await?;
        if next == reward::CLAWBACK_DUE {
            self.payouts.notify_one();
        }
        Ok(())
    }

    /// Records why a payment or a clawback did not go through this time; a refusal (`refused`, not an outage) counts
    /// towards the attempts after which it is no longer tried.
    pub async fn record_attempt_failed(&self, reward_id: &str, error: &str, refused: bool) -> Result<()> {
        let _turn = self.frame.write_turn().await;
        let txn = rapport_kit::db::begin_write(&self.db).await?;
        if let Some(r) = rewards::Entity::find_by_id(reward_id.to_string()).one(&txn).await? {
            let attempts = r.attempts + i32::from(refused);
            let mut a: rewards::ActiveModel = r.into();
            a.attempts = Set(attempts);
            a.last_error = Set(error.chars().take(500).collect());
            rewards::Entity::update(a).exec(&txn).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Rewards paid then voided, to claw back.
    pub async fn due_clawbacks(&self, limit: u64) -> Result<Vec<Clawback>> {
        let rows = rewards::Entity::find()
            .filter(rewards::Column::State.eq(reward::CLAWBACK_DUE))
            .filter(rewards::Column::Attempts.lt(MAX_REFUSALS))
            .order_by_asc(rewards::Column::RewardId)
            .limit(limit)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Clawback { reward_id: r.reward_id, customer_id: r.customer_id, entry_id: r.entry_id })
            .collect())
    }

    /// Records a clawback loyalty made.
    pub async fn record_clawed_back(&self, reward_id: &str) -> Result<()> {
        let now = self.now();
        let _turn = self.frame.write_turn().await;
        let txn = rapport_kit::db::begin_write(&self.db).await?;
        let r = rewards::Entity::find_by_id(reward_id.to_string()).lock_exclusive().one(&txn).await?;
        if let Some(r) = r.filter(|r| r.state == reward::CLAWBACK_DUE) {
            let mut a: rewards::ActiveModel = r.into();
            a.state = Set(reward::CLAWED_BACK.into());
            a.clawed_back_at = Set(Some(now));
            a.last_error = Set(String::new());
            rewards::Entity::update(a).exec(&txn).await?;
        }
        txn.commit().await?;
        Ok(())
    }
}
