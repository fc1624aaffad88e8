//! One row per earner with an OB 3.0 collection: its size, how far each of its recipient keys has
//! been matched against issued credentials, and the earner's own Profile.
use sea_orm::entity::prelude::*;

/// An earner's collection state.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ob3_holders")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    /// Number of holdings (= the highest position; positions are dense).
    pub total: i64,
    /// JSON object: recipient key → RFC 3339 time up to which its credentials were collected.
    pub sync_marks: String,
    /// The Profile the earner PUT (exact JSON text), if any.
    pub profile: Option<String>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
