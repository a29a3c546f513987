use sea_orm_migration::{prelude::*, schema::*};

/// Creates `segments`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("segments")
                    .if_not_exists()
                    .col(string("segment_id").primary_key())
                    .col(string("display_name"))
                    .col(text("rule"))
                    .col(big_integer("created_at"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("segments").to_owned()).await
    }
}
