//! Idempotency records: a retried request with the same key gets the stored response.
use sea_orm::entity::prelude::*;

/// An idempotency row, unique per (client, key).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub client_id: String,
    pub key: String,
    /// SHA-256 of the request body (a reused key with another body is refused).
    pub request_hash: String,
    /// The response body that was sent.
    pub response: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
