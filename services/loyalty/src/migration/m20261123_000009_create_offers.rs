use sea_orm_migration::{prelude::*, schema::*};

/// Creates `offers`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("offers")
                    .if_not_exists()
                    .col(string("offer_id").primary_key())
                    .col(string("title"))
                    .col(string("kind"))
                    .col(big_integer("value"))
                    .col(string("sku"))
                    .col(string("tiers"))
                    .col(big_integer("start_at"))
                    .col(big_integer("end_at"))
                    .col(integer("max_uses"))
                    .col(big_integer("created_at"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("offers").to_owned()).await
    }
}
