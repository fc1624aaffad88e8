//! Issuing and managing credentials: `/api/v1/credentials` (single, batch with idempotency keys,
//! reads, status changes).

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Header, Path, Query},
    payload::{Json, PlainText},
    registry::{MetaMediaType, MetaResponse, MetaResponses, Registry},
    types::Type,
};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::tenancy::{self, Role};
use super::{
    ApiTags,
    auth::{Authorized, scope},
};
use crate::{
    app::AppState,
    db::{credential, idempotency_key},
    error::{ApiError, Problem},
    issue::{self, Award, IssueError, Issued, JwtAlgorithm, ProofFormat},
    oauth::Scope,
    ob::{self, Recipient},
    status::{
        allocator::Purpose,
        changes::{self, StatusChange},
        lists::StatusError,
    },
};

impl From<StatusError> for ApiError {
    fn from(err: StatusError) -> Self {
        match err {
            StatusError::NotFound(what) => ApiError::NotFound { what },
            StatusError::RevocationIsFinal(_) => ApiError::Conflict {
                code: "revocation_is_final",
                detail: err.to_string(),
            },
            StatusError::Invalid(detail) => ApiError::Unprocessable {
                code: "invalid_status_change",
                detail,
            },
            StatusError::Key(k) => k.into(),
            StatusError::Db(db) => db.into(),
            other => ApiError::internal(other),
        }
    }
}

/// The recipient: exactly one of `email` (published only as a salted hash) or `id` (DID or URL).
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct RecipientInput {
    /// Email address.
    pub email: Option<String>,
    /// DID or URL of the learner.
    pub id: Option<String>,
}

/// A learner's result.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ResultInput {
    /// The value (grade, score…).
    pub value: Option<String>,
    /// `Completed`, `Enrolled`, `Failed`, `InProgress`, `OnHold`, `Provisional` or `Withdrew`.
    pub status: Option<String>,
    /// URI of the achieved rubric level.
    pub achieved_level: Option<String>,
    /// URI of the result description.
    pub result_description: Option<String>,
}

/// Evidence of the achievement.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct EvidenceInput {
    /// URL of the evidence.
    pub id: Option<String>,
    /// Narrative.
    pub narrative: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Genre.
    pub genre: Option<String>,
    /// Audience.
    pub audience: Option<String>,
}

/// Request to issue one credential.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct IssueRequest {
    /// The achievement (CUID).
    pub achievement_id: String,
    /// Who receives it.
    pub recipient: RecipientInput,
    /// Results.
    #[oai(default)]
    pub result: Vec<ResultInput>,
    /// Evidence.
    #[oai(default)]
    pub evidence: Vec<EvidenceInput>,
    /// Expiry.
    pub valid_until: Option<DateTime<Utc>>,
    /// `data-integrity` (default) or `jwt`.
    pub proof_format: Option<String>,
    /// With `proofFormat: jwt`: `EdDSA` (default, the issuer's Ed25519 key) or `ES256` (the
    /// issuer's P-256 key, created on first use; the algorithm the 1EdTech validator accepts).
    pub jwt_algorithm: Option<String>,
    /// With `proofFormat: data-integrity`: `eddsa-rdfc-2022` (default) or `eddsa-jcs-2022`.
    pub cryptosuite: Option<String>,
}

/// One recipient of a batch.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct BatchRecipient {
    /// Email address.
    pub email: Option<String>,
    /// DID or URL of the learner.
    pub id: Option<String>,
    /// Results.
    #[oai(default)]
    pub result: Vec<ResultInput>,
    /// Evidence.
    #[oai(default)]
    pub evidence: Vec<EvidenceInput>,
    /// Expiry (overrides the batch's).
    pub valid_until: Option<DateTime<Utc>>,
}

/// Request to issue one achievement to many recipients.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct BatchRequest {
    /// The achievement (CUID).
    pub achievement_id: String,
    /// Up to 10,000 recipients.
    pub recipients: Vec<BatchRecipient>,
    /// Expiry for every credential.
    pub valid_until: Option<DateTime<Utc>>,
    /// `data-integrity` (default) or `jwt`.
    pub proof_format: Option<String>,
    /// With `proofFormat: jwt`: `EdDSA` (default, the issuer's Ed25519 key) or `ES256` (the
    /// issuer's P-256 key, created on first use; the algorithm the 1EdTech validator accepts).
    pub jwt_algorithm: Option<String>,
    /// With `proofFormat: data-integrity`: `eddsa-rdfc-2022` (default) or `eddsa-jcs-2022`.
    pub cryptosuite: Option<String>,
}

