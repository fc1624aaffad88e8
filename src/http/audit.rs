//! The audit trail (scope `admin`).

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{Object, OpenApi, param::Query, payload::Json};
use sea_orm::{EntityTrait, PaginatorTrait, QueryOrder, QuerySelect};

use super::{
    ApiTags,
    auth::{Authorized, scope},
};
use crate::{app::AppState, db::audit_event, error::ApiError, oauth::Scope};

/// One audited action.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct AuditEvent {
    /// Event id.
    pub id: String,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// Who: an OAuth client id, `user:<id>` (a signed-in person), `user:<id> via client:<id>` (a
    /// user-bound token), `anonymous`, `cli` or `system`.
    pub actor: String,
    /// What, e.g. `key.rotated`.
    pub action: String,
    /// Kind of object acted on.
    pub target_type: String,
    /// Id of the object acted on.
    pub target_id: String,
    /// Details (never secrets).
    pub details: serde_json::Value,
}

/// A page of audit events, newest first.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct AuditPage {
    /// Events on this page.
    pub items: Vec<AuditEvent>,
    /// Total number of events.
    pub total: u64,
}

/// Audit trail.
pub struct AuditApi;

#[OpenApi(tag = "ApiTags::Audit")]
impl AuditApi {
    /// Page through the audit trail, newest first: key generation, rotation, revocation, rewrap,
    /// issuer changes, membership and client changes. Global callers only (403
    /// `insufficient_role` for a caller limited to some issuers).
    #[oai(
        path = "/api/v1/audit",
        method = "get",
        operation_id = "listAuditEvents"
    )]
    async fn list(
        &self,
        #[oai(scope = "Scope::Admin")] auth: Authorized<scope::Admin>,
        state: Data<&AppState>,
        /// Page size (1–500, default 100).
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "500"))
        )]
        limit: Query<u64>,
        /// Items to skip.
        #[oai(default, validator(minimum(value = "0")))]
        offset: Query<u64>,
    ) -> Result<Json<AuditPage>, ApiError> {
        auth.caller.require_global()?;
        let total = audit_event::Entity::find().count(state.db()).await?;
        let rows = audit_event::Entity::find()
            .order_by_desc(audit_event::Column::OccurredAt)
            .order_by_desc(audit_event::Column::Id)
            .limit(limit.0)
            .offset(offset.0)
            .all(state.db())
            .await?;
        Ok(Json(AuditPage {
            items: rows
                .into_iter()
                .map(|r| AuditEvent {
                    details: serde_json::from_str(&r.details).unwrap_or(serde_json::Value::Null),
                    id: r.id,
                    occurred_at: r.occurred_at,
                    actor: r.actor,
                    action: r.action,
                    target_type: r.target_type,
                    target_id: r.target_id,
                })
                .collect(),
            total,
        }))
    }
}

fn default_limit() -> u64 {
    100
}
