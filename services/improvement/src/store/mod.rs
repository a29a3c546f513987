//! Persistence of improvement through sea-orm, one file per aggregate around the shared transaction frame
//! ([`rapport_kit::frame`]):
//!
//! - `signals.rs`: feedback's theme signals and NPS answers (from its events), agents' suggestions;
//! - `themes.rs`: discovery runs (one at a time across replicas), the themes they leave, acceptance and merging
//!   (with their events for feedback);
//! - `analytics.rs`: the figures of themes over weeks, and the reach behind an improvement's score;
//! - `improvements.rs`: the backlog, its lifecycle with the actor of each change, the shipped event, before/after;
//! - `pilots.rs`: pilots on a segment against a holdout, and their comparison;
//! - `valuation.rs`: customers' 365-day spend, kept from segmentation by the valuation worker;
//! - `erasure.rs`: forgetting a customer (on request, or on another service's erasure event).
use std::{collections::HashMap, sync::Arc};

use rapport_kit::{clock::Clock, frame::Frame, pseudonym::Pseudonyms};
use rapport_outbox::Outbox;
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait};

use crate::{
    domain::{Settlements, analytics::Weeks},
    entities::themes as theme_table,
    error::ImprovementError,
};

mod analytics;
mod erasure;
mod improvements;
mod pilots;
mod signals;
mod themes;
mod valuation;

pub use analytics::ThemeFigures;
pub use improvements::{ImprovementCmd, ImprovementPatch, StatusCmd};
pub use pilots::PilotCmd;
pub use signals::SuggestionCmd;
pub use themes::{AcceptCmd, DiscoverCmd};

type Result<T> = std::result::Result<T, ImprovementError>;

/// Settings of the figures.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The 365-day spend at or above which a customer is high-value (units).
    pub high_value: f64,
    /// How far back resolved cases count as recent when an improvement ships (feedback notes them).
    pub recent_days: i32,
}

impl Default for Settings {
    fn default() -> Self {
        Self { high_value: 500.0, recent_days: 30 }
    }
}

/// The improvement database.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    frame: Frame,
    clock: Arc<dyn Clock>,
    outbox: Outbox,
    pseudonyms: Pseudonyms,
    settings: Settings,
    /// One discovery at a time in this process (the `improvement.discovery` lease serialises replicas).
    discovering: Arc<tokio::sync::Mutex<()>>,
    /// Wakes the valuation worker (a customer's spend is wanted).
    valuation: Arc<tokio::sync::Notify>,
}

impl Store {
    /// A store over `db`.
    pub fn new(
        db: DatabaseConnection,
        clock: Arc<dyn Clock>,
        outbox: Outbox,
        pseudonyms: &Pseudonyms,
        settings: Settings,
    ) -> Self {
        let wake = outbox.clone();
        let frame = Frame::new(db.clone(), clock.clone(), pseudonyms).after_commit(move || wake.notify());
        Self {
            db,
            frame,
            clock,
            outbox,
            pseudonyms: pseudonyms.clone(),
            settings,
            discovering: Arc::default(),
            valuation: Arc::default(),
        }
    }

    /// The connection.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Now, by the service clock.
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The settings of the figures.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// What wakes the valuation worker.
    pub fn valuation_waker(&self) -> Arc<tokio::sync::Notify> {
        self.valuation.clone()
    }

    /// Serialises, inside `txn`, an erasure of the customer and any write about it.
    async fn lock_customer<C: ConnectionTrait>(&self, txn: &C, customer_id: &str) -> Result<()> {
        Ok(rapport_kit::lease::lock_customer(txn, "improvement", &self.pseudonyms, customer_id).await?)
    }

    /// Whether the customer was erased (or `customer_id` is the pseudonym an erased customer's records are kept
    /// under).
    pub async fn erased(&self, customer_id: &str) -> Result<bool> {
        Ok(rapport_outbox::sink::is_erased_or_pseudonym(&self.db, &self.pseudonyms, customer_id).await?)
    }

    /// Every theme row, by id.
    async fn theme_rows<C: ConnectionTrait>(&self, db: &C) -> Result<HashMap<String, theme_table::Model>> {
        Ok(theme_table::Entity::find().all(db).await?.into_iter().map(|t| (t.theme_id.clone(), t)).collect())
    }

    /// How themes were settled (acceptances and merges).
    async fn settlements<C: ConnectionTrait>(&self, db: &C) -> Result<Settlements> {
        let mut s = Settlements::default();
        for t in theme_table::Entity::find().all(db).await? {
            if let Some(into) = t.accepted_as.or(t.merged_into) {
                s.into.insert(t.theme_id, into);
            }
        }
        Ok(s)
    }

    /// `weeks` weeks ending at `end` (when `None`: now, included).
    pub fn weeks(&self, end: Option<i64>, weeks: usize) -> Weeks {
        Weeks { end: end.unwrap_or_else(|| self.now() + 1), weeks }
    }
}
