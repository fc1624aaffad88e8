//! Remembered consents: which scopes a user approved for a client. The consent page is skipped when
//! a request asks for no more than what was approved, and shown again when the scopes grow.
use sea_orm::entity::prelude::*;

/// One (user, client) approval; unique per pair.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_consents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub user_id: String,
    pub client_id: String,
    /// Space-separated approved scopes (the union of every approval).
    pub scopes: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