/// An issued credential.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct IssuedCredential {
    /// Our id (CUID).
    pub id: String,
    /// The credential (signed, for Data Integrity; the JWT payload's credential for VC-JWT).
    pub credential: Value,
    /// The compact JWS (VC-JWT only).
    pub jwt: Option<String>,
}

/// One item of a batch result.
#[derive(Debug, Object, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct BatchItem {
    /// Position in the request.
    pub index: u32,
    /// Our id, when issued.
    pub id: Option<String>,
    /// The credential, when issued.
    pub credential: Option<Value>,
    /// The compact JWS (VC-JWT).
    pub jwt: Option<String>,
    /// Why this recipient failed.
    pub error: Option<Problem>,
}

/// Batch result.
#[derive(Debug, Object, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct BatchResult {
    /// Number issued.
    pub issued: u32,
    /// Number that failed.
    pub failed: u32,
    /// Per recipient, in request order.
    pub results: Vec<BatchItem>,
}

/// Issued.
#[derive(ApiResponse)]
pub enum IssueResponse {
    /// Signed and durably stored.
    #[oai(status = 201)]
    Created(Json<IssuedCredential>),
}

/// Batch answered: 201 when at least one credential was issued, 200 for a replay, 422 with the
/// per-item results when every item failed (nothing was issued).
pub enum BatchResponse {
    /// Processed (see each item); every credential returned is stored.
    Created(Json<BatchResult>),
    /// A retry with the same `Idempotency-Key`: the original answer.
    Replayed(Json<BatchResult>),
    /// Every item failed; nothing was issued (documented with [`BatchError`]'s 422).
    AllFailed(Json<BatchResult>),
}

impl poem::IntoResponse for BatchResponse {
    fn into_response(self) -> poem::Response {
        use poem::http::StatusCode;
        let (status, body) = match self {
            Self::Created(body) => (StatusCode::CREATED, body),
            Self::Replayed(body) => (StatusCode::OK, body),
            Self::AllFailed(body) => (StatusCode::UNPROCESSABLE_ENTITY, body),
        };
        body.with_status(status).into_response()
    }
}

impl ApiResponse for BatchResponse {
    fn meta() -> MetaResponses {
        let json = |description: &'static str, status: u16| MetaResponse {
            description,
            status: Some(status),
            status_range: None,
            content: vec![MetaMediaType {
                content_type: "application/json; charset=utf-8",
                schema: BatchResult::schema_ref(),
            }],
            headers: vec![],
        };
        MetaResponses {
            responses: vec![
                json(
                    "Processed (see each item); every credential returned is stored.",
                    201,
                ),
                json(
                    "A retry with the same `Idempotency-Key`: the original answer.",
                    200,
                ),
            ],
        }
    }

    fn register(registry: &mut Registry) {
        BatchResult::register(registry);
    }
}

/// The batch operation's errors: [`ApiError`], whose 422 also documents the all-failed batch
/// result (`application/json`, a [`BatchResult`]) next to the problem document.
pub type BatchError = super::documented::ApiErrorOr422<BatchResult>;

/// A stored credential.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct CredentialResource {
    /// Our id.
    pub id: String,
    /// The credential's `id`.
    pub credential_id: String,
    /// Issuer (CUID).
    pub issuer_id: String,
    /// Achievement (CUID).
    pub achievement_id: Option<String>,
    /// `data-integrity` or `jwt`.
    pub format: String,
    /// The signed credential (Data Integrity).
    pub credential: Option<Value>,
    /// The compact JWS (VC-JWT).
    pub jwt: Option<String>,
    /// Whether it is revoked.
    pub revoked: bool,
    /// Whether it is suspended.
    pub suspended: bool,
    /// Issuance time.
    pub created_at: DateTime<Utc>,
}

