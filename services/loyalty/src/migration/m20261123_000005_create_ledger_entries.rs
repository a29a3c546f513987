use sea_orm_migration::{prelude::*, schema::*};

/// Creates `ledger_entries`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("ledger_entries")
                    .if_not_exists()
                    .col(big_pk_auto("id"))
                    .col(string("customer_id"))
                    .col(string("kind"))
                    .col(big_integer("points"))
                    .col(big_integer("qualifying"))
                    .col(text("reason"))
                    .col(string("reference"))
                    .col(big_integer_null("reverses_entry_id"))
                    .col(string_null("counterparty"))
                    .col(big_integer_null("available_at"))
                    .col(big_integer_null("expires_at"))
                    .col(big_integer("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_ledger_customer")
                    .table("ledger_entries")
                    .col("customer_id")
                    .col("id")
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_ledger_qualifying")
                    .table("ledger_entries")
                    .col("customer_id")
                    .col("created_at")
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("ledger_entries").to_owned()).await
    }
}
