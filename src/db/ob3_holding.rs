//! One credential in an earner's collection, at a dense position 1..N: an issued credential that
//! is theirs (`credential_id`), or one they uploaded (`upload_id`).
use sea_orm::entity::prelude::*;

/// A holding.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ob3_holdings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub position: i64,
    /// The recipient key that made an issued credential theirs (absent for uploads).
    pub recipient_key: Option<String>,
    pub credential_id: Option<String>,
    pub upload_id: Option<String>,
    pub added_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
