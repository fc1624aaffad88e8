//! Status lists (one bitstring per issuer, purpose and generation). The bits themselves are derived
//! from `status_entries`; `version` changes with every status change.
use sea_orm::entity::prelude::*;

/// A status-list row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "status_lists")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub issuer_id: String,
    /// `revocation` or `suspension`.
    pub purpose: String,
    /// Number of entries (bits).
    pub size: i32,
    /// Entries handed out.
    pub allocated: i32,
    /// `open` (allocating) or `full`.
    pub state: String,
    /// Bumped on every status change; keys the signed-list cache and the ETag.
    pub version: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
