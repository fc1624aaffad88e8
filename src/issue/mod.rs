//! Building and signing credentials: OB 3.0 AchievementCredentials with Data Integrity
//! (`eddsa-rdfc-2022`) or VC-JWT proofs, their status entries, and durable storage before anything
//! is returned.

pub mod bake;
pub mod jwt;

use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::{ActiveModelTrait, DbErr, EntityTrait, Set};
use serde_json::{Value, json};

use crate::{
    app::AppState,
    db::{self, achievement, audit_event, credential, issuer},
    di::{ProofOptions, ProofPurpose},
    keys::store::{ActiveP256Key, ActiveSigningKey, KeyError},
    ob::{
        self, CredentialProfile, Evidence, IdentityObject, Invalid, Recipient, ResultEntry,
        StatusShape,
    },
    status::{
        allocator::{self, Purpose, Slot},
        lists,
    },
};

/// Largest batch.
pub const MAX_BATCH: usize = 10_000;

pub use jwt::JwtAlgorithm;

/// Proof formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofFormat {
    /// Embedded `DataIntegrityProof` / `eddsa-rdfc-2022`.
    DataIntegrity,
    /// VC-JWT (OB 3.0 §8.2) signed with this algorithm.
    Jwt(JwtAlgorithm),
}

impl ProofFormat {
    /// Stored and API name (the JWT algorithm is in the JWT's header).
    pub fn as_str(self) -> &'static str {
        match self {
            ProofFormat::DataIntegrity => "data-integrity",
            ProofFormat::Jwt(_) => "jwt",
        }
    }
}

/// The key an issuance signs with: Ed25519 for Data Integrity and EdDSA, P-256 for ES256.
#[derive(Debug, Clone)]
enum IssuingKey {
    Ed25519(ActiveSigningKey),
    P256(ActiveP256Key),
}

impl IssuingKey {
    fn key_id(&self) -> &str {
        match self {
            IssuingKey::Ed25519(k) => &k.key_id,
            IssuingKey::P256(k) => &k.key_id,
        }
    }
}

/// One recipient's part of an issuance.
#[derive(Debug, Clone)]
pub struct Award {
    pub recipient: Recipient,
    pub results: Vec<ResultEntry>,
    pub evidence: Vec<Evidence>,
    pub valid_until: Option<DateTime<Utc>>,
}

/// An issued, stored credential.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Our id (CUID).
    pub id: String,
    /// The credential's `id`.
    pub credential_uri: String,
    pub format: ProofFormat,
    /// The signed credential (Data Integrity) or the unsigned credential inside the JWT.
    pub credential: Value,
    /// The compact JWS (VC-JWT only).
    pub jwt: Option<String>,
}

/// Issuance failures, each with the HTTP status it becomes.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// 422: invalid input.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// 404: the achievement (or its issuer) does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 400: the document cannot be signed (unknown context, undefined term, malformed value).
    #[error("{0}")]
    Unsignable(String),
    /// 409/500: the issuer's key is unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// 503: kept losing status-index races; retry.
    #[error("concurrent issuance contention; retry")]
    Contention,
    /// Database failure.
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A random (v4) `urn:uuid:` identifier.
pub fn new_credential_uri() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The issuer as an embedded OB 3.0 Profile.
pub fn issuer_profile(issuer: &issuer::Model) -> Value {
    let mut p = json!({"id": issuer.issuer_id, "type": ["Profile"], "name": issuer.name});
    if let Some(map) = p.as_object_mut() {
        if let Some(url) = &issuer.url {
            map.insert("url".into(), json!(url));
        }
        if let Some(email) = &issuer.email {
            map.insert("email".into(), json!(email));
        }
        if let Some(image) = &issuer.image {
            map.insert("image".into(), json!({"id": image, "type": "Image"}));
        }
    }
    p
}

/// The public URL of an achievement.
pub fn achievement_url(state: &AppState, achievement_id: &str) -> String {
    format!(
        "{}/achievements/{achievement_id}",
        state.public_url().as_str().trim_end_matches('/')
    )
}

/// Everything shared by the credentials of one issuance.
struct Template {
    profile: CredentialProfile,
    shape: StatusShape,
    issuer_profile: Value,
    achievement: Value,
    name: String,
    revocation_list: String,
    valid_from: DateTime<Utc>,
}

fn status_entry(state: &AppState, slot: &Slot) -> Value {
    let url = lists::list_url(state, &slot.list_id);
    json!({
        "id": format!("{url}#{}", slot.index),
        "type": "BitstringStatusListEntry",
        "statusPurpose": slot.purpose.as_str(),
        "statusListIndex": slot.index.to_string(),
        "statusListCredential": url,
    })
}

