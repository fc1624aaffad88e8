//! The audit trail: who did what to which key, issuer or credential, and when.
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set, entity::prelude::*};

/// An audit row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub occurred_at: DateTimeUtc,
    /// Client id, `user:<id>` (a signed-in person), `user:<id> via client:<id>` (a user-bound
    /// token), `anonymous`, `cli` or `system`.
    pub actor: String,
    /// e.g. `key.generated`, `key.rotated`, `key.revoked`, `key.rewrapped`.
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    /// JSON object with details (never secrets).
    pub details: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Records an audit event (inside the caller's transaction when given one) and logs it.
pub async fn record(
    db: &impl ConnectionTrait,
    actor: &str,
    action: &str,
    target_type: &str,
    target_id: &str,
    details: serde_json::Value,
) -> Result<(), DbErr> {
    ActiveModel {
        id: Set(super::new_id()),
        occurred_at: Set(Utc::now()),
        actor: Set(actor.to_owned()),
        action: Set(action.to_owned()),
        target_type: Set(target_type.to_owned()),
        target_id: Set(target_id.to_owned()),
        details: Set(details.to_string()),
    }
    .insert(db)
    .await?;
    tracing::info!(actor, action, target_type, target_id, %details, "audit");
    Ok(())
}

/// One event for [`record_many`].
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub actor: String,
    pub action: &'static str,
    pub target_type: &'static str,
    pub target_id: String,
    pub details: serde_json::Value,
}

/// Records many audit events with one statement per 500 (inside the caller's transaction) and
/// logs each.
pub async fn record_many(db: &impl ConnectionTrait, events: Vec<NewEvent>) -> Result<(), DbErr> {
    let now = Utc::now();
    let mut rows = Vec::with_capacity(events.len());
    for e in events {
        tracing::info!(actor = %e.actor, action = e.action, target_type = e.target_type, target_id = %e.target_id, details = %e.details, "audit");
        rows.push(ActiveModel {
            id: Set(super::new_id()),
            occurred_at: Set(now),
            actor: Set(e.actor),
            action: Set(e.action.to_owned()),
            target_type: Set(e.target_type.to_owned()),
            target_id: Set(e.target_id),
            details: Set(e.details.to_string()),
        });
    }
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(500).collect();
        Entity::insert_many(chunk).exec(db).await?;
    }
    Ok(())
}
