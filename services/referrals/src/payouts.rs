//! The payout worker's round, under the `referrals.payouts` lease: approve referrals whose delay is over, pay due
//! rewards through loyalty (`EarnPoints`, enrolling the member first if loyalty does not know it), claw back voided
//! ones (`ReversePoints` of the payment's entry). Each call carries a request id made of the reward id
//! (`rr:<reward>` and `rc:<reward>`), so loyalty applies it once whatever happens here: a crash between its answer
//! and the record, a redelivered purchase event, a second replica. When loyalty is down or slow the round stops and
//! the rewards wait, due, for the next one; a reward loyalty refuses for what it is (not an outage) is tried again a
//! few times and then left with its last error (`RetryRewards` puts it back in line). A reward is claimed before the
//! call (`paying`) and stays so until loyalty's answer is recorded (a refusal makes it due again), so a void
//! meanwhile knows it may have been paid and claws it back.
use rapport_kit::client::OutgoingChannel;
use rapport_proto::loyalty::v1::{
    EarnPointsRequest, EnrolMemberRequest, ReversePointsRequest, loyalty_service_client::LoyaltyServiceClient,
};
use tonic::Code;
use tracing::Instrument;

use crate::{
    error::ReferralsError,
    store::{Clawback, Payout, Store},
};

/// Rewards handled per round.
const BATCH: u64 = 100;

/// What a round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Referrals approved.
    pub approved: usize,
    /// Rewards paid.
    pub paid: usize,
    /// Rewards clawed back.
    pub clawed_back: usize,
    /// Calls that failed (they are tried again).
    pub failed: usize,
    /// Whether a full batch was handled (more may wait).
    pub more: bool,
}

/// Pays and claws back through loyalty.
#[derive(Clone)]
pub struct Payouts {
    store: Store,
    loyalty: Option<LoyaltyServiceClient<OutgoingChannel>>,
}

/// The `ErrorInfo` reason of a refusal.
fn reason(s: &tonic::Status) -> Option<String> {
    use tonic_types::StatusExt;
    s.get_details_error_info().map(|i| i.reason)
}

/// Whether loyalty refused the call for what it is (it will refuse it again), as opposed to not answering now — down,
/// slow, shedding, failing inside, or not letting referrals in (a configuration to fix): those are retried until
/// they go through.
fn refused(s: &tonic::Status) -> bool {
    matches!(
        s.code(),
        Code::InvalidArgument | Code::FailedPrecondition | Code::NotFound | Code::AlreadyExists | Code::OutOfRange
    )
}

impl Payouts {
    /// Over `store`, paying through `loyalty` (none: rewards are approved and wait).
    pub fn new(store: Store, loyalty: Option<LoyaltyServiceClient<OutgoingChannel>>) -> Self {
        Self { store, loyalty }
    }

    /// One round.
    pub async fn round(&self) -> Result<Round, ReferralsError> {
        let mut done = Round { approved: self.store.approve_due(BATCH).await?, ..Round::default() };
        let Some(loyalty) = self.loyalty.clone() else { return Ok(done) };
        let due = self.store.due_payouts(BATCH).await?;
        done.more = due.len() as u64 == BATCH;
        for p in due {
            if !self.store.claim(&p.reward_id).await? {
                continue;
            }
            // One span per payment: loyalty's server span joins it (no customer in it).
            let span = tracing::info_span!("referrals.payout", reward.side = %p.side, reward.points = p.points);
            match pay(loyalty.clone(), &p).instrument(span).await {
                Ok(entry_id) => {
                    self.store.record_paid(&p.reward_id, &entry_id).await?;
                    tracing::info!(referral_id = %p.referral_id, side = %p.side, points = p.points, "reward paid");
                    done.paid += 1;
                }
                Err(s) => {
                    done.failed += 1;
                    self.store.record_attempt_failed(&p.reward_id, s.message(), refused(&s)).await?;
                    if !refused(&s) {
                        tracing::warn!(code = ?s.code(), "loyalty does not answer: payouts wait");
                        return Ok(done);
                    }
                    tracing::warn!(referral_id = %p.referral_id, code = ?s.code(), error = %s.message(), "reward refused");
                }
            }
        }
        for c in self.store.due_clawbacks(BATCH).await? {
            let span = tracing::info_span!("referrals.clawback", reward.side = %c.side, reward.points = c.points);
            match claw_back(loyalty.clone(), &self.store, &c).instrument(span).await {
                Ok(Clawed::Back) => {
                    self.store.record_clawed_back(&c.reward_id).await?;
                    tracing::info!(reward_id = %c.reward_id, "reward clawed back");
                    done.clawed_back += 1;
                }
                Ok(Clawed::NeverPaid) => {
                    self.store.record_never_paid(&c.reward_id).await?;
                    tracing::info!(reward_id = %c.reward_id, "voided reward was never paid: nothing to claw back");
                }
                Err(s) => {
                    done.failed += 1;
                    self.store.record_attempt_failed(&c.reward_id, s.message(), refused(&s)).await?;
                    if !refused(&s) {
                        return Ok(done);
                    }
                    tracing::warn!(reward_id = %c.reward_id, code = ?s.code(), error = %s.message(), "clawback refused");
                }
            }
        }
        Ok(done)
    }
}

