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
    /// Client home page (RFC 7591 `client_uri`), shown on the consent page.
    pub client_uri: Option<String>,
    /// Client logo (`logo_uri`); the consent page shows it only when it is https.
    pub logo_uri: Option<String>,
    /// Terms of service (`tos_uri`).
    pub tos_uri: Option<String>,
    /// Privacy policy (`policy_uri`).
    pub policy_uri: Option<String>,
    /// `software_id` as registered.
    pub software_id: Option<String>,
    /// `software_version` as registered.
    pub software_version: Option<String>,
    /// `contacts` as a JSON array of strings.
    pub contacts: Option<String>,
    /// Space-separated `grant_types`; `None` means the kind's default.
    pub grant_types: Option<String>,
    /// Space-separated `response_types`.
    pub response_types: Option<String>,
    /// `client_secret_basic` (default), `client_secret_post`, or `none` (a public client: no secret,
    /// PKCE only; `secret_hash` is empty and never matches).
    pub token_endpoint_auth_method: String,
    /// Hex SHA-256 of the RFC 7592 registration access token (dynamically registered clients only).
    pub registration_token_hash: Option<String>,
    /// Registered through `POST /oauth/register` (RFC 7591).
    pub registered_dynamically: bool,
    /// When the client first obtained a token; registered clients that never do are purged after
    /// 24 h.
    pub first_token_at: Option<DateTimeUtc>,
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

#[cfg(test)]
impl Model {
    /// An enabled service client `id` with nothing registered (unit tests).
    pub fn for_tests(id: &str) -> Self {
        Self {
            id: id.into(),
            name: id.into(),
            secret_hash: String::new(),
            scopes: String::new(),
            kind: "service".into(),
            created_at: chrono::Utc::now(),
            disabled_at: None,
            global: false,
            redirect_uris: String::new(),
            updated_at: None,
            client_uri: None,
            logo_uri: None,
            tos_uri: None,
            policy_uri: None,
            software_id: None,
            software_version: None,
            contacts: None,
            grant_types: None,
            response_types: None,
            token_endpoint_auth_method: "client_secret_basic".into(),
            registration_token_hash: None,
            registered_dynamically: false,
            first_token_at: None,
        }
    }
}
