//! Tenancy checks for issuer-scoped operations, each one call at the top of a handler. A resource
//! of an issuer outside the caller's set answers exactly like a resource that does not exist (404
//! with the same body), so membership never reveals what exists; a role too low is 403
//! `insufficient_role`. Global callers pass without a lookup.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use serde_json::Value;

pub use crate::accounts::memberships::Role;
use crate::{
    app::AppState,
    db::{credential, issuer},
    error::ApiError,
    issue::{self, IssueError},
    oauth::AccessContext,
};

/// The caller may act on issuer `issuer_id` (our id) with at least `min`.
pub fn issuer(caller: &AccessContext, issuer_id: &str, min: Role) -> Result<(), ApiError> {
    caller.require_issuer(issuer_id, min)
}

/// Maps "not a member" to the 404 the addressed resource answers when it does not exist.
fn as_missing(err: ApiError, what: &'static str) -> ApiError {
    match err {
        ApiError::NotFound { .. } => ApiError::NotFound { what },
        other => other,
    }
}

/// The caller may act with at least `min` on the issuer of achievement `achievement_id`. Uses the
/// issuance-context cache, so a check before an issuance costs a hash lookup.
pub async fn achievement(
    state: &AppState,
    caller: &AccessContext,
    achievement_id: &str,
    min: Role,
) -> Result<(), ApiError> {
    if caller.is_global() {
        return Ok(());
    }
    let ctx = match issue::context(state, achievement_id).await {
        Ok(ctx) => ctx,
        Err(IssueError::NotFound(_)) => {
            return Err(ApiError::NotFound {
                what: "achievement",
            });
        }
        Err(other) => return Err(other.into()),
    };
    caller
        .require_issuer(ctx.issuer_row_id(), min)
        .map_err(|e| as_missing(e, "achievement"))
}

/// The caller may act with at least `min` on the issuer of credential `credential_id` (our id).
pub async fn credential(
    state: &AppState,
    caller: &AccessContext,
    credential_id: &str,
    min: Role,
) -> Result<(), ApiError> {
    credentials(
        state,
        caller,
        std::slice::from_ref(&credential_id.to_owned()),
        min,
    )
    .await
}

/// The caller may act with at least `min` on the issuers of every credential in `ids`; any that is
/// missing or outside the caller's set is 404 `credential`.
pub async fn credentials(
    state: &AppState,
    caller: &AccessContext,
    ids: &[String],
    min: Role,
) -> Result<(), ApiError> {
    if caller.is_global() {
        return Ok(());
    }
    let mut distinct = ids.to_vec();
    distinct.sort();
    distinct.dedup();
    let mut found = 0;
    for chunk in distinct.chunks(500) {
        let rows: Vec<String> = credential::Entity::find()
            .select_only()
            .column(credential::Column::IssuerId)
            .filter(credential::Column::Id.is_in(chunk.iter().cloned()))
            .into_tuple()
            .all(state.db())
            .await?;
        found += rows.len();
        for issuer_id in rows {
            caller
                .require_issuer(&issuer_id, min)
                .map_err(|e| as_missing(e, "credential"))?;
        }
    }
    if found < distinct.len() {
        return Err(ApiError::NotFound { what: "credential" });
    }
    Ok(())
}

/// The caller may act with at least `min` on the issuer of the credential whose `id` is `uri`.
pub async fn credential_uri(
    state: &AppState,
    caller: &AccessContext,
    uri: &str,
    min: Role,
) -> Result<(), ApiError> {
    if caller.is_global() {
        return Ok(());
    }
    let issuer_id: Option<String> = credential::Entity::find()
        .select_only()
        .column(credential::Column::IssuerId)
        .filter(credential::Column::CredentialUri.eq(uri))
        .into_tuple()
        .one(state.db())
        .await?;
    let issuer_id = issuer_id.ok_or(ApiError::NotFound { what: "credential" })?;
    caller
        .require_issuer(&issuer_id, min)
        .map_err(|e| as_missing(e, "credential"))
}

/// W3C VC API issuance: the issuer named in the credential (`issuer` or `issuer.id`) must be one
/// the caller may issue for. An issuer outside the caller's set answers exactly like an unknown
/// issuer (422 `unknown_issuer`); a credential without a readable issuer is left to the handler's
/// own validation.
pub async fn vc_issuer(
    state: &AppState,
    caller: &AccessContext,
    credential: &Value,
    min: Role,
) -> Result<(), ApiError> {
    if caller.is_global() {
        return Ok(());
    }
    let named = match credential.get("issuer") {
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Object(o)) => match o.get("id").and_then(Value::as_str) {
            Some(id) => id,
            None => return Ok(()),
        },
        _ => return Ok(()),
    };
    let ours: Option<String> = issuer::Entity::find()
        .select_only()
        .column(issuer::Column::Id)
        .filter(issuer::Column::IssuerId.eq(named))
        .into_tuple()
        .one(state.db())
        .await?;
    let unknown = || ApiError::Unprocessable {
        code: "unknown_issuer",
        detail: format!("`{named}` is not an issuer of this service"),
    };
    let ours = ours.ok_or_else(unknown)?;
    match caller.require_issuer(&ours, min) {
        Err(ApiError::NotFound { .. }) => Err(unknown()),
        other => other,
    }
}
