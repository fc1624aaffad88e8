//! Publishing status: the signed `BitstringStatusListCredential` of a list (cached per list version,
//! so reads do not re-sign and a change is visible on the very next read), and the 1EdTech
//! revocation list of an issuer.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Instant,
};

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect};
use serde_json::{Value, json};

use super::{allocator::Purpose, bitstring::Bitstring};
use crate::{
    app::AppState,
    cache::{SingleFlight, strong_etag},
    db::{credential, issuer, status_entry, status_list},
    keys::store::KeyError,
};

/// Status failures, each with the HTTP status it becomes.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// 404.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 409: revocation cannot be undone.
    #[error("credential {0} is revoked; revocation cannot be undone")]
    RevocationIsFinal(String),
    /// 422: the request names something invalid.
    #[error("{0}")]
    Invalid(String),
    /// Signing the list failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Signing the list failed.
    #[error(transparent)]
    Sign(#[from] crate::di::DiError),
    /// Database failure.
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A signed list ready to serve.
#[derive(Debug)]
pub struct SignedList {
    /// The issuer (CUID) whose key signed it.
    pub issuer_id: String,
    /// The list version it reflects.
    pub version: i64,
    /// The signed credential, serialized once.
    pub body: String,
    /// Strong ETag of `body`.
    pub etag: String,
    /// When the credential stops being valid (and must be re-signed).
    pub valid_until: DateTime<Utc>,
    /// Seconds a client may cache it.
    pub max_age: i64,
}

/// Signed lists by list id, served without touching the database.
///
/// An entry is trusted for `revalidate` after it was built or last checked against the list's
/// version in the database; a change made through this instance (or announced by another one over
/// PostgreSQL NOTIFY) evicts it at once. Each list has a generation that every eviction bumps: a
/// rebuild that started before an eviction is not cached, so it cannot put back a list that
/// predates the change.
///
/// Rebuilds and revalidations are single-flight per list: when a list is missing or due for its
/// version check, one request does the work while the others wait for it and then read the result
/// (without this, every concurrent reader of a just-changed list re-read its entries and re-signed
/// it, and a busy list stalled its readers for up to a second after a burst of changes).
pub struct StatusListCache {
    entries: RwLock<HashMap<String, CacheSlot>>,
    revalidate: std::time::Duration,
    builders: SingleFlight,
}

#[derive(Default)]
struct CacheSlot {
    generation: u64,
    list: Option<(Arc<SignedList>, Instant)>,
}

/// What the cache knows about a list: its generation and, when present, the list and whether it
/// was checked within the revalidation interval.
type Lookup = (u64, Option<(Arc<SignedList>, bool)>);

impl StatusListCache {
    /// A cache that re-checks an entry's version after `revalidate`.
    pub fn new(revalidate: std::time::Duration) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            revalidate,
            builders: SingleFlight::default(),
        }
    }

    /// The list's fresh entry, if any (no database involved).
    fn fresh(&self, list_id: &str, now: DateTime<Utc>) -> Option<Arc<SignedList>> {
        match self.lookup(list_id) {
            (_, Some((hit, true))) if hit.valid_until > now + Duration::seconds(5) => Some(hit),
            _ => None,
        }
    }

    fn lookup(&self, list_id: &str) -> Lookup {
        let Ok(map) = self.entries.read() else {
            return (u64::MAX, None);
        };
        match map.get(list_id) {
            Some(slot) => (
                slot.generation,
                slot.list
                    .as_ref()
                    .map(|(list, checked)| (list.clone(), checked.elapsed() < self.revalidate)),
            ),
            None => (0, None),
        }
    }

    /// Stores `list` (or marks the present one as checked) unless the list was evicted since
    /// `generation` was read.
    fn put(&self, list_id: &str, generation: u64, list: Arc<SignedList>) {
        if let Ok(mut map) = self.entries.write() {
            let slot = map.entry(list_id.to_owned()).or_default();
            if slot.generation == generation {
                slot.list = Some((list, Instant::now()));
            }
        }
    }

    /// Drops a list after a change (on this instance, or announced by another one).
    pub fn invalidate(&self, list_id: &str) {
        if let Ok(mut map) = self.entries.write() {
            let slot = map.entry(list_id.to_owned()).or_default();
            slot.generation += 1;
            slot.list = None;
        }
    }

    /// Drops the lists of an issuer (its keys changed: they must be signed again).
    pub fn invalidate_issuer(&self, issuer_id: &str) {
        if let Ok(mut map) = self.entries.write() {
            for slot in map.values_mut() {
                // Every generation moves, so that no rebuild under way can store a list signed
                // with the old key; only this issuer's lists are dropped.
                slot.generation += 1;
                if slot
                    .list
                    .as_ref()
                    .is_some_and(|(l, _)| l.issuer_id == issuer_id)
                {
                    slot.list = None;
                }
            }
        }
    }

    /// Drops every list (the notification connection was lost, so changes may have been missed).
    pub fn invalidate_all(&self) {
        if let Ok(mut map) = self.entries.write() {
            for slot in map.values_mut() {
                slot.generation += 1;
                slot.list = None;
            }
        }
    }
}