fn build(state: &AppState, t: &Template, award: &Award, uri: &str, slots: &[Slot]) -> Value {
    let identity = match &award.recipient {
        Recipient::Email(email) => Some(IdentityObject::hashed_email(email)),
        Recipient::Id(_) => None,
    };
    let subject = ob::credential_subject(
        &award.recipient,
        identity.as_ref(),
        &t.achievement,
        &award.results,
    );
    let mut context = match t.profile {
        CredentialProfile::Vc2 => vec![json!(ob::CREDENTIALS_V2), json!(ob::OB_CONTEXT)],
        CredentialProfile::Vc11 => vec![json!(ob::CREDENTIALS_V1), json!(ob::OB_CONTEXT)],
    };
    context.push(json!(ob::OB_EXTENSIONS));
    if t.profile == CredentialProfile::Vc11 {
        context.push(json!(ob::DATA_INTEGRITY_V2));
    }
    let mut vc = json!({
        "@context": context,
        "id": uri,
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "issuer": t.issuer_profile,
        "name": t.name,
        "credentialSubject": subject,
        "credentialSchema": [{"id": ob::OB_SCHEMA_ID, "type": "1EdTechJsonSchemaValidator2019"}],
    });
    let (from_key, until_key) = match t.profile {
        CredentialProfile::Vc2 => ("validFrom", "validUntil"),
        CredentialProfile::Vc11 => ("issuanceDate", "expirationDate"),
    };
    vc[from_key] = json!(timestamp(t.valid_from));
    if let Some(until) = award.valid_until {
        vc[until_key] = json!(timestamp(until));
    }
    if !award.evidence.is_empty() {
        vc["evidence"] = json!(award.evidence);
    }
    let revocation = slots.iter().find(|s| s.purpose == Purpose::Revocation);
    vc["credentialStatus"] = match (t.shape, revocation) {
        (StatusShape::OneEdTech, _) | (_, None) => {
            json!({"id": t.revocation_list, "type": "1EdTechRevocationList"})
        }
        (StatusShape::Bitstring, Some(r)) => status_entry(state, r),
        (StatusShape::BitstringBoth, _) => {
            Value::Array(slots.iter().map(|s| status_entry(state, s)).collect())
        }
    };
    vc
}

/// Signs one built credential (CPU only; callers run it off the reactor).
fn sign(
    state: &AppState,
    key: &IssuingKey,
    format: ProofFormat,
    credential: Value,
    created: DateTime<Utc>,
) -> Result<(Value, Option<String>), IssueError> {
    match (format, key) {
        (ProofFormat::Jwt(JwtAlgorithm::EdDsa), IssuingKey::Ed25519(key)) => {
            let jws = jwt::sign_eddsa(&credential, &key.verification_method, &key.signing_key)
                .map_err(|e| IssueError::Unsignable(e.to_string()))?;
            Ok((credential, Some(jws)))
        }
        (ProofFormat::Jwt(JwtAlgorithm::Es256), IssuingKey::P256(key)) => {
            let jws = jwt::sign_es256(&credential, &key.verification_method, &key.signing_key)
                .map_err(|e| IssueError::Unsignable(e.to_string()))?;
            Ok((credential, Some(jws)))
        }
        (ProofFormat::DataIntegrity, IssuingKey::Ed25519(key)) => {
            let signed = state
                .signer()
                .sign(
                    &credential,
                    ProofOptions {
                        verification_method: key.verification_method.clone(),
                        created,
                        proof_purpose: ProofPurpose::AssertionMethod,
                    },
                    &key.signing_key,
                )
                .map_err(|e| IssueError::Unsignable(e.to_string()))?;
            Ok((signed, None))
        }
        // `issue` selects the key from the format, so this cannot happen.
        (format, _) => Err(IssueError::Unsignable(format!(
            "the selected key cannot sign proof format {format:?}"
        ))),
    }
}

