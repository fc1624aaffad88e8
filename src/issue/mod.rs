//! Building and signing credentials: OB 3.0 AchievementCredentials with Data Integrity
//! (`eddsa-rdfc-2022`) or VC-JWT proofs, their status entries, and durable storage before anything
//! is returned.

pub mod bake;
pub mod jwt;
pub mod queue;
pub mod recipients_csv;
pub mod vcapi;

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::{ActiveModelTrait, DbErr, EntityTrait, Set};
use serde_json::{Value, json};

use crate::{
    app::AppState,
    db::{self, achievement, audit_event, credential, issuer},
    di::{ProofOptions, ProofPurpose},
    invalidation::{self, Change},
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

pub use queue::IssuanceQueue;

/// Largest batch.
pub const MAX_BATCH: usize = 10_000;

pub use jwt::JwtAlgorithm;

/// Proof formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProofFormat {
    /// Embedded `DataIntegrityProof` / `eddsa-rdfc-2022`.
    DataIntegrity,
    /// Embedded `DataIntegrityProof` / `eddsa-jcs-2022` (JCS, RFC 8785).
    DataIntegrityJcs,
    /// VC-JWT (OB 3.0 §8.2) signed with this algorithm.
    Jwt(JwtAlgorithm),
}

impl ProofFormat {
    /// Stored and API name (the JWT algorithm is in the JWT's header).
    pub fn as_str(self) -> &'static str {
        match self {
            ProofFormat::DataIntegrity | ProofFormat::DataIntegrityJcs => "data-integrity",
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
    /// 503: the issuance writer is not running (the server is shutting down).
    #[error("issuance is not available")]
    Unavailable,
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

/// What an issuance needs to know about an achievement: its rows, the issuer's active signing key,
/// and the recipient-independent parts of the credential. Cached per achievement (see
/// [`ContextCache`]).
#[derive(Debug)]
pub struct Context {
    issuer: issuer::Model,
    achievement: achievement::Model,
    key: ActiveSigningKey,
    issuer_profile: Value,
    achievement_doc: Value,
    name: String,
    revocation_list: String,
}

impl Context {
    /// Our id of the issuer that awards the achievement (for tenancy checks).
    pub fn issuer_row_id(&self) -> &str {
        &self.issuer.id
    }
}

/// Everything shared by the credentials of one issuance.
struct Template<'a> {
    ctx: &'a Context,
    profile: CredentialProfile,
    shape: StatusShape,
    valid_from: DateTime<Utc>,
}

impl<'a> Template<'a> {
    /// Issued now (to the second).
    fn now(state: &AppState, ctx: &'a Context) -> Self {
        let now = Utc::now();
        Self {
            ctx,
            profile: state.settings().credential_profile,
            shape: state.settings().status_shape,
            valid_from: DateTime::<Utc>::from_timestamp(now.timestamp(), 0).unwrap_or(now),
        }
    }
}

/// The `BitstringStatusListEntry` of a reserved slot.
pub(crate) fn status_entry(state: &AppState, slot: &Slot) -> Value {
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
        &t.ctx.achievement_doc,
        &award.results,
    );
    let bitstring = match (
        t.shape,
        slots.iter().any(|s| s.purpose == Purpose::Revocation),
    ) {
        (StatusShape::OneEdTech, _) | (StatusShape::Bitstring, false) => false,
        (StatusShape::Bitstring, true) => true,
        (StatusShape::BitstringBoth, _) => !slots.is_empty(),
    };
    let mut vc = json!({
        "@context": credential_contexts(t.profile, bitstring),
        "id": uri,
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "issuer": t.ctx.issuer_profile,
        "name": t.ctx.name,
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
            json!({"id": t.ctx.revocation_list, "type": "1EdTechRevocationList"})
        }
        (StatusShape::Bitstring, Some(r)) => status_entry(state, r),
        (StatusShape::BitstringBoth, _) => {
            Value::Array(slots.iter().map(|s| status_entry(state, s)).collect())
        }
    };
    vc
}

