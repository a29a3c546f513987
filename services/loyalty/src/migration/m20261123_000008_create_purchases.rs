use sea_orm_migration::{prelude::*, schema::*};

/// Creates `purchases`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("purchases")
                    .if_not_exists()
                    .col(string("order_id").primary_key())
                    .col(string("customer_id"))
                    .col(big_integer("amount_micros"))
                    .col(string("currency"))
                    .col(integer("channel"))
                    .col(boolean("recurring"))
                    .col(big_integer("points"))
                    .col(big_integer_null("entry_id"))
                    .col(big_integer("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_purchases_customer")
                    .table("purchases")
                    .col("customer_id")
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("purchases").to_owned()).await
    }
}
