use sea_orm_migration::{prelude::*, schema::*};

/// Creates `erased_customers`: a receiver's tombstones, one per erased customer, under a keyed pseudonym.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("erased_customers")
                    .if_not_exists()
                    .col(string("pseudonym").primary_key())
                    .col(big_integer("erased_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("erased_customers").to_owned()).await
    }
}
