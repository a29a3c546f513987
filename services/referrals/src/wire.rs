//! Rows → protobuf, for the API's replies and the ones the store keeps for retries.
use rapport_kit::clock::timestamp;
use rapport_proto::{common::v1::Money, referrals::v1 as pb};

use crate::{
    domain::{Milestone, Qualifying, Reward, Rules, State, reward, screening::Signal},
    entities::{ambassadors, codes, programmes, referrals, rewards},
    error::ReferralsError,
};

fn reward_pb(r: &Reward) -> pb::Reward {
    pb::Reward { points: r.points, share_bps: r.share_bps }
}

/// The wire form of a qualifying event.
pub fn qualifying_pb(q: Qualifying) -> pb::QualifyingEvent {
    match q {
        Qualifying::SignUp => pb::QualifyingEvent::SignUp,
        Qualifying::FirstPurchase => pb::QualifyingEvent::FirstPurchase,
        Qualifying::EveryPurchase => pb::QualifyingEvent::EveryPurchase,
        Qualifying::MinOrderValue => pb::QualifyingEvent::MinOrderValue,
    }
}

/// The wire form of programme rules.
pub fn rules_pb(r: &Rules) -> pb::ProgrammeRules {
    pb::ProgrammeRules {
        name: r.name.clone(),
        qualifying_event: qualifying_pb(r.qualifying).into(),
        min_order: (r.min_order_micros > 0)
            .then(|| rapport_kit::money::money(r.min_order_micros, &r.min_order_currency)),
        referrer_reward: Some(reward_pb(&r.referrer)),
        referee_reward: Some(reward_pb(&r.referee)),
        attribution_window_days: r.attribution_window_days,
        approval_delay_days: r.approval_delay_days,
        returns_window_days: r.returns_window_days,
        milestones: r
            .milestones
            .iter()
            .map(|m: &Milestone| pb::Milestone { count: m.count, bonus_points: m.bonus_points })
            .collect(),
        limits: Some(pb::Limits {
            max_signups_per_hour: r.limits.max_signups_per_hour,
            max_signups_per_day: r.limits.max_signups_per_day,
            velocity_signal_per_hour: r.limits.velocity_signal_per_hour,
            max_referrals_per_month: r.limits.max_referrals_per_month,
        }),
        flag_threshold: r.flag_threshold,
        active_from: Some(timestamp(r.active_from)),
        active_until: r.active_until.map(timestamp),
    }
}

/// A programme version.
pub fn programme_pb(row: &programmes::Model) -> Result<pb::Programme, ReferralsError> {
    let rules: Rules = serde_json::from_str(&row.rules)?;
    Ok(pb::Programme {
        programme_id: row.programme_id.clone(),
        version: row.version,
        rules: Some(rules_pb(&rules)),
        created_at: Some(timestamp(row.created_at)),
    })
}

/// An ambassador.
pub fn ambassador_pb(row: &ambassadors::Model) -> pb::Ambassador {
    let source = match row.source.as_str() {
        "promoter" => pb::AmbassadorSource::Promoter,
        "code" => pb::AmbassadorSource::Code,
        _ => pb::AmbassadorSource::Manual,
    };
    let outcome = match row.review_outcome.as_deref() {
        Some("posted") => pb::ReviewOutcome::Posted,
        Some("declined") => pb::ReviewOutcome::Declined,
        Some("no_answer") => pb::ReviewOutcome::NoAnswer,
        _ => pb::ReviewOutcome::Unspecified,
    };
    pb::Ambassador {
        customer_id: row.customer_id.clone(),
        programme_id: row.programme_id.clone(),
        source: source.into(),
        invited_at: Some(timestamp(row.invited_at)),
        review_site: row.review_site.clone(),
        review_outcome: outcome.into(),
        review_rating: row.review_rating,
    }
}

/// A code.
pub fn code_pb(row: &codes::Model) -> pb::Code {
    pb::Code {
        code: row.code.clone(),
        customer_id: row.customer_id.clone(),
        programme_id: row.programme_id.clone(),
        valid_from: Some(timestamp(row.valid_from)),
        valid_until: row.valid_until.map(timestamp),
        usage_limit: row.usage_limit,
        uses: row.uses,
        vanity: row.vanity,
    }
}

/// The wire form of a referral state.
pub fn state_pb(s: State) -> pb::ReferralState {
    match s {
        State::Pending => pb::ReferralState::Pending,
        State::Flagged => pb::ReferralState::Flagged,
        State::Approved => pb::ReferralState::Approved,
        State::Rewarded => pb::ReferralState::Rewarded,
        State::Voided => pb::ReferralState::Voided,
    }
}

fn reward_state_pb(s: &str) -> pb::RewardState {
    match s {
        reward::HELD => pb::RewardState::Held,
        reward::DUE => pb::RewardState::Due,
        reward::PAYING => pb::RewardState::Paying,
        reward::PAID => pb::RewardState::Paid,
        reward::CANCELLED => pb::RewardState::Cancelled,
        reward::CLAWBACK_DUE => pb::RewardState::ClawbackDue,
        reward::CLAWED_BACK => pb::RewardState::ClawedBack,
        _ => pb::RewardState::Unspecified,
    }
}

/// A referral with its rewards.
pub fn referral_pb(row: &referrals::Model, rewards: &[rewards::Model]) -> Result<pb::Referral, ReferralsError> {
    let signals: Vec<Signal> = serde_json::from_str(&row.signals)?;
    let state = State::parse(&row.state).map_or(pb::ReferralState::Unspecified, state_pb);
    Ok(pb::Referral {
        referral_id: row.referral_id.clone(),
        programme_id: row.programme_id.clone(),
        programme_version: row.programme_version,
        referrer_id: row.referrer_id.clone(),
        referee_id: row.referee_id.clone(),
        code: row.code.clone(),
        state: state.into(),
        fraud_score: row.fraud_score,
        signals: signals
            .into_iter()
            .map(|s| pb::FraudSignal { name: s.name, weight: s.weight, detail: s.detail })
            .collect(),
        signed_up_at: Some(timestamp(row.signed_up_at)),
        converted_at: row.converted_at.map(timestamp),
        converted_order_id: row.converted_order_id.clone(),
        approved_at: row.approved_at.map(timestamp),
        reviewed_by: row.reviewed_by.clone(),
        reason: row.reason.clone(),
        voided_by: row.voided_by.clone(),
        void_reason: row.void_reason.clone(),
        voided_at: row.voided_at.map(timestamp),
        rewards: rewards
            .iter()
            .map(|r| pb::ReferralReward {
                reward_id: r.reward_id.clone(),
                side: r.side.clone(),
                customer_id: r.customer_id.clone(),
                points: r.points,
                state: reward_state_pb(&r.state).into(),
                due_at: Some(timestamp(r.due_at)),
                entry_id: r.entry_id.clone(),
                last_error: r.last_error.clone(),
                order_id: r.order_id.clone(),
            })
            .collect(),
    })
}

/// Money's micro-units (for purchases from events).
pub fn micros(m: Option<&Money>) -> i64 {
    m.map_or(0, rapport_kit::money::micros)
}