/// The `@context` of credentials issued under `profile`. VC 1.1 has no terms for
/// `BitstringStatusListEntry` (VC 2.0 has): such credentials also list the W3C status context.
fn credential_contexts(profile: CredentialProfile, bitstring: bool) -> Vec<Value> {
    let mut context = match profile {
        CredentialProfile::Vc2 => vec![json!(ob::CREDENTIALS_V2), json!(ob::OB_CONTEXT)],
        CredentialProfile::Vc11 => vec![json!(ob::CREDENTIALS_V1), json!(ob::OB_CONTEXT)],
    };
    context.push(json!(ob::OB_EXTENSIONS));
    if profile == CredentialProfile::Vc11 {
        context.push(json!(ob::DATA_INTEGRITY_V2));
        if bitstring {
            context.push(json!(crate::jsonld::CREDENTIALS_STATUS_V1));
        }
    }
    context
}

/// Checks at start-up that credentials issued under `profile` and `shape` can be signed: a
/// representative credential (every type and member issuance writes, both status shapes' entries)
/// goes through the JSON-LD safe-mode check. A configuration that fails here would refuse every
/// issuance, so the service must not start with it.
pub fn check_signable(
    signer: &crate::di::EddsaRdfc2022,
    profile: CredentialProfile,
    shape: StatusShape,
) -> Result<(), String> {
    let list = "https://issuer.example/status/probe";
    let entry = |purpose: &str, index: u32| {
        json!({
            "id": format!("{list}#{index}"),
            "type": "BitstringStatusListEntry",
            "statusPurpose": purpose,
            "statusListIndex": index.to_string(),
            "statusListCredential": list,
        })
    };
    let (status, bitstring) = match shape {
        StatusShape::OneEdTech => (
            json!({"id": "https://issuer.example/revocations/probe", "type": "1EdTechRevocationList"}),
            false,
        ),
        StatusShape::Bitstring => (entry("revocation", 1), true),
        StatusShape::BitstringBoth => (
            json!([entry("revocation", 1), entry("suspension", 2)]),
            true,
        ),
    };
    let subject = ob::credential_subject(
        &Recipient::Id("did:example:recipient".into()),
        Some(&IdentityObject::hashed_email("probe@example.org")),
        &json!({
            "id": "https://issuer.example/achievements/probe",
            "type": ["Achievement"],
            "name": "Probe",
            "description": "Start-up check of the issuance contexts",
            "criteria": {"narrative": "None"}
        }),
        &[],
    );
    let (from_key, until_key) = match profile {
        CredentialProfile::Vc2 => ("validFrom", "validUntil"),
        CredentialProfile::Vc11 => ("issuanceDate", "expirationDate"),
    };
    let mut probe = json!({
        "@context": credential_contexts(profile, bitstring),
        "id": "urn:uuid:00000000-0000-4000-8000-000000000000",
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "issuer": {"id": "https://issuer.example/issuers/probe", "type": ["Profile"], "name": "Probe"},
        "name": "Probe",
        "credentialSubject": subject,
        "credentialSchema": [{"id": ob::OB_SCHEMA_ID, "type": "1EdTechJsonSchemaValidator2019"}],
        "credentialStatus": status,
    });
    probe[from_key] = json!("2026-01-01T00:00:00Z");
    probe[until_key] = json!("2027-01-01T00:00:00Z");
    signer.check_contexts(&probe).map_err(|e| e.to_string())
}

