//! Issuance through the W3C VC API (`POST /credentials/issue`): a credential the client built is
//! held to the data model ([`crate::ob::structure`], the rules the verifier applies) and to the
//! pinned contexts, given status entries allocated exactly as native issuance allocates them
//! ([`crate::status::allocator`]), secured with Data Integrity (`eddsa-rdfc-2022` or
//! `eddsa-jcs-2022`) or as a VC-JOSE-COSE `vc+jwt`, and stored before it is returned.

use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, QueryFilter, Set};
use serde_json::{Value, json};

use super::{IssueError, JwtAlgorithm, jwt, new_credential_uri, status_entry};
use crate::{
    app::AppState,
    db::{self, audit_event, credential, issuer},
    di::{Cryptosuite, ProofOptions, ProofPurpose},
    keys::store::KeyError,
    ob::{
        self, StatusShape,
        structure::{self, Structure},
    },
    status::{
        allocator::{self, Purpose, Slot},
        lists,
    },
};

/// The W3C status context that defines `BitstringStatusListEntry` for VC 1.1 credentials (VC 2.0
/// has it in its base context).
const STATUS_V1: &str = "https://www.w3.org/ns/credentials/status/v1";

/// How the credential is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Securing {
    /// An embedded `DataIntegrityProof` of this cryptosuite.
    DataIntegrity(Cryptosuite),
    /// A VC-JOSE-COSE `application/vc+jwt`, returned as an `EnvelopedVerifiableCredential`.
    VcJwt(JwtAlgorithm),
}

impl Default for Securing {
    fn default() -> Self {
        Self::DataIntegrity(Cryptosuite::default())
    }
}

/// Which status entries the credential gets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StatusRequest {
    /// The server's configured status shape (`status_shape`), as native issuance.
    #[default]
    Server,
    /// One `BitstringStatusListEntry` per purpose, in this order (no repeats, at least one).
    Bitstring(Vec<Purpose>),
}

/// A parsed `POST /credentials/issue`.
#[derive(Debug, Clone)]
pub struct VcApiIssue {
    /// The unsigned credential.
    pub credential: Value,
    /// How to secure it.
    pub securing: Securing,
    /// Which status entries to add (ignored when the credential brings its own).
    pub status: StatusRequest,
}

/// An issued, stored credential.
#[derive(Debug, Clone)]
pub struct VcApiIssued {
    /// Our id (CUID).
    pub id: String,
    /// The credential's `id`.
    pub credential_uri: String,
    /// What the VC API returns as `verifiableCredential`: the signed credential, or the
    /// `EnvelopedVerifiableCredential` holding the `vc+jwt`.
    pub verifiable_credential: Value,
}

