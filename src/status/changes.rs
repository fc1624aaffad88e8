//! Changing credential status: revocation (final) and suspension (reversible), one credential or
//! thousands at once. Every change is durable before the answer, bumps each affected list's version
//! exactly once per transaction, is announced to other instances, and is recorded in the audit
//! trail.
//!
//! Single changes go through a group-commit writer ([`change_one`], [`run`]): the changes waiting
//! at one moment are applied in ONE transaction, in arrival order, each with its own result (an
//! unknown credential or an attempt to undo a revocation fails only that change). Requests are
//! checked before they join a group, and a group whose transaction fails on something other than
//! a lost race or an unreachable database is split and retried without the failing change, so one
//! caller's change can never fail another's.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait, ExprTrait,
    QueryFilter, QuerySelect, sea_query::Expr,
};
use tokio::sync::{mpsc, oneshot};

use super::{allocator::Purpose, lists::StatusError};
use crate::{
    app::AppState,
    db::{self, audit_event, credential, status_entry, status_list},
    invalidation::{self, Change},
};

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
    check_text(credential_ids.iter().map(String::as_str), reason)?;
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
            return Err(missing_entry(&txn, id, purpose).await?);
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
        bump_version(&txn, list_id, now).await?;
    }
    if !to_change.is_empty() {
        let action = audit_action(purpose, status);
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

/// A C0 control character (other than tab, line feed, carriage return) or DEL: no credential id
/// has one, PostgreSQL cannot store U+0000, and no reason needs them.
fn is_forbidden_control(c: char) -> bool {
    (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{7f}'
}

/// Refuses control characters in credential ids (404: no such credential can exist) and in the
/// reason (422) before anything reaches the database or a group.
fn check_text<'a>(
    credential_ids: impl IntoIterator<Item = &'a str>,
    reason: Option<&str>,
) -> Result<(), StatusError> {
    if credential_ids
        .into_iter()
        .any(|id| id.chars().any(|c| c.is_control()))
    {
        return Err(StatusError::NotFound("credential"));
    }
    if reason.is_some_and(|r| r.chars().any(is_forbidden_control)) {
        return Err(StatusError::Invalid(
            "reason may not contain control characters (U+0000 to U+001F except tab, line feed \
             and carriage return, or U+007F)"
                .into(),
        ));
    }
    Ok(())
}

/// Adds one to a list's version (its signed form must be rebuilt) and announces the change to the
/// other instances when the transaction commits.
async fn bump_version(
    txn: &DatabaseTransaction,
    list_id: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    status_list::Entity::update_many()
        .col_expr(
            status_list::Column::Version,
            Expr::col(status_list::Column::Version).add(1),
        )
        .col_expr(status_list::Column::UpdatedAt, Expr::value(now))
        .filter(status_list::Column::Id.eq(list_id))
        .exec(txn)
        .await?;
    invalidation::announce(txn, &Change::StatusList(list_id.to_owned())).await
}

/// The audit action of setting `purpose` to `status`.
fn audit_action(purpose: Purpose, status: bool) -> &'static str {
    match (purpose, status) {
        (Purpose::Revocation, _) => "credential.revoked",
        (Purpose::Suspension, true) => "credential.suspended",
        (Purpose::Suspension, false) => "credential.unsuspended",
    }
}

/// Why a credential has no entry for `purpose`: it does not exist (404), or it was issued without
/// one (422).
async fn missing_entry(
    txn: &DatabaseTransaction,
    credential_id: &str,
    purpose: Purpose,
) -> Result<StatusError, DbErr> {
    let exists = credential::Entity::find_by_id(credential_id.to_owned())
        .select_only()
        .column(credential::Column::Id)
        .into_tuple::<String>()
        .one(txn)
        .await?
        .is_some();
    Ok(if exists {
        StatusError::Invalid(format!(
            "credential {credential_id} has no {} entry",
            purpose.as_str()
        ))
    } else {
        StatusError::NotFound("credential")
    })
}

