//! Ambassadors (once per customer and programme, whoever asks first: a person, a promoter's answer, a code issued),
//! their review invitations, their codes and the invitations they send.
use rapport_kit::frame::{Done, Key};
use rapport_proto::referrals::v1 as pb;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect,
};

use super::{Result, Store};
use crate::{
    domain::{self, screening::Fingerprints},
    entities::{ambassadors, codes, invitations},
    error::ReferralsError,
    wire,
};

/// A customer to make an ambassador.
#[derive(Debug, Clone)]
pub struct EnrolCmd {
    /// The customer.
    pub customer_id: String,
    /// The programme.
    pub programme_id: String,
    /// `manual`, `promoter` or `code`.
    pub source: &'static str,
    /// Review invitation site (empty: none).
    pub review_site: String,
    /// Its own fingerprints (the e-mail already a keyed hash).
    pub fingerprints: Fingerprints,
}

/// A code to issue.
#[derive(Debug, Clone)]
pub struct CodeCmd {
    /// The ambassador (and its fingerprints).
    pub enrol: EnrolCmd,
    /// A vanity code, if asked.
    pub vanity: Option<String>,
    /// Valid from (`None`: now).
    pub valid_from: Option<i64>,
    /// Valid until.
    pub valid_until: Option<i64>,
    /// Most sign-ups (0: no limit).
    pub usage_limit: i32,
}

impl Store {
    /// Makes a customer an ambassador, once.
    pub async fn enrol(&self, key: &Key, cmd: EnrolCmd) -> Result<pb::EnrolAmbassadorResponse> {
        self.frame
            .once(self, key, "EnrolAmbassador", move |s, txn, now| {
                Box::pin(async move {
                    let (row, created) = s.enrol_in(txn, &cmd, now).await?;
                    let reply = pb::EnrolAmbassadorResponse { ambassador: Some(wire::ambassador_pb(&row)), created };
                    Ok(Done::about([cmd.customer_id], reply))
                })
            })
            .await
    }

    /// Makes a customer an ambassador inside `txn` unless it is one (the first invitation stays as it was, its
    /// fingerprints filled in where it had none); whether this made it one. Takes the customer's lock and checks
    /// its tombstone.
    pub(super) async fn enrol_in(
        &self,
        txn: &DatabaseTransaction,
        cmd: &EnrolCmd,
        now: i64,
    ) -> Result<(ambassadors::Model, bool)> {
        self.lock_customer(txn, &cmd.customer_id).await?;
        if self.is_erased(txn, &cmd.customer_id).await? {
            return Err(ReferralsError::CustomerErased);
        }
        self.rules_in(txn, &cmd.programme_id, 0).await?;
        let id = (cmd.customer_id.clone(), cmd.programme_id.clone());
        if let Some(row) = ambassadors::Entity::find_by_id(id).one(txn).await? {
            let fp = &cmd.fingerprints;
            let mut a: ambassadors::ActiveModel = row.clone().into();
            let mut changed = false;
            // A review invitation sent later to an ambassador without one is recorded.
            if row.review_site.is_empty() && !cmd.review_site.is_empty() {
                a.review_site = Set(cmd.review_site.clone());
                changed = true;
            }
            for (col, have, given) in [
                (&mut a.email_hash, &row.email_hash, &fp.email),
                (&mut a.payment_hash, &row.payment_hash, &fp.payment),
                (&mut a.device_hash, &row.device_hash, &fp.device),
            ] {
                if have.is_none() && given.is_some() {
                    *col = Set(given.clone());
                    changed = true;
                }
            }
            let row = if changed { ambassadors::Entity::update(a).exec(txn).await? } else { row };
            return Ok((row, false));
        }
        let row = ambassadors::Model {
            customer_id: cmd.customer_id.clone(),
            programme_id: cmd.programme_id.clone(),
            source: cmd.source.into(),
            invited_at: now,
            review_site: cmd.review_site.clone(),
            review_outcome: None,
            review_rating: 0,
            email_hash: cmd.fingerprints.email.clone(),
            payment_hash: cmd.fingerprints.payment.clone(),
            device_hash: cmd.fingerprints.device.clone(),
        };
        ambassadors::Entity::insert(ambassadors::ActiveModel::from(row.clone())).exec_without_returning(txn).await?;
        tracing::info!(programme_id = %cmd.programme_id, source = cmd.source, "ambassador invited");
        Ok((row, true))
    }

    /// Makes a promoter an ambassador inside the sink's transaction.
    pub(crate) async fn enrol_event_in(&self, txn: &DatabaseTransaction, cmd: &EnrolCmd, now: i64) -> Result<()> {
        self.enrol_in(txn, cmd, now).await.map(|_| ())
    }

    /// Records the outcome of a review invitation.
    pub async fn record_review(
        &self,
        key: &Key,
        customer_id: String,
        programme_id: String,
        outcome: &'static str,
        rating: i32,
    ) -> Result<pb::RecordReviewOutcomeResponse> {
        self.frame
            .once(self, key, "RecordReviewOutcome", move |s, txn, _| {
                Box::pin(async move {
                    s.lock_customer(txn, &customer_id).await?;
                    let row = ambassadors::Entity::find_by_id((customer_id.clone(), programme_id))
                        .one(txn)
                        .await?
                        .ok_or(ReferralsError::AmbassadorNotFound)?;
                    if row.review_site.is_empty() {
                        return Err(ReferralsError::NoReviewInvitation);
                    }
                    let mut a: ambassadors::ActiveModel = row.into();
                    a.review_outcome = Set(Some(outcome.into()));
                    a.review_rating = Set(rating);
                    let row = ambassadors::Entity::update(a).exec(txn).await?;
                    let reply = pb::RecordReviewOutcomeResponse { ambassador: Some(wire::ambassador_pb(&row)) };
                    Ok(Done::about([customer_id], reply))
                })
            })
            .await
    }

