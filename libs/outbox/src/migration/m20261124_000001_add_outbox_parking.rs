use sea_orm_migration::{prelude::*, schema::*};

/// Adds `outbox_events.parked_at`: an event refused too many times is parked instead of blocking its destination.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if !manager.has_column("outbox_events", "parked_at").await? {
            manager
                .alter_table(Table::alter().table("outbox_events").add_column(big_integer_null("parked_at")).to_owned())
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_outbox_delivered_at")
                    .table("outbox_events")
                    .col("delivered_at")
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("outbox_events").drop_column("parked_at").to_owned()).await
    }
}
