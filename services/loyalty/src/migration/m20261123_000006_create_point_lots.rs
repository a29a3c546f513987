use sea_orm_migration::{prelude::*, schema::*};

/// Creates `point_lots`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("point_lots")
                    .if_not_exists()
                    .col(big_pk_auto("id"))
                    .col(string("customer_id"))
                    .col(big_integer("entry_id"))
                    .col(big_integer("initial"))
                    .col(big_integer("remaining"))
                    .col(big_integer("available_at"))
                    .col(big_integer("expires_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_lots_customer")
                    .table("point_lots")
                    .col("customer_id")
                    .col("expires_at")
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("idx_lots_due").table("point_lots").col("expires_at").if_not_exists().to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("point_lots").to_owned()).await
    }
}