    /// Issues the customer's code in a programme (making it an ambassador if it was not one).
    pub async fn issue_code(&self, key: &Key, cmd: CodeCmd) -> Result<pb::IssueCodeResponse> {
        self.frame
            .once(self, key, "IssueCode", move |s, txn, now| {
                Box::pin(async move {
                    // Takes the customer's lock: two codes for one customer cannot be issued at once.
                    s.enrol_in(txn, &cmd.enrol, now).await?;
                    let customer_id = &cmd.enrol.customer_id;
                    let existing = codes::Entity::find()
                        .filter(codes::Column::CustomerId.eq(customer_id))
                        .filter(codes::Column::ProgrammeId.eq(&cmd.enrol.programme_id))
                        .one(txn)
                        .await?;
                    if let Some(c) = existing {
                        return Err(ReferralsError::CustomerHasCode(c.code));
                    }
                    let (code, vanity) = match &cmd.vanity {
                        Some(v) => (v.clone(), true),
                        None => (domain::generate_code(*uuid::Uuid::new_v4().as_bytes()), false),
                    };
                    let code_key = domain::code_key(&code);
                    // Vanity codes are unique case-insensitively, and so are generated ones (a collision of 50
                    // random bits is told as a clash; the caller retries with a new request id).
                    let taken = codes::Entity::find_by_id(code_key.clone()).one(txn).await?.is_some()
                        || codes::Entity::find_by_id(s.erased_code_key(&code_key)).one(txn).await?.is_some();
                    if taken {
                        return Err(ReferralsError::CodeTaken);
                    }
                    let row = codes::Model {
                        code_key,
                        code,
                        customer_id: customer_id.clone(),
                        programme_id: cmd.enrol.programme_id.clone(),
                        vanity,
                        valid_from: cmd.valid_from.unwrap_or(now),
                        valid_until: cmd.valid_until,
                        usage_limit: cmd.usage_limit,
                        uses: 0,
                        created_at: now,
                        erased: false,
                    };
                    codes::Entity::insert(codes::ActiveModel::from(row.clone())).exec_without_returning(txn).await?;
                    tracing::info!(programme_id = %row.programme_id, vanity, "code issued");
                    Ok(Done::about([customer_id.clone()], pb::IssueCodeResponse { code: Some(wire::code_pb(&row)) }))
                })
            })
            .await
    }

    /// The key an erased ambassador's code is kept under: a keyed hash of the code, so a later use is told apart
    /// from an unknown code without keeping the code (a vanity code may be a name).
    pub(super) fn erased_code_key(&self, code_key: &str) -> String {
        format!("erased:{}", self.pseudonyms.of(&format!("code:{code_key}")))
    }

    /// A code.
    pub async fn code(&self, code: &str) -> Result<pb::Code> {
        let key = domain::code_key(code);
        match codes::Entity::find_by_id(key.clone()).one(&self.db).await? {
            Some(row) => Ok(wire::code_pb(&row)),
            None if codes::Entity::find_by_id(self.erased_code_key(&key)).one(&self.db).await?.is_some() => {
                Err(ReferralsError::CodeOwnerErased)
            }
            None => Err(ReferralsError::CodeNotFound),
        }
    }

    /// Counts invitations an ambassador sent; its total so far.
    pub async fn record_invitations(
        &self,
        key: &Key,
        customer_id: String,
        programme_id: String,
        count: i32,
    ) -> Result<pb::RecordInvitationsResponse> {
        self.frame
            .once(self, key, "RecordInvitations", move |s, txn, now| {
                Box::pin(async move {
                    s.lock_customer(txn, &customer_id).await?;
                    if s.is_erased(txn, &customer_id).await? {
                        return Err(ReferralsError::CustomerErased);
                    }
                    ambassadors::Entity::find_by_id((customer_id.clone(), programme_id.clone()))
                        .one(txn)
                        .await?
                        .ok_or(ReferralsError::AmbassadorNotFound)?;
                    let row = invitations::ActiveModel {
                        customer_id: Set(customer_id.clone()),
                        programme_id: Set(programme_id.clone()),
                        count: Set(count),
                        at: Set(now),
                        ..Default::default()
                    };
                    invitations::Entity::insert(row).exec_without_returning(txn).await?;
                    let invitations = s.invitations_of(txn, &customer_id, &programme_id).await?;
                    Ok(Done::about([customer_id], pb::RecordInvitationsResponse { invitations }))
                })
            })
            .await
    }

    /// The invitations an ambassador sent in a programme.
    pub(super) async fn invitations_of<C: ConnectionTrait>(
        &self,
        db: &C,
        customer_id: &str,
        programme_id: &str,
    ) -> Result<i64> {
        let counts: Vec<i32> = invitations::Entity::find()
            .select_only()
            .column(invitations::Column::Count)
            .filter(invitations::Column::CustomerId.eq(customer_id))
            .filter(invitations::Column::ProgrammeId.eq(programme_id))
            .into_tuple()
            .all(db)
            .await?;
        Ok(counts.into_iter().map(i64::from).sum())
    }
}
