use sea_orm_migration::{prelude::*, schema::*};

use crate::domain::themes::default_themes;

/// Cases (complaints and claims) and their messages; the theme taxonomy as edited (`themes`) and each trained
/// version of it (`taxonomy_versions`, a snapshot every replica trains the same classifier from), seeded with the
/// default taxonomy as version 1.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("cases")
                    .if_not_exists()
                    .col(big_integer("seq").auto_increment().primary_key())
                    .col(string_uniq("case_id"))
                    .col(string("kind"))
                    .col(string("customer_id"))
                    .col(integer("channel"))
                    .col(string("severity"))
                    .col(string("order_id"))
                    .col(string("theme"))
                    .col(double("confidence"))
                    .col(text("keywords"))
                    .col(boolean("tie_broken"))
                    .col(big_integer("taxonomy_version"))
                    .col(string("state"))
                    .col(big_integer("created_at"))
                    .col(big_integer_null("first_response_at"))
                    .col(big_integer_null("resolved_at"))
                    .col(text_null("resolution"))
                    .col(text_null("root_cause"))
                    .col(text_null("corrective_action"))
                    .to_owned(),
            )
            .await?;
        for (name, col) in [("cases_by_time", "created_at"), ("cases_by_customer", "customer_id")] {
            manager.create_index(Index::create().name(name).table("cases").col(col).if_not_exists().to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("case_messages")
                    .if_not_exists()
                    .col(big_integer("id").auto_increment().primary_key())
                    .col(string("case_id"))
                    .col(string("author"))
                    .col(text("text"))
                    .col(big_integer("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("case_messages_by_case")
                    .table("case_messages")
                    .col("case_id")
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("themes")
                    .if_not_exists()
                    .col(string("theme_id").primary_key())
                    .col(text("keywords"))
                    .col(text("examples"))
                    .col(big_integer("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("taxonomy_versions")
                    .if_not_exists()
                    .col(big_integer("version").auto_increment().primary_key())
                    .col(text("themes"))
                    .col(big_integer("created_at"))
                    .to_owned(),
            )
            .await?;
        let themes = default_themes();
        let json = |v: &Vec<String>| serde_json::to_string(v).map_err(|e| DbErr::Custom(e.to_string()));
        for t in &themes {
            let insert = Query::insert()
                .into_table("themes")
                .columns(["theme_id", "keywords", "examples", "updated_at"])
                .values_panic([t.id.clone().into(), json(&t.keywords)?.into(), json(&t.examples)?.into(), 0i64.into()])
                .to_owned();
            manager.exec_stmt(insert).await?;
        }
        let snapshot = serde_json::to_string(&themes).map_err(|e| DbErr::Custom(e.to_string()))?;
        let insert = Query::insert()
            .into_table("taxonomy_versions")
            .columns(["themes", "created_at"])
            .values_panic([snapshot.into(), 0i64.into()])
            .to_owned();
        manager.exec_stmt(insert).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in ["taxonomy_versions", "themes", "case_messages", "cases"] {
            manager.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