/// The public URL of a list.
pub fn list_url(state: &AppState, list_id: &str) -> String {
    format!(
        "{}/status/{list_id}",
        state.public_url().as_str().trim_end_matches('/')
    )
}

/// The public URL of an issuer's 1EdTech revocation list.
pub fn revocation_list_url(state: &AppState, issuer_cuid: &str) -> String {
    format!(
        "{}/revocations/{issuer_cuid}",
        state.public_url().as_str().trim_end_matches('/')
    )
}

/// The current signed list: from memory while it is fresh (see [`StatusListCache`]) and still
/// valid, else rebuilt from the entries and signed with the issuer's active key.
pub async fn signed_list(state: &AppState, list_id: &str) -> Result<Arc<SignedList>, StatusError> {
    if let Some(hit) = state.status_cache().fresh(list_id, Utc::now()) {
        return Ok(hit);
    }
    // One rebuild (or version check) per list at a time; whoever waited here usually finds the
    // list fresh once it gets the gate.
    let gate = state.status_cache().builders.gate(list_id);
    let _one_at_a_time = gate.lock().await;
    rebuild_if_needed(state, list_id).await
}

/// [`signed_list`] behind the list's gate: the cached list when fresh or when its version is
/// unchanged, else a new one built from the entries and signed.
async fn rebuild_if_needed(
    state: &AppState,
    list_id: &str,
) -> Result<Arc<SignedList>, StatusError> {
    let now = Utc::now();
    // The generation is read before the database: a change committed after this point bumps it,
    // so what is read below is only cached when no change came in between.
    let (generation, cached) = state.status_cache().lookup(list_id);
    if let Some((hit, fresh)) = cached
        && hit.valid_until > now + Duration::seconds(5)
    {
        if fresh {
            return Ok(hit);
        }
        let version: Option<i64> = status_list::Entity::find_by_id(list_id.to_owned())
            .select_only()
            .column(status_list::Column::Version)
            .into_tuple()
            .one(state.db())
            .await?;
        if version == Some(hit.version) {
            state.status_cache().put(list_id, generation, hit.clone());
            return Ok(hit);
        }
    }
    let list = status_list::Entity::find_by_id(list_id.to_owned())
        .one(state.db())
        .await?
        .ok_or(StatusError::NotFound("status list"))?;
    let issuer = issuer::Entity::find_by_id(list.issuer_id.clone())
        .one(state.db())
        .await?
        .ok_or(StatusError::NotFound("issuer"))?;
    let set: Vec<i32> = status_entry::Entity::find()
        .select_only()
        .column(status_entry::Column::Idx)
        .filter(status_entry::Column::ListId.eq(list_id))
        .filter(status_entry::Column::Value.eq(1))
        .into_tuple()
        .all(state.db())
        .await?;
    let mut bits = Bitstring::new(usize::try_from(list.size).unwrap_or(super::bitstring::MIN_BITS));
    for idx in set {
        bits.set(usize::try_from(idx).unwrap_or(usize::MAX), true)
            .map_err(|e| StatusError::Invalid(e.to_string()))?;
    }
    let ttl_secs = i64::try_from(state.settings().status_list_ttl_secs).unwrap_or(300);
    let valid_from = DateTime::<Utc>::from_timestamp(now.timestamp(), 0).unwrap_or(now);
    let valid_until = valid_from + Duration::seconds(ttl_secs);
    let url = list_url(state, list_id);
    let doc = json!({
        "@context": [crate::ob::CREDENTIALS_V2],
        "id": url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": issuer.issuer_id,
        "validFrom": valid_from.to_rfc3339_opts(SecondsFormat::Secs, true),
        "validUntil": valid_until.to_rfc3339_opts(SecondsFormat::Secs, true),
        "credentialSubject": {
            "id": format!("{url}#list"),
            "type": "BitstringStatusList",
            "statusPurpose": list.purpose,
            "encodedList": bits.encode(),
            "ttl": ttl_secs * 1000,
        },
    });
    let key = state.keys().active_signing_key(state.db(), &issuer).await?;
    let signer_state = state.clone();
    let signed = tokio::task::spawn_blocking(move || {
        signer_state.signer().sign(
            &doc,
            crate::di::ProofOptions {
                verification_method: key.verification_method.clone(),
                created: valid_from,
                proof_purpose: crate::di::ProofPurpose::AssertionMethod,
                challenge: None,
                domain: None,
            },
            &key.signing_key,
        )
    })
    .await
    .map_err(|e| StatusError::Invalid(format!("signing task failed: {e}")))??;
    let body = signed.to_string();
    let etag = strong_etag(&body);
    let fresh = Arc::new(SignedList {
        issuer_id: list.issuer_id.clone(),
        version: list.version,
        body,
        etag,
        valid_until,
        max_age: ttl_secs,
    });
    state.status_cache().put(list_id, generation, fresh.clone());
    Ok(fresh)
}

