use sea_orm_migration::{prelude::*, schema::*};

/// Settings people edit as one document each (the next-best-action rules, …): a name and its JSON. A setting never
/// written holds its default.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("settings")
                    .if_not_exists()
                    .col(string("name").primary_key())
                    .col(text("spec"))
                    .col(big_integer("updated_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("settings").to_owned()).await
    }
}
