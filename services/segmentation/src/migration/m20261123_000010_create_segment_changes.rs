use sea_orm_migration::{prelude::*, schema::*};

/// Creates `segment_changes`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("segment_changes")
                    .if_not_exists()
                    .col(big_pk_auto("id"))
                    .col(string("segment_id"))
                    .col(string("customer_id"))
                    .col(boolean("entered"))
                    .col(big_integer("at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_changes_segment")
                    .table("segment_changes")
                    .col("segment_id")
                    .col("id")
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("segment_changes").to_owned()).await
    }
}
