//! Issued credentials, stored durably before they are returned.
use sea_orm::entity::prelude::*;

/// A credential row. `document` is the signed JSON credential or the compact JWS.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "credentials")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The credential's `id` (`urn:uuid:…`).
    #[sea_orm(unique)]
    pub credential_uri: String,
    pub issuer_id: String,
    /// The achievement (absent for VC API issuance of arbitrary credentials).
    pub achievement_id: Option<String>,
    /// `data-integrity` or `jwt`.
    pub format: String,
    pub document: String,
    /// Signing key id.
    pub key_id: String,
    pub valid_from: DateTimeUtc,
    pub valid_until: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    /// Who it was issued to, as `ob3::ownership::RecipientKey` text (`mailto:<normalized email>`,
    /// or the subject's DID or URL); what earners' collections are matched on.
    pub recipient_key: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