/// Signs one built credential (CPU only; callers run it off the reactor).
fn sign(
    state: &AppState,
    key: &IssuingKey,
    format: ProofFormat,
    credential: Value,
    created: DateTime<Utc>,
) -> Result<(Value, Option<String>), IssueError> {
    // What the verifier would call malformed is never signed (a bug in `build` if it happens).
    let structure = ob::structure::check(&credential);
    if !structure.conforms() {
        return Err(IssueError::Unsignable(structure.summary()));
    }
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
        (
            format @ (ProofFormat::DataIntegrity | ProofFormat::DataIntegrityJcs),
            IssuingKey::Ed25519(key),
        ) => {
            let suite = if format == ProofFormat::DataIntegrityJcs {
                crate::di::Cryptosuite::EddsaJcs2022
            } else {
                crate::di::Cryptosuite::EddsaRdfc2022
            };
            let signed = state
                .signer()
                .sign_with(
                    &credential,
                    ProofOptions {
                        verification_method: key.verification_method.clone(),
                        created,
                        proof_purpose: ProofPurpose::AssertionMethod,
                        challenge: None,
                        domain: None,
                    },
                    &key.signing_key,
                    suite,
                )
                .map_err(|e| match e {
                    // A bound on canonicalization work (a poison graph): 422 naming the limit.
                    crate::di::DiError::JsonLd(limit) if limit.is_resource_limit() => {
                        IssueError::Invalid(Invalid {
                            field: "credential".into(),
                            reason: limit.to_string(),
                        })
                    }
                    other => IssueError::Unsignable(other.to_string()),
                })?;
            Ok((signed, None))
        }
        // `prepare_part` selects the key from the format, so this cannot happen.
        (format, _) => Err(IssueError::Unsignable(format!(
            "the selected key cannot sign proof format {format:?}"
        ))),
    }
}

/// Loads what an issuance of `achievement_id` needs (no cache).
async fn load_context(state: &AppState, achievement_id: &str) -> Result<Context, IssueError> {
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
    let key = state.keys().active_signing_key(db, &issuer).await?;
    Ok(Context {
        issuer_profile: issuer_profile(&issuer),
        achievement_doc: definition.to_achievement(&achievement_url(state, &achievement.id)),
        name: definition.name.clone(),
        revocation_list: lists::revocation_list_url(state, &issuer.id),
        issuer,
        achievement,
        key,
    })
}

/// Issuance contexts by achievement id. An entry is used for at most the revalidation interval;
/// a change to the achievement, its issuer or the issuer's keys made through this instance (or
/// announced by another one over PostgreSQL NOTIFY) evicts it at once. Like the status-list cache,
/// a load that started before an eviction is not cached.
pub struct ContextCache {
    entries: std::sync::RwLock<HashMap<String, CachedContext>>,
    generation: std::sync::atomic::AtomicU64,
    max_age: std::time::Duration,
}

struct CachedContext {
    context: Arc<Context>,
    loaded: std::time::Instant,
}

impl ContextCache {
    /// A cache whose entries live at most `max_age`.
    pub fn new(max_age: std::time::Duration) -> Self {
        Self {
            entries: std::sync::RwLock::new(HashMap::new()),
            generation: std::sync::atomic::AtomicU64::new(0),
            max_age,
        }
    }

    /// Drops the contexts of every achievement of `issuer_id` (profile or key changed).
    pub fn invalidate_issuer(&self, issuer_id: &str) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut map) = self.entries.write() {
            map.retain(|_, c| c.context.issuer.id != issuer_id);
        }
    }

    /// Drops the context of one achievement (its definition changed).
    pub fn invalidate_achievement(&self, achievement_id: &str) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut map) = self.entries.write() {
            map.remove(achievement_id);
        }
    }

    /// Drops everything (announcements may have been missed).
    pub fn invalidate_all(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut map) = self.entries.write() {
            map.clear();
        }
    }
}

