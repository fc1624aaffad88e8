//! Refresh tokens, grouped in families by `grant_id` (the authorization code the family started
//! from). Only the SHA-256 of a token is stored. Rotation consumes a token and names its successor;
//! presenting a consumed token again revokes the whole family and its access tokens.
use sea_orm::entity::prelude::*;

/// One refresh token of a family.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refresh_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(unique)]
    pub token_hash: String,
    /// The family: the id of the authorization code it started from.
    pub grant_id: String,
    pub client_id: String,
    pub user_id: String,
    /// Space-separated scopes; a rotation may only narrow them.
    pub scopes: String,
    pub created_at: DateTimeUtc,
    /// Idle deadline of this token (7 days after issue by default).
    pub expires_at: DateTimeUtc,
    /// Absolute deadline of the family (90 days after the code exchange by default).
    pub family_expires_at: DateTimeUtc,
    /// Set when the token was rotated.
    pub consumed_at: Option<DateTimeUtc>,
    /// The id of the token that replaced it.
    pub replaced_by: Option<String>,
    pub revoked_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
