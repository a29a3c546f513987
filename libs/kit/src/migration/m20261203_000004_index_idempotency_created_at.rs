use sea_orm_migration::prelude::*;

/// Indexes `idempotency_keys.created_at`: request ids expire after the retention, and each write purges a few
/// expired ones through this index.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        super::index(manager, "idempotency_keys", "idx_idempotency_keys_created_at", &["created_at"], false).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name("idx_idempotency_keys_created_at").table("idempotency_keys").to_owned())
            .await
    }
}
