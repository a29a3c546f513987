//! One file per table.
pub mod surveyed_customers;
pub mod surveys;
