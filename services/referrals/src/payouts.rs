//! The payout worker's round, under the `referrals.payouts` lease: approve referrals whose delay is over, pay due
//! rewards through loyalty (`EarnPoints`, enrolling the member first if loyalty does not know it), claw back voided
//! ones (`ReversePoints` of the payment's entry). Each call carries a request id made of the reward id
//! (`rr:<reward>` and `rc:<reward>`), so loyalty applies it once whatever happens here: a crash between its answer
//! and the record, a redelivered purchase event, a second replica. When loyalty is down or slow the round stops and
//! the rewards wait, due, for the next one; a reward loyalty refuses (not an outage) is tried again a few times
//! and then left with its last error for an agent to see.
use rapport_kit::client::OutgoingChannel;
use rapport_proto::loyalty::v1::{
    EarnPointsRequest, EnrolMemberRequest, ReversePointsRequest, loyalty_service_client::LoyaltyServiceClient,
};
use tonic::Code;

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

/// Whether loyalty could not answer now (as opposed to refusing the call).
fn unreachable(s: &tonic::Status) -> bool {
    matches!(
        s.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Cancelled | Code::Unknown
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
            match pay(loyalty.clone(), &p).await {
                Ok(entry_id) => {
                    self.store.record_paid(&p.reward_id, &entry_id).await?;
                    tracing::info!(referral_id = %p.referral_id, side = %p.side, points = p.points, "reward paid");
                    done.paid += 1;
                }
                Err(s) => {
                    done.failed += 1;
                    self.store.record_attempt_failed(&p.reward_id, s.message(), !unreachable(&s)).await?;
                    if unreachable(&s) {
                        tracing::warn!(code = ?s.code(), "loyalty unreachable: payouts wait");
                        return Ok(done);
                    }
                    tracing::warn!(referral_id = %p.referral_id, code = ?s.code(), error = %s.message(), "reward refused");
                }
            }
        }
        for c in self.store.due_clawbacks(BATCH).await? {
            match claw_back(loyalty.clone(), &c).await {
                Ok(()) => {
                    self.store.record_clawed_back(&c.reward_id).await?;
                    tracing::info!(reward_id = %c.reward_id, "reward clawed back");
                    done.clawed_back += 1;
                }
                Err(s) => {
                    done.failed += 1;
                    self.store.record_attempt_failed(&c.reward_id, s.message(), !unreachable(&s)).await?;
                    if unreachable(&s) {
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

/// Claws one reward back: a reversing entry of what is left of the payment.
async fn claw_back(mut loyalty: LoyaltyServiceClient<OutgoingChannel>, c: &Clawback) -> Result<(), tonic::Status> {
    let req = ReversePointsRequest {
        request_id: format!("rc:{}", c.reward_id),
        customer_id: c.customer_id.clone(),
        entry_id: c.entry_id.clone(),
        points: 0,
        reason: "referral voided: reward clawed back".into(),
    };
    match loyalty.reverse_points(req).await {
        Ok(_) => Ok(()),
        // Nothing left of the payment to reverse (reversed by hand already): the clawback is done.
        Err(s) if reason(&s).as_deref() == Some("NOTHING_LEFT_TO_REVERSE") => Ok(()),
        Err(s) => Err(s),
    }
}
