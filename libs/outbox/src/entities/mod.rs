//! Tables of the outbox, the inbox and the tombstones.
pub mod erased_customer;
pub mod inbox_event;
pub mod outbox_event;
pub mod parked_receipt;
