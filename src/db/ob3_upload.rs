//! Credentials earners uploaded through `POST /ims/ob/v3p0/credentials`, kept byte for byte.
use sea_orm::entity::prelude::*;

/// An uploaded credential. Unique per (user, `issuer.id`, credential `id`): the OB 3.0 equality.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ob3_uploads")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub user_id: String,
    /// `issuer.id` (or `issuer` when it is a URI).
    pub issuer_id: String,
    /// The credential's `id`, percent-decoded and trimmed.
    pub credential_id: String,
    /// `json` or `jwt`.
    pub format: String,
    /// The exact body as received.
    pub body: String,
    pub valid_from: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
