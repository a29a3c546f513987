//! Referrals: a sign-up attributed to a code and screened (the referee's lock, then the code's row, so two sign-ups
//! on one code count each other), agents' reviews and voids, conversions from loyalty's purchases and voids from its
//! returns (inside the sink's transaction), and the block list.
use rapport_kit::{
    frame::{Done, Key},
    pseudonym::Pseudonyms,
};
use rapport_proto::{
    events::v1::{ReferralConverted, ReferralMade, event},
    referrals::v1 as pb,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, sea_query::OnConflict,
};

use super::{Result, Store};
use crate::{
    domain::{
        self, DAY_MS, HOUR_MS, Purchase, Rules, State, reward,
        screening::{self, Facts, Fingerprints},
    },
    entities::{ambassadors, blocked, codes, referrals as rows, rewards},
    error::ReferralsError,
};

/// A sign-up to attribute.
#[derive(Debug, Clone)]
pub struct SignupCmd {
    /// The code as typed.
    pub code: String,
    /// The new customer.
    pub referee_id: String,
    /// Its fingerprints (the e-mail already a keyed hash).
    pub fingerprints: Fingerprints,
    /// When it first arrived with the code (`None`: now).
    pub first_seen_at: Option<i64>,
}

/// Which referrals to list.
#[derive(Debug, Clone, Default)]
pub struct ReferralFilter {
    /// State.
    pub state: Option<State>,
    /// Programme.
    pub programme_id: Option<String>,
    /// Ambassador.
    pub referrer_id: Option<String>,
}

/// The block list to keep.
#[derive(Debug, Clone, Default)]
pub struct BlockListCmd {
    /// (kind, value): kinds `email`, `payment`, `device`, `customer`.
    pub entries: Vec<(&'static str, String)>,
}

impl Store {
    /// Attributes a sign-up to the code's ambassador, screened.
    pub async fn attribute(&self, key: &Key, cmd: SignupCmd) -> Result<pb::AttributeSignupResponse> {
        self.frame
            .once(self, key, "AttributeSignup", move |s, txn, now| {
                Box::pin(async move {
                    let (row, referrer) = s.attribute_in(txn, &cmd, now).await?;
                    let referral = s.referral_view(txn, &row).await?;
                    Ok(Done::about(
                        [referrer, cmd.referee_id],
                        pb::AttributeSignupResponse { referral: Some(referral) },
                    ))
                })
            })
            .await
    }