/// Why a VC API issuance was refused. Nothing is signed or stored in any case.
#[derive(Debug, thiserror::Error)]
pub enum VcApiError {
    /// 400: the request is not a credential this endpoint can take (not an object, already
    /// signed, no base context, ...).
    #[error("{0}")]
    Malformed(String),
    /// 400: the credential breaks the VC data model (or OB 3.0) rules; each problem names its
    /// member.
    #[error("{}", .0.summary())]
    Structure(Structure),
    /// 400: the credential's or the options' `credentialStatus` cannot be honoured.
    #[error("{0}")]
    Status(String),
    /// 422: `issuer` is not an issuer of this service.
    #[error("`{0}` is not an issuer of this service")]
    UnknownIssuer(String),
    /// 409: a credential with this `id` was already issued.
    #[error("a credential with id `{0}` was already issued")]
    Duplicate(String),
    /// 422: canonicalizing the credential would pass a configured bound on RDFC-1.0 work (a
    /// poison graph); names the limit.
    #[error("{0}")]
    CanonicalizationLimit(String),
    /// Signing, key, database and contention failures, as for native issuance.
    #[error(transparent)]
    Issue(#[from] IssueError),
}

impl From<DbErr> for VcApiError {
    fn from(err: DbErr) -> Self {
        Self::Issue(IssueError::Db(err))
    }
}

impl From<KeyError> for VcApiError {
    fn from(err: KeyError) -> Self {
        Self::Issue(IssueError::Key(err))
    }
}

fn malformed(detail: impl Into<String>) -> VcApiError {
    VcApiError::Malformed(detail.into())
}

/// The key the credential is signed with.
enum Key {
    Ed25519(crate::keys::store::ActiveSigningKey),
    P256(crate::keys::store::ActiveP256Key),
}

impl Key {
    fn key_id(&self) -> &str {
        match self {
            Key::Ed25519(k) => &k.key_id,
            Key::P256(k) => &k.key_id,
        }
    }
}

/// The status entries to write, once slots are picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carry {
    /// The client's own `credentialStatus` (not in this service's lists): nothing allocated.
    Client,
    /// `{id: <revocation list>, type: 1EdTechRevocationList}` (slots still allocated, so that
    /// `/credentials/status` and the revocation list work).
    OneEdTech,
    /// Bitstring entries for these purposes (one entry: an object; two: a list).
    Bitstring(&'static [Purpose]),
}

/// Issues one credential through the VC API; see the module documentation.
pub async fn issue(
    state: &AppState,
    request: VcApiIssue,
    actor: &str,
) -> Result<VcApiIssued, VcApiError> {
    let VcApiIssue {
        mut credential,
        securing,
        status,
    } = request;
    let obj = credential
        .as_object_mut()
        .ok_or_else(|| malformed("credential must be a JSON object"))?;
    if obj.contains_key("proof") {
        return Err(malformed("credential already has a proof"));
    }
    let contexts = obj
        .get_mut("@context")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| malformed("@context must be an array"))?;
    let first = contexts.first().and_then(Value::as_str).unwrap_or_default();
    let v11 = first == ob::CREDENTIALS_V1;
    if !v11 && first != ob::CREDENTIALS_V2 {
        return Err(malformed(
            "@context must start with the VC 2.0 or VC 1.1 context",
        ));
    }
    if v11 && matches!(securing, Securing::VcJwt(_)) {
        // VC-JOSE-COSE secures the VC 2.0 data model only (its §3.1: `@context` must be VC 2.0).
        return Err(malformed(
            "application/vc+jwt secures VC 2.0 credentials: @context must start with https://www.w3.org/ns/credentials/v2",
        ));
    }
    if v11
        && matches!(securing, Securing::DataIntegrity(_))
        && !contexts.iter().any(|c| c == ob::DATA_INTEGRITY_V2)
    {
        contexts.push(json!(ob::DATA_INTEGRITY_V2));
    }
    let issuer_id = match obj.get("issuer") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("issuer.id is required"))?
            .to_owned(),
        _ => return Err(malformed("issuer is required")),
    };
    let uri = match obj.get("id") {
        Some(Value::String(s)) => ob::uri("id", s).map_err(|e| malformed(e.to_string()))?,
        Some(_) => return Err(malformed("id must be a string")),
        None => {
            let uri = new_credential_uri();
            obj.insert("id".into(), json!(uri));
            uri
        }
    };
    let date_key = if v11 { "issuanceDate" } else { "validFrom" };
    if !obj.contains_key(date_key) {
        obj.insert(
            date_key.into(),
            json!(Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)),
        );
    }
    let carry = if obj.contains_key("credentialStatus") {
        if status != StatusRequest::Server {
            return Err(VcApiError::Status(
                "credentialStatus is both in the credential and in options.credentialStatus: send one"
                    .into(),
            ));
        }
        refuse_own_lists(state, &obj["credentialStatus"])?;
        Carry::Client
    } else {
        match status {
            StatusRequest::Server => match state.settings().status_shape {
                StatusShape::OneEdTech => Carry::OneEdTech,
                StatusShape::Bitstring => Carry::Bitstring(&[Purpose::Revocation]),
                StatusShape::BitstringBoth => Carry::Bitstring(&Purpose::ALL),
            },
            StatusRequest::Bitstring(purposes) => Carry::Bitstring(match purposes.as_slice() {
                [Purpose::Revocation] => &[Purpose::Revocation],
                [Purpose::Suspension] => &[Purpose::Suspension],
                [Purpose::Revocation, Purpose::Suspension] => &Purpose::ALL,
                [Purpose::Suspension, Purpose::Revocation] => {
                    &[Purpose::Suspension, Purpose::Revocation]
                }
                _ => {
                    return Err(VcApiError::Status(
                        "options.credentialStatus names revocation and/or suspension, each once"
                            .into(),
                    ));
                }
            }),
        }
    };
    // The client's credential as sent (with the defaults above) must already conform: the
    // entries added below are ours and are checked again with the rest before signing.
    let checked = structure::check(&credential);
    if !checked.conforms() {
        return Err(VcApiError::Structure(checked));
    }
    let issuer = issuer::Entity::find()
        .filter(issuer::Column::IssuerId.eq(&issuer_id))
        .one(state.db())
        .await?
        .ok_or_else(|| VcApiError::UnknownIssuer(issuer_id.clone()))?;
    let key = match securing {
        Securing::VcJwt(JwtAlgorithm::Es256) => Key::P256(
            state
                .keys()
                .active_p256_key(state.db(), &issuer, actor)
                .await?,
        ),
        Securing::VcJwt(JwtAlgorithm::EdDsa) | Securing::DataIntegrity(_) => {
            Key::Ed25519(state.keys().active_signing_key(state.db(), &issuer).await?)
        }
    };
    let key = std::sync::Arc::new(key);
    for attempt in 0..5 {
        if credential::Entity::find()
            .filter(credential::Column::CredentialUri.eq(&uri))
            .one(state.db())
            .await?
            .is_some()
        {
            return Err(VcApiError::Duplicate(uri));
        }
        let (slots, held) = if carry == Carry::Client {
            (Vec::new(), None)
        } else {
            let (mut picked, held) = allocator::pick_slots(
                state.db(),
                state.in_flight_slots(),
                &issuer.id,
                &Purpose::ALL,
                1,
                state.settings().status_list_fill_ratio,
            )
            .await?;
            (picked.pop().unwrap_or_default(), Some(held))
        };
        let mut vc = credential.clone();
        with_status(state, &mut vc, carry, &slots, &issuer, v11);
        let checked = structure::check(&vc);
        if !checked.conforms() {
            return Err(VcApiError::Structure(checked));
        }
        let dates = validity(&vc);
        let recipient = crate::ob3::ownership::subject_key(&vc);
        let (document, verifiable_credential) = sign(state, vc, securing, key.clone()).await?;
        let row = Row {
            issuer: &issuer,
            uri: &uri,
            key: &key,
            slots: &slots,
            document: &document,
            securing,
            dates,
            recipient,
        };
        match store(state, row, actor).await {
            Ok(id) => {
                drop(held);
                return Ok(VcApiIssued {
                    id,
                    credential_uri: uri,
                    verifiable_credential,
                });
            }
            Err(err) if db::is_retryable(&err) => {
                tracing::debug!(attempt, error = %err, "VC API issuance lost a race; picking again");
                drop(held);
                db::retry_backoff().await;
            }
            Err(err) => return Err(err.into()),
        }
    }
    Err(IssueError::Contention.into())
}