/// Pays one reward; loyalty's entry id. A member loyalty does not know is enrolled first (once: the enrolment's
/// request id is the reward's too).
async fn pay(mut loyalty: LoyaltyServiceClient<OutgoingChannel>, p: &Payout) -> Result<String, tonic::Status> {
    let earn = || EarnPointsRequest {
        request_id: format!("rr:{}", p.reward_id),
        customer_id: p.customer_id.clone(),
        points: p.points,
        reason: format!("referral reward ({})", p.side),
        reference: p.referral_id.clone(),
    };
    let reply = match loyalty.earn_points(earn()).await {
        Err(s) if s.code() == Code::NotFound => {
            let enrol = EnrolMemberRequest {
                request_id: format!("re:{}", p.reward_id),
                customer_id: p.customer_id.clone(),
                display_name: String::new(),
            };
            match loyalty.enrol_member(enrol).await {
                Ok(_) => {}
                Err(s) if s.code() == Code::AlreadyExists => {}
                Err(s) => return Err(s),
            }
            loyalty.earn_points(earn()).await?
        }
        other => other?,
    };
    Ok(reply.into_inner().entry.map(|e| e.entry_id).unwrap_or_default())
}

/// Claws one reward back: a reversing entry of what is left of the payment. A reward voided while it was being paid
/// first learns its payment's entry by asking loyalty again under the payment's request id (replayed if it was made,
/// made now otherwise, so that it can be reversed).
async fn claw_back(
    mut loyalty: LoyaltyServiceClient<OutgoingChannel>,
    store: &Store,
    c: &Clawback,
) -> Result<Clawed, tonic::Status> {
    let entry_id = if c.entry_id.is_empty() {
        let entry_id = match pay(loyalty.clone(), &c.payment()).await {
            Ok(entry_id) => entry_id,
            // Loyalty refuses the payment: it never made it, there is nothing to take back.
            Err(s) if refused(&s) => return Ok(Clawed::NeverPaid),
            Err(s) => return Err(s),
        };
        store
            .record_clawback_entry(&c.reward_id, &entry_id)
            .await
            .map_err(|e| tonic::Status::internal(e.to_string()))?;
        entry_id
    } else {
        c.entry_id.clone()
    };
    let req = ReversePointsRequest {
        request_id: format!("rc:{}", c.reward_id),
        customer_id: c.customer_id.clone(),
        entry_id,
        points: 0,
        reason: "referral voided: reward clawed back".into(),
    };
    match loyalty.reverse_points(req).await {
        Ok(_) => Ok(Clawed::Back),
        // Nothing left of the payment to reverse (reversed by hand already): the clawback is done.
        Err(s) if reason(&s).as_deref() == Some("NOTHING_LEFT_TO_REVERSE") => Ok(Clawed::Back),
        Err(s) => Err(s),
    }
}

/// How a clawback ended.
enum Clawed {
    /// A reversing entry took the reward back.
    Back,
    /// The reward was voided while being paid, and loyalty never paid it.
    NeverPaid,
}