    async fn attribute_in(
        &self,
        txn: &DatabaseTransaction,
        cmd: &SignupCmd,
        now: i64,
    ) -> Result<(rows::Model, String)> {
        self.lock_customer(txn, &cmd.referee_id).await?;
        if self.is_erased(txn, &cmd.referee_id).await? {
            return Err(ReferralsError::CustomerErased);
        }
        let code_key = domain::code_key(&cmd.code);
        let Some(code) = codes::Entity::find_by_id(code_key.clone()).lock_exclusive().one(txn).await? else {
            return Err(match codes::Entity::find_by_id(self.erased_code_key(&code_key)).one(txn).await? {
                Some(_) => ReferralsError::CodeOwnerErased,
                None => ReferralsError::CodeNotFound,
            });
        };
        if code.customer_id == cmd.referee_id {
            return Err(ReferralsError::SelfReferral);
        }
        if rows::Entity::find().filter(rows::Column::RefereeId.eq(&cmd.referee_id)).count(txn).await? > 0 {
            return Err(ReferralsError::DuplicateReferee);
        }
        let (rules, version) = self.rules_in(txn, &code.programme_id, 0).await?;
        if !rules.is_active(now) {
            return Err(ReferralsError::ProgrammeNotActive(code.programme_id.clone()));
        }
        if now < code.valid_from || code.valid_until.is_some_and(|end| now >= end) {
            return Err(ReferralsError::CodeExpired);
        }
        if code.usage_limit > 0 && code.uses >= code.usage_limit {
            return Err(ReferralsError::CodeUsageLimit(code.usage_limit));
        }
        if !rules.attributable(cmd.first_seen_at.unwrap_or(now).min(now), now) {
            return Err(ReferralsError::AttributionExpired);
        }
        let on_code = |since: i64| {
            rows::Entity::find()
                .filter(rows::Column::CodeKey.eq(&code_key))
                .filter(rows::Column::SignedUpAt.gt(since))
                .count(txn)
        };
        let last_hour = i64::try_from(on_code(now - HOUR_MS).await?).unwrap_or(i64::MAX);
        if last_hour >= i64::from(rules.limits.max_signups_per_hour) {
            return Err(ReferralsError::VelocityLimit { count: last_hour, window: "hour" });
        }
        let last_day = i64::try_from(on_code(now - DAY_MS).await?).unwrap_or(i64::MAX);
        if last_day >= i64::from(rules.limits.max_signups_per_day) {
            return Err(ReferralsError::VelocityLimit { count: last_day, window: "day" });
        }
        let facts = self.facts_in(txn, &code, cmd, last_hour, now).await?;
        let signals = screening::screen(&facts, &rules.limits);
        let score = screening::score(&signals);
        let state = if screening::flagged(score, rules.flag_threshold) { State::Flagged } else { State::Pending };
        let referral_id = format!("ref-{}", uuid::Uuid::new_v4().simple());
        let fp = &cmd.fingerprints;
        let new_row = rows::Model {
            seq: 0,
            referral_id: referral_id.clone(),
            programme_id: code.programme_id.clone(),
            programme_version: version,
            referrer_id: code.customer_id.clone(),
            referee_id: cmd.referee_id.clone(),
            code_key: code_key.clone(),
            code: code.code.clone(),
            state: state.as_str().into(),
            fraud_score: score,
            flagged_at_signup: state == State::Flagged,
            signals: serde_json::to_string(&signals)?,
            email_hash: fp.email.clone(),
            payment_hash: fp.payment.clone(),
            device_hash: fp.device.clone(),
            signed_up_at: now,
            converted_at: None,
            converted_order_id: String::new(),
            order_micros: 0,
            returned_micros: 0,
            conversions: 0,
            approve_at: None,
            approved_at: None,
            reviewed_by: String::new(),
            reason: String::new(),
            voided_at: None,
            voided_by: String::new(),
            void_reason: String::new(),
        };
        let mut active = rows::ActiveModel::from(new_row.clone());
        active.seq = sea_orm::ActiveValue::NotSet;
        let seq = rows::Entity::insert(active).exec(txn).await?.last_insert_id;
        let mut uses: codes::ActiveModel = code.clone().into();
        uses.uses = Set(code.uses + 1);
        codes::Entity::update(uses).exec(txn).await?;
        let made = event::Payload::ReferralMade(ReferralMade {
            referral_id: referral_id.clone(),
            programme_id: code.programme_id.clone(),
            flagged: state == State::Flagged,
        });
        self.outbox.publish_to(txn, Some(&["segmentation"]), &code.customer_id, made, now).await?;
        let mut row = rows::Model { seq, ..new_row };
        if rules.converts_at_signup() {
            row = self.convert_in(txn, row, &rules, None, now).await?;
        }
        tracing::info!(
            referral_id = %referral_id,
            programme_id = %code.programme_id,
            state = state.as_str(),
            fraud_score = score,
            signals = signals.len(),
            "sign-up attributed"
        );
        Ok((row, code.customer_id))
    }

