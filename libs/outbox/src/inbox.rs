//! The receiving side: apply each event id at most once.
use std::collections::HashSet;

use sea_orm::{
    ActiveValue::Set,
    ConnectionTrait, DbErr, EntityTrait, TryInsertResult,
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

/// Records many event ids as applied inside the receiver's transaction, in one statement per thousand; returns
/// the ids that were new (an id applied before, or twice in `event_ids`, is in it once or not at all: the caller
/// applies an event only while taking its id out of the set). The ids are inserted in sorted order, so two batches
/// sharing ids take their index locks in one order.
pub async fn apply_many<C: ConnectionTrait>(
    txn: &C,
    event_ids: &[&str],
    source: &str,
    now_ms: i64,
) -> Result<HashSet<String>, DbErr> {
    let ids: std::collections::BTreeSet<&str> = event_ids.iter().copied().collect();
    let ids: Vec<&str> = ids.into_iter().collect();
    let mut fresh = HashSet::with_capacity(ids.len());
    for chunk in ids.chunks(rapport_kit::db::ROWS_PER_STATEMENT) {
        use inbox_event::Column as C;
        let mut insert = Query::insert();
        insert
            .into_table(inbox_event::Entity)
            .columns([C::EventId, C::Source, C::ProcessedAt])
            .on_conflict(OnConflict::column(C::EventId).do_nothing().to_owned())
            .returning_col(C::EventId);
        for id in chunk {
            insert.values([(*id).into(), source.into(), now_ms.into()]).map_err(|e| DbErr::Custom(e.to_string()))?;
        }
        for row in txn.query_all(&insert).await? {
            fresh.insert(row.try_get::<String>("", "event_id")?);
        }
    }
    Ok(fresh)
}