/// Most single changes applied in one transaction.
const MAX_GROUP: usize = 512;

type Reply = oneshot::Sender<Result<StatusChange, StatusError>>;

/// One queued single status change.
pub struct Request {
    credential_id: String,
    purpose: Purpose,
    status: bool,
    reason: Option<String>,
    actor: String,
    reply: Reply,
}

/// The queue in front of the status writer (see [`run`]).
pub type StatusQueue = crate::writer::WriterQueue<Request>;

/// Sets `purpose` to `status` for one credential through the writer. Answers once the change is
/// committed and this instance's copy of the list is evicted, so the next read shows it.
pub async fn change_one(
    state: &AppState,
    credential_id: String,
    purpose: Purpose,
    status: bool,
    reason: Option<String>,
    actor: &str,
) -> Result<StatusChange, StatusError> {
    // Checked here, before grouping: a change that cannot be stored never joins a group.
    check_text([credential_id.as_str()], reason.as_deref())?;
    let (reply, answer) = oneshot::channel();
    // The writer is gone only while shutting down: answer 503 like an unreachable database.
    let unavailable = || {
        StatusError::Db(DbErr::ConnectionAcquire(
            sea_orm::ConnAcquireErr::ConnectionClosed,
        ))
    };
    state
        .status_queue()
        .send(Request {
            credential_id,
            purpose,
            status,
            reason,
            actor: actor.to_owned(),
            reply,
        })
        .await
        .map_err(|_| unavailable())?;
    answer.await.map_err(|_| unavailable())?
}

/// The writer: applies whatever changes are waiting in one transaction, until every sender is gone.
pub async fn run(state: AppState, mut rx: mpsc::Receiver<Request>) {
    let mut buf = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut buf, MAX_GROUP).await > 0 {
        let group = std::mem::replace(&mut buf, Vec::with_capacity(MAX_GROUP));
        apply_group(&state, group).await;
    }
}

/// Applies a group and answers each of its requests. When the group's transaction fails for a
/// reason that is not the database being unreachable, it is split in two halves, applied in
/// order, and so on down to the one change that fails alone: nothing of a failed transaction was
/// stored, so the others are simply applied again without it.
async fn apply_group(state: &AppState, mut group: Vec<Request>) {
    let err = match apply_with_retries(state.db(), &group).await {
        Ok((outcomes, lists)) => {
            for list in lists {
                state.status_cache().invalidate(&list);
            }
            for (request, outcome) in group.into_iter().zip(outcomes) {
                let _ = request.reply.send(outcome);
            }
            return;
        }
        Err(err) => err,
    };
    let unreachable = matches!(err, DbErr::ConnectionAcquire(_) | DbErr::Conn(_));
    if group.len() > 1 && !unreachable {
        tracing::warn!(
            size = group.len(),
            error = %err,
            "a grouped status change failed; applying its changes in smaller groups"
        );
        let second = group.split_off(group.len() / 2);
        Box::pin(apply_group(state, group)).await;
        Box::pin(apply_group(state, second)).await;
        return;
    }
    for request in group {
        let _ = request.reply.send(Err(StatusError::Db(err.clone())));
    }
}

/// One group in one transaction, retried (up to five times) while it loses races.
async fn apply_with_retries(
    db: &DatabaseConnection,
    group: &[Request],
) -> Result<GroupOutcome, DbErr> {
    let mut last = DbErr::Custom("status changes kept losing races".into());
    for attempt in 0..5 {
        match try_apply(db, group).await {
            Ok(outcome) => return Ok(outcome),
            Err(err) if db::is_retryable(&err) => {
                tracing::debug!(attempt, error = %err, "grouped status change lost a race; retrying");
                last = err;
                db::retry_backoff().await;
            }
            Err(err) => return Err(err),
        }
    }
    Err(last)
}

/// An entry as the group has left it so far.
struct EntryState {
    value: i16,
    reason: Option<String>,
    updated_at: DateTime<Utc>,
    dirty: bool,
}

