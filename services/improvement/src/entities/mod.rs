//! One file per table.
pub mod answers;
pub mod customers;
pub mod discovery_runs;
pub mod improvement_history;
pub mod improvements;
pub mod pilot_members;
pub mod pilots;
pub mod signals;
pub mod themes;
