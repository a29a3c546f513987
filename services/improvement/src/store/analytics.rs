//! Reading the figures of themes: the signals of a window (each counted under its effective theme), the NPS answers
//! of the window and the known spend of the customers, handed to the pure figures of `domain::analytics`.
use std::collections::{BTreeMap, HashMap};

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};

use super::{Result, Store, signals::SURVEY_COMMENT};
use crate::{
    domain::{
        UNCLASSIFIED,
        analytics::{self, Answer, Figures, SignalFact, Weeks},
        priority,
    },
    entities::{answers, customers, signals},
    wire,
};

/// A theme's figures.
#[derive(Debug, Clone)]
pub struct ThemeFigures {
    /// The theme.
    pub theme_id: String,
    /// Its figures.
    pub figures: Figures,
}

type SignalRow = (Option<String>, String, Option<String>, String, String, i64, String);

impl Store {
    /// Every signal of the window, by the theme it counts under.
    async fn facts_by_theme<C: ConnectionTrait>(
        &self,
        db: &C,
        weeks: Weeks,
    ) -> Result<BTreeMap<String, Vec<SignalFact>>> {
        let settled = self.settlements(db).await?;
        let rows: Vec<SignalRow> = signals::Entity::find()
            .select_only()
            .column(signals::Column::CustomerId)
            .column(signals::Column::Theme)
            .column(signals::Column::Discovered)
            .column(signals::Column::Severity)
            .column(signals::Column::Tier)
            .column(signals::Column::OccurredAt)
            .column(signals::Column::Origin)
            .filter(signals::Column::OccurredAt.gte(weeks.start()))
            .filter(signals::Column::OccurredAt.lt(weeks.end))
            .into_tuple()
            .all(db)
            .await?;
        let mut out: BTreeMap<String, Vec<SignalFact>> = BTreeMap::new();
        for (customer, theme, discovered, severity, tier, at, origin) in rows {
            let effective = settled.effective(&theme, discovered.as_deref(), origin == SURVEY_COMMENT).to_string();
            out.entry(effective).or_default().push(SignalFact { at, customer, severity, tier });
        }
        Ok(out)
    }

    /// The NPS answers of the window.
    pub(super) async fn answers_in<C: ConnectionTrait>(&self, db: &C, from: i64, to: i64) -> Result<Vec<Answer>> {
        let rows: Vec<(String, i32, i64)> = answers::Entity::find()
            .select_only()
            .column(answers::Column::CustomerId)
            .column(answers::Column::Score)
            .column(answers::Column::AnsweredAt)
            .filter(answers::Column::AnsweredAt.gte(from))
            .filter(answers::Column::AnsweredAt.lt(to))
            .into_tuple()
            .all(db)
            .await?;
        Ok(rows.into_iter().map(|(customer, score, at)| Answer { customer, score, at }).collect())
    }

    /// The known 365-day spend of `customers`.
    async fn spend_of<C: ConnectionTrait>(&self, db: &C, customers: Vec<String>) -> Result<HashMap<String, f64>> {
        let mut out = HashMap::new();
        for chunk in customers.chunks(1_000) {
            let rows: Vec<(String, Option<f64>)> = customers::Entity::find()
                .select_only()
                .column(customers::Column::CustomerId)
                .column(customers::Column::Spend365d)
                .filter(customers::Column::CustomerId.is_in(chunk.to_vec()))
                .filter(customers::Column::Spend365d.is_not_null())
                .into_tuple()
                .all(db)
                .await?;
            out.extend(rows.into_iter().filter_map(|(c, v)| v.map(|v| (c, v))));
        }
        Ok(out)
    }

    /// The figures of `themes` (empty: every active theme with signals in the window) over `weeks`, largest volume
    /// first.
    pub async fn analytics(&self, themes: &[String], weeks: Weeks) -> Result<Vec<ThemeFigures>> {
        let mut by_theme = self.facts_by_theme(&self.db, weeks).await?;
        let rows = self.theme_rows(&self.db).await?;
        let wanted: Vec<String> = if themes.is_empty() {
            by_theme
                .keys()
                .filter(|t| *t != UNCLASSIFIED && rows.get(*t).is_some_and(|r| r.status == wire::ACTIVE))
                .cloned()
                .collect()
        } else {
            // A theme accepted or merged counts under the one it became.
            let settled = self.settlements(&self.db).await?;
            let mut resolved: Vec<String> = themes.iter().map(|t| settled.resolve(t).to_string()).collect();
            resolved.sort();
            resolved.dedup();
            resolved
        };
        let answers = self.answers_in(&self.db, weeks.start(), weeks.end).await?;
        let mut customers: Vec<String> = wanted
            .iter()
            .filter_map(|t| by_theme.get(t))
            .flat_map(|f| f.iter().filter_map(|s| s.customer.clone()))
            .collect();
        customers.sort();
        customers.dedup();
        let spend = self.spend_of(&self.db, customers).await?;
        let mut out: Vec<ThemeFigures> = wanted
            .into_iter()
            .map(|t| {
                let facts = by_theme.remove(&t).unwrap_or_default();
                let figures = analytics::figures(&facts, &answers, &spend, weeks, self.settings.high_value);
                ThemeFigures { theme_id: t, figures }
            })
            .collect();
        out.sort_by(|a, b| b.figures.volume.cmp(&a.figures.volume).then(a.theme_id.cmp(&b.theme_id)));
        Ok(out)
    }

    /// The weeks reach counts: the last [`priority::REACH_WEEKS`], up to now included.
    fn reach_weeks(now: i64) -> Weeks {
        Weeks { end: now + 1, weeks: priority::REACH_WEEKS }
    }

    /// The signals of the last [`priority::REACH_WEEKS`] weeks by theme, for the reach of improvements.
    pub(super) async fn reach_facts<C: ConnectionTrait>(
        &self,
        db: &C,
        now: i64,
    ) -> Result<BTreeMap<String, Vec<SignalFact>>> {
        self.facts_by_theme(db, Self::reach_weeks(now)).await
    }

    /// What an improvement addressing `themes` reaches: its score's customer-side parts (reach, mean severity, VIP
    /// share) from `facts` (of [`Store::reach_facts`]).
    pub(super) fn reach_in(&self, facts: &BTreeMap<String, Vec<SignalFact>>, themes: &[String], now: i64) -> Figures {
        let weeks = Self::reach_weeks(now);
        let mut all = Vec::new();
        for t in themes {
            all.extend(facts.get(t).cloned().unwrap_or_default());
        }
        analytics::figures(&all, &[], &HashMap::new(), weeks, self.settings.high_value)
    }
}