/// The per-request outcomes of a group and the lists it changed; an `Err` means nothing was stored.
type GroupOutcome = (Vec<Result<StatusChange, StatusError>>, BTreeSet<String>);

async fn try_apply(db: &DatabaseConnection, group: &[Request]) -> Result<GroupOutcome, DbErr> {
    let txn = db::begin_write(db).await?;
    let ids: BTreeSet<&str> = group.iter().map(|r| r.credential_id.as_str()).collect();
    let mut entries: HashMap<(String, Purpose), status_entry::Model> = HashMap::new();
    let ids: Vec<String> = ids.into_iter().map(str::to_owned).collect();
    for chunk in ids.chunks(500) {
        let rows = status_entry::Entity::find()
            .filter(status_entry::Column::CredentialId.is_in(chunk.iter().cloned()))
            .find_also_related(status_list::Entity)
            .all(&txn)
            .await?;
        for (entry, list) in rows {
            if let Some(purpose) = list.and_then(|l| Purpose::parse(&l.purpose)) {
                entries.insert((entry.credential_id.clone(), purpose), entry);
            }
        }
    }
    let now = Utc::now();
    // The value, reason and time of every entry touched so far, so that later changes of the same
    // group see earlier ones.
    let mut current: HashMap<(String, i32), EntryState> = HashMap::new();
    let mut outcomes = Vec::with_capacity(group.len());
    let mut audits = Vec::new();
    let mut lists = BTreeSet::new();
    for r in group {
        let Some(entry) = entries.get(&(r.credential_id.clone(), r.purpose)) else {
            outcomes.push(Err(missing_entry(&txn, &r.credential_id, r.purpose).await?));
            continue;
        };
        let now_state = current
            .entry((entry.list_id.clone(), entry.idx))
            .or_insert_with(|| EntryState {
                value: entry.value,
                reason: entry.reason.clone(),
                updated_at: entry.updated_at,
                dirty: false,
            });
        if r.purpose == Purpose::Revocation && !r.status && now_state.value == 1 {
            outcomes.push(Err(StatusError::RevocationIsFinal(r.credential_id.clone())));
            continue;
        }
        let wanted = i16::from(r.status);
        let changed = now_state.value != wanted;
        if changed {
            *now_state = EntryState {
                value: wanted,
                reason: r.reason.clone(),
                updated_at: now,
                dirty: true,
            };
            lists.insert(entry.list_id.clone());
            audits.push(audit_event::NewEvent {
                actor: r.actor.clone(),
                action: audit_action(r.purpose, r.status),
                target_type: "credential",
                target_id: r.credential_id.clone(),
                details: serde_json::json!({"reason": r.reason}),
            });
        }
        outcomes.push(Ok(StatusChange {
            credential_id: r.credential_id.clone(),
            purpose: r.purpose,
            status: r.status,
            changed,
            updated_at: now_state.updated_at,
        }));
    }
    // Entries whose value changed, written in as few statements as there are distinct
    // (list, value, reason) combinations.
    let mut writes: HashMap<(&str, i16, Option<&str>), Vec<i32>> = HashMap::new();
    for ((list_id, idx), e) in current.iter().filter(|(_, e)| e.dirty) {
        writes
            .entry((list_id.as_str(), e.value, e.reason.as_deref()))
            .or_default()
            .push(*idx);
    }
    for ((list_id, value, reason), idxs) in writes {
        status_entry::Entity::update_many()
            .col_expr(status_entry::Column::Value, Expr::value(value))
            .col_expr(
                status_entry::Column::Reason,
                Expr::value(reason.map(str::to_owned)),
            )
            .col_expr(status_entry::Column::UpdatedAt, Expr::value(now))
            .filter(status_entry::Column::ListId.eq(list_id))
            .filter(status_entry::Column::Idx.is_in(idxs))
            .exec(&txn)
            .await?;
    }
    for list_id in &lists {
        bump_version(&txn, list_id, now).await?;
    }
    audit_event::record_many(&txn, audits).await?;
    txn.commit().await?;
    Ok((outcomes, lists))
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
