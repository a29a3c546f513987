//! Persistence of feedback through sea-orm, one file per aggregate around the shared transaction frame
//! ([`rapport_kit::frame`]):
//!
//! - `surveys.rs`: scheduling with anti-fatigue, answers (and their events), NPS windows;
//! - `cases.rs`: complaints and claims, their answers and resolution (and their events);
//! - `themes.rs`: the theme taxonomy, its trained versions and the active classifier;
//! - `context.rs`: the tier and segments of customers, from loyalty's and segmentation's events;
//! - `erasure.rs`: forgetting a customer (on request, or on another service's erasure event).
use std::sync::Arc;

use rapport_kit::{clock::Clock, frame::Frame, pseudonym::Pseudonyms};
use rapport_outbox::Outbox;
use sea_orm::DatabaseConnection;

use crate::error::FeedbackError;

mod cases;
mod context;
mod erasure;
mod surveys;
mod themes;

pub use cases::{CaseCmd, CaseFilter};
pub use surveys::{Grouping, NpsReport, SurveyCmd};

type Result<T> = std::result::Result<T, FeedbackError>;

/// The feedback database.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    frame: Frame,
    clock: Arc<dyn Clock>,
    outbox: Outbox,
    pseudonyms: Pseudonyms,
    classifier: Arc<tokio::sync::RwLock<themes::Active>>,
}

impl Store {
    /// A store over `db`.
    pub fn new(db: DatabaseConnection, clock: Arc<dyn Clock>, outbox: Outbox, pseudonyms: &Pseudonyms) -> Self {
        let wake = outbox.clone();
        let frame = Frame::new(db.clone(), clock.clone(), pseudonyms).after_commit(move || wake.notify());
        Self { db, frame, clock, outbox, pseudonyms: pseudonyms.clone(), classifier: Arc::default() }
    }

    /// The connection.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Now, by the service clock.
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }
}
