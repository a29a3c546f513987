//! Rewards after conversion: the payout worker approves referrals whose approval delay is over (their held rewards
//! become due, and an ambassador's milestone bonus is added), then pays and claws back through loyalty and records
//! here what loyalty answered. Loyalty is called outside any transaction with a request id made of the reward id, so
//! a payment retried after a crash, a restart or a second replica is applied once there; what is recorded here only
//! moves a reward forward from the state it was read in.
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, OnConflict, Query},
};

use rapport_kit::pseudonym::Pseudonyms;

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
    /// Its referral.
    pub referral_id: String,
    /// Who received it.
    pub customer_id: String,
    /// Points.
    pub points: i64,
    /// referrer, referee or milestone.
    pub side: String,
    /// Loyalty's entry of the payment (empty: voided while being paid, the entry not known yet).
    pub entry_id: String,
}

impl Clawback {
    /// The payment it reverses, to ask loyalty again for its entry.
    pub fn payment(&self) -> Payout {
        Payout {
            reward_id: self.reward_id.clone(),
            referral_id: self.referral_id.clone(),
            customer_id: self.customer_id.clone(),
            points: self.points,
            side: self.side.clone(),
        }
    }
}

/// Moves an approved referral whose rewards are all settled (none held, due or being paid) to rewarded.
pub(super) async fn settle_in(txn: &DatabaseTransaction, row: rows::Model) -> Result<()> {
    if row.state != State::Approved.as_str() {
        return Ok(());
    }
    let unsettled = rewards::Entity::find()
        .filter(rewards::Column::ReferralId.eq(&row.referral_id))
        .filter(rewards::Column::State.is_in([reward::HELD, reward::DUE, reward::PAYING]))
        .count(txn)
        .await?;
    if unsettled == 0 {
        let mut a: rows::ActiveModel = row.into();
        a.state = Set(State::Rewarded.as_str().into());
        let row = rows::Entity::update(a).exec(txn).await?;
        tracing::info!(referral_id = %row.referral_id, "referral rewarded");
    }
    Ok(())
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
        // And pending referrals whose first conversion's delay is over, rewards or not.
        let converted: Vec<String> = rows::Entity::find()
            .select_only()
            .column(rows::Column::ReferralId)
            .filter(rows::Column::State.eq(State::Pending.as_str()))
            .filter(rows::Column::ApproveAt.lte(now))
            .order_by_asc(rows::Column::ApproveAt)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut seen = std::collections::HashSet::new();
        let ids: Vec<String> = due.into_iter().chain(converted).filter(|id| seen.insert(id.clone())).collect();
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
        if first_approval && !Pseudonyms::is_pseudonym(&row.referrer_id) {
            // The ambassador's n-th approved referral in the programme (this one included).
            let approved = rows::Entity::find()
                .filter(rows::Column::ReferrerId.eq(&row.referrer_id))
                .filter(rows::Column::ProgrammeId.eq(&row.programme_id))
                .filter(rows::Column::ApprovedAt.is_not_null())
                .filter(rows::Column::State.ne(State::Voided.as_str()))
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
        // With nothing to pay (no reward, or all of them paid already), it is rewarded at once.
        if let Some(row) = rows::Entity::find().filter(rows::Column::ReferralId.eq(&row.referral_id)).one(txn).await? {
            settle_in(txn, row).await?;
        }
        Ok(())
    }

    /// Claims a reward for payment before loyalty is called: from then on it may have been paid, and a void claws it
    /// back rather than cancelling it. False when it is no longer to pay (voided meanwhile).
    pub async fn claim(&self, reward_id: &str) -> Result<bool> {
        let _turn = self.frame.write_turn().await;
        let n = rewards::Entity::update_many()
            .col_expr(rewards::Column::State, Expr::value(reward::PAYING))
            .filter(rewards::Column::RewardId.eq(reward_id))
            .filter(rewards::Column::State.is_in([reward::DUE, reward::PAYING]))
            .exec(&self.db)
            .await?
            .rows_affected;
        Ok(n == 1)
    }

    /// Rewards to pay, oldest first: due ones, and ones whose payment may have been made (loyalty did not answer),
    /// sent again under the same request id. Never to a pseudonym (an erased customer's rewards are cancelled).
    pub async fn due_payouts(&self, limit: u64) -> Result<Vec<Payout>> {
        let rows = rewards::Entity::find()
            .filter(rewards::Column::State.is_in([reward::DUE, reward::PAYING]))
            .filter(rewards::Column::Attempts.lt(MAX_REFUSALS))
            .order_by_asc(rewards::Column::DueAt)
            .order_by_asc(rewards::Column::RewardId)
            .limit(limit)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .filter(|r| !Pseudonyms::is_pseudonym(&r.customer_id))
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
        let Some(mut next) = reward::on_paid(&r.state) else { return Ok(()) };
        // Paid to a customer erased meanwhile: loyalty erased its ledger too, there is nothing to claw back from.
        if next == reward::CLAWBACK_DUE && Pseudonyms::is_pseudonym(&r.customer_id) {
            next = reward::CANCELLED;
        }
        let mut a: rewards::ActiveModel = r.into();
        a.state = Set(next.into());
        a.entry_id = Set(entry_id.into());
        a.paid_at = Set(Some(now));
        a.last_error = Set(String::new());
        if next == reward::CLAWBACK_DUE {
            a.attempts = Set(0);
        }
        rewards::Entity::update(a).exec(&txn).await?;
        settle_in(&txn, row).await?;
        txn.commit().await?;
        if next == reward::CLAWBACK_DUE {
            self.payouts.notify_one();
        }
        Ok(())
    }

    /// Records why a payment or a clawback did not go through this time. A refusal (`refused`: loyalty answered, and
    /// applied nothing) makes a claimed payment due again and counts towards the attempts after which it is no longer
    /// tried; without an answer the payment may have been made, and stays claimed.
    pub async fn record_attempt_failed(&self, reward_id: &str, error: &str, refused: bool) -> Result<()> {
        let _turn = self.frame.write_turn().await;
        let txn = rapport_kit::db::begin_write(&self.db).await?;
        let error: String = error.chars().take(500).collect();
        rewards::Entity::update_many()
            .col_expr(rewards::Column::Attempts, Expr::col(rewards::Column::Attempts).add(i32::from(refused)))
            .col_expr(rewards::Column::LastError, Expr::value(error))
            .filter(rewards::Column::RewardId.eq(reward_id))
            .exec(&txn)
            .await?;
        // Only if it is still being paid: a void meanwhile made it a clawback, which stays one.
        if refused {
            rewards::Entity::update_many()
                .col_expr(rewards::Column::State, Expr::value(reward::DUE))
                .filter(rewards::Column::RewardId.eq(reward_id))
                .filter(rewards::Column::State.eq(reward::PAYING))
                .exec(&txn)
                .await?;
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
            .map(|r| Clawback {
                reward_id: r.reward_id,
                referral_id: r.referral_id,
                customer_id: r.customer_id,
                points: r.points,
                side: r.side,
                entry_id: r.entry_id,
            })
            .collect())
    }

    /// Puts back in line the rewards of a referral loyalty refused too often; how many, and the referral.
    pub async fn retry_rewards(
        &self,
        key: &rapport_kit::frame::Key,
        referral_id: String,
    ) -> Result<rapport_proto::referrals::v1::RetryRewardsResponse> {
        self.frame
            .once(self, key, "RetryRewards", move |s, txn, _| {
                Box::pin(async move {
                    let row = locked(txn, &referral_id).await?;
                    let requeued = rewards::Entity::update_many()
                        .col_expr(rewards::Column::Attempts, Expr::value(0))
                        .col_expr(rewards::Column::LastError, Expr::value(String::new()))
                        .filter(rewards::Column::ReferralId.eq(&referral_id))
                        .filter(rewards::Column::State.is_in([reward::DUE, reward::CLAWBACK_DUE]))
                        .filter(rewards::Column::Attempts.gte(MAX_REFUSALS))
                        .exec(txn)
                        .await?
                        .rows_affected;
                    tracing::info!(referral_id = %referral_id, requeued, "rewards put back in line");
                    let subjects = [row.referrer_id.clone(), row.referee_id.clone()];
                    let referral = s.referral_view(txn, &row).await?;
                    let reply = rapport_proto::referrals::v1::RetryRewardsResponse {
                        requeued: i32::try_from(requeued).unwrap_or(i32::MAX),
                        referral: Some(referral),
                    };
                    Ok(rapport_kit::frame::Done::about(subjects, reply))
                })
            })
            .await
    }

    /// Records that a reward voided while it was being paid was in fact never paid (loyalty refused the payment when
    /// asked again): nothing to claw back.
    pub async fn record_never_paid(&self, reward_id: &str) -> Result<()> {
        let _turn = self.frame.write_turn().await;
        rewards::Entity::update_many()
            .col_expr(rewards::Column::State, Expr::value(reward::CANCELLED))
            .filter(rewards::Column::RewardId.eq(reward_id))
            .filter(rewards::Column::State.eq(reward::CLAWBACK_DUE))
            .filter(rewards::Column::EntryId.eq(""))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Records the entry of a payment made while its referral was being voided (learnt by asking loyalty again).
    pub async fn record_clawback_entry(&self, reward_id: &str, entry_id: &str) -> Result<()> {
        let _turn = self.frame.write_turn().await;
        rewards::Entity::update_many()
            .col_expr(rewards::Column::EntryId, Expr::value(entry_id))
            .filter(rewards::Column::RewardId.eq(reward_id))
            .filter(rewards::Column::State.eq(reward::CLAWBACK_DUE))
            .exec(&self.db)
            .await?;
        Ok(())
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
