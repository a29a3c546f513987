use rapport_kit::migration::index;
use sea_orm_migration::{prelude::*, schema::*};

/// Signals (feedback's theme signals and agents' suggestions), NPS answers, customers' spend, themes, discovery
/// runs, improvements with their history, pilots with their members.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("signals")
                    .if_not_exists()
                    .col(big_integer("seq").auto_increment().primary_key())
                    .col(string("signal_id"))
                    .col(string("origin"))
                    .col(string("reference"))
                    .col(string_null("customer_id"))
                    .col(string("theme"))
                    .col(string_null("discovered"))
                    .col(text_null("text"))
                    .col(string("severity"))
                    .col(integer("channel"))
                    .col(integer_null("nps"))
                    .col(string("tier"))
                    .col(text("segments"))
                    .col(string("kind"))
                    .col(big_integer("occurred_at"))
                    .col(string_null("suggested_by"))
                    .col(big_integer("received_at"))
                    .to_owned(),
            )
            .await?;
        index(manager, "signals", "signals_by_id", &["signal_id"], true).await?;
        index(manager, "signals", "signals_by_time", &["occurred_at"], false).await?;
        index(manager, "signals", "signals_by_theme", &["theme", "occurred_at"], false).await?;
        index(manager, "signals", "signals_by_discovered", &["discovered"], false).await?;
        index(manager, "signals", "signals_by_customer", &["customer_id"], false).await?;
        manager
            .create_table(
                Table::create()
                    .table("answers")
                    .if_not_exists()
                    .col(string("answer_id").primary_key())
                    .col(string("customer_id"))
                    .col(integer("score"))
                    .col(big_integer("answered_at"))
                    .to_owned(),
            )
            .await?;
        index(manager, "answers", "answers_by_time", &["answered_at"], false).await?;
        index(manager, "answers", "answers_by_customer", &["customer_id"], false).await?;
        manager
            .create_table(
                Table::create()
                    .table("customers")
                    .if_not_exists()
                    .col(string("customer_id").primary_key())
                    .col(double_null("spend_365d"))
                    .col(big_integer_null("valued_at"))
                    .col(big_integer("wanted_at"))
                    .to_owned(),
            )
            .await?;
        index(manager, "customers", "customers_to_value", &["valued_at", "wanted_at"], false).await?;
        manager
            .create_table(
                Table::create()
                    .table("themes")
                    .if_not_exists()
                    .col(string("theme_id").primary_key())
                    .col(string("kind"))
                    .col(string("status"))
                    .col(text("terms"))
                    .col(text("top_terms"))
                    .col(text("representatives"))
                    .col(integer("size"))
                    .col(string_null("accepted_as"))
                    .col(string_null("merged_into"))
                    .col(big_integer("first_run"))
                    .col(big_integer("last_run"))
                    .col(big_integer("created_at"))
                    .col(big_integer("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("discovery_runs")
                    .if_not_exists()
                    .col(big_integer("run_id").auto_increment().primary_key())
                    .col(integer("texts"))
                    .col(integer("empty_texts"))
                    .col(integer("k"))
                    .col(double("silhouette"))
                    .col(text("created"))
                    .col(text("kept"))
                    .col(text("retired"))
                    .col(big_integer("window_start"))
                    .col(big_integer("window_end"))
                    .col(big_integer("ran_at"))
                    .col(big_integer("duration_ms"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("improvements")
                    .if_not_exists()
                    .col(string("improvement_id").primary_key())
                    .col(string("title"))
                    .col(text("description"))
                    .col(text("themes"))
                    .col(string("status"))
                    .col(double("confidence"))
                    .col(double("effort_weeks"))
                    .col(string_null("duplicate_of"))
                    .col(string("created_by"))
                    .col(big_integer("created_at"))
                    .col(big_integer("updated_at"))
                    .col(big_integer_null("shipped_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("improvement_history")
                    .if_not_exists()
                    .col(big_integer("id").auto_increment().primary_key())
                    .col(string("improvement_id"))
                    .col(string_null("from_status"))
                    .col(string("to_status"))
                    .col(string("actor"))
                    .col(text("note"))
                    .col(big_integer("at"))
                    .to_owned(),
            )
            .await?;
        index(manager, "improvement_history", "history_by_improvement", &["improvement_id", "id"], false).await?;
        manager
            .create_table(
                Table::create()
                    .table("pilots")
                    .if_not_exists()
                    .col(string("pilot_id").primary_key())
                    .col(string("improvement_id"))
                    .col(string("segment_id"))
                    .col(integer("holdout_percent"))
                    .col(big_integer("started_at"))
                    .col(big_integer_null("ended_at"))
                    .col(string("started_by"))
                    .to_owned(),
            )
            .await?;
        index(manager, "pilots", "pilots_by_improvement", &["improvement_id", "started_at"], false).await?;
        manager
            .create_table(
                Table::create()
                    .table("pilot_members")
                    .if_not_exists()
                    .col(string("pilot_id"))
                    .col(string("customer_id"))
                    .col(string("grp"))
                    .primary_key(Index::create().col("pilot_id").col("customer_id"))
                    .to_owned(),
            )
            .await?;
        index(manager, "pilot_members", "pilot_members_by_customer", &["customer_id"], false).await?;
        Ok(())
    }
}
