//! One file per table.
pub mod ambassadors;
pub mod blocked;
pub mod codes;
pub mod invitations;
pub mod programmes;
pub mod referrals;
pub mod rewards;
