use sea_orm_migration::{prelude::*, schema::*};

/// Creates `members`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("members")
                    .if_not_exists()
                    .col(string("customer_id").primary_key())
                    .col(string_null("display_name"))
                    .col(string("tier"))
                    .col(big_integer("tier_period_end"))
                    .col(big_integer("enrolled_at"))
                    .col(big_integer("spent"))
                    .col(big_integer("expired"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("members").to_owned()).await
    }
}
