use rapport_kit::migration::index;
use sea_orm_migration::{prelude::*, schema::*};

use crate::domain::default_programme;

/// Programmes (one row per version), ambassadors, codes, invitations, referrals, their rewards and the block list;
/// seeded with the `default` programme (the one promoters are invited to).
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("programmes")
                    .if_not_exists()
                    .col(string("programme_id"))
                    .col(integer("version"))
                    .col(text("rules"))
                    .col(big_integer("created_at"))
                    .primary_key(Index::create().col("programme_id").col("version"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("ambassadors")
                    .if_not_exists()
                    .col(string("customer_id"))
                    .col(string("programme_id"))
                    .col(string("source"))
                    .col(big_integer("invited_at"))
                    .col(string("review_site"))
                    .col(string_null("review_outcome"))
                    .col(integer("review_rating"))
                    .col(string_null("email_hash"))
                    .col(string_null("payment_hash"))
                    .col(string_null("device_hash"))
                    .primary_key(Index::create().col("customer_id").col("programme_id"))
                    .to_owned(),
            )
            .await?;
        index(manager, "ambassadors", "ambassadors_by_time", &["programme_id", "invited_at"], false).await?;
        manager
            .create_table(
                Table::create()
                    .table("codes")
                    .if_not_exists()
                    .col(string("code_key").primary_key())
                    .col(string("code"))
                    .col(string("customer_id"))
                    .col(string("programme_id"))
                    .col(boolean("vanity"))
                    .col(big_integer("valid_from"))
                    .col(big_integer_null("valid_until"))
                    .col(integer("usage_limit"))
                    .col(integer("uses"))
                    .col(big_integer("created_at"))
                    .col(boolean("erased"))
                    .to_owned(),
            )
            .await?;
        index(manager, "codes", "codes_one_per_customer", &["customer_id", "programme_id"], true).await?;
        manager
            .create_table(
                Table::create()
                    .table("invitations")
                    .if_not_exists()
                    .col(big_integer("id").auto_increment().primary_key())
                    .col(string("customer_id"))
                    .col(string("programme_id"))
                    .col(integer("count"))
                    .col(big_integer("at"))
                    .to_owned(),
            )
            .await?;
        index(manager, "invitations", "invitations_by_customer", &["customer_id", "programme_id"], false).await?;
        index(manager, "invitations", "invitations_by_time", &["programme_id", "at"], false).await?;
        manager
            .create_table(
                Table::create()
                    .table("referrals")
                    .if_not_exists()
                    .col(big_integer("seq").auto_increment().primary_key())
                    .col(string_uniq("referral_id"))
                    .col(string("programme_id"))
                    .col(integer("programme_version"))
                    .col(string("referrer_id"))
                    .col(string_uniq("referee_id"))
                    .col(string("code_key"))
                    .col(string("code"))
                    .col(string("state"))
                    .col(double("fraud_score"))
                    .col(boolean("flagged_at_signup"))
                    .col(text("signals"))
                    .col(string_null("email_hash"))
                    .col(string_null("payment_hash"))
                    .col(string_null("device_hash"))
                    .col(big_integer("signed_up_at"))
                    .col(big_integer_null("converted_at"))
                    .col(string("converted_order_id"))
                    .col(big_integer("order_micros"))
                    .col(big_integer("returned_micros"))
                    .col(integer("conversions"))
                    .col(big_integer_null("approve_at"))
                    .col(big_integer_null("approved_at"))
                    .col(string("reviewed_by"))
                    .col(string("reason"))
                    .col(big_integer_null("voided_at"))
                    .col(string("voided_by"))
                    .col(string("void_reason"))
                    .to_owned(),
            )
            .await?;
        index(manager, "referrals", "referrals_by_code", &["code_key", "signed_up_at"], false).await?;
        index(manager, "referrals", "referrals_by_referrer", &["referrer_id", "programme_id"], false).await?;
        index(manager, "referrals", "referrals_by_state", &["state", "converted_at"], false).await?;
        index(manager, "referrals", "referrals_by_time", &["programme_id", "signed_up_at"], false).await?;
        manager
            .create_table(
                Table::create()
                    .table("rewards")
                    .if_not_exists()
                    .col(string("reward_id").primary_key())
                    .col(string("referral_id"))
                    .col(string("side"))
                    .col(string("customer_id"))
                    .col(big_integer("points"))
                    .col(string("state"))
                    .col(big_integer("due_at"))
                    .col(string("order_id"))
                    .col(big_integer("converted_at"))
                    .col(string("entry_id"))
                    .col(string("last_error"))
                    .col(integer("attempts"))
                    .col(big_integer_null("paid_at"))
                    .col(big_integer_null("clawed_back_at"))
                    .to_owned(),
            )
            .await?;
        index(manager, "rewards", "rewards_by_referral", &["referral_id"], false).await?;
        index(manager, "rewards", "rewards_by_state", &["state", "due_at"], false).await?;
        index(manager, "rewards", "rewards_by_customer", &["customer_id"], false).await?;
        manager
            .create_table(
                Table::create()
                    .table("blocked")
                    .if_not_exists()
                    .col(string("kind"))
                    .col(string("value"))
                    .primary_key(Index::create().col("kind").col("value"))
                    .to_owned(),
            )
            .await?;
        let rules = serde_json::to_string(&default_programme()).map_err(|e| DbErr::Custom(e.to_string()))?;
        let insert = Query::insert()
            .into_table("programmes")
            .columns(["programme_id", "version", "rules", "created_at"])
            .values_panic(["default".into(), 1i32.into(), rules.into(), 0i64.into()])
            .to_owned();
        manager.exec_stmt(insert).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in ["blocked", "rewards", "referrals", "invitations", "codes", "ambassadors", "programmes"] {
            manager.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
