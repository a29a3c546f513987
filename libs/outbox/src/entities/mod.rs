//! Tables of the outbox and the inbox.
pub mod inbox_event;
pub mod outbox_event;
