use sea_orm_migration::{prelude::*, schema::*};

/// Recovery surveys: the resolved case a survey follows (`surveys.after_case_id`).
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("surveys").add_column(string_null("after_case_id")).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("surveys").drop_column("after_case_id").to_owned()).await
    }
}
