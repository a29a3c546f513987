//! Figures: an ambassador's, the leaderboard of a programme, a programme's metrics over a window. Erased customers
//! stay in the counts under their pseudonym and out of the leaderboard.
use std::collections::HashMap;

use rapport_kit::pseudonym::Pseudonyms;
use rapport_proto::referrals::v1 as pb;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect};

use super::{Result, Store};
use crate::{
    domain::{State, reward},
    entities::{ambassadors, invitations, referrals as rows, rewards},
    error::ReferralsError,
};

/// A referral as the figures need it: referrer, state, whether it converted.
type Slim = (String, String, Option<i64>);

impl Store {
    /// An ambassador's figures in a programme.
    pub async fn ambassador_stats(&self, customer_id: &str, programme_id: &str) -> Result<pb::AmbassadorStats> {
        let known =
            ambassadors::Entity::find_by_id((customer_id.to_string(), programme_id.to_string())).one(&self.db).await?;
        if known.is_none() {
            return Err(ReferralsError::AmbassadorNotFound);
        }
        let refs: Vec<Slim> = rows::Entity::find()
            .select_only()
            .columns([rows::Column::ReferrerId, rows::Column::State, rows::Column::ConvertedAt])
            .filter(rows::Column::ReferrerId.eq(customer_id))
            .filter(rows::Column::ProgrammeId.eq(programme_id))
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut stats = tally(customer_id, &refs);
        stats.invited = self.invitations_of(&self.db, customer_id, programme_id).await?;
        stats.points_earned = self.points_paid_to(&[customer_id.to_string()], programme_id).await?.values().sum();
        Ok(stats)
    }

    /// Points paid (and not clawed back) to each of `customers` for referrals of the programme.
    async fn points_paid_to(&self, customers: &[String], programme_id: &str) -> Result<HashMap<String, i64>> {
        let of_programme = sea_orm::sea_query::Query::select()
            .column(rows::Column::ReferralId)
            .from(rows::Entity)
            .and_where(rows::Column::ProgrammeId.eq(programme_id))
            .to_owned();
        let paid: Vec<(String, i64)> = rewards::Entity::find()
            .select_only()
            .columns([rewards::Column::CustomerId, rewards::Column::Points])
            .filter(rewards::Column::CustomerId.is_in(customers.iter().cloned()))
            .filter(rewards::Column::State.eq(reward::PAID))
            .filter(rewards::Column::Side.ne("referee"))
            .filter(rewards::Column::ReferralId.in_subquery(of_programme))
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut out = HashMap::new();
        for (c, p) in paid {
            *out.entry(c).or_insert(0) += p;
        }
        Ok(out)
    }

    /// Ambassadors of a programme ranked by referrals converted in the window (sign-ups in it), then points.
    pub async fn leaderboard(
        &self,
        programme_id: &str,
        start: i64,
        end: i64,
        limit: usize,
    ) -> Result<Vec<pb::AmbassadorStats>> {
        self.rules_in(&self.db, programme_id, 0).await?;
        let refs: Vec<Slim> = rows::Entity::find()
            .select_only()
            .columns([rows::Column::ReferrerId, rows::Column::State, rows::Column::ConvertedAt])
            .filter(rows::Column::ProgrammeId.eq(programme_id))
            .filter(rows::Column::SignedUpAt.gte(start))
            .filter(rows::Column::SignedUpAt.lt(end))
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut by: HashMap<&str, Vec<Slim>> = HashMap::new();
        for r in &refs {
            if !Pseudonyms::is_pseudonym(&r.0) {
                by.entry(r.0.as_str()).or_default().push(r.clone());
            }
        }
        let mut entries: Vec<pb::AmbassadorStats> = by.iter().map(|(who, refs)| tally(who, refs)).collect();
        entries.sort_by(|a, b| b.converted.cmp(&a.converted).then(a.customer_id.cmp(&b.customer_id)));
        let customers: Vec<String> = entries.iter().map(|e| e.customer_id.clone()).collect();
        let points = self.points_paid_to(&customers, programme_id).await?;
        for e in &mut entries {
            e.points_earned = points.get(&e.customer_id).copied().unwrap_or(0);
            e.invited = self.invitations_of(&self.db, &e.customer_id, programme_id).await?;
        }
        entries.sort_by(|a, b| {
            b.converted
                .cmp(&a.converted)
                .then(b.points_earned.cmp(&a.points_earned))
                .then(a.customer_id.cmp(&b.customer_id))
        });
        entries.truncate(limit);
        Ok(entries)
    }

