use sea_orm_migration::{prelude::*, schema::*};

/// Creates `daily_activity`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("daily_activity")
                    .if_not_exists()
                    .col(big_pk_auto("id"))
                    .col(string("customer_id"))
                    .col(big_integer("day"))
                    .col(string("kind"))
                    .col(big_integer("count"))
                    .col(big_integer("amount_micros"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_daily_unique")
                    .table("daily_activity")
                    .col("customer_id")
                    .col("day")
                    .col("kind")
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("daily_activity").to_owned()).await
    }
}
