use sea_orm_migration::{prelude::*, schema::*};

/// Returns of an order: how much of its amount came back and how many of its points were reversed so far.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds one at a time.
        for mut col in
            [big_integer("returned_micros").default(0).to_owned(), big_integer("returned_points").default(0).to_owned()]
        {
            manager.alter_table(Table::alter().table("purchases").add_column(&mut col).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for c in ["returned_micros", "returned_points"] {
            manager.alter_table(Table::alter().table("purchases").drop_column(c).to_owned()).await?;
        }
        Ok(())
    }
}
