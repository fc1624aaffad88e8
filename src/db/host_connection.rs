//! Connections to other OB 3.0 hosts (see `ob3::consumer`). Secrets are sealed text
//! (`kek_id.nonce.ciphertext`, base64url), never plaintext.
use sea_orm::entity::prelude::*;

/// One connection: an owner (`user` or `issuer`), the remote host's endpoints, our client there
/// and the tokens its person granted.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "host_connections")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// `user` or `issuer`.
    pub owner_kind: String,
    /// The user id or issuer id.
    pub owner_id: String,
    /// The user who started the connection.
    pub created_by: String,
    /// The base URL the person gave (normalized, no trailing slash).
    pub base_url: String,
    /// `<base>/ims/ob/v3p0`, or the server URL of the host's Service Description Document.
    pub api_base: String,
    /// The host's `info.title`.
    pub host_name: Option<String>,
    pub registration_url: String,
    pub authorization_url: String,
    pub token_url: String,
    pub refresh_url: Option<String>,
    /// RFC 7009 revocation endpoint, from the host's RFC 8414 metadata when it publishes one.
    pub revocation_url: Option<String>,
    /// Our client id at the host.
    pub client_id: String,
    pub client_secret_sealed: Option<String>,
    pub access_token_sealed: Option<String>,
    pub refresh_token_sealed: Option<String>,
    pub token_expires_at: Option<DateTimeUtc>,
    /// Granted (or, while pending, requested) scopes, space-separated.
    pub scopes: String,
    /// `pending`, `connected`, `disconnected`.
    pub status: String,
    /// SHA-256 (hex) of the pending authorization's `state`.
    pub state_hash: Option<String>,
    pub pkce_verifier_sealed: Option<String>,
    pub pending_expires_at: Option<DateTimeUtc>,
    /// The last failure talking to the host, for the page.
    pub last_error: Option<String>,
    /// The host's Profile of the person, as last imported (JSON).
    pub remote_profile: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
