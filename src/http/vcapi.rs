//! The W3C VC API endpoints VC tooling and conformance suites call: `POST /credentials/issue`,
//! `POST /credentials/status`, `POST /credentials/verify` and `POST /presentations/verify`.

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use super::tenancy::{self, Role};
use super::{
    ApiTags,
    auth::{Authorized, scope},
};
use crate::{
    app::AppState,
    db::credential,
    di::{self, Cryptosuite},
    error::ApiError,
    issue::{
        self, IssueError, JwtAlgorithm,
        vcapi::{Securing, StatusRequest, VcApiError, VcApiIssue},
    },
    oauth::Scope,
    status::{allocator::Purpose, changes},
    verify::{
        self,
        input::{self, Source, Submitted},
        report::{CheckStatus, Outcome, ProblemDetail, Report},
    },
};

/// `POST /credentials/issue` request.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct IssueCredentialRequest {
    /// The unsigned credential (VC 2.0 or VC 1.1). Its `issuer` must be an issuer of this service.
    pub credential: Value,
    /// How to secure the credential and which status entries to give it.
    pub options: Option<IssueOptions>,
}

/// Options of `POST /credentials/issue`. Members not listed here are accepted and ignored.
#[derive(Debug, Default, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct IssueOptions {
    /// The Data Integrity cryptosuite: `eddsa-rdfc-2022` (default) or `eddsa-jcs-2022`.
    pub cryptosuite: Option<String>,
    /// `application/vc+jwt` (or `vc+jwt`): secure the credential with VC-JOSE-COSE instead, and
    /// answer an `EnvelopedVerifiableCredential` whose `id` is the `data:application/vc+jwt,` URL
    /// of the JWS. Default: an embedded Data Integrity proof.
    pub format: Option<String>,
    /// The JWS algorithm of a `vc+jwt`: `EdDSA` (default, the issuer's Ed25519 key) or `ES256`
    /// (its P-256 key).
    pub alg: Option<String>,
    /// Status entries to allocate: `[{"type": "BitstringStatusListEntry", "statusPurpose":
    /// "revocation" | "suspension"}]`, one or both. Without it the server's status shape
    /// applies (`status_shape`). Not together with a `credentialStatus` in the credential.
    pub credential_status: Option<Vec<IssueStatusOption>>,
}

/// One status entry `options.credentialStatus` asks for.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct IssueStatusOption {
    /// `BitstringStatusListEntry`.
    #[oai(rename = "type")]
    pub kind: String,
    /// `revocation` or `suspension`.
    pub status_purpose: String,
}

/// `POST /credentials/issue` response.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct IssueCredentialResponse {
    /// The credential with its Data Integrity proof, or the `EnvelopedVerifiableCredential` of
    /// its `vc+jwt`.
    pub verifiable_credential: Value,
}

/// Issued.
#[derive(ApiResponse)]
pub enum VcIssueResponse {
    /// Signed and stored.
    #[oai(status = 201)]
    Created(Json<IssueCredentialResponse>),
}

impl From<VcApiError> for ApiError {
    fn from(err: VcApiError) -> Self {
        match err {
            VcApiError::Malformed(detail) => bad(detail),
            VcApiError::Structure(structure) => ApiError::BadRequest {
                code: "invalid_credential",
                detail: structure.summary(),
            },
            VcApiError::Status(detail) => ApiError::BadRequest {
                code: "invalid_credential_status",
                detail,
            },
            err @ VcApiError::UnknownIssuer(_) => ApiError::Unprocessable {
                code: "unknown_issuer",
                detail: err.to_string(),
            },
            err @ VcApiError::Duplicate(_) => ApiError::Conflict {
                code: "duplicate_credential_id",
                detail: err.to_string(),
            },
            VcApiError::CanonicalizationLimit(detail) => ApiError::Unprocessable {
                code: "canonicalization_limit",
                detail,
            },
            // Unknown contexts and undefined terms are the credential's fault.
            VcApiError::Issue(IssueError::Unsignable(detail)) => bad(detail),
            VcApiError::Issue(other) => other.into(),
        }
    }
}