/// The issuance context of `achievement_id`, from the cache when it is young enough.
pub async fn context(state: &AppState, achievement_id: &str) -> Result<Arc<Context>, IssueError> {
    let cache = state.issuance_contexts();
    if let Ok(map) = cache.entries.read()
        && let Some(hit) = map.get(achievement_id)
        && hit.loaded.elapsed() < cache.max_age
    {
        return Ok(hit.context.clone());
    }
    let generation = cache.generation.load(std::sync::atomic::Ordering::SeqCst);
    let context = Arc::new(load_context(state, achievement_id).await?);
    if let Ok(mut map) = cache.entries.write()
        && cache.generation.load(std::sync::atomic::Ordering::SeqCst) == generation
    {
        map.insert(
            achievement_id.to_owned(),
            CachedContext {
                context: context.clone(),
                loaded: std::time::Instant::now(),
            },
        );
    }
    Ok(context)
}

/// Credentials of one achievement, format and actor, picked and signed, ready to store.
struct Part {
    ctx: Arc<Context>,
    format: ProofFormat,
    key: IssuingKey,
    actor: String,
    slots: Vec<Vec<Slot>>,
    signed: Vec<Signed>,
    /// Each award's recipient as an ownership key (see `ob3::ownership`), in award order.
    recipient_keys: Vec<String>,
    /// Holds the picked indexes in this process until the part is stored or abandoned.
    held: allocator::Held,
}

/// Picks status indexes for `awards` and signs their credentials.
async fn prepare_part(
    state: &AppState,
    ctx: Arc<Context>,
    awards: &[Award],
    format: ProofFormat,
    actor: &str,
) -> Result<Part, IssueError> {
    let (slots, held) = allocator::pick_slots(
        state.db(),
        state.in_flight_slots(),
        &ctx.issuer.id,
        &Purpose::ALL,
        awards.len(),
        state.settings().status_list_fill_ratio,
    )
    .await?;
    let key = match format {
        ProofFormat::Jwt(JwtAlgorithm::Es256) => IssuingKey::P256(
            state
                .keys()
                .active_p256_key(state.db(), &ctx.issuer, actor)
                .await?,
        ),
        ProofFormat::Jwt(JwtAlgorithm::EdDsa)
        | ProofFormat::DataIntegrity
        | ProofFormat::DataIntegrityJcs => IssuingKey::Ed25519(ctx.key.clone()),
    };
    let template = Template::now(state, &ctx);
    let signed = sign_all(state, &template, &key, awards, &slots, format).await;
    let recipient_keys = awards
        .iter()
        .map(|a| crate::ob3::ownership::recipient_key(&a.recipient))
        .collect();
    Ok(Part {
        ctx,
        format,
        key,
        actor: actor.to_owned(),
        slots,
        signed,
        recipient_keys,
        held,
    })
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
    match issue_inner(state, achievement_id, awards, format, actor, None).await? {
        Stored::Done(results) => Ok(results),
        // Without an idempotency claim there is none to lose.
        Stored::ClaimLost => Err(IssueError::Contention),
    }
}

/// The answer of an idempotent issuance, written in the transaction that stores its credentials:
/// a retry after any crash finds either nothing of the issuance committed (and the key pending,
/// to be taken over when its lease runs out) or the credentials together with this answer.
pub struct Answer<'a> {
    /// The claimed idempotency row (see [`db::idempotency_key::claim`]).
    pub key_row: &'a str,
    /// Renders the stored answer from the per-award results (the caller answers the same).
    pub render: &'a RenderAnswer<'a>,
}

/// Renders an idempotent issuance's stored answer from its per-award results.
pub type RenderAnswer<'r> = dyn Fn(&[Result<Issued, IssueError>]) -> String + Send + Sync + 'r;

/// What [`issue_answered`] did.
#[derive(Debug)]
pub enum Stored {
    /// Issued (every `Ok` is stored). When at least one was issued, the answer is stored with them;
    /// when none was, nothing was written at all.
    Done(Vec<Result<Issued, IssueError>>),
    /// Another request took the idempotency key over (this one had stopped renewing its lease):
    /// nothing was stored; that request's answer is the one.
    ClaimLost,
}