    /// What the screening needs to know of a sign-up.
    async fn facts_in(
        &self,
        txn: &DatabaseTransaction,
        code: &codes::Model,
        cmd: &SignupCmd,
        signups_last_hour: i64,
        now: i64,
    ) -> Result<Facts> {
        let referrer = &code.customer_id;
        let ambassador =
            ambassadors::Entity::find_by_id((referrer.clone(), code.programme_id.clone())).one(txn).await?;
        let ambassador = ambassador
            .map(|a| Fingerprints { email: a.email_hash, payment: a.payment_hash, device: a.device_hash })
            .unwrap_or_default();
        let fp = &cmd.fingerprints;
        let of_referrer = || rows::Entity::find().filter(rows::Column::ReferrerId.eq(referrer));
        let device_seen = match &fp.device {
            Some(d) => of_referrer().filter(rows::Column::DeviceHash.eq(d)).count(txn).await? > 0,
            None => false,
        };
        let payment_seen = match &fp.payment {
            Some(p) => of_referrer().filter(rows::Column::PaymentHash.eq(p)).count(txn).await? > 0,
            None => false,
        };
        // The cap is the programme's; a device or instrument reused by any of the ambassador's referees is suspicious
        // whatever the programme.
        let recent = of_referrer()
            .filter(rows::Column::ProgrammeId.eq(&code.programme_id))
            .filter(rows::Column::SignedUpAt.gt(now - 30 * DAY_MS))
            .count(txn)
            .await?;
        let mut blocked_parts = Vec::new();
        let candidates = [
            ("email", "email", fp.email.clone()),
            ("payment", "payment", fp.payment.clone()),
            ("device", "device", fp.device.clone()),
            ("customer", "ambassador", Some(referrer.clone())),
            ("customer", "referee", Some(cmd.referee_id.clone())),
        ];
        for (kind, part, value) in candidates {
            let Some(value) = value else { continue };
            if blocked::Entity::find_by_id((kind.to_string(), value)).one(txn).await?.is_some() {
                blocked_parts.push(part);
            }
        }
        Ok(Facts {
            referee: fp.clone(),
            ambassador,
            signups_last_hour,
            device_seen,
            payment_seen,
            referrals_last_30_days: i64::try_from(recent).unwrap_or(i64::MAX),
            blocked: blocked_parts,
        })
    }

    /// Records a conversion of `row` (by `purchase`, or by the sign-up itself): its rewards, held until the approval
    /// delay is over, and `ReferralConverted` for segmentation.
    async fn convert_in(
        &self,
        txn: &DatabaseTransaction,
        row: rows::Model,
        rules: &Rules,
        purchase: Option<&Purchase>,
        now: i64,
    ) -> Result<rows::Model> {
        let at = purchase.map_or(now, |p| p.at);
        let (order_id, order_micros) = purchase.map_or((String::new(), 0), |p| (p.order_id.clone(), p.amount_micros));
        let (referrer_points, referee_points) = domain::conversion_points(rules, order_micros);
        // The conversion's number names its rewards: `<referral>:<n>:<side>`, what loyalty's request ids are made of.
        let n = row.conversions + 1;
        let mut inserted = 0;
        for (side, customer, points) in
            [("referrer", &row.referrer_id, referrer_points), ("referee", &row.referee_id, referee_points)]
        {
            // Nothing is paid to an erased customer (its id is a pseudonym here).
            if points <= 0 || Pseudonyms::is_pseudonym(customer) {
                continue;
            }
            let r = rewards::ActiveModel {
                reward_id: Set(format!("{}:{n}:{side}", row.referral_id)),
                referral_id: Set(row.referral_id.clone()),
                side: Set(side.into()),
                customer_id: Set(customer.clone()),
                points: Set(points),
                state: Set(reward::HELD.into()),
                due_at: Set(rules.due_at(at)),
                order_id: Set(order_id.clone()),
                converted_at: Set(at),
                entry_id: Set(String::new()),
                last_error: Set(String::new()),
                attempts: Set(0),
                paid_at: Set(None),
                clawed_back_at: Set(None),
            };
            inserted += rewards::Entity::insert(r)
                .on_conflict(OnConflict::column(rewards::Column::RewardId).do_nothing().to_owned())
                .exec_without_returning(txn)
                .await?;
        }
        let first = row.conversions == 0;
        let mut a: rows::ActiveModel = row.clone().into();
        a.conversions = Set(row.conversions + 1);
        if first {
            a.converted_at = Set(Some(at));
            a.converted_order_id = Set(order_id.clone());
            a.order_micros = Set(order_micros);
            // Approved then, rewards or not (a conversion may earn nothing: a share of a small order).
            a.approve_at = Set(Some(rules.due_at(at)));
        }
        // A later purchase of a rewarded referral that brings rewards to pay: it is approved again until they are.
        if inserted > 0 && matches!(State::parse(&row.state), Some(State::Rewarded)) {
            a.state = Set(State::Approved.as_str().into());
        }
        let row = rows::Entity::update(a).exec(txn).await?;
        if !Pseudonyms::is_pseudonym(&row.referrer_id) {
            let converted = event::Payload::ReferralConverted(ReferralConverted {
                referral_id: row.referral_id.clone(),
                programme_id: row.programme_id.clone(),
                order_id,
            });
            self.outbox.publish_to(txn, Some(&["segmentation"]), &row.referrer_id, converted, now).await?;
        }
        tracing::info!(referral_id = %row.referral_id, conversions = row.conversions, "referral converted");
        Ok(row)
    }