/// A page of credentials.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct CredentialPage {
    /// Credentials on this page, newest first.
    pub items: Vec<CredentialResource>,
    /// Total number of credentials.
    pub total: u64,
}

/// A status change for one credential.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct StatusRequest {
    /// `revocation` or `suspension`.
    pub purpose: String,
    /// `true` to revoke or suspend; `false` to lift a suspension (revocation is final).
    pub status: bool,
    /// Why (kept with the entry, published in the 1EdTech revocation list).
    #[oai(validator(max_length = 1000))]
    pub reason: Option<String>,
}

/// A status change for many credentials, applied atomically.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct BulkStatusRequest {
    /// Our credential ids (up to 10,000).
    pub credential_ids: Vec<String>,
    /// `revocation` or `suspension`.
    pub purpose: String,
    /// New status.
    pub status: bool,
    /// Why.
    #[oai(validator(max_length = 1000))]
    pub reason: Option<String>,
}

/// The outcome of a status change.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct StatusResult {
    /// Our credential id.
    pub credential_id: String,
    /// `revocation` or `suspension`.
    pub purpose: String,
    /// The status now.
    pub status: bool,
    /// False when it already had this status.
    pub changed: bool,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

/// Bulk outcome.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct BulkStatusResult {
    /// Credentials whose status changed.
    pub changed: u32,
    /// Credentials that already had it.
    pub unchanged: u32,
    /// Status lists that changed (each once).
    pub lists: Vec<String>,
}

fn status_result(c: &StatusChange) -> StatusResult {
    StatusResult {
        credential_id: c.credential_id.clone(),
        purpose: c.purpose.as_str().into(),
        status: c.status,
        changed: c.changed,
        updated_at: c.updated_at,
    }
}

fn unprocessable(detail: impl Into<String>) -> ApiError {
    ApiError::Unprocessable {
        code: "invalid_request",
        detail: detail.into(),
    }
}

/// [`parse_format`] plus the Data Integrity `cryptosuite` choice.
fn parse_format_and_suite(
    proof_format: Option<&str>,
    jwt_algorithm: Option<&str>,
    cryptosuite: Option<&str>,
) -> Result<ProofFormat, ApiError> {
    let format = parse_format(proof_format, jwt_algorithm)?;
    let Some(suite) = cryptosuite else {
        return Ok(format);
    };
    let suite: crate::di::Cryptosuite =
        suite
            .parse()
            .map_err(|e: crate::di::UnsupportedCryptosuite| {
                unprocessable(format!("cryptosuite: {e}"))
            })?;
    match (format, suite) {
        (ProofFormat::DataIntegrity, crate::di::Cryptosuite::EddsaRdfc2022) => Ok(format),
        (ProofFormat::DataIntegrity, crate::di::Cryptosuite::EddsaJcs2022) => {
            Ok(ProofFormat::DataIntegrityJcs)
        }
        _ => Err(unprocessable(
            "cryptosuite applies only to proofFormat `data-integrity`",
        )),
    }
}

fn parse_format(
    proof_format: Option<&str>,
    jwt_algorithm: Option<&str>,
) -> Result<ProofFormat, ApiError> {
    let algorithm = jwt_algorithm
        .map(|a| {
            a.parse::<JwtAlgorithm>()
                .map_err(|e| unprocessable(format!("jwtAlgorithm: {e}")))
        })
        .transpose()?;
    match (proof_format, algorithm) {
        (Some("jwt"), algorithm) => Ok(ProofFormat::Jwt(algorithm.unwrap_or_default())),
        (None | Some("data-integrity"), None) => Ok(ProofFormat::DataIntegrity),
        // An explicit choice that would be ignored is refused rather than silently dropped.
        (None | Some("data-integrity"), Some(a)) => Err(unprocessable(format!(
            "jwtAlgorithm `{a}` applies only to proofFormat `jwt`"
        ))),
        (Some(other), _) => Err(unprocessable(format!(
            "proofFormat `{other}`: use data-integrity or jwt"
        ))),
    }
}

fn parse_purpose(value: &str) -> Result<Purpose, ApiError> {
    Purpose::parse(value)
        .ok_or_else(|| unprocessable(format!("purpose `{value}`: use revocation or suspension")))
}