/// [`issue`] under an idempotency claim: the claim's lease is renewed while the work runs and the
/// answer is stored with the credentials.
pub async fn issue_answered(
    state: &AppState,
    achievement_id: &str,
    awards: Vec<Award>,
    format: ProofFormat,
    actor: &str,
    answer: &Answer<'_>,
) -> Result<Stored, IssueError> {
    let renewal = {
        let db = state.db().clone();
        let row = answer.key_row.to_owned();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(db::idempotency_key::LEASE_RENEW);
            tick.tick().await;
            loop {
                tick.tick().await;
                match db::idempotency_key::renew(&db, &row).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(key_row = %row, "idempotency claim lost while working");
                        break;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "could not renew an idempotency lease")
                    }
                }
            }
        })
    };
    let outcome = issue_inner(state, achievement_id, awards, format, actor, Some(answer)).await;
    renewal.abort();
    outcome
}

async fn issue_inner(
    state: &AppState,
    achievement_id: &str,
    awards: Vec<Award>,
    format: ProofFormat,
    actor: &str,
    answer: Option<&Answer<'_>>,
) -> Result<Stored, IssueError> {
    if awards.is_empty() || awards.len() > MAX_BATCH {
        return Err(IssueError::Invalid(Invalid {
            field: "recipients".into(),
            reason: format!("between 1 and {MAX_BATCH} per request"),
        }));
    }
    let ctx = context(state, achievement_id).await?;
    // Lost races are retried with fresh picks. Besides index collisions, instances that fill the
    // same list at once lose its capped counter update (see `allocator::reserve`) until one of
    // them has closed it, so a batch gets a few more attempts than a single race needs.
    for attempt in 0..10 {
        let part = prepare_part(state, ctx.clone(), &awards, format, actor).await?;
        match store_answered(state, vec![part], answer).await {
            Ok(StoredParts::Done(mut results)) => {
                return Ok(Stored::Done(results.pop().unwrap_or_default()));
            }
            Ok(StoredParts::ClaimLost) => return Ok(Stored::ClaimLost),
            Err(IssueError::Db(err)) if db::is_retryable(&err) => {
                tracing::debug!(attempt, error = %err, "lost a concurrent race; picking again");
                db::retry_backoff().await;
            }
            Err(other) => return Err(other),
        }
    }
    Err(IssueError::Contention)
}

