//! The receiving side: apply each event id at most once.
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait, TryInsertResult};

use crate::entities::inbox_event;

/// Records `event_id` as applied inside the receiver's transaction; `false` means it was applied before and the
/// caller must skip it (and may commit the empty transaction).
pub async fn apply_once<C: ConnectionTrait>(txn: &C, event_id: &str, source: &str, now_ms: i64) -> Result<bool, DbErr> {
    let row = inbox_event::ActiveModel {
        event_id: Set(event_id.to_string()),
        source: Set(source.to_string()),
        processed_at: Set(now_ms),
    };
    let r = inbox_event::Entity::insert(row)
        .on_conflict_do_nothing_on([inbox_event::Column::EventId])
        .exec_without_returning(txn)
        .await?;
    Ok(matches!(r, TryInsertResult::Inserted(n) if n > 0))
}