/// The 1EdTech revocation list of an issuer: every revoked credential with its reason.
pub async fn revocation_list(
    db: &impl ConnectionTrait,
    issuer_cuid: &str,
) -> Result<Value, StatusError> {
    issuer::Entity::find_by_id(issuer_cuid.to_owned())
        .one(db)
        .await?
        .ok_or(StatusError::NotFound("issuer"))?;
    let lists: Vec<String> = status_list::Entity::find()
        .select_only()
        .column(status_list::Column::Id)
        .filter(status_list::Column::IssuerId.eq(issuer_cuid))
        .filter(status_list::Column::Purpose.eq(Purpose::Revocation.as_str()))
        .into_tuple()
        .all(db)
        .await?;
    let mut revoked = Vec::new();
    for chunk in lists.chunks(100) {
        let entries = status_entry::Entity::find()
            .filter(status_entry::Column::ListId.is_in(chunk.iter().cloned()))
            .filter(status_entry::Column::Value.eq(1))
            .all(db)
            .await?;
        for batch in entries.chunks(500) {
            let ids: Vec<String> = batch.iter().map(|e| e.credential_id.clone()).collect();
            let uris: HashMap<String, String> = credential::Entity::find()
                .select_only()
                .column(credential::Column::Id)
                .column(credential::Column::CredentialUri)
                .filter(credential::Column::Id.is_in(ids))
                .into_tuple::<(String, String)>()
                .all(db)
                .await?
                .into_iter()
                .collect();
            for entry in batch {
                if let Some(uri) = uris.get(&entry.credential_id) {
                    let mut item = json!({"id": uri, "revoked": true});
                    if let Some(reason) = &entry.reason {
                        item["revocationReason"] = json!(reason);
                    }
                    revoked.push(item);
                }
            }
        }
    }
    Ok(json!({ "revokedCredential": revoked }))
}