/// A pause in the idempotent batch's commit window, for the crash tests only
/// (tests/api/hardening_state.rs): `OXBADGE_TEST_ONLY_BATCH_PAUSE=before-commit:MS` sleeps with
/// the transaction open, `after-commit:MS` after the commit, before the answer goes out. Unset in
/// any real deployment (a warning is logged when it is set).
async fn test_only_pause(point: &str) {
    let Ok(spec) = std::env::var("OXBADGE_TEST_ONLY_BATCH_PAUSE") else {
        return;
    };
    if let Some((at, ms)) = spec.split_once(':')
        && at == point
        && let Ok(ms) = ms.parse::<u64>()
    {
        tracing::warn!(
            point,
            ms,
            "OXBADGE_TEST_ONLY_BATCH_PAUSE: pausing (test hook)"
        );
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

type Signed = Result<(String, String, Value, Option<String>), IssueError>;

/// Builds every award, then signs them on the blocking pool in as many slices as there are cores
/// (results in request order).
async fn sign_all(
    state: &AppState,
    t: &Template<'_>,
    key: &IssuingKey,
    awards: &[Award],
    slots: &[Vec<Slot>],
    format: ProofFormat,
) -> Vec<Signed> {
    let created = t.valid_from;
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

/// Stores the signed credentials of every part, with their status entries and one audit event per
/// part, in ONE transaction. Results are per part, per award, in order.
async fn store(
    state: &AppState,
    parts: Vec<Part>,
) -> Result<Vec<Vec<Result<Issued, IssueError>>>, IssueError> {
    match store_answered(state, parts, None).await? {
        StoredParts::Done(results) => Ok(results),
        StoredParts::ClaimLost => Err(IssueError::Contention),
    }
}

enum StoredParts {
    Done(Vec<Vec<Result<Issued, IssueError>>>),
    ClaimLost,
}

/// [`store`], writing `answer` (rendered from the results) in the same transaction.
async fn store_answered(
    state: &AppState,
    parts: Vec<Part>,
    answer: Option<&Answer<'_>>,
) -> Result<StoredParts, IssueError> {
    let now = Utc::now();
    let mut rows = Vec::new();
    let mut reservations: Vec<(String, Vec<Slot>)> = Vec::new();
    let mut audits = Vec::with_capacity(parts.len());
    let mut all_results = Vec::with_capacity(parts.len());
    // The picked indexes stay held until the transaction is over.
    let mut held = Vec::with_capacity(parts.len());
    for part in parts {
        held.push(part.held);
        let mut results = Vec::with_capacity(part.signed.len());
        let mut ids = Vec::new();
        let mut recipient_keys = part.recipient_keys.into_iter();
        for (item, item_slots) in part.signed.into_iter().zip(part.slots) {
            let recipient_key = recipient_keys.next();
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
                        issuer_id: Set(part.ctx.issuer.id.clone()),
                        achievement_id: Set(Some(part.ctx.achievement.id.clone())),
                        format: Set(part.format.as_str().to_owned()),
                        document: Set(document),
                        key_id: Set(part.key.key_id().to_owned()),
                        valid_from: Set(valid_from),
                        valid_until: Set(valid_until),
                        created_at: Set(now),
                        recipient_key: Set(recipient_key),
                    });
                    reservations.push((id.clone(), item_slots));
                    ids.push(id.clone());
                    results.push(Ok(Issued {
                        id,
                        credential_uri: uri,
                        format: part.format,
                        credential,
                        jwt: jws,
                    }));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        if !ids.is_empty() {
            audits.push((
                part.ctx,
                part.format,
                part.key.key_id().to_owned(),
                part.actor,
                ids,
            ));
        }
        all_results.push(results);
    }
    if rows.is_empty() {
        return Ok(StoredParts::Done(all_results));
    }
    let txn = db::begin_write(state.db()).await?;
    let refs: Vec<(&str, &[Slot])> = reservations
        .iter()
        .map(|(id, s)| (id.as_str(), s.as_slice()))
        .collect();
    allocator::reserve(&txn, &refs).await?;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(200).collect();
        credential::Entity::insert_many(chunk).exec(&txn).await?;
    }
    for (ctx, format, key_id, actor, ids) in audits {
        let count = ids.len();
        let mut details = json!({"count": count, "achievement": ctx.achievement.id, "issuer": ctx.issuer.id, "format": format.as_str(), "key": key_id});
        // Grouped single issuances stay traceable one by one; a large batch records its count.
        if (2..=queue::MAX_GROUP).contains(&count) {
            details["credentials"] = json!(ids);
        }
        audit_event::record(
            &txn,
            &actor,
            "credential.issued",
            "credential",
            if count == 1 {
                &ids[0]
            } else {
                &ctx.achievement.id
            },
            details,
        )
        .await?;
    }
    if let Some(answer) = answer {
        let rendered = all_results
            .first()
            .map(|results| (answer.render)(results))
            .unwrap_or_default();
        if !db::idempotency_key::finish(&txn, answer.key_row, rendered).await? {
            txn.rollback().await?;
            return Ok(StoredParts::ClaimLost);
        }
        test_only_pause("before-commit").await;
    }
    txn.commit().await?;
    drop(held);
    if answer.is_some() {
        test_only_pause("after-commit").await;
    }
    Ok(StoredParts::Done(all_results))
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
    let change = Change::Achievement(achievement_id.to_owned());
    invalidation::announce(&txn, &change).await?;
    txn.commit().await?;
    invalidation::evict(state, &change);
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
