use sea_orm_migration::{prelude::*, schema::*};

/// Creates `campaign_targets`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("campaign_targets")
                    .if_not_exists()
                    .col(big_pk_auto("id"))
                    .col(string("campaign_id"))
                    .col(string("customer_id"))
                    .col(string("status"))
                    .col(string_null("reason"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_targets_unique")
                    .table("campaign_targets")
                    .col("campaign_id")
                    .col("customer_id")
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_targets_status")
                    .table("campaign_targets")
                    .col("campaign_id")
                    .col("status")
                    .col("id")
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("campaign_targets").to_owned()).await
    }
}