fn award(
    email: Option<String>,
    id: Option<String>,
    result: Vec<ResultInput>,
    evidence: Vec<EvidenceInput>,
    valid_until: Option<DateTime<Utc>>,
) -> Result<Award, ob::Invalid> {
    let recipient = match (email, id) {
        (Some(email), None) => Recipient::Email(ob::normalize_email(&email)?),
        (None, Some(id)) => Recipient::Id(ob::uri("recipient.id", &id)?),
        _ => {
            return Err(ob::Invalid {
                field: "recipient".into(),
                reason: "give exactly one of email or id".into(),
            });
        }
    };
    if let Some(until) = valid_until
        && until <= Utc::now()
    {
        return Err(ob::Invalid {
            field: "validUntil".into(),
            reason: "must be in the future".into(),
        });
    }
    let results = result
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            ob::ResultEntry {
                kind: vec![],
                value: r.value,
                status: r.status,
                achieved_level: r.achieved_level,
                result_description: r.result_description,
            }
            .validate(i)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let evidence = evidence
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            ob::Evidence {
                id: e.id,
                kind: vec![],
                narrative: e.narrative,
                name: e.name,
                description: e.description,
                genre: e.genre,
                audience: e.audience,
            }
            .validate(i)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Award {
        recipient,
        results,
        evidence,
        valid_until,
    })
}

fn issued(i: Issued) -> IssuedCredential {
    IssuedCredential {
        id: i.id,
        credential: i.credential,
        jwt: i.jwt,
    }
}

fn problem_of(err: IssueError) -> Problem {
    let api: ApiError = err.into();
    api.to_problem()
}

/// Stored credentials with their status flags (one status query for the whole page).
async fn resources(
    state: &AppState,
    rows: Vec<credential::Model>,
) -> Result<Vec<CredentialResource>, ApiError> {
    let ids: Vec<String> = rows.iter().map(|m| m.id.clone()).collect();
    let flags = changes::flags_of(state.db(), &ids).await?;
    Ok(rows
        .into_iter()
        .map(|m| {
            let (revoked, suspended) = flags.get(&m.id).copied().unwrap_or_default();
            let (credential, jwt) = if m.format == "jwt" {
                (None, Some(m.document))
            } else {
                (serde_json::from_str(&m.document).ok(), None)
            };
            CredentialResource {
                id: m.id,
                credential_id: m.credential_uri,
                issuer_id: m.issuer_id,
                achievement_id: m.achievement_id,
                format: m.format,
                credential,
                jwt,
                revoked,
                suspended,
                created_at: m.created_at,
            }
        })
        .collect())
}

/// A baked PNG badge.
#[derive(ApiResponse)]
pub enum BakedPng {
    /// The achievement image (or a generated badge) with the credential in an iTXt chunk.
    #[oai(status = 200, content_type = "image/png")]
    Ok(poem_openapi::payload::Binary<Vec<u8>>),
}

/// A baked SVG badge.
#[derive(ApiResponse)]
pub enum BakedSvg {
    /// The achievement image (or a generated badge) with an `openbadges:credential` element.
    #[oai(status = 200, content_type = "image/svg+xml")]
    Ok(PlainText<String>),
}

/// The stored credential as embeddable text, and the image its achievement declares.
async fn bake_source(
    state: &AppState,
    id: &str,
) -> Result<
    (
        issue::bake::Embedded,
        Option<(String, Vec<u8>)>,
        String,
        String,
    ),
    ApiError,
> {
    let row = credential::Entity::find_by_id(id.to_owned())
        .one(state.db())
        .await?
        .ok_or(ApiError::NotFound { what: "credential" })?;
    let mut image = None;
    let mut name = "Open Badge".to_owned();
    if let Some(aid) = &row.achievement_id
        && let Some(a) = crate::db::achievement::Entity::find_by_id(aid.clone())
            .one(state.db())
            .await?
    {
        name = a.name.clone();
        image = serde_json::from_str::<ob::AchievementDefinition>(&a.document)
            .ok()
            .and_then(|d| d.image)
            .and_then(|i| issue::bake::decode_data_uri(&i.id));
    }
    let embedded = issue::bake::Embedded::from_text(row.document);
    Ok((embedded, image, row.id, name))
}

