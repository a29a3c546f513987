//! The theme taxonomy: themes as edited, trained versions (a snapshot each), and the classifier of the active
//! version. Every replica reads the active version from the database and trains its own copy when it changes, so
//! all replicas classify alike without shipping a model around.
use std::sync::Arc;

use rapport_kit::frame::{Done, Key};
use rapport_proto::feedback::v1 as pb;
use sea_orm::{ActiveValue::Set, EntityTrait, PaginatorTrait, QueryOrder, QuerySelect, sea_query::OnConflict};

use super::{Result, Store};
use crate::{
    domain::themes::{Classification, Classifier, Theme, ThemeError},
    entities::{taxonomy_versions, themes},
    error::FeedbackError,
};

/// The most themes a taxonomy holds.
pub const MAX_THEMES: u64 = 50;

/// The classifier of one taxonomy version.
pub(super) type Active = Option<(i64, Arc<Classifier>)>;

fn theme_pb(t: &Theme) -> pb::Theme {
    pb::Theme { theme_id: t.id.clone(), keywords: t.keywords.clone(), examples: t.examples.clone() }
}

fn theme_of(row: &themes::Model) -> Result<Theme> {
    Ok(Theme {
        id: row.theme_id.clone(),
        keywords: serde_json::from_str(&row.keywords)?,
        examples: serde_json::from_str(&row.examples)?,
    })
}

async fn train(themes: Vec<Theme>) -> Result<Classifier> {
    tokio::task::spawn_blocking(move || Classifier::train(&themes))
        .await
        .map_err(|e| FeedbackError::Task(e.to_string()))?
        .map_err(|e| match e {
            ThemeError::TooFewThemes => FeedbackError::TaxonomyTooSmall,
            ThemeError::Model(m) => FeedbackError::Task(m),
        })
}

impl Store {
    /// The classifier of the active taxonomy version, trained again when another replica made a new version.
    pub async fn classifier(&self) -> Result<(i64, Arc<Classifier>)> {
        let latest: Option<i64> = taxonomy_versions::Entity::find()
            .select_only()
            .column(taxonomy_versions::Column::Version)
            .order_by_desc(taxonomy_versions::Column::Version)
            .limit(1)
            .into_tuple()
            .one(&self.db)
            .await?;
        let latest = latest.ok_or(FeedbackError::TaxonomyTooSmall)?;
        if let Some((v, c)) = self.classifier.read().await.as_ref()
            && *v == latest
        {
            return Ok((*v, c.clone()));
        }
        // One training at a time per replica: concurrent requests after a new version wait for it.
        let _training = self.training.lock().await;
        if let Some((v, c)) = self.classifier.read().await.as_ref()
            && *v == latest
        {
            return Ok((*v, c.clone()));
        }
        let row = taxonomy_versions::Entity::find_by_id(latest)
            .one(&self.db)
            .await?
            .ok_or(FeedbackError::TaxonomyTooSmall)?;
        let themes: Vec<Theme> = serde_json::from_str(&row.themes)?;
        let classifier = Arc::new(train(themes).await?);
        let mut slot = self.classifier.write().await;
        // Another task may have loaded a newer one meanwhile: keep the newest.
        if slot.as_ref().is_none_or(|(v, _)| *v < latest) {
            *slot = Some((latest, classifier.clone()));
        }
        tracing::info!(taxonomy_version = latest, "theme classifier loaded");
        Ok((latest, classifier))
    }

    /// Classifies `text` with the active version.
    pub async fn classify(&self, text: &str) -> Result<(i64, Classification)> {
        let (version, c) = self.classifier().await?;
        Ok((version, c.classify(text)))
    }

    /// Adds or replaces a theme.
    pub async fn put_theme(&self, key: &Key, theme: Theme) -> Result<pb::PutThemeResponse> {
        self.frame
            .once(self, key, "PutTheme", move |_, txn, now| {
                Box::pin(async move {
                    let known = themes::Entity::find_by_id(theme.id.clone()).one(txn).await?.is_some();
                    if !known && themes::Entity::find().count(txn).await? >= MAX_THEMES {
                        return Err(FeedbackError::TaxonomyFull);
                    }
                    let row = themes::ActiveModel {
                        theme_id: Set(theme.id.clone()),
                        keywords: Set(serde_json::to_string(&theme.keywords)?),
                        examples: Set(serde_json::to_string(&theme.examples)?),
                        updated_at: Set(now),
                    };
                    themes::Entity::insert(row)
                        .on_conflict(
                            OnConflict::column(themes::Column::ThemeId)
                                .update_columns([
                                    themes::Column::Keywords,
                                    themes::Column::Examples,
                                    themes::Column::UpdatedAt,
                                ])
                                .to_owned(),
                        )
                        .exec_without_returning(txn)
                        .await?;
                    tracing::info!(theme = %theme.id, examples = theme.examples.len(), "theme saved");
                    Ok(Done::reply(pb::PutThemeResponse { theme: Some(theme_pb(&theme)) }))
                })
            })
            .await
    }

    /// The taxonomy as edited, with the active version and whether it is behind the edits.
    pub async fn themes(&self) -> Result<pb::ListThemesResponse> {
        let rows = themes::Entity::find().order_by_asc(themes::Column::ThemeId).all(&self.db).await?;
        let edited: Vec<Theme> = rows.iter().map(theme_of).collect::<Result<_>>()?;
        let active =
            taxonomy_versions::Entity::find().order_by_desc(taxonomy_versions::Column::Version).one(&self.db).await?;
        let (version, retrain_needed) = match active {
            Some(a) => {
                let mut trained: Vec<Theme> = serde_json::from_str(&a.themes)?;
                trained.sort_by(|x, y| x.id.cmp(&y.id));
                (a.version, trained != edited)
            }
            None => (0, true),
        };
        Ok(pb::ListThemesResponse {
            themes: edited.iter().map(theme_pb).collect(),
            taxonomy_version: version,
            retrain_needed,
        })
    }

    /// Trains on the taxonomy as edited and makes it the active version.
    pub async fn train_classifier(&self, key: &Key) -> Result<pb::TrainClassifierResponse> {
        // Read and trained before the transaction (training holds no lock), only to refuse a taxonomy it cannot
        // learn; the snapshot stored is what was trained, and every replica trains its own copy from it.
        let rows = themes::Entity::find().order_by_asc(themes::Column::ThemeId).all(&self.db).await?;
        let themes: Vec<Theme> = rows.iter().map(theme_of).collect::<Result<_>>()?;
        let classifier = train(themes.clone()).await?;
        self.frame
            .once(self, key, "TrainClassifier", move |_, txn, now| {
                Box::pin(async move {
                    let snapshot = serde_json::to_string(&themes)?;
                    let version = taxonomy_versions::Entity::insert(taxonomy_versions::ActiveModel {
                        themes: Set(snapshot),
                        created_at: Set(now),
                        ..Default::default()
                    })
                    .exec(txn)
                    .await?
                    .last_insert_id;
                    let examples: usize = themes.iter().map(|t| t.examples.len()).sum();
                    tracing::info!(
                        taxonomy_version = version,
                        themes = classifier.themes().len(),
                        "classifier trained"
                    );
                    Ok(Done::reply(pb::TrainClassifierResponse {
                        taxonomy_version: version,
                        themes: i32::try_from(classifier.themes().len()).unwrap_or(i32::MAX),
                        examples: i32::try_from(examples).unwrap_or(i32::MAX),
                    }))
                })
            })
            .await
    }
}
