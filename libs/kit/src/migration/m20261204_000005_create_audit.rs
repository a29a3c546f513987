use sea_orm_migration::{prelude::*, schema::*};

/// Creates the audit trail: `audit_records` (one row per accepted change: when, which RPC or worker action, the
/// actor's role and subject, the target) and `audit_customers` (the pseudonyms of the customers each change is
/// about), indexed for "what did this actor do" and "what was done about this customer".
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("audit_records")
                    .if_not_exists()
                    .col(big_pk_auto("seq"))
                    .col(big_integer("at"))
                    .col(string("method"))
                    .col(string("actor_role"))
                    .col(string("actor_subject"))
                    .col(string("target"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("audit_customers")
                    .if_not_exists()
                    .col(big_integer("seq"))
                    .col(string("customer"))
                    .primary_key(Index::create().col("seq").col("customer"))
                    .to_owned(),
            )
            .await?;
        super::index(manager, "audit_customers", "idx_audit_customers_customer", &["customer"], false).await?;
        super::index(manager, "audit_records", "idx_audit_records_actor_subject", &["actor_subject"], false).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("audit_customers").to_owned()).await?;
        manager.drop_table(Table::drop().table("audit_records").to_owned()).await
    }
}
