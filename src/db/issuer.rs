//! Issuers: the OB 3.0 Profile fields and the permanent identifier that appears in credentials.
use sea_orm::entity::prelude::*;

/// An issuer row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "issuers")]
pub struct Model {
    /// Our CUID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The identifier in credentials (did:web, https URL or did:key). Never changes.
    #[sea_orm(unique)]
    pub issuer_id: String,
    /// `did:web`, `url` or `did:key`.
    pub id_type: String,
    pub name: String,
    pub url: Option<String>,
    pub email: Option<String>,
    pub description: Option<String>,
    /// Image URL (or data URI).
    pub image: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::signing_key::Entity")]
    SigningKeys,
}

impl Related<super::signing_key::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::SigningKeys.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
