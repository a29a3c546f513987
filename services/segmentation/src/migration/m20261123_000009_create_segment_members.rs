use sea_orm_migration::{prelude::*, schema::*};

/// Creates `segment_members`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("segment_members")
                    .if_not_exists()
                    .col(big_pk_auto("id"))
                    .col(string("segment_id"))
                    .col(string("customer_id"))
                    .col(big_integer("entered_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_members_unique")
                    .table("segment_members")
                    .col("segment_id")
                    .col("customer_id")
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_members_customer")
                    .table("segment_members")
                    .col("customer_id")
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("segment_members").to_owned()).await
    }
}
