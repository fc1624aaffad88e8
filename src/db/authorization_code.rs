//! Authorization codes (RFC 6749 §4.1), single-use and short-lived; only the SHA-256 of the code is
//! stored. A code's id is the grant id every token descending from it carries.
use sea_orm::entity::prelude::*;

/// One code. `exchanged_at` is set by the single successful exchange; a second exchange revokes
/// every token of the grant and sets `revoked_at`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "authorization_codes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(unique)]
    pub code_hash: String,
    pub client_id: String,
    pub user_id: String,
    /// The exact redirect URI of the authorization request; the token request must repeat it.
    pub redirect_uri: String,
    /// Space-separated approved scopes.
    pub scopes: String,
    /// PKCE S256 challenge (base64url SHA-256 of the verifier).
    pub code_challenge: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub exchanged_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
