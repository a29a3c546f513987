//! Themes: discovery runs (one at a time across replicas, under the `improvement.discovery` lease: the texts are
//! read, clustered off the async runtime, and the themes and placements written in one transaction), the themes they
//! leave, and people accepting a discovered theme into feedback's taxonomy or merging it into another theme (each
//! with its event for feedback, in the same transaction).
use std::collections::{BTreeMap, BTreeSet};

use rapport_kit::frame::{Done, Key};
use rapport_proto::{
    events::v1::{ThemeAccepted, event},
    improvement::v1 as pb,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::Expr,
};

use super::{
    Result, Store,
    signals::{SUGGESTION_THEMED, SURVEY_COMMENT},
};
use crate::{
    domain::{
        UNCLASSIFIED,
        discovery::{self, Config, DiscoveryError, Known},
    },
    entities::{discovery_runs, signals, themes as theme_table},
    error::ImprovementError,
    wire,
};

/// Most texts one discovery reads (the newest of its window).
pub const MAX_TEXTS: u64 = 200_000;
/// Taken by every change of themes (a discovery's write, an acceptance, a merge), so each reads what the others
/// committed.
const THEMES_LOCK: &str = "improvement.themes";
/// Representative texts shown per theme.
const SHOWN: usize = 5;

/// A text discovery reads: its signal, the words, the customer and the suggesting agent.
type Text = (i64, Option<String>, Option<String>, Option<String>);

/// What to discover.
#[derive(Debug, Clone)]
pub struct DiscoverCmd {
    /// Texts at or after.
    pub start: i64,
    /// Texts before.
    pub end: i64,
    /// The clustering's settings.
    pub config: Config,
}

/// A discovered theme accepted into feedback's taxonomy.
#[derive(Debug, Clone)]
pub struct AcceptCmd {
    /// The discovered theme.
    pub theme_id: String,
    /// Its id in the taxonomy.
    pub taxonomy_id: String,
    /// Keywords given (empty: its top terms).
    pub keywords: Vec<String>,
    /// Examples given (empty: its shared words of each representative text).
    pub examples: Vec<String>,
}

impl Store {
    /// Discovers themes in the unclassified texts of a window, once per request; one discovery at a time.
    pub async fn discover(&self, key: &Key, cmd: DiscoverCmd) -> Result<pb::DiscoverThemesResponse> {
        // A retry gets its first answer without clustering again.
        if let Some(done) = self.frame.stored::<_, ImprovementError>(key, "DiscoverThemes").await? {
            return Ok(done);
        }
        let _here = self.discovering.lock().await;
        let db = self.db.clone();
        rapport_kit::lease::with_lease(&db, "improvement.discovery", || self.discover_held(key, cmd)).await?
    }

