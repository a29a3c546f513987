use sea_orm_migration::prelude::*;

/// Cases opened before the next-response clock existed get the standard policy's next-response targets (a 0
/// target would breach the moment the customer writes again).
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE cases SET next_response_target = CASE \
                 WHEN severity = 'critical' THEN 3600000 WHEN tier = 'vip' THEN 7200000 \
                 WHEN severity = 'high' THEN 14400000 WHEN severity = 'low' THEN 43200000 ELSE 28800000 END \
                 WHERE next_response_target = 0",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, _: &SchemaManager) -> Result<(), DbErr> {
        // The targets stay: the column goes with the migration before.
        Ok(())
    }
}
