use sea_orm_migration::prelude::*;

/// At most one running training job: a partial unique index, so two replicas starting jobs at once cannot both
/// insert one (the loser's insert fails and is answered TRAINING_RUNNING).
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX IF NOT EXISTS idx_one_running_training_job ON training_jobs (state) \
                 WHERE state = 'running'",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP INDEX IF EXISTS idx_one_running_training_job").await?;
        Ok(())
    }
}
