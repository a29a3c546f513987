use sea_orm_migration::{prelude::*, schema::*};

/// Creates `idempotency_subjects` (which customers a stored reply is about) and adds `idempotency_keys.erased_at`,
/// so an erasure can blank the stored replies that held the customer's data.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if !manager.has_column("idempotency_keys", "erased_at").await? {
            manager
                .alter_table(
                    Table::alter().table("idempotency_keys").add_column(big_integer_null("erased_at")).to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("idempotency_subjects")
                    .if_not_exists()
                    .col(string("request_id"))
                    .col(string("subject"))
                    .primary_key(Index::create().col("request_id").col("subject"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_idempotency_subjects_subject")
                    .table("idempotency_subjects")
                    .col("subject")
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("idempotency_subjects").to_owned()).await?;
        manager.alter_table(Table::alter().table("idempotency_keys").drop_column("erased_at").to_owned()).await
    }
}