    /// A referee's purchase, from loyalty's events: converts its referral if the programme's qualifying event says so.
    pub(crate) async fn purchase_in(
        &self,
        txn: &DatabaseTransaction,
        referee_id: &str,
        purchase: Purchase,
    ) -> Result<()> {
        self.lock_customer(txn, referee_id).await?;
        let Some(row) =
            rows::Entity::find().filter(rows::Column::RefereeId.eq(referee_id)).lock_exclusive().one(txn).await?
        else {
            return Ok(());
        };
        if row.state == State::Voided.as_str() {
            return Ok(());
        }
        let (rules, _) = self.rules_in(txn, &row.programme_id, row.programme_version).await?;
        if !rules.converts(row.signed_up_at, row.conversions, &purchase) {
            return Ok(());
        }
        let now = self.now();
        self.convert_in(txn, row, &rules, Some(&purchase), now).await?;
        Ok(())
    }

    /// A referee's return, from loyalty's events: inside the returns window, a return that leaves the converting order
    /// short of converting voids the referral (its paid rewards clawed back); a full return of a later order (every
    /// purchase rewarded) cancels or claws back that order's rewards only.
    pub(crate) async fn return_in(
        &self,
        txn: &DatabaseTransaction,
        referee_id: &str,
        order_id: &str,
        returned_micros: i64,
        fully_returned: bool,
        at: i64,
    ) -> Result<()> {
        self.lock_customer(txn, referee_id).await?;
        let Some(row) =
            rows::Entity::find().filter(rows::Column::RefereeId.eq(referee_id)).lock_exclusive().one(txn).await?
        else {
            return Ok(());
        };
        if row.state == State::Voided.as_str() {
            return Ok(());
        }
        let (rules, _) = self.rules_in(txn, &row.programme_id, row.programme_version).await?;
        let now = self.now();
        if row.converted_order_id == order_id && !order_id.is_empty() {
            let Some(converted_at) = row.converted_at else { return Ok(()) };
            let returned = row.returned_micros + returned_micros;
            let mut a: rows::ActiveModel = row.clone().into();
            a.returned_micros = Set(returned);
            let row = rows::Entity::update(a).exec(txn).await?;
            if !rules.inside_returns_window(converted_at, at) {
                tracing::info!(referral_id = %row.referral_id, "return after the returns window: the referral stands");
                return Ok(());
            }
            if !rules.still_converts(fully_returned, row.order_micros - returned) {
                self.void_in(txn, row, "returns", "the converting order was returned", now).await?;
            }
            return Ok(());
        }
        if !fully_returned {
            return Ok(());
        }
        let of_order = rewards::Entity::find()
            .filter(rewards::Column::ReferralId.eq(&row.referral_id))
            .filter(rewards::Column::OrderId.eq(order_id))
            .all(txn)
            .await?;
        for r in of_order {
            if rules.inside_returns_window(r.converted_at, at) {
                settle_on_void(txn, r).await?;
            }
        }
        // Its other rewards may all be paid already.
        super::reward::settle_in(txn, row).await
    }