/// Issues one credential per award for `achievement_id`, all in one transaction: every credential
/// returned is stored. Per-award signing failures are reported per item; the others are issued.
pub async fn issue(
    state: &AppState,
    achievement_id: &str,
    awards: Vec<Award>,
    format: ProofFormat,
    actor: &str,
) -> Result<Vec<Result<Issued, IssueError>>, IssueError> {
    if awards.is_empty() || awards.len() > MAX_BATCH {
        return Err(IssueError::Invalid(Invalid {
            field: "recipients".into(),
            reason: format!("between 1 and {MAX_BATCH} per request"),
        }));
    }
    let db = state.db();
    let achievement = achievement::Entity::find_by_id(achievement_id.to_owned())
        .one(db)
        .await?
        .ok_or(IssueError::NotFound("achievement"))?;
    let issuer = issuer::Entity::find_by_id(achievement.issuer_id.clone())
        .one(db)
        .await?
        .ok_or(IssueError::NotFound("issuer"))?;
    let definition: ob::AchievementDefinition = serde_json::from_str(&achievement.document)
        .map_err(|e| IssueError::Unsignable(format!("stored achievement: {e}")))?;
    let key = match format {
        ProofFormat::Jwt(JwtAlgorithm::Es256) => {
            IssuingKey::P256(state.keys().active_p256_key(db, &issuer, actor).await?)
        }
        ProofFormat::Jwt(JwtAlgorithm::EdDsa) | ProofFormat::DataIntegrity => {
            IssuingKey::Ed25519(state.keys().active_signing_key(db, &issuer).await?)
        }
    };
    let settings = state.settings();
    let valid_from = Utc::now();
    let valid_from =
        DateTime::<Utc>::from_timestamp(valid_from.timestamp(), 0).unwrap_or(valid_from);
    let template = Template {
        profile: settings.credential_profile,
        shape: settings.status_shape,
        issuer_profile: issuer_profile(&issuer),
        achievement: definition.to_achievement(&achievement_url(state, &achievement.id)),
        name: definition.name.clone(),
        revocation_list: lists::revocation_list_url(state, &issuer.id),
        valid_from,
    };
    for attempt in 0..5 {
        let slots = allocator::pick_slots(
            db,
            &issuer.id,
            &Purpose::ALL,
            awards.len(),
            settings.status_list_fill_ratio,
        )
        .await?;
        let signed = sign_all(state, &key, &template, &awards, &slots, format, valid_from).await;
        match store(
            state,
            &issuer,
            &achievement,
            &key,
            format,
            signed,
            &slots,
            actor,
        )
        .await
        {
            Ok(results) => return Ok(results),
            Err(IssueError::Db(err)) if db::is_retryable(&err) => {
                tracing::debug!(attempt, error = %err, "lost a concurrent race; picking again");
                tokio::time::sleep(std::time::Duration::from_millis(
                    2 + u64::from(rand::random::<u8>() % 16),
                ))
                .await;
            }
            Err(other) => return Err(other),
        }
    }
    Err(IssueError::Contention)
}

type Signed = Result<(String, String, Value, Option<String>), IssueError>;

/// Builds every award, then signs them on the blocking pool in as many slices as there are cores
/// (results in request order).
async fn sign_all(
    state: &AppState,
    key: &IssuingKey,
    t: &Template,
    awards: &[Award],
    slots: &[Vec<Slot>],
    format: ProofFormat,
    created: DateTime<Utc>,
) -> Vec<Signed> {
    let built: Vec<(String, String, Value)> = awards
        .iter()
        .zip(slots)
        .map(|(award, slots)| {
            let uri = new_credential_uri();
            let vc = build(state, t, award, &uri, slots);
            (db::new_id(), uri, vc)
        })
        .collect();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per_slice = built.len().div_ceil(cores).max(1);
    let mut slices = Vec::new();
    let mut rest = built;
    while !rest.is_empty() {
        let tail = rest.split_off(per_slice.min(rest.len()));
        let slice = std::mem::replace(&mut rest, tail);
        let state = state.clone();
        let key = key.clone();
        slices.push(tokio::task::spawn_blocking(move || {
            slice
                .into_iter()
                .map(|(id, uri, vc)| {
                    sign(&state, &key, format, vc, created).map(|(c, j)| (id, uri, c, j))
                })
                .collect::<Vec<Signed>>()
        }));
    }
    let mut out = Vec::with_capacity(awards.len());
    for slice in slices {
        match slice.await {
            Ok(results) => out.extend(results),
            Err(e) => {
                tracing::error!(error = %e, "signing task failed");
                out.push(Err(IssueError::Unsignable(format!(
                    "signing task failed: {e}"
                ))));
            }
        }
    }
    out.resize_with(awards.len(), || {
        Err(IssueError::Unsignable("signing task failed".into()))
    });
    out
}

