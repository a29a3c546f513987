use sea_orm_migration::{prelude::*, schema::*};

/// Creates `models`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("models")
                    .if_not_exists()
                    .col(big_pk_auto("version"))
                    .col(text("spec"))
                    .col(big_integer("created_at"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("models").to_owned()).await
    }
}
