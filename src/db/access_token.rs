//! Opaque bearer access tokens, stored only as SHA-256 hashes.
use sea_orm::entity::prelude::*;

/// A token row; `token_hash` is the hex SHA-256 of the token value.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "access_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(unique)]
    pub token_hash: String,
    pub client_id: String,
    /// Space-separated granted scopes.
    pub scopes: String,
    pub expires_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
    /// The user the token acts for (authorization-code grants); `None` for a client acting as itself.
    pub user_id: Option<String>,
    /// The authorization code (grant) a user-bound token descends from, directly or through its
    /// refresh family; revoking the grant revokes every token that carries it.
    pub grant_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::oauth_client::Entity",
        from = "Column::ClientId",
        to = "super::oauth_client::Column::Id",
        on_delete = "Cascade"
    )]
    Client,
}

impl Related<super::oauth_client::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Client.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
