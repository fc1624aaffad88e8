//! Achievements an issuer awards. `document` holds the validated OB 3.0 Achievement fields as JSON.
use sea_orm::entity::prelude::*;

/// An achievement row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "achievements")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub issuer_id: String,
    pub name: String,
    pub description: String,
    /// The validated Achievement definition (JSON object without `id`).
    pub document: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
