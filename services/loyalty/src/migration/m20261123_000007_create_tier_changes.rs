use sea_orm_migration::{prelude::*, schema::*};

/// Creates `tier_changes`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("tier_changes")
                    .if_not_exists()
                    .col(big_pk_auto("id"))
                    .col(string("customer_id"))
                    .col(string("from_tier"))
                    .col(string("to_tier"))
                    .col(string("reason"))
                    .col(big_integer("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_tier_changes_customer")
                    .table("tier_changes")
                    .col("customer_id")
                    .col("id")
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("tier_changes").to_owned()).await
    }
}
