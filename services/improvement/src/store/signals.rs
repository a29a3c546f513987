//! Signals in: feedback's theme signals and NPS answers, applied in the sink's transaction (which has de-duplicated
//! them by event id and dropped those about erased customers), and agents' suggestions, once per request.
use rapport_kit::frame::{Done, Key};
use rapport_proto::{
    events::v1::{Event, SurveyAnswered, ThemeSignal},
    improvement::v1 as pb,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, sea_query::OnConflict,
};

use super::{Result, Store};
use crate::{
    domain::UNCLASSIFIED,
    entities::{answers, customers, signals, themes as theme_table},
    error::ImprovementError,
    wire,
};

/// Where signals come from, as stored.
pub const CASE: &str = "case";
/// A low score's comment.
pub const SURVEY_COMMENT: &str = "survey_comment";
/// An agent's suggestion.
pub const SUGGESTION: &str = "suggestion";
/// The kind of a suggestion whose theme a person chose (discovery leaves it where it was put).
pub const SUGGESTION_THEMED: &str = "suggestion_themed";

/// An agent's suggestion.
#[derive(Debug, Clone)]
pub struct SuggestionCmd {
    /// What to improve.
    pub text: String,
    /// The theme it is about, if any.
    pub theme_id: Option<String>,
    /// Who suggested it.
    pub suggested_by: String,
}