fn bake_error(e: issue::bake::BakeError) -> ApiError {
    ApiError::Unprocessable {
        code: "unbakeable_image",
        detail: format!("the achievement image cannot carry the credential: {e}"),
    }
}

/// Credentials.
pub struct CredentialsApi;

#[OpenApi(tag = "ApiTags::Credentials")]
impl CredentialsApi {
    /// Issue one Open Badges 3.0 credential: signed (Data Integrity `eddsa-rdfc-2022` by default, or
    /// VC-JWT with EdDSA or ES256) with the issuer's active key of that algorithm, given its status
    /// entries, and stored durably before this answers 201. The first ES256 credential of an issuer
    /// creates its P-256 key.
    #[oai(
        path = "/api/v1/credentials",
        method = "post",
        operation_id = "issueCredential"
    )]
    async fn issue(
        &self,
        #[oai(scope = "Scope::CredentialsIssue")] auth: Authorized<scope::CredentialsIssue>,
        state: Data<&AppState>,
        body: Json<IssueRequest>,
    ) -> Result<IssueResponse, ApiError> {
        tenancy::achievement(&state, &auth.caller, &body.achievement_id, Role::Issuer).await?;
        let req = body.0;
        let format = parse_format_and_suite(
            req.proof_format.as_deref(),
            req.jwt_algorithm.as_deref(),
            req.cryptosuite.as_deref(),
        )?;
        let award = award(
            req.recipient.email,
            req.recipient.id,
            req.result,
            req.evidence,
            req.valid_until,
        )
        .map_err(|e| unprocessable(e.to_string()))?;
        // Grouped with concurrent issuances into one transaction; answers after the commit.
        let one = issue::queue::issue_one(&state, req.achievement_id, award, format, &auth.actor())
            .await?;
        Ok(IssueResponse::Created(Json(issued(one))))
    }

    /// Issue one achievement to up to 10,000 recipients. One bad recipient does not fail the
    /// others. With an `Idempotency-Key`, a retried batch returns the first answer and never issues
    /// twice (a key reused with a different body is refused with 422).
    #[oai(
        path = "/api/v1/credentials/batch",
        method = "post",
        operation_id = "issueCredentialBatch"
    )]
    async fn batch(
        &self,
        #[oai(scope = "Scope::CredentialsIssue")] auth: Authorized<scope::CredentialsIssue>,
        state: Data<&AppState>,
        /// Makes retries safe: the same key and body return the original result.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: Header<Option<String>>,
        body: Json<BatchRequest>,
    ) -> Result<BatchResponse, BatchError> {
        tenancy::achievement(&state, &auth.caller, &body.achievement_id, Role::Issuer).await?;
        let req = body.0;
        if req.recipients.is_empty() || req.recipients.len() > issue::MAX_BATCH {
            return Err(unprocessable(format!(
                "recipients: between 1 and {} per batch",
                issue::MAX_BATCH
            ))
            .into());
        }
        let format = parse_format_and_suite(
            req.proof_format.as_deref(),
            req.jwt_algorithm.as_deref(),
            req.cryptosuite.as_deref(),
        )?;
        let mut fingerprint = format!(
            "{}|{:?}|{:?}|{:?}",
            req.achievement_id, req.recipients, req.valid_until, req.proof_format
        );
        // Appended only when given, so keys stored before `jwtAlgorithm` existed still replay.
        if let Some(algorithm) = &req.jwt_algorithm {
            fingerprint.push_str(&format!("|{algorithm:?}"));
        }
        if let Some(suite) = &req.cryptosuite {
            fingerprint.push_str(&format!("|cryptosuite={suite:?}"));
        }
        let request_hash = hex::encode(Sha256::digest(fingerprint.as_bytes()));
        let key_row = match idempotency_key.0 {
            Some(key) if key.is_empty() || key.len() > 200 => {
                return Err(unprocessable("Idempotency-Key must be 1-200 characters").into());
            }
            Some(key) => {
                match idempotency_key::claim(state.db(), auth.client_id(), &key, &request_hash)
                    .await?
                {
                    idempotency_key::Claimed::Fresh(row_id) => Some(row_id),
                    idempotency_key::Claimed::Answered(stored) => {
                        let stored: BatchResult =
                            serde_json::from_str(&stored).map_err(ApiError::internal)?;
                        return Ok(BatchResponse::Replayed(Json(stored)));
                    }
                    idempotency_key::Claimed::Reused => {
                        return Err(ApiError::Unprocessable {
                            code: "idempotency_key_reused",
                            detail: "this Idempotency-Key was used with a different request".into(),
                        }
                        .into());
                    }
                    idempotency_key::Claimed::InProgress(wait) => return Err(in_progress(wait)),
                }
            }
            None => None,
        };
        let mut awards = Vec::with_capacity(req.recipients.len());
        let mut invalid: Vec<(usize, Problem)> = Vec::new();
        let mut positions = Vec::with_capacity(req.recipients.len());
        for (i, r) in req.recipients.into_iter().enumerate() {
            match award(
                r.email,
                r.id,
                r.result,
                r.evidence,
                r.valid_until.or(req.valid_until),
            ) {
                Ok(a) => {
                    awards.push(a);
                    positions.push(i);
                }
                Err(e) => invalid.push((i, problem_of(IssueError::Invalid(e)))),
            }
        }
        let result = match &key_row {
            None => {
                let results = if awards.is_empty() {
                    Vec::new()
                } else {
                    issue::issue(&state, &req.achievement_id, awards, format, &auth.actor()).await?
                };
                let items = positions.into_iter().zip(results).map(|(pos, r)| match r {
                    Ok(i) => issued_item(pos, i.id, i.credential, i.jwt),
                    Err(e) => failed_item(pos, problem_of(e)),
                });
                batch_result(items, &invalid)
            }
            Some(row_id) => {
                let render_result = |results: &[Result<Issued, IssueError>]| {
                    let items = positions.iter().zip(results).map(|(&pos, r)| match r {
                        Ok(i) => {
                            issued_item(pos, i.id.clone(), i.credential.clone(), i.jwt.clone())
                        }
                        Err(e) => failed_item(pos, problem_of_ref(e)),
                    });
                    batch_result(items, &invalid)
                };
                let outcome = if awards.is_empty() {
                    Ok(issue::Stored::Done(Vec::new()))
                } else {
                    let render = |results: &[Result<Issued, IssueError>]| {
                        serde_json::to_string(&render_result(results)).unwrap_or_default()
                    };
                    issue::issue_answered(
                        &state,
                        &req.achievement_id,
                        awards,
                        format,
                        &auth.actor(),
                        &issue::Answer {
                            key_row: row_id,
                            render: &render,
                        },
                    )
                    .await
                };
                match outcome {
                    Ok(issue::Stored::Done(results)) => render_result(&results),
                    Ok(issue::Stored::ClaimLost) => {
                        return Err(in_progress(idempotency_key::LEASE_RENEW));
                    }
                    Err(e) => {
                        release_key(&state, row_id).await;
                        return Err(e.into());
                    }
                }
            }
        };
        if result.issued == 0 {
            // Nothing was stored: the key (if any) is released, so a corrected retry can use it.
            if let Some(row_id) = &key_row {
                release_key(&state, row_id).await;
            }
            return Ok(BatchResponse::AllFailed(Json(result)));
        }
        Ok(BatchResponse::Created(Json(result)))
    }

    /// Get one credential with its current revocation and suspension status.
    #[oai(
        path = "/api/v1/credentials/:id",
        method = "get",
        operation_id = "getCredential"
    )]
    async fn get(
        &self,
        #[oai(scope = "Scope::CredentialsRead")] auth: Authorized<scope::CredentialsRead>,
        state: Data<&AppState>,
        /// Credential id (CUID).
        id: Path<String>,
    ) -> Result<Json<CredentialResource>, ApiError> {
        tenancy::credential(&state, &auth.caller, &id, Role::Viewer).await?;
        let row = credential::Entity::find_by_id(id.0)
            .one(state.db())
            .await?
            .ok_or(ApiError::NotFound { what: "credential" })?;
        let mut one = resources(&state, vec![row]).await?;
        Ok(Json(
            one.pop().ok_or(ApiError::NotFound { what: "credential" })?,
        ))
    }

    /// The credential baked into a PNG (OB 3.0 §5.3): the achievement's PNG image when it has one
    /// as a data URI, else a generated badge.
    #[oai(
        path = "/api/v1/credentials/:id/baked.png",
        method = "get",
        operation_id = "getBakedPng"
    )]
    async fn baked_png(
        &self,
        #[oai(scope = "Scope::CredentialsRead")] auth: Authorized<scope::CredentialsRead>,
        state: Data<&AppState>,
        /// Credential id (CUID).
        id: Path<String>,
    ) -> Result<BakedPng, ApiError> {
        tenancy::credential(&state, &auth.caller, &id, Role::Viewer).await?;
        let (embedded, image, seed, _) = bake_source(&state, &id.0).await?;
        let base = match image {
            Some((mime, bytes)) if mime == "image/png" => bytes,
            _ => issue::bake::default_png(&seed),
        };
        let baked = issue::bake::bake_png(&base, &embedded).map_err(bake_error)?;
        Ok(BakedPng::Ok(poem_openapi::payload::Binary(baked)))
    }

    /// The credential baked into an SVG (OB 3.0 §5.3): the achievement's SVG image when it has one
    /// as a data URI, else a generated badge.
    #[oai(
        path = "/api/v1/credentials/:id/baked.svg",
        method = "get",
        operation_id = "getBakedSvg"
    )]
    async fn baked_svg(
        &self,
        #[oai(scope = "Scope::CredentialsRead")] auth: Authorized<scope::CredentialsRead>,
        state: Data<&AppState>,
        /// Credential id (CUID).
        id: Path<String>,
    ) -> Result<BakedSvg, ApiError> {
        tenancy::credential(&state, &auth.caller, &id, Role::Viewer).await?;
        let (embedded, image, seed, name) = bake_source(&state, &id.0).await?;
        let base = match image {
            Some((mime, bytes)) if mime == "image/svg+xml" => {
                String::from_utf8(bytes).map_err(|_| ApiError::Unprocessable {
                    code: "unbakeable_image",
                    detail: "the achievement's SVG image is not UTF-8".into(),
                })?
            }
            _ => issue::bake::default_svg(&seed, &name),
        };
        let baked = issue::bake::bake_svg(&base, &embedded).map_err(bake_error)?;
        Ok(BakedSvg::Ok(PlainText(baked)))
    }

    /// List credentials, newest first.
    #[oai(
        path = "/api/v1/credentials",
        method = "get",
        operation_id = "listCredentials"
    )]
    async fn list(
        &self,
        #[oai(scope = "Scope::CredentialsRead")] auth: Authorized<scope::CredentialsRead>,
        state: Data<&AppState>,
        /// Page size (1–200, default 50).
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        limit: Query<u64>,
        /// Items to skip.
        #[oai(default, validator(minimum(value = "0")))]
        offset: Query<u64>,
        /// Only this issuer (CUID).
        issuer: Query<Option<String>>,
    ) -> Result<Json<CredentialPage>, ApiError> {
        let mut query = credential::Entity::find();
        if let Some(issuer) = &issuer.0 {
            query = query.filter(credential::Column::IssuerId.eq(issuer));
        }
        // Only the caller's issuers (an issuer outside them lists nothing, like an unknown one).
        if let Some(visible) = auth.caller.visible_issuers() {
            query = query.filter(credential::Column::IssuerId.is_in(visible.keys().cloned()));
        }
        let total = query.clone().count(state.db()).await?;
        let rows = query
            .order_by_desc(credential::Column::CreatedAt)
            .order_by_desc(credential::Column::Id)
            .limit(limit.0)
            .offset(offset.0)
            .all(state.db())
            .await?;
        let items = resources(&state, rows).await?;
        Ok(Json(CredentialPage { items, total }))
    }

    /// Revoke, suspend or unsuspend a credential. Revocation is final (409 on an attempt to undo
    /// it). The change is durable before this answers and shows in the next status-list read.
    #[oai(
        path = "/api/v1/credentials/:id/status",
        method = "post",
        operation_id = "setCredentialStatus"
    )]
    async fn set_status(
        &self,
        #[oai(scope = "Scope::CredentialsStatus")] auth: Authorized<scope::CredentialsStatus>,
        state: Data<&AppState>,
        /// Credential id (CUID).
        id: Path<String>,
        body: Json<StatusRequest>,
    ) -> Result<Json<StatusResult>, ApiError> {
        tenancy::credential(&state, &auth.caller, &id, Role::Issuer).await?;
        let purpose = parse_purpose(&body.purpose)?;
        let body = body.0;
        // Grouped with concurrent single changes into one transaction; answers after the commit.
        let change = changes::change_one(
            &state,
            id.0,
            purpose,
            body.status,
            body.reason,
            &auth.actor(),
        )
        .await?;
        Ok(Json(status_result(&change)))
    }

    /// Change the status of up to 10,000 credentials atomically (all or nothing); each affected
    /// status list changes once.
    #[oai(
        path = "/api/v1/credentials/status",
        method = "post",
        operation_id = "setCredentialStatusBulk"
    )]
    async fn set_status_bulk(
        &self,
        #[oai(scope = "Scope::CredentialsStatus")] auth: Authorized<scope::CredentialsStatus>,
        state: Data<&AppState>,
        body: Json<BulkStatusRequest>,
    ) -> Result<Json<BulkStatusResult>, ApiError> {
        tenancy::credentials(&state, &auth.caller, &body.credential_ids, Role::Issuer).await?;
        let purpose = parse_purpose(&body.purpose)?;
        let (changes, lists) = changes::set_status(
            state.db(),
            &body.credential_ids,
            purpose,
            body.status,
            body.reason.as_deref(),
            &auth.actor(),
        )
        .await?;
        for list in &lists {
            state.status_cache().invalidate(list);
        }
        let changed = changes.iter().filter(|c| c.changed).count() as u32;
        Ok(Json(BulkStatusResult {
            changed,
            unchanged: changes.len() as u32 - changed,
            lists: lists.into_iter().collect(),
        }))
    }
}

