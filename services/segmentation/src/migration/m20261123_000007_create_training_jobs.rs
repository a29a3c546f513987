use sea_orm_migration::{prelude::*, schema::*};

/// Creates `training_jobs`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("training_jobs")
                    .if_not_exists()
                    .col(string("job_id").primary_key())
                    .col(string("state"))
                    .col(string("phase"))
                    .col(double("progress"))
                    .col(big_integer_null("model_version"))
                    .col(text_null("error"))
                    .col(big_integer("created_at"))
                    .col(big_integer("updated_at"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("training_jobs").to_owned()).await
    }
}