/// A client may bring its own status entries, but not ones in this service's lists: those
/// indexes are handed out by the allocator only (`options.credentialStatus` asks for them).
fn refuse_own_lists(state: &AppState, status: &Value) -> Result<(), VcApiError> {
    let base = state.public_url().as_str().trim_end_matches('/').to_owned();
    let ours = [format!("{base}/status/"), format!("{base}/revocations/")];
    let entries: Vec<&Value> = match status {
        Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    for entry in entries {
        for field in ["id", "statusListCredential"] {
            if let Some(url) = entry.get(field).and_then(Value::as_str)
                && ours.iter().any(|prefix| url.starts_with(prefix.as_str()))
            {
                return Err(VcApiError::Status(format!(
                    "credentialStatus.{field} {url} is a list of this service: its entries are allocated by the service (ask with options.credentialStatus)"
                )));
            }
        }
    }
    Ok(())
}

/// Writes the `credentialStatus` the credential carries (and the contexts its types need).
fn with_status(
    state: &AppState,
    vc: &mut Value,
    carry: Carry,
    slots: &[Slot],
    issuer: &issuer::Model,
    v11: bool,
) {
    let Some(obj) = vc.as_object_mut() else {
        return;
    };
    let add_context = |obj: &mut serde_json::Map<String, Value>, url: &str| {
        if let Some(Value::Array(contexts)) = obj.get_mut("@context")
            && !contexts.iter().any(|c| c == url)
        {
            contexts.push(json!(url));
        }
    };
    match carry {
        Carry::Client => {}
        Carry::OneEdTech => {
            add_context(obj, ob::OB_EXTENSIONS);
            obj.insert(
                "credentialStatus".into(),
                json!({"id": lists::revocation_list_url(state, &issuer.id), "type": "1EdTechRevocationList"}),
            );
        }
        Carry::Bitstring(purposes) => {
            if v11 {
                add_context(obj, STATUS_V1);
            }
            let mut entries: Vec<Value> = purposes
                .iter()
                .filter_map(|p| slots.iter().find(|s| s.purpose == *p))
                .map(|s| status_entry(state, s))
                .collect();
            let value = if entries.len() == 1 {
                entries.remove(0)
            } else {
                Value::Array(entries)
            };
            obj.insert("credentialStatus".into(), value);
        }
    }
}

/// Signs off the reactor; returns the stored document and what the VC API answers.
async fn sign(
    state: &AppState,
    vc: Value,
    securing: Securing,
    key: std::sync::Arc<Key>,
) -> Result<(String, Value), VcApiError> {
    let signer = state.signer().clone();
    let signed =
        crate::compute::spawn_interruptible(move |cancel| match (securing, key.as_ref()) {
            (Securing::DataIntegrity(suite), Key::Ed25519(k)) => signer
                .with_cancel(cancel)
                .sign_with(
                    &vc,
                    ProofOptions {
                        verification_method: k.verification_method.clone(),
                        created: Utc::now(),
                        proof_purpose: ProofPurpose::AssertionMethod,
                        challenge: None,
                        domain: None,
                    },
                    &k.signing_key,
                    suite,
                )
                .map(|signed| (signed.to_string(), signed))
                .map_err(|e| match e {
                    // A bound on canonicalization work (a poison graph): 422 naming the limit.
                    crate::di::DiError::JsonLd(limit) if limit.is_resource_limit() => {
                        VcApiError::CanonicalizationLimit(limit.to_string())
                    }
                    other => IssueError::Unsignable(other.to_string()).into(),
                }),
            (Securing::VcJwt(_), key) => {
                // Signing a vc+jwt does not expand the credential: hold it to the pinned contexts
                // first, as every credential we sign.
                signer
                    .check_contexts(&vc)
                    .map_err(|e| VcApiError::from(IssueError::Unsignable(e.to_string())))?;
                let (kid, jose_key) = match key {
                    Key::Ed25519(k) => (
                        &k.verification_method,
                        jwt::VcJoseKey::Ed25519(&k.signing_key),
                    ),
                    Key::P256(k) => (&k.verification_method, jwt::VcJoseKey::P256(&k.signing_key)),
                };
                let jws = jwt::sign_vc_jose(&vc, kid, jose_key)
                    .map_err(|e| VcApiError::from(IssueError::Unsignable(e.to_string())))?;
                Ok((jws.clone(), jwt::enveloped(&jws)))
            }
            (Securing::DataIntegrity(_), Key::P256(_)) => Err(IssueError::Unsignable(
                "Data Integrity proofs are signed with the issuer's Ed25519 key".into(),
            )
            .into()),
        })
        .await
        .map_err(|e| IssueError::Unsignable(format!("signing task failed: {e}")))??;
    Ok(signed)
}

/// `validFrom` / `validUntil` (or the VC 1.1 names) of a credential.
fn validity(vc: &Value) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let date = |keys: [&str; 2]| {
        keys.iter()
            .find_map(|k| vc.get(*k))
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    (
        date(["validFrom", "issuanceDate"]),
        date(["validUntil", "expirationDate"]),
    )
}

/// What [`store`] writes.
struct Row<'a> {
    issuer: &'a issuer::Model,
    uri: &'a str,
    key: &'a Key,
    slots: &'a [Slot],
    document: &'a str,
    securing: Securing,
    dates: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    /// The subject as an ownership key (`ob3::ownership`).
    recipient: Option<String>,
}