fn default_limit() -> u64 {
    50
}

/// 409 for a key another live request holds.
fn in_progress(wait: std::time::Duration) -> BatchError {
    ApiError::Conflict {
        code: "idempotency_in_progress",
        detail: format!(
            "a request with this Idempotency-Key is still being processed; retry in {} s",
            wait.as_secs().max(1)
        ),
    }
    .into()
}

async fn release_key(state: &AppState, row_id: &str) {
    if let Err(err) = idempotency_key::release(state.db(), row_id).await {
        tracing::warn!(error = %err, "could not release an idempotency key");
    }
}

fn issued_item(pos: usize, id: String, credential: Value, jwt: Option<String>) -> BatchItem {
    BatchItem {
        index: pos as u32,
        id: Some(id),
        credential: Some(credential),
        jwt,
        error: None,
    }
}

fn failed_item(pos: usize, problem: Problem) -> BatchItem {
    BatchItem {
        index: pos as u32,
        id: None,
        credential: None,
        jwt: None,
        error: Some(problem),
    }
}

/// The batch result: issued or failed items and the recipients refused before issuance, in
/// request order.
fn batch_result(
    items: impl Iterator<Item = BatchItem>,
    invalid: &[(usize, Problem)],
) -> BatchResult {
    let mut items: Vec<BatchItem> = items
        .chain(invalid.iter().map(|(pos, p)| failed_item(*pos, p.clone())))
        .collect();
    items.sort_by_key(|i| i.index);
    let issued = items.iter().filter(|i| i.id.is_some()).count() as u32;
    BatchResult {
        issued,
        failed: items.len() as u32 - issued,
        results: items,
    }
}

/// [`problem_of`] for a borrowed error (the stored answer is rendered before the results are
/// handed back). Per-item failures are signing failures; the rest map as [`ApiError`] does.
fn problem_of_ref(err: &IssueError) -> Problem {
    let api = match err {
        IssueError::Invalid(e) => ApiError::Unprocessable {
            code: "invalid_request",
            detail: e.to_string(),
        },
        IssueError::NotFound(what) => ApiError::NotFound { what },
        IssueError::Unsignable(detail) => ApiError::BadRequest {
            code: "unsignable_credential",
            detail: detail.clone(),
        },
        IssueError::Contention | IssueError::Unavailable => ApiError::Unavailable,
        other => ApiError::Internal(other.to_string().into()),
    };
    api.to_problem()
}
