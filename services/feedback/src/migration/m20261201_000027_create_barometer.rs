use sea_orm_migration::{prelude::*, schema::*};

/// The satisfaction barometer: the staff's own assessment per agent and period, and the readings (one per period,
/// each with the criteria and weights it was computed with). Its criteria are a setting (`settings`).
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("staff_assessments")
                    .if_not_exists()
                    .col(string("agent_id"))
                    .col(string("period"))
                    .col(text("scores"))
                    .col(text("comment"))
                    .col(big_integer("answered_at"))
                    .primary_key(Index::create().col("agent_id").col("period"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("staff_assessments_period")
                    .table("staff_assessments")
                    .col("period")
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("barometer_readings")
                    .if_not_exists()
                    .col(string("period").primary_key())
                    .col(text("spec"))
                    .col(big_integer("taken_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("barometer_readings").to_owned()).await?;
        manager.drop_table(Table::drop().table("staff_assessments").to_owned()).await
    }
}
