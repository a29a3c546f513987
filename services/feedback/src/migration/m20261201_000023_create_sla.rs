use sea_orm_migration::{prelude::*, schema::*};

/// SLA clocks of cases: the tier a case was opened under and its targets (business milliseconds), its escalation
/// level, the pauses while it waited for the customer (`case_pauses`), and every warning and breach, recorded once
/// per case, clock and kind (`sla_events`, unique).
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = [
            string("tier").default("unknown").to_owned(),
            big_integer("first_response_target").default(0).to_owned(),
            big_integer("resolution_target").default(0).to_owned(),
            integer("escalation_level").default(0).to_owned(),
        ];
        // One column per statement: SQLite alters one at a time.
        for mut c in columns {
            manager.alter_table(Table::alter().table("cases").add_column(&mut c).to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("case_pauses")
                    .if_not_exists()
                    .col(big_integer("id").auto_increment().primary_key())
                    .col(string("case_id"))
                    .col(big_integer("started_at"))
                    .col(big_integer_null("ended_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("case_pauses_by_case")
                    .table("case_pauses")
                    .col("case_id")
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("sla_events")
                    .if_not_exists()
                    .col(big_integer("id").auto_increment().primary_key())
                    .col(string("case_id"))
                    .col(string("clock"))
                    .col(string("kind"))
                    .col(big_integer("at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sla_events_once")
                    .table("sla_events")
                    .col("case_id")
                    .col("clock")
                    .col("kind")
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("cases_by_state")
                    .table("cases")
                    .col("state")
                    .col("seq")
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in ["sla_events", "case_pauses"] {
            manager.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        for c in ["tier", "first_response_target", "resolution_target", "escalation_level"] {
            manager.alter_table(Table::alter().table("cases").drop_column(c).to_owned()).await?;
        }
        Ok(())
    }
}
