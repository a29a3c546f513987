//! One file per table.
pub mod agent_queues;
pub mod agents;
pub mod case_messages;
pub mod case_pauses;
pub mod cases;
pub mod customer_segments;
pub mod customer_tiers;
pub mod queues;
pub mod routing_rules;
pub mod settings;
pub mod sla_events;
pub mod survey_segments;
pub mod surveyed_customers;
pub mod surveys;
pub mod taxonomy_versions;
pub mod themes;