/// The typed form of the issue options (400 when one is not understood).
fn issue_request(credential: Value, options: Option<IssueOptions>) -> Result<VcApiIssue, ApiError> {
    let options = options.unwrap_or_default();
    let invalid = |detail: String| ApiError::BadRequest {
        code: "invalid_options",
        detail,
    };
    let securing = match options.format.as_deref() {
        Some("application/vc+jwt" | "vc+jwt") => {
            if options.cryptosuite.is_some() {
                return Err(invalid(
                    "options.cryptosuite applies to Data Integrity proofs, not to a vc+jwt".into(),
                ));
            }
            let alg = match options.alg.as_deref() {
                None => JwtAlgorithm::EdDsa,
                Some(a) => a
                    .parse()
                    .map_err(|e: issue::jwt::UnsupportedJwtAlgorithm| {
                        invalid(format!("options.alg: {e}"))
                    })?,
            };
            Securing::VcJwt(alg)
        }
        None | Some("data-integrity" | "ldp_vc" | "application/vc") => {
            if options.alg.is_some() {
                return Err(invalid(
                    "options.alg applies to a vc+jwt (options.format \"application/vc+jwt\")"
                        .into(),
                ));
            }
            let suite = match options.cryptosuite.as_deref() {
                None => Cryptosuite::default(),
                Some(s) => s.parse().map_err(|e: di::UnsupportedCryptosuite| {
                    invalid(format!("options.cryptosuite: {e}"))
                })?,
            };
            Securing::DataIntegrity(suite)
        }
        Some(other) => {
            return Err(invalid(format!(
                "options.format `{other}` is not supported: use application/vc+jwt or leave it out for a Data Integrity proof"
            )));
        }
    };
    let status = match options.credential_status {
        None => StatusRequest::Server,
        Some(items) if items.is_empty() => {
            return Err(invalid(
                "options.credentialStatus must name at least one entry".into(),
            ));
        }
        Some(items) => {
            let mut purposes = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                if item.kind != "BitstringStatusListEntry" {
                    return Err(invalid(format!(
                        "options.credentialStatus[{i}].type `{}` is not supported: use BitstringStatusListEntry",
                        item.kind
                    )));
                }
                let purpose = Purpose::parse(&item.status_purpose).ok_or_else(|| {
                    invalid(format!(
                        "options.credentialStatus[{i}].statusPurpose `{}` is not supported: use revocation or suspension",
                        item.status_purpose
                    ))
                })?;
                if purposes.contains(&purpose) {
                    return Err(invalid(format!(
                        "options.credentialStatus[{i}] repeats statusPurpose {}",
                        purpose.as_str()
                    )));
                }
                purposes.push(purpose);
            }
            StatusRequest::Bitstring(purposes)
        }
    };
    Ok(VcApiIssue {
        credential,
        securing,
        status,
    })
}

/// One requested status.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct CredentialStatusItem {
    /// `BitstringStatusListEntry` (or the purpose itself: `revocation`, `suspension`).
    #[oai(rename = "type")]
    pub kind: String,
    /// `revocation` (default) or `suspension`.
    pub status_purpose: Option<String>,
    /// The new status.
    pub status: bool,
}

/// `POST /credentials/status` request.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct UpdateStatusRequest {
    /// The credential's `id`.
    pub credential_id: String,
    /// Requested changes.
    pub credential_status: Vec<CredentialStatusItem>,
}

/// `POST /credentials/status` response.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct UpdateStatusResponse {
    /// The credential's `id`.
    pub credential_id: String,
    /// Status per purpose after the change.
    pub credential_status: Vec<Value>,
}

/// Verification options of the VC API.
#[derive(Debug, Default, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct VerifyRequestOptions {
    /// Checks the caller asks for (all checks always run; accepted for compatibility).
    pub checks: Option<Vec<String>>,
    /// A presentation's proof must carry this domain.
    pub domain: Option<String>,
    /// A presentation's proof must carry this challenge.
    pub challenge: Option<String>,
}