    /// A programme's figures over a window.
    pub async fn metrics(&self, programme_id: &str, start: i64, end: i64) -> Result<pb::GetProgrammeMetricsResponse> {
        self.rules_in(&self.db, programme_id, 0).await?;
        let ambassadors = ambassadors::Entity::find()
            .filter(ambassadors::Column::ProgrammeId.eq(programme_id))
            .filter(ambassadors::Column::InvitedAt.gte(start))
            .filter(ambassadors::Column::InvitedAt.lt(end))
            .count(&self.db)
            .await?;
        let counts: Vec<(String, i32)> = invitations::Entity::find()
            .select_only()
            .columns([invitations::Column::CustomerId, invitations::Column::Count])
            .filter(invitations::Column::ProgrammeId.eq(programme_id))
            .filter(invitations::Column::At.gte(start))
            .filter(invitations::Column::At.lt(end))
            .into_tuple()
            .all(&self.db)
            .await?;
        let invitations: i64 = counts.iter().map(|(_, n)| i64::from(*n)).sum();
        let inviting = counts.iter().map(|(c, _)| c.as_str()).collect::<std::collections::HashSet<_>>().len() as i64;
        let refs: Vec<(String, Option<i64>, bool)> = rows::Entity::find()
            .select_only()
            .columns([rows::Column::State, rows::Column::ConvertedAt, rows::Column::FlaggedAtSignup])
            .filter(rows::Column::ProgrammeId.eq(programme_id))
            .filter(rows::Column::SignedUpAt.gte(start))
            .filter(rows::Column::SignedUpAt.lt(end))
            .into_tuple()
            .all(&self.db)
            .await?;
        let signups = refs.len() as i64;
        let voided = refs.iter().filter(|r| r.0 == State::Voided.as_str()).count() as i64;
        let conversions = refs.iter().filter(|r| r.1.is_some() && r.0 != State::Voided.as_str()).count() as i64;
        let flagged = refs.iter().filter(|r| r.2).count() as i64;
        let of_programme = sea_orm::sea_query::Query::select()
            .column(rows::Column::ReferralId)
            .from(rows::Entity)
            .and_where(rows::Column::ProgrammeId.eq(programme_id))
            .to_owned();
        let settled: Vec<(i64, Option<i64>, Option<i64>)> = rewards::Entity::find()
            .select_only()
            .columns([rewards::Column::Points, rewards::Column::PaidAt, rewards::Column::ClawedBackAt])
            .filter(rewards::Column::ReferralId.in_subquery(of_programme))
            .filter(rewards::Column::PaidAt.is_not_null())
            .into_tuple()
            .all(&self.db)
            .await?;
        let inside = |t: Option<i64>| t.is_some_and(|t| t >= start && t < end);
        let points_paid = settled.iter().filter(|r| inside(r.1)).map(|r| r.0).sum();
        let points_clawed_back = settled.iter().filter(|r| inside(r.2)).map(|r| r.0).sum();
        let ratio = |a: i64, b: i64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
        let conversion_rate = ratio(conversions, invitations);
        Ok(pb::GetProgrammeMetricsResponse {
            ambassadors: ambassadors as i64,
            invitations,
            signups,
            conversions,
            conversion_rate,
            viral_coefficient: ratio(invitations, inviting) * conversion_rate,
            inviting_ambassadors: inviting,
            points_paid,
            points_clawed_back,
            flagged_share: ratio(flagged, signups),
            voided,
        })
    }
}

/// The counts of one ambassador's referrals.
fn tally(customer_id: &str, refs: &[Slim]) -> pb::AmbassadorStats {
    let is = |s: State| refs.iter().filter(|r| r.1 == s.as_str()).count() as i64;
    pb::AmbassadorStats {
        customer_id: customer_id.into(),
        invited: 0,
        signed_up: refs.len() as i64,
        converted: refs.iter().filter(|r| r.2.is_some() && r.1 != State::Voided.as_str()).count() as i64,
        rewarded: is(State::Rewarded),
        flagged: is(State::Flagged),
        voided: is(State::Voided),
        points_earned: 0,
    }
}
