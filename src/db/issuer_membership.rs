//! Issuer memberships: which client or user may act on which issuer, and with which role.
use sea_orm::entity::prelude::*;

/// A membership row. `principal_kind` is `client` or `user`; `role` is `owner`, `issuer` or
/// `viewer`. There is no foreign key to users or clients (a principal id is either), so deleting a
/// client deletes its memberships explicitly.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "issuer_memberships")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub principal_kind: String,
    pub principal_id: String,
    /// Our issuer id (CUID).
    pub issuer_id: String,
    pub role: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::issuer::Entity",
        from = "Column::IssuerId",
        to = "super::issuer::Column::Id",
        on_delete = "Cascade"
    )]
    Issuer,
}

impl Related<super::issuer::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Issuer.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
