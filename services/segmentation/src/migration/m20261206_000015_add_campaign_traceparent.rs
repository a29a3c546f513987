use sea_orm_migration::{prelude::*, schema::*};

/// Adds `campaigns.traceparent`: the trace context of the TriggerCampaign call, which the grant spans link to.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if !manager.has_column("campaigns", "traceparent").await? {
            manager
                .alter_table(Table::alter().table("campaigns").add_column(text_null("traceparent")).to_owned())
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("campaigns").drop_column("traceparent").to_owned()).await
    }
}