/// `POST /credentials/verify` request.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct VerifyCredentialRequest {
    /// The credential: a JSON object, or an `EnvelopedVerifiableCredential` whose `id` is a
    /// `data:application/vc+jwt,…` URL. A credential sent as a JSON string is malformed (400).
    pub verifiable_credential: Value,
    /// Options.
    pub options: Option<VerifyRequestOptions>,
}

/// `POST /presentations/verify` request.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct VerifyPresentationRequest {
    /// The presentation (a JSON object).
    pub verifiable_presentation: Value,
    /// `domain` and `challenge` the presentation proof must carry.
    pub options: Option<VerifyRequestOptions>,
}

/// The VC API verification result.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct VerificationResult {
    /// `true` only when the outcome is `verified`.
    pub verified: bool,
    /// The oxbadge outcome (`verified`, `invalid`, `revoked`, ...).
    pub outcome: Outcome,
    /// The checks that passed.
    pub checks: Vec<String>,
    /// Deviations that did not change the outcome.
    pub warnings: Vec<ProblemDetail>,
    /// Why it did not verify (empty when verified).
    pub problem_details: Vec<ProblemDetail>,
    /// The full per-check report.
    pub report: Report,
}

/// Verification answers: 200 only when verified, 422 (documented with the errors' 422, see
/// [`VcVerifyError`]) otherwise.
pub enum VcVerifyResponse {
    /// Verified.
    Verified(Json<VerificationResult>),
    /// Not verified (invalid, revoked, suspended, expired, not yet valid, or indeterminate).
    NotVerified(Json<VerificationResult>),
}

impl poem::IntoResponse for VcVerifyResponse {
    fn into_response(self) -> poem::Response {
        match self {
            Self::Verified(body) => body.into_response(),
            Self::NotVerified(body) => body
                .with_status(poem::http::StatusCode::UNPROCESSABLE_ENTITY)
                .into_response(),
        }
    }
}

impl ApiResponse for VcVerifyResponse {
    fn meta() -> poem_openapi::registry::MetaResponses {
        let mut meta = Json::<VerificationResult>::meta();
        for resp in &mut meta.responses {
            resp.description = "Verified.";
        }
        meta
    }

    fn register(registry: &mut poem_openapi::registry::Registry) {
        Json::<VerificationResult>::register(registry);
    }
}

/// The verify operations' errors; their 422 also documents the not-verified result.
pub type VcVerifyError = super::documented::ApiErrorOr422<VerificationResult>;

fn collect_problems(report: &Report, status: CheckStatus, out: &mut Vec<ProblemDetail>) {
    out.extend(
        report
            .checks
            .iter()
            .filter(|c| c.status == status)
            .filter_map(|c| c.problem.clone()),
    );
    for nested in &report.credentials {
        collect_problems(nested, status, out);
    }
}

impl From<Report> for VcVerifyResponse {
    fn from(report: Report) -> Self {
        let checks = report
            .checks
            .iter()
            .filter(|c| c.status == CheckStatus::Passed)
            .map(|c| c.check.clone())
            .collect();
        let mut problem_details = Vec::new();
        if !report.verified {
            for status in [CheckStatus::Failed, CheckStatus::Indeterminate] {
                collect_problems(&report, status, &mut problem_details);
            }
        }
        let mut warnings = Vec::new();
        collect_problems(&report, CheckStatus::Warning, &mut warnings);
        let result = VerificationResult {
            verified: report.verified,
            outcome: report.outcome,
            checks,
            warnings,
            problem_details,
            report,
        };
        if result.verified {
            Self::Verified(Json(result))
        } else {
            Self::NotVerified(Json(result))
        }
    }
}

fn options_of(options: Option<VerifyRequestOptions>) -> verify::VerifyOptions {
    let options = options.unwrap_or_default();
    verify::VerifyOptions {
        challenge: options.challenge,
        domain: options.domain,
        ..verify::VerifyOptions::default()
    }
}

fn bad(detail: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        code: "invalid_credential",
        detail: detail.into(),
    }
}