impl Store {
    /// Records a theme signal of feedback inside the sink's transaction, under the customer's lock (an erasure
    /// committed meanwhile is not written around), and marks the customer's spend as wanted.
    pub(crate) async fn signal_in(
        &self,
        txn: &DatabaseTransaction,
        e: &Event,
        t: &ThemeSignal,
        now: i64,
    ) -> Result<()> {
        self.lock_customer(txn, &e.customer_id).await?;
        if rapport_outbox::sink::is_erased(txn, &self.pseudonyms, &e.customer_id).await? {
            return Ok(());
        }
        let at = e.occurred_at.as_ref().map_or(now, rapport_kit::clock::millis);
        let origin = if t.origin == SURVEY_COMMENT { SURVEY_COMMENT } else { CASE };
        let theme = if t.theme.is_empty() { UNCLASSIFIED.to_string() } else { t.theme.clone() };
        let row = signals::ActiveModel {
            signal_id: Set(e.event_id.clone()),
            origin: Set(origin.into()),
            reference: Set(t.reference.clone()),
            customer_id: Set(Some(e.customer_id.clone())),
            theme: Set(theme.clone()),
            discovered: Set(None),
            text: Set((!t.text.trim().is_empty()).then(|| t.text.clone())),
            severity: Set(if t.severity.is_empty() { "medium".into() } else { t.severity.clone() }),
            channel: Set(t.channel),
            nps: Set(t.nps),
            tier: Set(if t.tier.is_empty() { "unknown".into() } else { t.tier.clone() }),
            segments: Set(serde_json::to_string(&t.segments)?),
            kind: Set(t.kind.clone()),
            occurred_at: Set(at),
            suggested_by: Set(None),
            received_at: Set(now),
            ..Default::default()
        };
        signals::Entity::insert(row)
            .on_conflict_do_nothing_on([signals::Column::SignalId])
            .exec_without_returning(txn)
            .await?;
        if theme != UNCLASSIFIED {
            self.taxonomy_theme_in(txn, &theme, now).await?;
        }
        let wanted = customers::ActiveModel {
            customer_id: Set(e.customer_id.clone()),
            spend_365d: Set(None),
            valued_at: Set(None),
            wanted_at: Set(now),
        };
        customers::Entity::insert(wanted)
            .on_conflict(
                OnConflict::column(customers::Column::CustomerId).update_column(customers::Column::WantedAt).to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
        self.valuation.notify_one();
        Ok(())
    }

    /// Records an NPS answer of feedback inside the sink's transaction.
    pub(crate) async fn answer_in(
        &self,
        txn: &DatabaseTransaction,
        e: &Event,
        a: &SurveyAnswered,
        now: i64,
    ) -> Result<()> {
        self.lock_customer(txn, &e.customer_id).await?;
        if rapport_outbox::sink::is_erased(txn, &self.pseudonyms, &e.customer_id).await? {
            return Ok(());
        }
        let row = answers::ActiveModel {
            answer_id: Set(e.event_id.clone()),
            customer_id: Set(e.customer_id.clone()),
            score: Set(a.score),
            answered_at: Set(e.occurred_at.as_ref().map_or(now, rapport_kit::clock::millis)),
        };
        answers::Entity::insert(row)
            .on_conflict_do_nothing_on([answers::Column::AnswerId])
            .exec_without_returning(txn)
            .await?;
        Ok(())
    }

    /// Makes sure a theme of feedback's taxonomy that a signal names is known.
    pub(super) async fn taxonomy_theme_in<C: ConnectionTrait>(&self, txn: &C, theme: &str, now: i64) -> Result<()> {
        theme_table::Entity::insert(wire::taxonomy_row(theme, now))
            .on_conflict_do_nothing_on([theme_table::Column::ThemeId])
            .exec_without_returning(txn)
            .await?;
        Ok(())
    }

    /// Records an agent's suggestion, once per request.
    pub async fn suggest(&self, key: &Key, cmd: SuggestionCmd) -> Result<pb::SubmitSuggestionResponse> {
        self.frame
            .once(self, key, "SubmitSuggestion", move |s, txn, now| {
                Box::pin(async move {
                    let (theme, discovered, kind) = match &cmd.theme_id {
                        None => (UNCLASSIFIED.to_string(), None, SUGGESTION),
                        Some(t) => {
                            let row = theme_table::Entity::find_by_id(t.clone())
                                .one(txn)
                                .await?
                                .ok_or_else(|| ImprovementError::ThemeNotFound(t.clone()))?;
                            if row.kind == wire::DISCOVERED {
                                (UNCLASSIFIED.to_string(), Some(t.clone()), SUGGESTION_THEMED)
                            } else {
                                (t.clone(), None, SUGGESTION_THEMED)
                            }
                        }
                    };
                    let id = format!("sug-{}", uuid::Uuid::new_v4().simple());
                    let row = signals::ActiveModel {
                        signal_id: Set(id.clone()),
                        origin: Set(SUGGESTION.into()),
                        reference: Set(id.clone()),
                        customer_id: Set(None),
                        theme: Set(theme),
                        discovered: Set(discovered),
                        text: Set(Some(cmd.text.clone())),
                        severity: Set("medium".into()),
                        channel: Set(0),
                        nps: Set(None),
                        tier: Set("unknown".into()),
                        segments: Set("[]".into()),
                        kind: Set(kind.into()),
                        occurred_at: Set(now),
                        suggested_by: Set(Some(cmd.suggested_by.clone())),
                        received_at: Set(now),
                        ..Default::default()
                    };
                    signals::Entity::insert(row).exec_without_returning(txn).await?;
                    let stored = signals::Entity::find()
                        .filter(signals::Column::SignalId.eq(id.as_str()))
                        .one(txn)
                        .await?
                        .ok_or_else(|| ImprovementError::ThemeNotFound(id.clone()))?;
                    let settled = s.settlements(txn).await?;
                    tracing::info!(signal_id = %id, "suggestion recorded");
                    Ok(Done::reply(pb::SubmitSuggestionResponse { signal: Some(wire::signal_pb(&stored, &settled)) }))
                })
            })
            .await
    }

    /// A page of the signals counting under `theme`, newest first, before the cursor `before`.
    pub async fn signals(
        &self,
        theme: &str,
        before: Option<i64>,
        limit: u64,
    ) -> Result<(Vec<pb::Signal>, Option<i64>)> {
        let settled = self.settlements(&self.db).await?;
        let mut q = signals::Entity::find()
            .filter(Self::counting_under(&settled.members_of(settled.resolve(theme))))
            .order_by_desc(signals::Column::Seq)
            .limit(limit + 1);
        if let Some(b) = before {
            q = q.filter(signals::Column::Seq.lt(b));
        }
        let (page, next) = rapport_kit::page::split(q.all(&self.db).await?, limit, |r| r.seq);
        Ok((page.iter().map(|r| wire::signal_pb(r, &settled)).collect(), next))
    }

    /// The condition of signals counting under any of `themes` (a theme and those settled into it), as
    /// `Settlements::effective` counts them: by the discovered theme for unclassified texts and placed comments, by
    /// feedback's theme otherwise.
    pub(super) fn counting_under(themes: &[String]) -> Condition {
        let by_discovered = Condition::any()
            .add(signals::Column::Theme.eq(UNCLASSIFIED))
            .add(signals::Column::Origin.eq(SURVEY_COMMENT));
        Condition::any()
            .add(
                Condition::all()
                    .add(signals::Column::Theme.ne(UNCLASSIFIED))
                    .add(signals::Column::Theme.is_in(themes.to_vec()))
                    .add(
                        Condition::any()
                            .add(signals::Column::Discovered.is_null())
                            .add(signals::Column::Origin.ne(SURVEY_COMMENT)),
                    ),
            )
            .add(Condition::all().add(by_discovered).add(signals::Column::Discovered.is_in(themes.to_vec())))
    }
}
