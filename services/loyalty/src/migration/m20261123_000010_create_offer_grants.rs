use sea_orm_migration::{prelude::*, schema::*};

/// Creates `offer_grants`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("offer_grants")
                    .if_not_exists()
                    .col(big_pk_auto("id"))
                    .col(string("offer_id"))
                    .col(string("campaign_id"))
                    .col(string("customer_id"))
                    .col(integer("uses"))
                    .col(big_integer("granted_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_grants_unique")
                    .table("offer_grants")
                    .col("offer_id")
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
                    .name("idx_grants_customer")
                    .table("offer_grants")
                    .col("customer_id")
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("offer_grants").to_owned()).await
    }
}
