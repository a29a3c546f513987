//! Settings edited as one document each (the next-best-action rules): read with their default when never written,
//! replaced whole, idempotently by request id.
use rapport_kit::frame::{Done, Key};
use rapport_proto::feedback::v1 as pb;
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait, sea_query::OnConflict};
use serde::{Serialize, de::DeserializeOwned};

use super::{Result, Store};
use crate::{
    domain::actions::{self, ActionRule},
    entities::settings,
    wire,
};

/// The setting holding the next-best-action rules.
const ACTION_RULES: &str = "action_rules";

/// Reads the setting `name`, `None` when never written.
pub(super) async fn read<T: DeserializeOwned, C: ConnectionTrait>(db: &C, name: &str) -> Result<Option<T>> {
    match settings::Entity::find_by_id(name.to_string()).one(db).await? {
        Some(row) => Ok(Some(serde_json::from_str(&row.spec)?)),
        None => Ok(None),
    }
}

/// Writes the setting `name` whole.
pub(super) async fn write<T: Serialize, C: ConnectionTrait>(db: &C, name: &str, value: &T, now: i64) -> Result<()> {
    let row = settings::ActiveModel {
        name: Set(name.into()),
        spec: Set(serde_json::to_string(value)?),
        updated_at: Set(now),
    };
    settings::Entity::insert(row)
        .on_conflict(
            OnConflict::column(settings::Column::Name)
                .update_columns([settings::Column::Spec, settings::Column::UpdatedAt])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

impl Store {
    /// The next-best-action rules, in order (the defaults until first set).
    pub async fn action_rules(&self) -> Result<Vec<ActionRule>> {
        Ok(read(&self.db, ACTION_RULES).await?.unwrap_or_else(actions::default_rules))
    }

    /// Replaces the next-best-action rules.
    pub async fn set_action_rules(&self, key: &Key, rules: Vec<ActionRule>) -> Result<pb::SetActionRulesResponse> {
        self.frame
            .once(self, key, "SetActionRules", move |_, txn, now| {
                Box::pin(async move {
                    write(txn, ACTION_RULES, &rules, now).await?;
                    tracing::info!(rules = rules.len(), "action rules replaced");
                    Ok(Done::reply(pb::SetActionRulesResponse {
                        rules: rules.iter().map(wire::action_rule_pb).collect(),
                    }))
                })
            })
            .await
    }
}