    /// A referral with its rewards.
    pub async fn referral(&self, referral_id: &str) -> Result<pb::Referral> {
        let row = rows::Entity::find()
            .filter(rows::Column::ReferralId.eq(referral_id))
            .one(&self.db)
            .await?
            .ok_or(ReferralsError::ReferralNotFound)?;
        self.referral_view(&self.db, &row).await
    }

    /// A page of referrals, newest first, before the cursor `before`.
    pub async fn referrals(
        &self,
        f: &ReferralFilter,
        before: Option<i64>,
        limit: u64,
    ) -> Result<(Vec<pb::Referral>, Option<i64>)> {
        let mut q = rows::Entity::find().order_by_desc(rows::Column::Seq).limit(limit + 1);
        if let Some(s) = f.state {
            q = q.filter(rows::Column::State.eq(s.as_str()));
        }
        if let Some(p) = &f.programme_id {
            q = q.filter(rows::Column::ProgrammeId.eq(p.as_str()));
        }
        if let Some(c) = &f.referrer_id {
            q = q.filter(rows::Column::ReferrerId.eq(c.as_str()));
        }
        if let Some(b) = before {
            q = q.filter(rows::Column::Seq.lt(b));
        }
        let (page, next) = rapport_kit::page::split(q.all(&self.db).await?, limit, |r| r.seq);
        let mut out = Vec::with_capacity(page.len());
        for row in &page {
            out.push(self.referral_view(&self.db, row).await?);
        }
        Ok((out, next))
    }

    /// An agent clears a flagged referral: it goes on as pending.
    pub async fn approve(
        &self,
        key: &Key,
        referral_id: String,
        agent: String,
        reason: String,
    ) -> Result<pb::ApproveReferralResponse> {
        self.frame
            .once(self, key, "ApproveReferral", move |s, txn, _| {
                Box::pin(async move {
                    let row = locked(txn, &referral_id).await?;
                    let state = State::parse(&row.state).unwrap_or(State::Pending);
                    if state != State::Flagged {
                        return Err(ReferralsError::NotFlagged(state.as_str()));
                    }
                    let subjects = [row.referrer_id.clone(), row.referee_id.clone()];
                    let mut a: rows::ActiveModel = row.into();
                    a.state = Set(State::Pending.as_str().into());
                    a.reviewed_by = Set(agent.clone());
                    a.reason = Set(reason);
                    let row = rows::Entity::update(a).exec(txn).await?;
                    tracing::info!(referral_id = %row.referral_id, agent = %agent, "flagged referral cleared");
                    let referral = s.referral_view(txn, &row).await?;
                    Ok(Done::about(subjects, pb::ApproveReferralResponse { referral: Some(referral) })
                        .on("referral", &referral_id))
                })
            })
            .await
    }

    /// An agent voids a referral.
    pub async fn void(
        &self,
        key: &Key,
        referral_id: String,
        agent: String,
        reason: String,
    ) -> Result<pb::VoidReferralResponse> {
        self.frame
            .once(self, key, "VoidReferral", move |s, txn, now| {
                Box::pin(async move {
                    let row = locked(txn, &referral_id).await?;
                    if row.state == State::Voided.as_str() {
                        return Err(ReferralsError::ReferralVoided);
                    }
                    let subjects = [row.referrer_id.clone(), row.referee_id.clone()];
                    let row = s.void_in(txn, row, &agent, &reason, now).await?;
                    let referral = s.referral_view(txn, &row).await?;
                    Ok(Done::about(subjects, pb::VoidReferralResponse { referral: Some(referral) })
                        .on("referral", &referral_id))
                })
            })
            .await
    }

