use sea_orm_migration::{prelude::*, schema::*};

/// Creates `surveys` and `surveyed_customers`, with the indexes of the anti-fatigue check (a customer's latest survey) and of NPS windows
/// (answers by time).
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("surveys")
                    .if_not_exists()
                    .col(string("survey_id").primary_key())
                    .col(string("customer_id"))
                    .col(string("touchpoint"))
                    .col(integer("channel"))
                    .col(big_integer("created_at"))
                    .col(big_integer("expires_at"))
                    .col(integer_null("score"))
                    .col(text_null("comment"))
                    .col(big_integer_null("answered_at"))
                    .to_owned(),
            )
            .await?;
        // One row per surveyed customer, locked by ScheduleSurvey: two schedules of one customer cannot both pass
        // the anti-fatigue check.
        manager
            .create_table(
                Table::create()
                    .table("surveyed_customers")
                    .if_not_exists()
                    .col(string("customer_id").primary_key())
                    .col(big_integer("last_surveyed_at"))
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            ("idx_surveys_customer", ["customer_id", "created_at"]),
            ("idx_surveys_answered", ["answered_at", "score"]),
        ] {
            manager
                .create_index(
                    Index::create().name(name).table("surveys").col(cols[0]).col(cols[1]).if_not_exists().to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("surveyed_customers").to_owned()).await?;
        manager.drop_table(Table::drop().table("surveys").to_owned()).await
    }
}
