use sea_orm_migration::{prelude::*, schema::*};

/// Creates `campaigns`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("campaigns")
                    .if_not_exists()
                    .col(string("campaign_id").primary_key())
                    .col(string("segment_id"))
                    .col(string("offer_id"))
                    .col(integer("holdout_percent"))
                    .col(string("state"))
                    .col(big_integer("created_at"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("campaigns").to_owned()).await
    }
}
