//! OAuth clients: machine clients (client credentials) and, later, registered wallet/host apps.
use sea_orm::entity::prelude::*;

/// A client row. `secret_hash` is the hex SHA-256 of the secret; the secret itself is never stored.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_clients")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub secret_hash: String,
    /// Space-separated scopes the client may be granted.
    pub scopes: String,
    /// `service` for client-credentials clients.
    pub kind: String,
    pub created_at: DateTimeUtc,
    pub disabled_at: Option<DateTimeUtc>,
    /// Global clients act on every issuer; the others only on the issuers they are members of
    /// (`issuer_memberships`). Clients created before tenancy existed are global.
    pub global: bool,
    /// Space-separated registered redirect URIs (for the authorization-code flow; empty for
    /// client-credentials clients).
    pub redirect_uris: String,
    /// Last change through client management.
    pub updated_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::access_token::Entity")]
    AccessTokens,
}

impl Related<super::access_token::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AccessTokens.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
