use sea_orm_migration::{prelude::*, schema::*};

/// Creates `outbox_events`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("outbox_events")
                    .if_not_exists()
                    .col(big_pk_auto("id"))
                    .col(string_uniq("event_id"))
                    .col(string("destination"))
                    .col(string("partition_key"))
                    .col(blob("payload"))
                    .col(big_integer("created_at"))
                    .col(integer("attempts"))
                    .col(big_integer("next_attempt_at"))
                    .col(big_integer_null("delivered_at"))
                    .col(text_null("last_error"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_outbox_undelivered")
                    .table("outbox_events")
                    .col("destination")
                    .col("delivered_at")
                    .col("id")
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("outbox_events").to_owned()).await
    }
}