/// A serialized 1EdTech revocation list ready to serve.
#[derive(Debug)]
pub struct RevocationDocument {
    /// `{"revokedCredential": [...]}`, serialized once.
    pub body: String,
    /// Strong ETag of `body`.
    pub etag: String,
}

/// What identifies the state of an issuer's revocation lists: how many there are and the sum of
/// their versions. Every status change bumps a list's version in its own transaction, so any
/// change moves the sum (versions only grow).
type Fingerprint = (i64, i64);

/// 1EdTech revocation lists by issuer, rebuilt only when the issuer's revocation lists changed.
///
/// Every request still checks the fingerprint (one indexed aggregate query), so a revocation is in
/// the very next response, on any instance; what the cache saves is reading every revoked entry
/// and its credential URI on each request. Rebuilds are single-flight per issuer.
#[derive(Default)]
pub struct RevocationListCache {
    entries: RwLock<HashMap<String, (Fingerprint, Arc<RevocationDocument>)>>,
    builders: SingleFlight,
}

impl RevocationListCache {
    fn get(&self, issuer_cuid: &str, fingerprint: Fingerprint) -> Option<Arc<RevocationDocument>> {
        let map = self.entries.read().ok()?;
        map.get(issuer_cuid)
            .filter(|(f, _)| *f == fingerprint)
            .map(|(_, doc)| doc.clone())
    }

    fn put(&self, issuer_cuid: &str, fingerprint: Fingerprint, doc: Arc<RevocationDocument>) {
        if let Ok(mut map) = self.entries.write() {
            map.insert(issuer_cuid.to_owned(), (fingerprint, doc));
        }
    }
}

async fn revocation_fingerprint(
    db: &impl ConnectionTrait,
    issuer_cuid: &str,
) -> Result<Fingerprint, DbErr> {
    let row: Option<Fingerprint> = status_list::Entity::find()
        .select_only()
        .column_as(sea_orm::sea_query::Expr::cust("COUNT(*)"), "lists")
        .column_as(
            sea_orm::sea_query::Expr::cust("CAST(COALESCE(SUM(version), 0) AS BIGINT)"),
            "versions",
        )
        .filter(status_list::Column::IssuerId.eq(issuer_cuid))
        .filter(status_list::Column::Purpose.eq(Purpose::Revocation.as_str()))
        .into_tuple()
        .one(db)
        .await?;
    Ok(row.unwrap_or((0, 0)))
}

/// The issuer's 1EdTech revocation list, serialized, from the cache while the issuer's revocation
/// lists are unchanged.
pub async fn revocation_document(
    state: &AppState,
    issuer_cuid: &str,
) -> Result<Arc<RevocationDocument>, StatusError> {
    let cache = state.revocation_cache();
    let fingerprint = revocation_fingerprint(state.db(), issuer_cuid).await?;
    if let Some(hit) = cache.get(issuer_cuid, fingerprint) {
        return Ok(hit);
    }
    let gate = cache.builders.gate(issuer_cuid);
    let _one_at_a_time = gate.lock().await;
    // Whoever waited here usually finds the list another request just built.
    let fingerprint = revocation_fingerprint(state.db(), issuer_cuid).await?;
    if let Some(hit) = cache.get(issuer_cuid, fingerprint) {
        return Ok(hit);
    }
    let doc = revocation_list(state.db(), issuer_cuid).await?;
    let body = doc.to_string();
    let etag = strong_etag(&body);
    let doc = Arc::new(RevocationDocument { body, etag });
    // A change committed while this was built moved the fingerprint: the next request rebuilds.
    // An issuer without revocation lists is not cached (its existence is checked each time).
    if fingerprint.0 > 0 {
        cache.put(issuer_cuid, fingerprint, doc.clone());
    }
    Ok(doc)
}