    async fn discover_held(&self, key: &Key, cmd: DiscoverCmd) -> Result<pb::DiscoverThemesResponse> {
        let started = self.now();
        // Unclassified texts (cases and suggestions nobody placed) and low scores' comments, newest first up to the
        // cap.
        let rows: Vec<Text> = signals::Entity::find()
            .select_only()
            .column(signals::Column::Seq)
            .column(signals::Column::Text)
            .column(signals::Column::CustomerId)
            .column(signals::Column::SuggestedBy)
            .filter(
                Condition::any()
                    .add(signals::Column::Theme.eq(UNCLASSIFIED))
                    .add(signals::Column::Origin.eq(SURVEY_COMMENT)),
            )
            .filter(signals::Column::Text.is_not_null())
            .filter(signals::Column::Kind.ne(SUGGESTION_THEMED))
            .filter(signals::Column::OccurredAt.gte(cmd.start))
            .filter(signals::Column::OccurredAt.lt(cmd.end))
            .order_by_desc(signals::Column::Seq)
            .limit(MAX_TEXTS)
            .into_tuple()
            .all(&self.db)
            .await?;
        // Who wrote each text: a word counts towards the vocabulary once per writer, so one customer's own words
        // (a name, an order number) repeated never become a theme's term.
        let mut rows: Vec<(i64, String, String)> = rows
            .into_iter()
            .filter_map(|(s, t, c, by)| t.map(|t| (s, t, c.or(by).unwrap_or_else(|| format!("signal-{s}")))))
            .collect();
        rows.sort_by_key(|r| r.0);
        let known: Vec<Known> = theme_table::Entity::find()
            .filter(theme_table::Column::Kind.eq(wire::DISCOVERED))
            .order_by_asc(theme_table::Column::ThemeId)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|t| Ok(Known { id: t.theme_id, terms: serde_json::from_str(&t.terms)? }))
            .collect::<Result<_>>()?;
        let texts: Vec<String> = rows.iter().map(|r| r.1.clone()).collect();
        let writers: Vec<String> = rows.iter().map(|r| r.2.clone()).collect();
        let config = cmd.config.clone();
        let found = tokio::task::spawn_blocking(move || discovery::discover_written(&texts, &writers, &known, &config))
            .await
            .map_err(|e| ImprovementError::Discovery(e.to_string()))?
            .map_err(|e| match e {
                DiscoveryError::TooFewTexts { texts, k } => ImprovementError::TooFewTexts { texts, k },
                e => ImprovementError::Discovery(e.to_string()),
            })?;
        let seqs: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let window = (cmd.start, cmd.end);
        self.frame
            .once(self, key, "DiscoverThemes", move |s, txn, now| {
                Box::pin(
                    async move { s.record_discovery(txn, &found, &seqs, window, started, now).await.map(Done::reply) },
                )
            })
            .await
    }

    /// Writes a discovery: its run, its themes (kept, new, and earlier ones it did not find again, retired), and
    /// where it put each text.
    async fn record_discovery(
        &self,
        txn: &DatabaseTransaction,
        d: &discovery::Discovery,
        seqs: &[i64],
        window: (i64, i64),
        started: i64,
        now: i64,
    ) -> Result<pb::DiscoverThemesResponse> {
        // Themes change one writer at a time (a discovery, an acceptance, a merge): read here, under the lock, they are
        // what the others committed.
        rapport_kit::lease::lock_in_txn(txn, THEMES_LOCK).await?;
        let existing = self.theme_rows(txn).await?;
        // A new id that a theme of feedback's taxonomy already has is numbered on.
        let mut d = d.clone();
        for i in 0..d.themes.len() {
            if d.themes[i].known || existing.get(&d.themes[i].id).is_none_or(|t| t.kind == wire::DISCOVERED) {
                continue;
            }
            let base = d.themes[i].id.clone();
            let mut n = 2;
            while existing.contains_key(&format!("{base}-{n}"))
                || d.themes.iter().any(|t| t.id == format!("{base}-{n}"))
            {
                n += 1;
            }
            d.themes[i].id = format!("{base}-{n}");
        }
        let d = &d;
        let (mut created, mut kept) = (Vec::new(), Vec::new());
        let found_ids: BTreeSet<&str> = d.themes.iter().map(|t| t.id.as_str()).collect();
        let retired: Vec<String> = existing
            .values()
            .filter(|t| {
                t.kind == wire::DISCOVERED && t.status == wire::ACTIVE && !found_ids.contains(t.theme_id.as_str())
            })
            .map(|t| t.theme_id.clone())
            .collect();
        let run = discovery_runs::ActiveModel {
            texts: Set(i32::try_from(seqs.len()).unwrap_or(i32::MAX)),
            empty_texts: Set(i32::try_from(d.labels.iter().filter(|l| l.is_none()).count()).unwrap_or(0)),
            k: Set(i32::try_from(d.k).unwrap_or(0)),
            silhouette: Set(d.silhouette),
            created: Set("[]".into()),
            kept: Set("[]".into()),
            retired: Set(serde_json::to_string(&retired)?),
            window_start: Set(window.0),
            window_end: Set(window.1),
            ran_at: Set(now),
            duration_ms: Set(now - started),
            ..Default::default()
        };
        let run_id = discovery_runs::Entity::insert(run).exec(txn).await?.last_insert_id;
        for t in &d.themes {
            let representatives: Vec<i64> = t.representatives.iter().map(|i| seqs[*i]).collect();
            let mut row = theme_table::ActiveModel {
                theme_id: Set(t.id.clone()),
                kind: Set(wire::DISCOVERED.into()),
                status: Set(wire::ACTIVE.into()),
                terms: Set(serde_json::to_string(&t.terms)?),
                top_terms: Set(serde_json::to_string(&t.top_terms)?),
                representatives: Set(serde_json::to_string(&representatives)?),
                size: Set(i32::try_from(t.size).unwrap_or(i32::MAX)),
                accepted_as: Set(None),
                merged_into: Set(None),
                first_run: Set(run_id),
                last_run: Set(run_id),
                created_at: Set(now),
                updated_at: Set(now),
            };
            match existing.get(&t.id) {
                Some(old) => {
                    // Found again: a retired theme is active again; an accepted or merged one stays settled.
                    if old.status != wire::RETIRED {
                        row.status = Set(old.status.clone());
                    }
                    row.accepted_as = Set(old.accepted_as.clone());
                    row.merged_into = Set(old.merged_into.clone());
                    row.first_run = Set(old.first_run);
                    row.created_at = Set(old.created_at);
                    theme_table::Entity::update(row).exec(txn).await?;
                    kept.push(t.id.clone());
                }
                None => {
                    theme_table::Entity::insert(row).exec_without_returning(txn).await?;
                    created.push(t.id.clone());
                }
            }
        }
        if !retired.is_empty() {
            theme_table::Entity::update_many()
                .col_expr(theme_table::Column::Status, Expr::value(wire::RETIRED))
                .col_expr(theme_table::Column::Size, Expr::value(0))
                .col_expr(theme_table::Column::UpdatedAt, Expr::value(now))
                .filter(theme_table::Column::ThemeId.is_in(retired.clone()))
                .filter(theme_table::Column::Status.eq(wire::ACTIVE))
                .exec(txn)
                .await?;
        }
        // Where each text went, a theme at a time (texts with no known word belong to none).
        let mut placed: BTreeMap<Option<usize>, Vec<i64>> = BTreeMap::new();
        for (seq, label) in seqs.iter().zip(&d.labels) {
            placed.entry(*label).or_default().push(*seq);
        }
        for (label, members) in placed {
            let theme = label.map(|l| d.themes[l].id.clone());
            for chunk in members.chunks(1_000) {
                signals::Entity::update_many()
                    .col_expr(signals::Column::Discovered, Expr::value(theme.clone()))
                    .filter(signals::Column::Seq.is_in(chunk.to_vec()))
                    .exec(txn)
                    .await?;
            }
        }
        discovery_runs::Entity::update_many()
            .col_expr(discovery_runs::Column::Created, Expr::value(serde_json::to_string(&created)?))
            .col_expr(discovery_runs::Column::Kept, Expr::value(serde_json::to_string(&kept)?))
            .filter(discovery_runs::Column::RunId.eq(run_id))
            .exec(txn)
            .await?;
        tracing::info!(
            run_id,
            texts = seqs.len(),
            k = d.k,
            silhouette = d.silhouette,
            created = created.len(),
            kept = kept.len(),
            retired = retired.len(),
            "themes discovered"
        );
        let run = discovery_runs::Entity::find_by_id(run_id)
            .one(txn)
            .await?
            .ok_or(ImprovementError::Discovery("run vanished".into()))?;
        let rows = self.theme_rows(txn).await?;
        // The reply is stored for retries: it names the themes without customers' texts (ListThemes shows them).
        let themes = d
            .themes
            .iter()
            .filter_map(|t| rows.get(&t.id))
            .filter(|row| row.status == wire::ACTIVE)
            .map(|row| wire::theme_pb(row, Vec::new()))
            .collect::<Result<_>>()?;
        Ok(pb::DiscoverThemesResponse { run: Some(wire::run_pb(&run)?), themes })
    }

    /// A theme as the API shows it, with the texts of its representatives that are still there.
    pub(super) async fn theme_pb_in<C: sea_orm::ConnectionTrait>(
        &self,
        db: &C,
        t: &theme_table::Model,
    ) -> Result<pb::Theme> {
        let reps: Vec<i64> = serde_json::from_str(&t.representatives)?;
        let texts: Vec<(i64, Option<String>)> = if reps.is_empty() {
            Vec::new()
        } else {
            signals::Entity::find()
                .select_only()
                .column(signals::Column::Seq)
                .column(signals::Column::Text)
                .filter(signals::Column::Seq.is_in(reps.clone()))
                .into_tuple()
                .all(db)
                .await?
        };
        let by_seq: BTreeMap<i64, String> = texts.into_iter().filter_map(|(s, t)| t.map(|t| (s, t))).collect();
        let shown: Vec<String> = reps.iter().filter_map(|s| by_seq.get(s).cloned()).take(SHOWN).collect();
        wire::theme_pb(t, shown)
    }

    /// Every theme (active ones, or all), taxonomy themes first, with the last run.
    pub async fn themes(&self, include_settled: bool) -> Result<pb::ListThemesResponse> {
        let mut rows: Vec<theme_table::Model> = self.theme_rows(&self.db).await?.into_values().collect();
        rows.retain(|t| include_settled || t.status == wire::ACTIVE);
        rows.sort_by(|a, b| (a.kind != wire::TAXONOMY, &a.theme_id).cmp(&(b.kind != wire::TAXONOMY, &b.theme_id)));
        let mut themes = Vec::with_capacity(rows.len());
        for t in &rows {
            themes.push(self.theme_pb_in(&self.db, t).await?);
        }
        let last = discovery_runs::Entity::find().order_by_desc(discovery_runs::Column::RunId).one(&self.db).await?;
        Ok(pb::ListThemesResponse { themes, last_run: last.as_ref().map(wire::run_pb).transpose()? })
    }

    /// The discovered theme `id`, its row locked, not settled yet.
    async fn open_discovered(&self, txn: &DatabaseTransaction, id: &str) -> Result<theme_table::Model> {
        let t = theme_table::Entity::find_by_id(id.to_string())
            .lock_exclusive()
            .one(txn)
            .await?
            .ok_or_else(|| ImprovementError::ThemeNotFound(id.into()))?;
        if t.kind != wire::DISCOVERED {
            return Err(ImprovementError::NotDiscovered(id.into()));
        }
        match t.status.as_str() {
            wire::ACCEPTED => Err(ImprovementError::ThemeSettled(id.into(), "accepted")),
            wire::MERGED => Err(ImprovementError::ThemeSettled(id.into(), "merged")),
            _ => Ok(t),
        }
    }

    /// Keywords (its top terms) and examples (each representative text reduced to the words it shares with the
    /// theme's top terms — words many customers wrote, counted once per writer — so no customer's own words leave)
    /// of a discovered theme, for feedback.
    async fn lesson_of(&self, txn: &DatabaseTransaction, t: &theme_table::Model) -> Result<(Vec<String>, Vec<String>)> {
        let top: Vec<(String, f64)> = serde_json::from_str(&t.top_terms)?;
        let terms: Vec<(String, f64)> = serde_json::from_str(&t.terms)?;
        let keywords: Vec<String> = top.iter().map(|w| w.0.clone()).collect();
        let shared: BTreeSet<String> = terms.iter().take(discovery::TOP_TERMS).map(|w| w.0.clone()).collect();
        let reps: Vec<i64> = serde_json::from_str(&t.representatives)?;
        let texts: Vec<Option<String>> = signals::Entity::find()
            .select_only()
            .column(signals::Column::Text)
            .filter(signals::Column::Seq.is_in(reps))
            .into_tuple()
            .all(txn)
            .await?;
        let mut examples: Vec<String> = texts
            .into_iter()
            .flatten()
            .map(|text| discovery::shared_words(&text, &shared))
            .filter(|e| e.split(' ').count() >= 2)
            .collect();
        examples.sort();
        examples.dedup();
        Ok((keywords, examples))
    }

    /// Accepts a discovered theme into feedback's taxonomy, once per request.
    pub async fn accept(&self, key: &Key, cmd: AcceptCmd) -> Result<pb::AcceptThemeResponse> {
        self.frame
            .once(self, key, "AcceptTheme", move |s, txn, now| {
                Box::pin(async move {
                    rapport_kit::lease::lock_in_txn(txn, THEMES_LOCK).await?;
                    let t = s.open_discovered(txn, &cmd.theme_id).await?;
                    if theme_table::Entity::find_by_id(cmd.taxonomy_id.clone()).one(txn).await?.is_some() {
                        return Err(ImprovementError::ThemeExists);
                    }
                    let (keywords, examples) = s.lesson_of(txn, &t).await?;
                    let keywords = if cmd.keywords.is_empty() { keywords } else { cmd.keywords.clone() };
                    let examples = if cmd.examples.is_empty() { examples } else { cmd.examples.clone() };
                    // A plain insert: a concurrent acceptance as the same id meets the key (THEME_EXISTS).
                    theme_table::Entity::insert(wire::taxonomy_row(&cmd.taxonomy_id, now))
                        .exec_without_returning(txn)
                        .await?;
                    s.settle(txn, &cmd.theme_id, wire::ACCEPTED, &cmd.taxonomy_id, now).await?;
                    let ev = event::Payload::ThemeAccepted(ThemeAccepted {
                        theme_id: cmd.taxonomy_id.clone(),
                        discovered_theme_id: cmd.theme_id.clone(),
                        keywords,
                        examples,
                        merge: false,
                    });
                    s.outbox.publish(txn, &format!("theme:{}", cmd.taxonomy_id), ev, now).await?;
                    tracing::info!(theme = %cmd.theme_id, taxonomy_id = %cmd.taxonomy_id, "discovered theme accepted");
                    let row = theme_table::Entity::find_by_id(cmd.theme_id.clone())
                        .one(txn)
                        .await?
                        .ok_or_else(|| ImprovementError::ThemeNotFound(cmd.theme_id.clone()))?;
                    Ok(Done::reply(pb::AcceptThemeResponse { theme: Some(wire::theme_pb(&row, Vec::new())?) })
                        .on("theme", &cmd.theme_id))
                })
            })
            .await
    }

    /// Merges a discovered theme into another, once per request; feedback learns from it when the other is
    /// feedback's.
    pub async fn merge(&self, key: &Key, theme_id: String, into: String) -> Result<pb::MergeThemeResponse> {
        self.frame
            .once(self, key, "MergeTheme", move |s, txn, now| {
                Box::pin(async move {
                    rapport_kit::lease::lock_in_txn(txn, THEMES_LOCK).await?;
                    let t = s.open_discovered(txn, &theme_id).await?;
                    let target = theme_table::Entity::find_by_id(into.clone())
                        .one(txn)
                        .await?
                        .ok_or_else(|| ImprovementError::ThemeNotFound(into.clone()))?;
                    if target.theme_id == t.theme_id || target.status != wire::ACTIVE {
                        return Err(ImprovementError::ThemeSettled(into.clone(), "not active"));
                    }
                    s.settle(txn, &theme_id, wire::MERGED, &into, now).await?;
                    if target.kind == wire::TAXONOMY {
                        let (keywords, examples) = s.lesson_of(txn, &t).await?;
                        let ev = event::Payload::ThemeAccepted(ThemeAccepted {
                            theme_id: into.clone(),
                            discovered_theme_id: theme_id.clone(),
                            keywords,
                            examples,
                            merge: true,
                        });
                        s.outbox.publish(txn, &format!("theme:{into}"), ev, now).await?;
                    }
                    tracing::info!(theme = %theme_id, into = %into, "discovered theme merged");
                    let row = theme_table::Entity::find_by_id(theme_id.clone())
                        .one(txn)
                        .await?
                        .ok_or_else(|| ImprovementError::ThemeNotFound(theme_id.clone()))?;
                    Ok(Done::reply(pb::MergeThemeResponse { theme: Some(wire::theme_pb(&row, Vec::new())?) })
                        .on("theme", &theme_id))
                })
            })
            .await
    }

    async fn settle(&self, txn: &DatabaseTransaction, id: &str, status: &str, into: &str, now: i64) -> Result<()> {
        let column =
            if status == wire::ACCEPTED { theme_table::Column::AcceptedAs } else { theme_table::Column::MergedInto };
        theme_table::Entity::update_many()
            .col_expr(theme_table::Column::Status, Expr::value(status))
            .col_expr(column, Expr::value(into))
            .col_expr(theme_table::Column::UpdatedAt, Expr::value(now))
            .filter(theme_table::Column::ThemeId.eq(id))
            .exec(txn)
            .await?;
        Ok(())
    }

    /// Unclassified texts that came since the last discovery (the worker runs one when there are enough).
    pub async fn texts_since_last_run(&self) -> Result<u64> {
        use sea_orm::PaginatorTrait;
        let last = discovery_runs::Entity::find().order_by_desc(discovery_runs::Column::RunId).one(&self.db).await?;
        let mut q = signals::Entity::find()
            .filter(
                Condition::any()
                    .add(signals::Column::Theme.eq(UNCLASSIFIED))
                    .add(signals::Column::Origin.eq(SURVEY_COMMENT)),
            )
            .filter(signals::Column::Text.is_not_null());
        if let Some(r) = last {
            q = q.filter(signals::Column::ReceivedAt.gt(r.ran_at));
        }
        Ok(q.count(&self.db).await?)
    }
}
