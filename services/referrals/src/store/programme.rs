//! Programmes: created at version 1, each change a new version (referrals keep the version they were made under).
use rapport_kit::frame::{Done, Key};
use rapport_proto::referrals::v1 as pb;
use sea_orm::{ActiveValue::Set, EntityTrait, QueryOrder};

use super::{Result, Store};
use crate::{domain::Rules, entities::programmes, error::ReferralsError, wire};

impl Store {
    /// Creates a programme at version 1.
    pub async fn create_programme(&self, key: &Key, id: String, rules: Rules) -> Result<pb::CreateProgrammeResponse> {
        self.frame
            .once(self, key, "CreateProgramme", move |s, txn, now| {
                Box::pin(async move {
                    if programmes::Entity::find_by_id((id.clone(), 1)).one(txn).await?.is_some() {
                        return Err(ReferralsError::ProgrammeExists);
                    }
                    let row = s.write_version(txn, &id, 1, &rules, now).await?;
                    tracing::info!(programme_id = %id, "programme created");
                    Ok(Done::reply(pb::CreateProgrammeResponse { programme: Some(wire::programme_pb(&row)?) }))
                })
            })
            .await
    }

    /// Writes a new version of a programme.
    pub async fn update_programme(&self, key: &Key, id: String, rules: Rules) -> Result<pb::UpdateProgrammeResponse> {
        self.frame
            .once(self, key, "UpdateProgramme", move |s, txn, now| {
                Box::pin(async move {
                    // Two updates of one programme at once take turns: each writes the version after the other's.
                    rapport_kit::lease::lock_in_txn(txn, &format!("referrals.programme:{id}")).await?;
                    let (_, latest) = s.rules_in(txn, &id, 0).await?;
                    let row = s.write_version(txn, &id, latest + 1, &rules, now).await?;
                    tracing::info!(programme_id = %id, version = row.version, "programme updated");
                    Ok(Done::reply(pb::UpdateProgrammeResponse { programme: Some(wire::programme_pb(&row)?) }))
                })
            })
            .await
    }

    async fn write_version(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        id: &str,
        version: i32,
        rules: &Rules,
        now: i64,
    ) -> Result<programmes::Model> {
        let row = programmes::Model {
            programme_id: id.into(),
            version,
            rules: serde_json::to_string(rules)?,
            created_at: now,
        };
        programmes::Entity::insert(programmes::ActiveModel {
            programme_id: Set(row.programme_id.clone()),
            version: Set(row.version),
            rules: Set(row.rules.clone()),
            created_at: Set(now),
        })
        .exec_without_returning(txn)
        .await?;
        Ok(row)
    }

    /// A programme at `version` (0: the latest).
    pub async fn programme(&self, id: &str, version: i32) -> Result<pb::Programme> {
        let (_, v) = self.rules_in(&self.db, id, version).await?;
        let row = programmes::Entity::find_by_id((id.to_string(), v))
            .one(&self.db)
            .await?
            .ok_or_else(|| ReferralsError::ProgrammeNotFound(id.into()))?;
        wire::programme_pb(&row)
    }

    /// Every programme at its latest version, by id.
    pub async fn programmes(&self) -> Result<Vec<pb::Programme>> {
        let rows = programmes::Entity::find()
            .order_by_asc(programmes::Column::ProgrammeId)
            .order_by_desc(programmes::Column::Version)
            .all(&self.db)
            .await?;
        let mut out: Vec<pb::Programme> = Vec::new();
        for row in rows {
            if out.last().is_none_or(|p| p.programme_id != row.programme_id) {
                out.push(wire::programme_pb(&row)?);
            }
        }
        Ok(out)
    }
}
