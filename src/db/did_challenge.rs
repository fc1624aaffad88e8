//! Single-use nonces a DID-auth presentation must carry as its `challenge` (only hashes stored).
use sea_orm::entity::prelude::*;

/// An open challenge.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "did_challenges")]
pub struct Model {
    /// Hex SHA-256 of the nonce.
    #[sea_orm(primary_key, auto_increment = false)]
    pub nonce_hash: String,
    pub user_id: String,
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
