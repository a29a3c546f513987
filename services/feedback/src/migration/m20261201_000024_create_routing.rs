use sea_orm_migration::{prelude::*, schema::*};

/// Routing: queues (with the agent given the last case, for round robin), agents (capacity, online) and the queues
/// each serves, the ordered rules; and on each case its queue, its agent, the rule that routed it and where its tier
/// came from. The queue `general` is created here: cases no rule routes go to it.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("queues")
                    .if_not_exists()
                    .col(string("queue_id").primary_key())
                    .col(string("display_name"))
                    .col(string("assignment"))
                    .col(string_null("last_agent"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("agents")
                    .if_not_exists()
                    .col(string("agent_id").primary_key())
                    .col(integer("capacity"))
                    .col(boolean("online"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("agent_queues")
                    .if_not_exists()
                    .col(string("agent_id"))
                    .col(string("queue_id"))
                    .primary_key(Index::create().col("agent_id").col("queue_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("routing_rules")
                    .if_not_exists()
                    .col(integer("position").primary_key())
                    .col(text("spec"))
                    .to_owned(),
            )
            .await?;
        let columns = [
            string("queue_id").default("general").to_owned(),
            string_null("assigned_agent").to_owned(),
            string("routed_by").default("default").to_owned(),
            string("tier_source").default("unknown").to_owned(),
        ];
        for mut c in columns {
            manager.alter_table(Table::alter().table("cases").add_column(&mut c).to_owned()).await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("cases_by_agent")
                    .table("cases")
                    .col("assigned_agent")
                    .col("state")
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        let general = Query::insert()
            .into_table("queues")
            .columns(["queue_id", "display_name", "assignment"])
            .values_panic(["general".into(), "general".into(), "round_robin".into()])
            .to_owned();
        manager.exec_stmt(general).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for c in ["queue_id", "assigned_agent", "routed_by", "tier_source"] {
            manager.alter_table(Table::alter().table("cases").drop_column(c).to_owned()).await?;
        }
        for t in ["routing_rules", "agent_queues", "agents", "queues"] {
            manager.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