    /// Voids `row` inside `txn`: unpaid rewards cancelled, paid ones marked for clawback (the payout worker reverses
    /// them in loyalty).
    async fn void_in(
        &self,
        txn: &DatabaseTransaction,
        row: rows::Model,
        by: &str,
        reason: &str,
        now: i64,
    ) -> Result<rows::Model> {
        let mut a: rows::ActiveModel = row.into();
        a.state = Set(State::Voided.as_str().into());
        a.voided_at = Set(Some(now));
        a.voided_by = Set(by.into());
        a.void_reason = Set(reason.into());
        let row = rows::Entity::update(a).exec(txn).await?;
        let of_referral =
            rewards::Entity::find().filter(rewards::Column::ReferralId.eq(&row.referral_id)).all(txn).await?;
        let mut clawbacks = 0;
        for r in of_referral {
            clawbacks += i32::from(settle_on_void(txn, r).await?);
        }
        tracing::info!(referral_id = %row.referral_id, by = %by, clawbacks, "referral voided");
        Ok(row)
    }

    /// Replaces the block list.
    pub async fn set_block_list(&self, key: &Key, cmd: BlockListCmd) -> Result<pb::SetBlockListResponse> {
        self.frame
            .once(self, key, "SetBlockList", move |s, txn, _| {
                Box::pin(async move {
                    blocked::Entity::delete_many().exec(txn).await?;
                    for chunk in cmd.entries.chunks(500) {
                        let rows = chunk.iter().map(|(kind, value)| blocked::ActiveModel {
                            kind: Set(kind.to_string()),
                            value: Set(value.clone()),
                        });
                        blocked::Entity::insert_many(rows)
                            .on_conflict(
                                OnConflict::columns([blocked::Column::Kind, blocked::Column::Value])
                                    .do_nothing()
                                    .to_owned(),
                            )
                            .exec_without_returning(txn)
                            .await?;
                    }
                    tracing::info!(entries = cmd.entries.len(), "block list replaced");
                    // The reply names the blocked customers: an erasure of one of them blanks it.
                    let customers: Vec<String> =
                        cmd.entries.iter().filter(|(k, _)| *k == "customer").map(|(_, v)| v.clone()).collect();
                    let reply = pb::SetBlockListResponse { block_list: Some(s.block_list_in(txn).await?) };
                    Ok(Done::about(customers, reply))
                })
            })
            .await
    }

    /// The block list.
    pub async fn block_list(&self) -> Result<pb::BlockList> {
        self.block_list_in(&self.db).await
    }

    async fn block_list_in<C: ConnectionTrait>(&self, db: &C) -> Result<pb::BlockList> {
        let rows = blocked::Entity::find()
            .order_by_asc(blocked::Column::Kind)
            .order_by_asc(blocked::Column::Value)
            .all(db)
            .await?;
        let mut out = pb::BlockList::default();
        for r in rows {
            let list = match r.kind.as_str() {
                "email" => &mut out.email_hashes,
                "payment" => &mut out.payment_hashes,
                "device" => &mut out.device_hashes,
                _ => &mut out.customer_ids,
            };
            list.push(r.value);
        }
        Ok(out)
    }
}

/// What voiding does to one reward; whether it is to be clawed back.
async fn settle_on_void(txn: &DatabaseTransaction, r: rewards::Model) -> Result<bool> {
    let Some(mut next) = reward::on_void(&r.state) else { return Ok(false) };
    // An erased customer's reward: loyalty erased its ledger, nothing is taken back from it.
    if Pseudonyms::is_pseudonym(&r.customer_id) {
        next = reward::CANCELLED;
    }
    let mut a: rewards::ActiveModel = r.into();
    a.state = Set(next.into());
    // A clawback counts its own refusals.
    a.attempts = Set(0);
    rewards::Entity::update(a).exec(txn).await?;
    Ok(next == reward::CLAWBACK_DUE)
}

/// The referral, its row locked for the rest of the transaction.
pub(super) async fn locked(txn: &DatabaseTransaction, referral_id: &str) -> Result<rows::Model> {
    rows::Entity::find()
        .filter(rows::Column::ReferralId.eq(referral_id))
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or(ReferralsError::ReferralNotFound)
}
