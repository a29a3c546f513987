use sea_orm_migration::{prelude::*, schema::*};

/// Creates `parked_receipts`: events a subscriber received over JetStream and refused after its attempts, kept at
/// the subscriber (the producer's outbox has handed them to the stream) until an operator replays them.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("parked_receipts")
                    .if_not_exists()
                    .col(big_pk_auto("id"))
                    .col(string_uniq("event_key"))
                    .col(string("event_id"))
                    .col(string("source"))
                    .col(string("partition_key"))
                    .col(blob("payload"))
                    .col(big_integer("created_at"))
                    .col(integer("attempts"))
                    .col(text("last_error"))
                    .col(big_integer_null("parked_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("parked_receipts").to_owned()).await
    }
}
