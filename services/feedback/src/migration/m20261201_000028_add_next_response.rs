use sea_orm_migration::{prelude::*, schema::*};

/// The next-response clock of a case: its target, when the customer's message that started the current one came,
/// when an agent answered it, and how many there were (each is its own clock for warnings and breaches).
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds one at a time.
        for mut col in [
            big_integer("next_response_target").default(0).to_owned(),
            big_integer_null("next_response_from"),
            big_integer_null("next_response_at"),
            integer("next_responses").default(0).to_owned(),
        ] {
            manager.alter_table(Table::alter().table("cases").add_column(&mut col).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for c in ["next_response_target", "next_response_from", "next_response_at", "next_responses"] {
            manager.alter_table(Table::alter().table("cases").drop_column(c).to_owned()).await?;
        }
        Ok(())
    }
}