#[allow(clippy::too_many_arguments)]
async fn store(
    state: &AppState,
    issuer: &issuer::Model,
    achievement: &achievement::Model,
    key: &IssuingKey,
    format: ProofFormat,
    signed: Vec<Signed>,
    slots: &[Vec<Slot>],
    actor: &str,
) -> Result<Vec<Result<Issued, IssueError>>, IssueError> {
    let now = Utc::now();
    let mut rows = Vec::new();
    let mut reservations: Vec<(String, &[Slot])> = Vec::new();
    let mut results = Vec::with_capacity(signed.len());
    for (item, item_slots) in signed.into_iter().zip(slots) {
        match item {
            Ok((id, uri, credential, jws)) => {
                let date = |keys: [&str; 2]| {
                    keys.iter()
                        .find_map(|k| credential.get(*k))
                        .and_then(Value::as_str)
                        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                        .map(|t| t.with_timezone(&Utc))
                };
                let valid_from = date(["validFrom", "issuanceDate"]).unwrap_or(now);
                let valid_until = date(["validUntil", "expirationDate"]);
                let document = match &jws {
                    Some(jws) => jws.clone(),
                    None => credential.to_string(),
                };
                rows.push(credential::ActiveModel {
                    id: Set(id.clone()),
                    credential_uri: Set(uri.clone()),
                    issuer_id: Set(issuer.id.clone()),
                    achievement_id: Set(Some(achievement.id.clone())),
                    format: Set(format.as_str().to_owned()),
                    document: Set(document),
                    key_id: Set(key.key_id().to_owned()),
                    valid_from: Set(valid_from),
                    valid_until: Set(valid_until),
                    created_at: Set(now),
                });
                reservations.push((id.clone(), item_slots.as_slice()));
                results.push(Ok(Issued {
                    id,
                    credential_uri: uri,
                    format,
                    credential,
                    jwt: jws,
                }));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    if rows.is_empty() {
        return Ok(results);
    }
    let txn = db::begin_write(state.db()).await?;
    let refs: Vec<(&str, &[Slot])> = reservations
        .iter()
        .map(|(id, s)| (id.as_str(), *s))
        .collect();
    allocator::reserve(&txn, &refs).await?;
    let count = rows.len();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(200).collect();
        credential::Entity::insert_many(chunk).exec(&txn).await?;
    }
    let first = results
        .iter()
        .find_map(|r| r.as_ref().ok().map(|i| i.id.clone()))
        .unwrap_or_default();
    audit_event::record(
        &txn,
        actor,
        "credential.issued",
        "credential",
        if count == 1 { &first } else { &achievement.id },
        json!({"count": count, "achievement": achievement.id, "issuer": issuer.id, "format": format.as_str(), "key": key.key_id()}),
    )
    .await?;
    txn.commit().await?;
    Ok(results)
}

/// Stores a new achievement definition for an issuer.
pub async fn create_achievement(
    state: &AppState,
    issuer_id: &str,
    definition: ob::AchievementDefinition,
    actor: &str,
) -> Result<achievement::Model, IssueError> {
    let definition = definition.validate()?;
    issuer::Entity::find_by_id(issuer_id.to_owned())
        .one(state.db())
        .await?
        .ok_or(IssueError::NotFound("issuer"))?;
    let now = Utc::now();
    let txn = db::begin_write(state.db()).await?;
    let row = achievement::ActiveModel {
        id: Set(db::new_id()),
        issuer_id: Set(issuer_id.to_owned()),
        name: Set(definition.name.clone()),
        description: Set(definition.description.clone()),
        document: Set(serde_json::to_string(&definition).unwrap_or_default()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    audit_event::record(
        &txn,
        actor,
        "achievement.created",
        "achievement",
        &row.id,
        json!({"issuer": issuer_id}),
    )
    .await?;
    txn.commit().await?;
    Ok(row)
}

/// Replaces an achievement definition (credentials already issued keep the old copy they embed).
pub async fn update_achievement(
    state: &AppState,
    issuer_id: &str,
    achievement_id: &str,
    definition: ob::AchievementDefinition,
    actor: &str,
) -> Result<achievement::Model, IssueError> {
    let definition = definition.validate()?;
    let txn = db::begin_write(state.db()).await?;
    let current = achievement::Entity::find_by_id(achievement_id.to_owned())
        .one(&txn)
        .await?
        .filter(|a| a.issuer_id == issuer_id)
        .ok_or(IssueError::NotFound("achievement"))?;
    let mut row: achievement::ActiveModel = current.into();
    row.name = Set(definition.name.clone());
    row.description = Set(definition.description.clone());
    row.document = Set(serde_json::to_string(&definition).unwrap_or_default());
    row.updated_at = Set(Utc::now());
    let updated = row.update(&txn).await?;
    audit_event::record(
        &txn,
        actor,
        "achievement.updated",
        "achievement",
        achievement_id,
        json!({}),
    )
    .await?;
    txn.commit().await?;
    Ok(updated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_uris_are_uuid_v4() {
        let a = new_credential_uri();
        assert_eq!(a.len(), "urn:uuid:".len() + 36);
        assert_eq!(&a[23..24], "4");
        assert!(matches!(&a[28..29], "8" | "9" | "a" | "b"));
        assert_ne!(a, new_credential_uri());
    }
}
