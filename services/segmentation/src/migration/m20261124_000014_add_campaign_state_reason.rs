use sea_orm_migration::{prelude::*, schema::*};

/// Adds `campaigns.state_reason`: why a campaign is paused.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if !manager.has_column("campaigns", "state_reason").await? {
            manager
                .alter_table(Table::alter().table("campaigns").add_column(text_null("state_reason")).to_owned())
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("campaigns").drop_column("state_reason").to_owned()).await
    }
}
