//! Changing credential status: revocation (final) and suspension (reversible), one credential or
//! thousands at once. Every change is durable before the answer, bumps each affected list's version
//! exactly once, and is recorded in the audit trail.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, ExprTrait, QueryFilter, QuerySelect,
    sea_query::Expr,
};

use super::{allocator::Purpose, lists::StatusError};
use crate::db::{self, audit_event, credential, status_entry, status_list};

/// Largest number of credentials one request may change.
pub const MAX_BULK: usize = 10_000;

/// The result for one credential.
#[derive(Debug, Clone)]
pub struct StatusChange {
    pub credential_id: String,
    pub purpose: Purpose,
    pub status: bool,
    /// False when the credential already had the requested status.
    pub changed: bool,
    pub updated_at: DateTime<Utc>,
}

/// Sets `purpose` to `status` for every credential in `credential_ids` (our ids), atomically: if any
/// credential is unknown, or an attempt would undo a revocation, nothing changes.
pub async fn set_status(
    db: &DatabaseConnection,
    credential_ids: &[String],
    purpose: Purpose,
    status: bool,
    reason: Option<&str>,
    actor: &str,
) -> Result<(Vec<StatusChange>, BTreeSet<String>), StatusError> {
    if credential_ids.is_empty() || credential_ids.len() > MAX_BULK {
        return Err(StatusError::Invalid(format!(
            "between 1 and {MAX_BULK} credentials per request"
        )));
    }
    let unique: BTreeSet<&str> = credential_ids.iter().map(String::as_str).collect();
    let txn = db::begin_write(db).await?;
    // The entries of these credentials for this purpose.
    let mut entries: HashMap<String, status_entry::Model> = HashMap::new();
    let ids: Vec<String> = unique.iter().map(|s| (*s).to_owned()).collect();
    for chunk in ids.chunks(500) {
        let rows = status_entry::Entity::find()
            .filter(status_entry::Column::CredentialId.is_in(chunk.iter().cloned()))
            .find_also_related(status_list::Entity)
            .all(&txn)
            .await?;
        for (entry, list) in rows {
            if list.is_some_and(|l| l.purpose == purpose.as_str()) {
                entries.insert(entry.credential_id.clone(), entry);
            }
        }
    }
    for id in &unique {
        if !entries.contains_key(*id) {
            let exists = credential::Entity::find_by_id((*id).to_owned())
                .select_only()
                .column(credential::Column::Id)
                .into_tuple::<String>()
                .one(&txn)
                .await?
                .is_some();
            return Err(if exists {
                StatusError::Invalid(format!("credential {id} has no {} entry", purpose.as_str()))
            } else {
                StatusError::NotFound("credential")
            });
        }
    }
    let wanted: i16 = i16::from(status);
    if purpose == Purpose::Revocation
        && !status
        && let Some(e) = entries.values().find(|e| e.value == 1)
    {
        return Err(StatusError::RevocationIsFinal(e.credential_id.clone()));
    }
    let now = Utc::now();
    let to_change: Vec<&status_entry::Model> =
        entries.values().filter(|e| e.value != wanted).collect();
    let mut lists: BTreeSet<String> = BTreeSet::new();
    let mut by_list: HashMap<&str, Vec<i32>> = HashMap::new();
    for e in &to_change {
        by_list.entry(e.list_id.as_str()).or_default().push(e.idx);
        lists.insert(e.list_id.clone());
    }
    for (list_id, idxs) in &by_list {
        for chunk in idxs.chunks(1000) {
            status_entry::Entity::update_many()
                .col_expr(status_entry::Column::Value, Expr::value(wanted))
                .col_expr(
                    status_entry::Column::Reason,
                    Expr::value(reason.map(str::to_owned)),
                )
                .col_expr(status_entry::Column::UpdatedAt, Expr::value(now))
                .filter(status_entry::Column::ListId.eq(*list_id))
                .filter(status_entry::Column::Idx.is_in(chunk.iter().copied()))
                .exec(&txn)
                .await?;
        }
        status_list::Entity::update_many()
            .col_expr(
                status_list::Column::Version,
                Expr::col(status_list::Column::Version).add(1),
            )
            .col_expr(status_list::Column::UpdatedAt, Expr::value(now))
            .filter(status_list::Column::Id.eq(*list_id))
            .exec(&txn)
            .await?;
    }
    if !to_change.is_empty() {
        let action = match (purpose, status) {
            (Purpose::Revocation, _) => "credential.revoked",
            (Purpose::Suspension, true) => "credential.suspended",
            (Purpose::Suspension, false) => "credential.unsuspended",
        };
        let (target, details) = if to_change.len() == 1 {
            (
                to_change[0].credential_id.clone(),
                serde_json::json!({"reason": reason}),
            )
        } else {
            (
                format!("{} credentials", to_change.len()),
                serde_json::json!({
                    "reason": reason,
                    "credentials": to_change.iter().map(|e| e.credential_id.clone()).collect::<Vec<_>>(),
                }),
            )
        };
        audit_event::record(&txn, actor, action, "credential", &target, details).await?;
    }
    txn.commit().await?;
    let changes = credential_ids
        .iter()
        .filter_map(|id| entries.get(id))
        .map(|e| StatusChange {
            credential_id: e.credential_id.clone(),
            purpose,
            status,
            changed: e.value != wanted,
            updated_at: if e.value != wanted { now } else { e.updated_at },
        })
        .collect();
    Ok((changes, lists))
}

/// Revoked and suspended flags of many credentials in one pass (missing ids are neither).
pub async fn flags_of(
    db: &impl sea_orm::ConnectionTrait,
    credential_ids: &[String],
) -> Result<HashMap<String, (bool, bool)>, StatusError> {
    let mut flags: HashMap<String, (bool, bool)> = HashMap::new();
    for chunk in credential_ids.chunks(500) {
        let rows = status_entry::Entity::find()
            .filter(status_entry::Column::CredentialId.is_in(chunk.iter().cloned()))
            .filter(status_entry::Column::Value.eq(1))
            .find_also_related(status_list::Entity)
            .all(db)
            .await?;
        for (entry, list) in rows {
            let entry_flags = flags.entry(entry.credential_id).or_default();
            match list.and_then(|l| Purpose::parse(&l.purpose)) {
                Some(Purpose::Revocation) => entry_flags.0 = true,
                Some(Purpose::Suspension) => entry_flags.1 = true,
                None => {}
            }
        }
    }
    Ok(flags)
}
