use sea_orm_migration::{prelude::*, schema::*};

/// Creates `customers`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("customers")
                    .if_not_exists()
                    .col(string("customer_id").primary_key())
                    .col(text("attributes"))
                    .col(boolean("consent_marketing"))
                    .col(boolean("consent_profiling"))
                    .col(text("features"))
                    .col(integer_null("cluster_id"))
                    .col(big_integer_null("model_version"))
                    .col(big_integer("window_day"))
                    .col(big_integer("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_customers_window")
                    .table("customers")
                    .col("window_day")
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("customers").to_owned()).await
    }
}