/// W3C VC API.
pub struct VcApi;

#[OpenApi(tag = "ApiTags::VcApi")]
impl VcApi {
    /// Issue (sign) a credential with the active key of the issuer named in `credential.issuer`,
    /// store it, and answer 201 `{"verifiableCredential"}`. The credential must satisfy the VC
    /// Data Model 2.0 (or 1.1) rules the verifier applies: a 400 `invalid_credential` names the
    /// member that breaks one (`type` without `VerifiableCredential`, an empty or non-object
    /// `credentialSubject`, a `validFrom`/`validUntil` that is not an XML Schema dateTimeStamp,
    /// `credentialStatus`/`termsOfUse`/`evidence`/`refreshService`/`credentialSchema` objects
    /// without `type`, `relatedResource` entries without `id` or digest or repeating an `id`,
    /// a `BitstringStatusListEntry` whose `statusListIndex` is not an integer), and so do
    /// unknown contexts and undefined terms. Nothing is signed or stored then.
    ///
    /// By default the proof is `eddsa-rdfc-2022`; `options.cryptosuite: "eddsa-jcs-2022"` signs
    /// with JCS instead, and `options.format: "application/vc+jwt"` secures it with VC-JOSE-COSE
    /// (an `EnvelopedVerifiableCredential`). VC 1.1 input gets the data-integrity v2 context.
    /// Status entries are allocated as for native issuance: `options.credentialStatus` picks
    /// bitstring entries (revocation, suspension or both); otherwise the server's status shape
    /// applies. `POST /credentials/status` changes them.
    #[oai(
        path = "/credentials/issue",
        method = "post",
        operation_id = "vcApiIssueCredential"
    )]
    async fn issue(
        &self,
        #[oai(scope = "Scope::CredentialsIssue")] auth: Authorized<scope::CredentialsIssue>,
        state: Data<&AppState>,
        body: Json<IssueCredentialRequest>,
    ) -> Result<VcIssueResponse, ApiError> {
        tenancy::vc_issuer(&state, &auth.caller, &body.credential, Role::Issuer).await?;
        let body = body.0;
        let request = issue_request(body.credential, body.options)?;
        let issued = issue::vcapi::issue(&state, request, &auth.actor()).await?;
        Ok(VcIssueResponse::Created(Json(IssueCredentialResponse {
            verifiable_credential: issued.verifiable_credential,
        })))
    }

    /// Update a credential's status by its `id` (W3C VC API). Revocation is final.
    #[oai(
        path = "/credentials/status",
        method = "post",
        operation_id = "vcApiUpdateStatus"
    )]
    async fn status(
        &self,
        #[oai(scope = "Scope::CredentialsStatus")] auth: Authorized<scope::CredentialsStatus>,
        state: Data<&AppState>,
        body: Json<UpdateStatusRequest>,
    ) -> Result<Json<UpdateStatusResponse>, ApiError> {
        tenancy::credential_uri(&state, &auth.caller, &body.credential_id, Role::Issuer).await?;
        let req = body.0;
        let row = credential::Entity::find()
            .filter(credential::Column::CredentialUri.eq(&req.credential_id))
            .one(state.db())
            .await?
            .ok_or(ApiError::NotFound { what: "credential" })?;
        if req.credential_status.is_empty() {
            return Err(bad("credentialStatus must name at least one change"));
        }
        let mut out = Vec::new();
        for item in &req.credential_status {
            let purpose = item
                .status_purpose
                .as_deref()
                .or(Purpose::parse(&item.kind).map(Purpose::as_str))
                .unwrap_or("revocation");
            let purpose = Purpose::parse(purpose)
                .ok_or_else(|| bad(format!("statusPurpose `{purpose}` is not supported")))?;
            let (changes, lists) = changes::set_status(
                state.db(),
                std::slice::from_ref(&row.id),
                purpose,
                item.status,
                None,
                &auth.actor(),
            )
            .await?;
            for list in &lists {
                state.status_cache().invalidate(list);
            }
            for c in changes {
                out.push(json!({"type": "BitstringStatusListEntry", "statusPurpose": c.purpose.as_str(), "status": c.status}));
            }
        }
        Ok(Json(UpdateStatusResponse {
            credential_id: req.credential_id,
            credential_status: out,
        }))
    }

    /// Verify a credential (W3C VC API): 200 `{"verified": true, ...}` only when it verifies;
    /// 422 with `problemDetails` when it is invalid, revoked, suspended, expired, not yet valid or
    /// could not be checked; 400 for malformed input (a credential sent as a JSON string). Public
    /// unless the `credentials:verify` scope is required by configuration.
    #[oai(
        path = "/credentials/verify",
        method = "post",
        operation_id = "vcApiVerifyCredential"
    )]
    async fn verify_credential(
        &self,
        req: &poem::Request,
        state: Data<&AppState>,
        body: Json<VerifyCredentialRequest>,
    ) -> Result<VcVerifyResponse, VcVerifyError> {
        super::verify::admit(req, &state).await?;
        let body = body.0;
        let options = options_of(body.options);
        let submitted = match body.verifiable_credential {
            Value::Object(o)
                if o.get("type").is_some_and(|t| {
                    t == "EnvelopedVerifiableCredential"
                        || t.as_array()
                            .is_some_and(|a| a.iter().any(|x| x == "EnvelopedVerifiableCredential"))
                }) =>
            {
                let jws = o
                    .get("id")
                    .and_then(Value::as_str)
                    .and_then(|id| id.strip_prefix("data:"))
                    .and_then(|rest| rest.split_once(','))
                    .map(|(_, data)| data.to_owned())
                    .filter(|d| input::is_compact_jws(d))
                    .ok_or_else(|| {
                        bad("an EnvelopedVerifiableCredential needs a data: URL holding a VC-JWT")
                    })?;
                Submitted::Jwt(jws, Source::Jwt)
            }
            Value::Object(o) => Submitted::Json(Value::Object(o), Source::Json),
            Value::String(_) => {
                return Err(bad("verifiableCredential must be a JSON object, not a string").into());
            }
            _ => return Err(bad("verifiableCredential must be a JSON object").into()),
        };
        if let Submitted::Json(v, _) = &submitted
            && v.get("type").is_some_and(|t| {
                t == "VerifiablePresentation"
                    || t.as_array()
                        .is_some_and(|a| a.iter().any(|x| x == "VerifiablePresentation"))
            })
        {
            return Err(bad("this is a presentation: POST it to /presentations/verify").into());
        }
        let report = verify::verify(&state, submitted, &options).await;
        state.metrics().record_verification(report.outcome);
        Ok(report.into())
    }

    /// Verify a presentation (W3C VC API): its proof (`proofPurpose: authentication`, with the
    /// `domain` and `challenge` given in `options`) and every credential it carries. 200 only when
    /// everything verifies; 422 with `problemDetails` otherwise; 400 for malformed input.
    #[oai(
        path = "/presentations/verify",
        method = "post",
        operation_id = "vcApiVerifyPresentation"
    )]
    async fn verify_presentation(
        &self,
        req: &poem::Request,
        state: Data<&AppState>,
        body: Json<VerifyPresentationRequest>,
    ) -> Result<VcVerifyResponse, VcVerifyError> {
        super::verify::admit(req, &state).await?;
        let body = body.0;
        let Value::Object(vp) = body.verifiable_presentation else {
            return Err(bad("verifiablePresentation must be a JSON object").into());
        };
        let vp = Value::Object(vp);
        let is_vp = vp.get("type").is_some_and(|t| {
            t == "VerifiablePresentation"
                || t.as_array()
                    .is_some_and(|a| a.iter().any(|x| x == "VerifiablePresentation"))
        });
        if !is_vp {
            return Err(bad("type must include VerifiablePresentation").into());
        }
        let options = options_of(body.options);
        let report = verify::verify(&state, Submitted::Json(vp, Source::Json), &options).await;
        state.metrics().record_verification(report.outcome);
        Ok(report.into())
    }
}
