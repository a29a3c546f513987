use sea_orm_migration::{prelude::*, schema::*};

/// Creates `inbox_events`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("inbox_events")
                    .if_not_exists()
                    .col(string("event_id").primary_key())
                    .col(string("source"))
                    .col(big_integer("processed_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("inbox_events").to_owned()).await
    }
}
