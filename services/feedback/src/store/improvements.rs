//! What the improvement service tells feedback, applied in the sink's transaction: a discovered theme accepted into
//! the taxonomy (or merged into a theme of it), and an improvement shipped — noted on the open and recent cases it
//! answers, whose customers may be surveyed again.
use std::collections::BTreeSet;

use rapport_proto::events::v1::{ImprovementShipped, ThemeAccepted};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::{Result, Store, SurveyCmd, themes::MAX_THEMES};
use crate::{
    domain::{self, DAY_MS, cases},
    entities::{case_messages, cases as case_rows, themes},
    error::FeedbackError,
};

/// Who the notes of shipped improvements are written by.
pub const IMPROVEMENT_AUTHOR: &str = "improvement";
/// The touchpoint of the surveys that follow a shipped improvement.
pub const IMPROVEMENT_TOUCHPOINT: &str = "improvement-shipped";
/// Most cases one shipped improvement notes (the newest first).
const MAX_NOTED: u64 = 10_000;
/// Most customers one shipped improvement has surveyed again.
const MAX_RESURVEYED: usize = 500;
/// Most keywords and examples a theme holds (as PutTheme allows).
const MAX_KEYWORDS: usize = 200;
const MAX_EXAMPLES: usize = 500;

impl Store {
    /// Adds a theme accepted by the improvement service, or adds to the theme it was merged into: keywords and
    /// examples joined to those it has (no duplicates, within the taxonomy's limits). The classifier learns it at
    /// the next `TrainClassifier`.
    pub(super) async fn theme_accepted_in(&self, txn: &DatabaseTransaction, t: &ThemeAccepted, now: i64) -> Result<()> {
        let existing = themes::Entity::find_by_id(t.theme_id.clone()).lock_exclusive().one(txn).await?;
        let (mut keywords, mut examples): (Vec<String>, Vec<String>) = match &existing {
            Some(row) => (serde_json::from_str(&row.keywords)?, serde_json::from_str(&row.examples)?),
            None => {
                if themes::Entity::find().count(txn).await? >= MAX_THEMES {
                    return Err(FeedbackError::TaxonomyFull);
                }
                (Vec::new(), Vec::new())
            }
        };
        let clean = |s: &String| s.trim().chars().take(1_000).collect::<String>();
        for k in t.keywords.iter().map(clean).filter(|k| !k.is_empty()) {
            if keywords.len() < MAX_KEYWORDS && !keywords.contains(&k) {
                keywords.push(k);
            }
        }
        for e in t.examples.iter().map(clean).filter(|e| !e.is_empty()) {
            if examples.len() < MAX_EXAMPLES && !examples.contains(&e) {
                examples.push(e);
            }
        }
        let row = themes::ActiveModel {
            theme_id: Set(t.theme_id.clone()),
            keywords: Set(serde_json::to_string(&keywords)?),
            examples: Set(serde_json::to_string(&examples)?),
            updated_at: Set(now),
        };
        if existing.is_some() {
            themes::Entity::update(row).exec(txn).await?;
        } else {
            themes::Entity::insert(row).exec_without_returning(txn).await?;
        }
        tracing::info!(
            theme = %t.theme_id,
            from = %t.discovered_theme_id,
            merged = existing.is_some(),
            keywords = keywords.len(),
            examples = examples.len(),
            "theme from the improvement service"
        );
        Ok(())
    }

    /// Notes a shipped improvement on the open cases of its themes, on those resolved in its recent days, and on the
    /// cases it names (the newest 10,000); surveys their customers again when asked (the first 500 by id; a customer
    /// surveyed within the waiting time is left alone).
    pub(super) async fn improvement_shipped_in(
        &self,
        txn: &DatabaseTransaction,
        s: &ImprovementShipped,
        now: i64,
    ) -> Result<()> {
        let recent_from = now.saturating_sub(i64::from(s.recent_days.max(0)).saturating_mul(DAY_MS));
        let matching = || {
            let mut which = Condition::any();
            if !s.theme_ids.is_empty() {
                which = which.add(case_rows::Column::Theme.is_in(s.theme_ids.clone()));
            }
            if !s.case_ids.is_empty() {
                which = which.add(case_rows::Column::CaseId.is_in(s.case_ids.clone()));
            }
            let open_or_recent = Condition::any().add(case_rows::Column::State.eq(cases::OPEN)).add(
                Condition::all()
                    .add(case_rows::Column::State.eq(cases::RESOLVED))
                    .add(case_rows::Column::ResolvedAt.gte(recent_from)),
            );
            case_rows::Entity::find()
                .filter(which)
                .filter(open_or_recent)
                .order_by_desc(case_rows::Column::Seq)
                .limit(MAX_NOTED)
        };
        if s.theme_ids.is_empty() && s.case_ids.is_empty() {
            return Ok(());
        }
        // Surveys first, customer by customer in id order (each takes the customer's lock, as an erasure does before
        // locking its cases); then the cases, locked and read again, get the note (it names the improvement, nothing
        // of the customer).
        let mut surveyed = 0;
        if s.resurvey {
            let found = matching().all(txn).await?;
            let customers: BTreeSet<(String, i32)> = found.iter().map(|c| (c.customer_id.clone(), c.channel)).collect();
            let mut seen = BTreeSet::new();
            for (customer, channel) in customers {
                if !seen.insert(customer.clone()) || seen.len() > MAX_RESURVEYED {
                    continue;
                }
                let cmd = SurveyCmd {
                    customer_id: customer,
                    touchpoint: IMPROVEMENT_TOUCHPOINT.into(),
                    channel,
                    wait_days: domain::DEFAULT_WAIT_DAYS,
                    valid_days: domain::DEFAULT_VALID_DAYS,
                    after_case_id: None,
                };
                match self.schedule_in(txn, &cmd, now).await {
                    Ok(_) => surveyed += 1,
                    // Surveyed lately, or erased meanwhile: not asked again now.
                    Err(FeedbackError::SurveyFatigue { .. } | FeedbackError::CustomerErased) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let noted = matching().lock_exclusive().all(txn).await?;
        let text = if s.note.trim().is_empty() {
            format!("improvement shipped: {}", s.title)
        } else {
            format!("improvement shipped: {} — {}", s.title, s.note.trim())
        };
        for case in &noted {
            let message = case_messages::ActiveModel {
                case_id: Set(case.case_id.clone()),
                author: Set(IMPROVEMENT_AUTHOR.into()),
                text: Set(text.clone()),
                created_at: Set(now),
                ..Default::default()
            };
            case_messages::Entity::insert(message).exec_without_returning(txn).await?;
        }
        tracing::info!(
            improvement_id = %s.improvement_id,
            cases_noted = noted.len(),
            surveyed,
            "improvement shipped noted on its cases"
        );
        Ok(())
    }
}
