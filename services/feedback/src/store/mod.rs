//! Persistence of feedback through sea-orm, one file per aggregate around the shared transaction frame
//! ([`rapport_kit::frame`]):
//!
//! - `surveys.rs`: scheduling with anti-fatigue, answers (and their events), NPS windows;
//! - `cases.rs`: complaints and claims, their answers and resolution (and their events);
//! - `themes.rs`: the theme taxonomy, its trained versions and the active classifier;
//! - `report.rs`: care reports (response and resolution times, SLA attainment) over a window, grouped;
//! - `routing.rs`: queues, agents, ordered rules, and assigning cases within capacity;
//! - `sla.rs`: SLA clocks of cases (pauses while waiting for the customer), and the sweeper recording warnings and
//!   breaches once and escalating;
//! - `context.rs`: the tier and segments of customers, from loyalty's and segmentation's events, and what feedback
//!   holds of a customer for the agent in front of it;
//! - `settings.rs`: settings edited as one document (the next-best-action rules, the barometer's criteria);
//! - `barometer.rs`: the satisfaction barometer's staff assessments, feedback's own measures of a period, and
//!   readings (one per period, under a lock, each with the weights it was computed with);
//! - `improvements.rs`: themes the improvement service accepted into the taxonomy, and shipped improvements noted on
//!   the cases they answer;
//! - `erasure.rs`: forgetting a customer (on request, or on another service's erasure event).
use std::sync::Arc;

use rapport_kit::{clock::Clock, frame::Frame, pseudonym::Pseudonyms};
use rapport_outbox::Outbox;
use sea_orm::DatabaseConnection;

use crate::{domain::sla::Calendar, error::FeedbackError};

mod barometer;
mod cases;
mod context;
mod erasure;
mod improvements;
mod report;
mod routing;
mod settings;
mod sla;
mod surveys;
mod themes;

pub use barometer::AssessmentCmd;
pub use cases::{CaseCmd, CaseFilter};
pub use context::CustomerRecord;
pub use report::CareGrouping;
pub use routing::{AgentCmd, QueueCmd};
pub use sla::Swept;
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
    calendar: Arc<Calendar>,
    training: Arc<tokio::sync::Mutex<()>>,
    /// Wakes the assigner after a commit (a new case may wait for an agent).
    assign: Arc<tokio::sync::Notify>,
}

impl Store {
    /// A store over `db`.
    pub fn new(db: DatabaseConnection, clock: Arc<dyn Clock>, outbox: Outbox, pseudonyms: &Pseudonyms) -> Self {
        let wake = outbox.clone();
        let assign = Arc::new(tokio::sync::Notify::new());
        let assign_wake = assign.clone();
        let frame = Frame::new(db.clone(), clock.clone(), pseudonyms).after_commit(move || {
            wake.notify();
            assign_wake.notify_one();
        });
        Self {
            db,
            frame,
            clock,
            outbox,
            pseudonyms: pseudonyms.clone(),
            classifier: Arc::default(),
            calendar: Arc::new(Calendar::always()),
            training: Arc::default(),
            assign,
        }
    }

    /// With SLA clocks running in `calendar` (round the clock by default).
    pub fn with_calendar(mut self, calendar: Calendar) -> Self {
        self.calendar = Arc::new(calendar);
        self
    }

    /// What wakes the assigner (the worker giving waiting cases to agents).
    pub fn assign_waker(&self) -> Arc<tokio::sync::Notify> {
        self.assign.clone()
    }

    /// The connection.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Serialises, inside `txn`, an erasure of the customer and any write about it (a write that checked the
    /// tombstone before the erasure committed would otherwise leave the customer's data behind on PostgreSQL).
    pub(super) async fn lock_customer<C: sea_orm::ConnectionTrait>(&self, txn: &C, customer_id: &str) -> Result<()> {
        Ok(rapport_kit::lease::lock_customer(txn, "feedback", &self.pseudonyms, customer_id).await?)
    }

    /// Now, by the service clock.
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }
}