/// Stores the credential with its status entries and an audit event, in one transaction.
async fn store(state: &AppState, row: Row<'_>, actor: &str) -> Result<String, DbErr> {
    let Row {
        issuer,
        uri,
        key,
        slots,
        document,
        securing,
        dates: (valid_from, valid_until),
        recipient,
    } = row;
    let now = Utc::now();
    let (format, suite) = match securing {
        Securing::DataIntegrity(suite) => ("data-integrity", suite.as_str()),
        Securing::VcJwt(alg) => ("jwt", alg.as_str()),
    };
    let id = db::new_id();
    let txn = db::begin_write(state.db()).await?;
    if !slots.is_empty() {
        allocator::reserve(&txn, &[(id.as_str(), slots)]).await?;
    }
    credential::ActiveModel {
        id: Set(id.clone()),
        credential_uri: Set(uri.to_owned()),
        issuer_id: Set(issuer.id.clone()),
        achievement_id: Set(None),
        format: Set(format.into()),
        document: Set(document.to_owned()),
        key_id: Set(key.key_id().to_owned()),
        valid_from: Set(valid_from.unwrap_or(now)),
        valid_until: Set(valid_until),
        created_at: Set(now),
        recipient_key: Set(recipient),
    }
    .insert(&txn)
    .await?;
    audit_event::record(
        &txn,
        actor,
        "credential.issued",
        "credential",
        &id,
        json!({"via": "vc-api", "format": format, "suite": suite, "key": key.key_id()}),
    )
    .await?;
    txn.commit().await?;
    Ok(id)
}
