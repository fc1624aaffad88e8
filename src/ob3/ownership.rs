//! Which credentials an earner owns. A credential issued on this instance belongs to the user
//! whose verified email is its recipient (normalized), or who linked the DID it was issued to;
//! never before the email is verified, never across addresses. Ownership is materialized in
//! `ob3_holdings` at dense positions 1..N (appended in issuance order as credentials are
//! collected), so that the API's offset pages are index range reads at any depth.
//!
//! Collection is lazy and incremental: [`collect`] runs before each read of the collection and
//! only looks at credentials created since the last collection of each recipient key (minus a
//! margin covering transactions that committed late), so it costs one indexed probe per key when
//! nothing is new. A key the user no longer has (email changed, DID unlinked) takes its holdings
//! away and the remaining positions are renumbered.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect,
};
use serde_json::Value;

use super::statement;
use crate::{
    accounts::records::user,
    db::{ob3_holder, user_did},
    ob::Recipient,
};

/// How far back of a key's last collection credentials are looked at again: an issuance whose
/// transaction committed after a collection started, with an earlier `created_at`, is still found.
const LATE_COMMIT_MARGIN_SECS: i64 = 120;

/// The ownership key of an email address (`mailto:` + the normalized address).
pub fn email_key(email: &str) -> String {
    let normalized =
        crate::ob::normalize_email(email).unwrap_or_else(|_| email.trim().to_lowercase());
    format!("mailto:{normalized}")
}

/// The ownership key of an issuance recipient.
pub fn recipient_key(recipient: &Recipient) -> String {
    match recipient {
        Recipient::Email(email) => email_key(email),
        Recipient::Id(id) => id_key(id),
    }
}

fn id_key(id: &str) -> String {
    match id.trim().strip_prefix("mailto:") {
        Some(email) => email_key(email),
        None => id.trim().to_owned(),
    }
}

/// The ownership key of a credential's subject (`credentialSubject.id`), when it names one.
pub fn subject_key(credential: &Value) -> Option<String> {
    let subject = match credential.get("credentialSubject")? {
        Value::Array(items) => items.first()?,
        one => one,
    };
    subject
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(id_key)
}

/// The keys that make credentials the user's: the verified email, and every linked DID.
pub async fn identity_keys(db: &impl ConnectionTrait, user_id: &str) -> Result<Vec<String>, DbErr> {
    let mut keys = Vec::new();
    if let Some(u) = user::Entity::find_by_id(user_id.to_owned()).one(db).await?
        && u.email_verified_at.is_some()
        && u.disabled_at.is_none()
    {
        keys.push(email_key(&u.email));
    }
    let dids = user_did::Entity::find()
        .filter(user_did::Column::UserId.eq(user_id))
        .all(db)
        .await?;
    keys.extend(dids.into_iter().map(|d| d.did));
    Ok(keys)
}

fn parse_marks(text: &str) -> BTreeMap<String, DateTime<Utc>> {
    serde_json::from_str::<BTreeMap<String, String>>(text)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| {
            DateTime::parse_from_rfc3339(&v)
                .ok()
                .map(|t| (k, t.with_timezone(&Utc)))
        })
        .collect()
}

fn marks_text(marks: &BTreeMap<String, DateTime<Utc>>) -> String {
    let map: BTreeMap<&String, String> = marks.iter().map(|(k, v)| (k, v.to_rfc3339())).collect();
    serde_json::to_string(&map).unwrap_or_else(|_| "{}".into())
}

fn epoch() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH
}

/// Whether an issued credential to `key` created after `since` is not yet held by the user.
async fn has_uncollected(
    db: &impl ConnectionTrait,
    user_id: &str,
    key: &str,
    since: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let stmt = statement(
        db.get_database_backend(),
        "SELECT 1 AS found FROM credentials c WHERE c.recipient_key = ? AND c.created_at > ? \
         AND NOT EXISTS (SELECT 1 FROM ob3_holdings h WHERE h.user_id = ? AND h.credential_id = c.id) \
         LIMIT 1",
        vec![key.into(), since.into(), user_id.into()],
    );
    Ok(db.query_one_raw(stmt).await?.is_some())
}

/// Ensures the holder row exists and locks it for the rest of `txn` (PostgreSQL `FOR UPDATE`;
/// SQLite write transactions are exclusive already). Returns it.
pub(crate) async fn lock_holder(
    txn: &impl ConnectionTrait,
    user_id: &str,
    now: DateTime<Utc>,
) -> Result<ob3_holder::Model, DbErr> {
    let backend = txn.get_database_backend();
    txn.execute_raw(statement(
        backend,
        "INSERT INTO ob3_holders (user_id, total, sync_marks, profile, updated_at) \
         VALUES (?, 0, '{}', NULL, ?) ON CONFLICT (user_id) DO NOTHING",
        vec![user_id.into(), now.into()],
    ))
    .await?;
    let mut query = ob3_holder::Entity::find_by_id(user_id.to_owned());
    if backend == sea_orm::DbBackend::Postgres {
        query = query.lock_exclusive();
    }
    query
        .one(txn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("ob3 holder".into()))
}

