//! One file per table.
pub mod ledger_entries;
pub mod members;
pub mod offer_grants;
pub mod offers;
pub mod point_lots;
pub mod purchases;
pub mod tier_changes;
