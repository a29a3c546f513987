use sea_orm_migration::{prelude::*, schema::*};

/// What feedback learns of its customers from the other services' events — the loyalty tier (`customer_tiers`) and
/// segment memberships (`customer_segments`) — and what an answer was given under (`surveys.tier`,
/// `survey_segments`), so NPS can be grouped by tier and segment.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("customer_tiers")
                    .if_not_exists()
                    .col(string("customer_id").primary_key())
                    .col(string("tier"))
                    .to_owned(),
            )
            .await?;
        for (table, key) in [("customer_segments", "customer_id"), ("survey_segments", "survey_id")] {
            manager
                .create_table(
                    Table::create()
                        .table(table)
                        .if_not_exists()
                        .col(string(key))
                        .col(string("segment_id"))
                        .primary_key(Index::create().col(key).col("segment_id"))
                        .to_owned(),
                )
                .await?;
        }
        manager.alter_table(Table::alter().table("surveys").add_column(string_null("tier")).to_owned()).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("surveys").drop_column("tier").to_owned()).await?;
        for t in ["survey_segments", "customer_segments", "customer_tiers"] {
            manager.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
