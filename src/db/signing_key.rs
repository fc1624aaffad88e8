//! Issuer signing keys. The private key exists here only as AES-256-GCM ciphertext under a KEK.
use sea_orm::entity::prelude::*;

/// A signing-key row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub struct Model {
    /// Key id (CUID, never reused).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Owning issuer (our CUID).
    pub issuer_id: String,
    /// `Ed25519` or `P-256`.
    pub algorithm: String,
    /// `active`, `retired` or `revoked`.
    pub state: String,
    /// Public key, multibase Multikey (`z6Mk…` for Ed25519, `zDn…` compressed point for P-256).
    pub public_key: String,
    /// Id of the KEK the private key is encrypted under.
    pub kek_id: String,
    /// AES-GCM nonce (96 bits).
    pub nonce: Vec<u8>,
    /// AES-GCM ciphertext of the private key, with its tag.
    pub ciphertext: Vec<u8>,
    pub created_at: DateTimeUtc,
    pub retired_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
    pub revocation_reason: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::issuer::Entity",
        from = "Column::IssuerId",
        to = "super::issuer::Column::Id"
    )]
    Issuer,
}

impl Related<super::issuer::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Issuer.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
