//! Customers' 365-day spend, for the revenue at risk and the high-value share of a theme: the customers who raised a
//! theme are valued by the valuation worker from segmentation's features (a day at most out of date), and forgotten
//! with the customer.
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait},
};

use super::{Result, Store};
use crate::{domain::DAY_MS, entities::customers};

impl Store {
    /// Customers whose spend is wanted: never valued, or valued over a day ago and wanted since; oldest wish first.
    pub async fn to_value(&self, limit: u64) -> Result<Vec<String>> {
        let stale = self.now() - DAY_MS;
        Ok(customers::Entity::find()
            .select_only()
            .column(customers::Column::CustomerId)
            .filter(
                Condition::any().add(customers::Column::ValuedAt.is_null()).add(
                    Condition::all()
                        .add(customers::Column::ValuedAt.lt(stale))
                        .add(Expr::col(customers::Column::WantedAt).gt(Expr::col(customers::Column::ValuedAt))),
                ),
            )
            .order_by_asc(customers::Column::WantedAt)
            .order_by_asc(customers::Column::CustomerId)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?)
    }

    /// Records a customer's spend as segmentation gave it (None: segmentation does not know the customer). A
    /// customer erased meanwhile has no row left to update.
    pub async fn record_spend(&self, customer_id: &str, spend: Option<f64>) -> Result<()> {
        let _turn = self.frame.write_turn().await;
        customers::Entity::update_many()
            .col_expr(customers::Column::Spend365d, Expr::value(spend))
            .col_expr(customers::Column::ValuedAt, Expr::value(self.now()))
            .filter(customers::Column::CustomerId.eq(customer_id))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}