/// Renumbers a user's holdings to 1..N in their current order (after some were taken away).
async fn renumber(txn: &impl ConnectionTrait, user_id: &str) -> Result<i64, DbErr> {
    let backend = txn.get_database_backend();
    txn.execute_raw(statement(
        backend,
        "UPDATE ob3_holdings SET position = -position WHERE user_id = ?",
        vec![user_id.into()],
    ))
    .await?;
    let renumbered = txn
        .execute_raw(statement(
            backend,
            "UPDATE ob3_holdings AS h SET position = r.rn FROM (SELECT position AS old, \
             ROW_NUMBER() OVER (ORDER BY position DESC) AS rn FROM ob3_holdings WHERE user_id = ?) AS r \
             WHERE h.user_id = ? AND h.position = r.old",
            vec![user_id.into(), user_id.into()],
        ))
        .await?;
    Ok(i64::try_from(renumbered.rows_affected()).unwrap_or(i64::MAX))
}

/// Brings the user's collection up to date with what was issued to them; returns its size.
pub async fn collect(db: &DatabaseConnection, user_id: &str) -> Result<i64, DbErr> {
    let keys: BTreeSet<String> = identity_keys(db, user_id).await?.into_iter().collect();
    let holder = ob3_holder::Entity::find_by_id(user_id.to_owned())
        .one(db)
        .await?;
    let marks = holder
        .as_ref()
        .map(|h| parse_marks(&h.sync_marks))
        .unwrap_or_default();
    let margin = Duration::seconds(LATE_COMMIT_MARGIN_SECS);
    let stale = marks.keys().any(|k| !keys.contains(k));
    let mut pending = false;
    for key in &keys {
        let since = marks.get(key).map_or_else(epoch, |m| *m - margin);
        if has_uncollected(db, user_id, key, since).await? {
            pending = true;
            break;
        }
    }
    if !stale && !pending {
        return Ok(holder.map_or(0, |h| h.total));
    }

    let txn = crate::db::begin_write(db).await?;
    let now = Utc::now();
    let holder = lock_holder(&txn, user_id, now).await?;
    let mut marks = parse_marks(&holder.sync_marks);
    let mut total = holder.total;
    let backend = txn.get_database_backend();
    let gone: Vec<String> = marks
        .keys()
        .filter(|k| !keys.contains(*k))
        .cloned()
        .collect();
    if !gone.is_empty() {
        for key in &gone {
            txn.execute_raw(statement(
                backend,
                "DELETE FROM ob3_holdings WHERE user_id = ? AND recipient_key = ?",
                vec![user_id.into(), key.as_str().into()],
            ))
            .await?;
            marks.remove(key);
        }
        total = renumber(&txn, user_id).await?;
    }
    if backend == sea_orm::DbBackend::Postgres {
        // The INSERT below reads credentials in index order, so its anti-join runs while the
        // rows are being inserted. On an empty or freshly grown ob3_holdings (no statistics yet)
        // PostgreSQL probes it with a sequential scan (or a materialized copy of every holding)
        // per candidate, which rescans what this very statement inserts: quadratic, more than an
        // hour for a first collection of 1M credentials. Index probes (or a merge anti-join over
        // the index) keep it linear whatever the statistics say; nothing else in this
        // transaction wants a sequential scan.
        txn.execute_unprepared("SET LOCAL enable_seqscan = off")
            .await?;
        txn.execute_unprepared("SET LOCAL enable_material = off")
            .await?;
    }
    for key in &keys {
        let since = marks.get(key).map_or_else(epoch, |m| *m - margin);
        let inserted = txn
            .execute_raw(statement(
                backend,
                "INSERT INTO ob3_holdings (user_id, position, recipient_key, credential_id, upload_id, added_at) \
                 SELECT ?, ? + ROW_NUMBER() OVER (ORDER BY c.created_at, c.id), ?, c.id, NULL, ? \
                 FROM credentials c WHERE c.recipient_key = ? AND c.created_at > ? \
                 AND NOT EXISTS (SELECT 1 FROM ob3_holdings h WHERE h.user_id = ? AND h.credential_id = c.id)",
                vec![
                    user_id.into(),
                    total.into(),
                    key.as_str().into(),
                    now.into(),
                    key.as_str().into(),
                    since.into(),
                    user_id.into(),
                ],
            ))
            .await?;
        total += i64::try_from(inserted.rows_affected()).unwrap_or(0);
        marks.insert(key.clone(), now);
    }
    txn.execute_raw(statement(
        backend,
        "UPDATE ob3_holders SET total = ?, sync_marks = ?, updated_at = ? WHERE user_id = ?",
        vec![
            total.into(),
            marks_text(&marks).into(),
            now.into(),
            user_id.into(),
        ],
    ))
    .await?;
    txn.commit().await?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_normalize_emails_and_keep_ids() {
        assert_eq!(
            recipient_key(&Recipient::Email(" Learner@Example.ORG ".into())),
            "mailto:learner@example.org"
        );
        assert_eq!(
            recipient_key(&Recipient::Id("did:key:z6Mk".into())),
            "did:key:z6Mk"
        );
        assert_eq!(
            subject_key(&json!({"credentialSubject": {"id": "mailto:A@b.org"}})).as_deref(),
            Some("mailto:a@b.org")
        );
        assert_eq!(
            subject_key(&json!({"credentialSubject": [{"id": "did:web:x"}]})).as_deref(),
            Some("did:web:x")
        );
        assert_eq!(subject_key(&json!({"credentialSubject": {}})), None);
    }

    #[test]
    fn marks_round_trip() {
        let mut m = BTreeMap::new();
        m.insert("mailto:a@b.org".to_owned(), epoch());
        assert_eq!(parse_marks(&marks_text(&m)), m);
        assert!(parse_marks("garbage").is_empty());
    }
}
