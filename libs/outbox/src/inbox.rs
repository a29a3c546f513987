//! The receiving side: apply each event id at most once.
use std::collections::HashSet;

use sea_orm::{
    ActiveValue::Set,
    ConnectionTrait, DbErr, EntityTrait, Iterable, TryInsertResult,
    sea_query::{OnConflict, Query},
};

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

/// Rows one statement of [`apply_many`] inserts at most (3 parameters each: well under both databases' limits).
const APPLY_CHUNK: usize = 1000;

/// Records many event ids as applied inside the receiver's transaction, in one statement per thousand; returns
/// the ids that were new (an id applied before, or twice in `event_ids`, is in it once or not at all: the caller
/// applies an event only while taking its id out of the set).
pub async fn apply_many<C: ConnectionTrait>(
    txn: &C,
    event_ids: &[&str],
    source: &str,
    now_ms: i64,
) -> Result<HashSet<String>, DbErr> {
    let mut seen = HashSet::new();
    let ids: Vec<&str> = event_ids.iter().copied().filter(|id| seen.insert(*id)).collect();
    let mut fresh = HashSet::with_capacity(ids.len());
    for chunk in ids.chunks(APPLY_CHUNK) {
        let mut insert = Query::insert();
        insert
            .into_table(inbox_event::Entity)
            .columns(inbox_event::Column::iter())
            .on_conflict(OnConflict::column(inbox_event::Column::EventId).do_nothing().to_owned())
            .returning_col(inbox_event::Column::EventId);
        for id in chunk {
            insert.values_panic([(*id).into(), source.into(), now_ms.into()]);
        }
        for row in txn.query_all(&insert).await? {
            fresh.insert(row.try_get::<String>("", "event_id")?);
        }
    }
    Ok(fresh)
}
