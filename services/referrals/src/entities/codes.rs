use sea_orm::entity::prelude::*;

/// A referral code, found by its key (upper case, look-alikes folded).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "codes")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub code_key: String,
    pub code: String,
    pub customer_id: String,
    pub programme_id: String,
    pub vanity: bool,
    pub valid_from: i64,
    pub valid_until: Option<i64>,
    pub usage_limit: i32,
    pub uses: i32,
    pub created_at: i64,
    /// The ambassador was erased: the key is a keyed hash of the code, the customer a pseudonym.
    pub erased: bool,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
