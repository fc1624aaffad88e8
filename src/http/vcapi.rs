//! The W3C VC API endpoints VC tooling and conformance suites call: `POST /credentials/issue`,
//! `POST /credentials/status`, `POST /credentials/verify` and `POST /presentations/verify`.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::{Value, json};

use super::tenancy::{self, Role};
use super::{
    ApiTags,
    auth::{Authorized, scope},
};
use crate::{
    app::AppState,
    db::{self, audit_event, credential, issuer},
    error::ApiError,
    oauth::Scope,
    ob,
    status::{allocator::Purpose, changes},
    verify::{
        self,
        input::{self, Source, Submitted},
        report::{CheckStatus, Outcome, ProblemDetail, Report},
    },
};

/// `POST /credentials/issue` request.
#[derive(Debug, Object)]
pub struct IssueCredentialRequest {
    /// The unsigned credential (VC 2.0 or VC 1.1). Its `issuer` must be an issuer of this service.
    pub credential: Value,
    /// Options (accepted; no option changes the proof today).
    pub options: Option<Value>,
}

/// `POST /credentials/issue` response.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct IssueCredentialResponse {
    /// The credential with its `eddsa-rdfc-2022` proof.
    pub verifiable_credential: Value,
}

/// Issued.
#[derive(ApiResponse)]
pub enum VcIssueResponse {
    /// Signed and stored.
    #[oai(status = 201)]
    Created(Json<IssueCredentialResponse>),
}

/// One requested status.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
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
#[oai(rename_all = "camelCase")]
pub struct UpdateStatusRequest {
    /// The credential's `id`.
    pub credential_id: String,
    /// Requested changes.
    pub credential_status: Vec<CredentialStatusItem>,
}

/// `POST /credentials/status` response.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct UpdateStatusResponse {
    /// The credential's `id`.
    pub credential_id: String,
    /// Status per purpose after the change.
    pub credential_status: Vec<Value>,
}

/// Verification options of the VC API.
#[derive(Debug, Default, Object)]
#[oai(rename_all = "camelCase")]
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
#[oai(rename_all = "camelCase")]
pub struct VerifyCredentialRequest {
    /// The credential: a JSON object, or an `EnvelopedVerifiableCredential` whose `id` is a
    /// `data:application/vc+jwt,…` URL. A credential sent as a JSON string is malformed (400).
    pub verifiable_credential: Value,
    /// Options.
    pub options: Option<VerifyRequestOptions>,
}

/// `POST /presentations/verify` request.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct VerifyPresentationRequest {
    /// The presentation (a JSON object).
    pub verifiable_presentation: Value,
    /// `domain` and `challenge` the presentation proof must carry.
    pub options: Option<VerifyRequestOptions>,
}

/// The VC API verification result.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
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

/// Verification answers: 200 only when verified.
#[derive(ApiResponse)]
pub enum VcVerifyResponse {
    /// Verified.
    #[oai(status = 200)]
    Verified(Json<VerificationResult>),
    /// Not verified (invalid, revoked, suspended, expired, not yet valid, or indeterminate).
    #[oai(status = 422)]
    NotVerified(Json<VerificationResult>),
}

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
    /// Issue (sign) a credential: adds an `eddsa-rdfc-2022` DataIntegrityProof with the active key
    /// of the issuer named in `credential.issuer`, stores it, and answers 201
    /// `{"verifiableCredential"}`. VC 1.1 input gets the data-integrity v2 context. Unknown contexts
    /// and undefined terms are refused with 400.
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
        let mut vc = body.0.credential;
        let obj = vc
            .as_object_mut()
            .ok_or_else(|| bad("credential must be a JSON object"))?;
        if obj.contains_key("proof") {
            return Err(bad("credential already has a proof"));
        }
        let contexts = obj
            .get_mut("@context")
            .and_then(Value::as_array_mut)
            .ok_or_else(|| bad("@context must be an array"))?;
        let first = contexts.first().and_then(Value::as_str).unwrap_or_default();
        let v11 = first == ob::CREDENTIALS_V1;
        if !v11 && first != ob::CREDENTIALS_V2 {
            return Err(bad("@context must start with the VC 2.0 or VC 1.1 context"));
        }
        if v11 && !contexts.iter().any(|c| c == ob::DATA_INTEGRITY_V2) {
            contexts.push(json!(ob::DATA_INTEGRITY_V2));
        }
        let issuer_id = match obj.get("issuer") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Object(o)) => o
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("issuer.id is required"))?
                .to_owned(),
            _ => return Err(bad("issuer is required")),
        };
        let uri = match obj.get("id") {
            Some(Value::String(s)) => ob::uri("id", s).map_err(|e| bad(e.to_string()))?,
            Some(_) => return Err(bad("id must be a string")),
            None => {
                let uri = crate::issue::new_credential_uri();
                obj.insert("id".into(), json!(uri));
                uri
            }
        };
        let date_key = if v11 { "issuanceDate" } else { "validFrom" };
        if !obj.contains_key(date_key) {
            obj.insert(
                date_key.into(),
                json!(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            );
        }
        let issuer = issuer::Entity::find()
            .filter(issuer::Column::IssuerId.eq(&issuer_id))
            .one(state.db())
            .await?
            .ok_or_else(|| ApiError::Unprocessable {
                code: "unknown_issuer",
                detail: format!("`{issuer_id}` is not an issuer of this service"),
            })?;
        let key = state.keys().active_signing_key(state.db(), &issuer).await?;
        let key_id = key.key_id.clone();
        let signer_state = state.clone();
        let signed = tokio::task::spawn_blocking(move || {
            signer_state.signer().sign(
                &vc,
                crate::di::ProofOptions {
                    verification_method: key.verification_method.clone(),
                    created: Utc::now(),
                    proof_purpose: crate::di::ProofPurpose::AssertionMethod,
                    challenge: None,
                    domain: None,
                },
                &key.signing_key,
            )
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| bad(e.to_string()))?;
        let now = Utc::now();
        let valid_until = signed
            .get("validUntil")
            .or_else(|| signed.get("expirationDate"))
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc));
        let id = db::new_id();
        let txn = db::begin_write(state.db()).await?;
        let inserted = credential::ActiveModel {
            id: Set(id.clone()),
            credential_uri: Set(uri.clone()),
            issuer_id: Set(issuer.id.clone()),
            achievement_id: Set(None),
            format: Set("data-integrity".into()),
            document: Set(signed.to_string()),
            key_id: Set(key_id),
            valid_from: Set(now),
            valid_until: Set(valid_until),
            created_at: Set(now),
        }
        .insert(&txn)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if db::is_unique_violation(&e) => {
                return Err(ApiError::Conflict {
                    code: "duplicate_credential_id",
                    detail: format!("a credential with id `{uri}` was already issued"),
                });
            }
            Err(e) => return Err(e.into()),
        }
        audit_event::record(
            &txn,
            auth.client_id(),
            "credential.issued",
            "credential",
            &id,
            json!({"via": "vc-api"}),
        )
        .await?;
        txn.commit().await?;
        Ok(VcIssueResponse::Created(Json(IssueCredentialResponse {
            verifiable_credential: signed,
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
                auth.client_id(),
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
    ) -> Result<VcVerifyResponse, ApiError> {
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
                return Err(bad(
                    "verifiableCredential must be a JSON object, not a string",
                ));
            }
            _ => return Err(bad("verifiableCredential must be a JSON object")),
        };
        if let Submitted::Json(v, _) = &submitted
            && v.get("type").is_some_and(|t| {
                t == "VerifiablePresentation"
                    || t.as_array()
                        .is_some_and(|a| a.iter().any(|x| x == "VerifiablePresentation"))
            })
        {
            return Err(bad(
                "this is a presentation: POST it to /presentations/verify",
            ));
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
    ) -> Result<VcVerifyResponse, ApiError> {
        super::verify::admit(req, &state).await?;
        let body = body.0;
        let Value::Object(vp) = body.verifiable_presentation else {
            return Err(bad("verifiablePresentation must be a JSON object"));
        };
        let vp = Value::Object(vp);
        let is_vp = vp.get("type").is_some_and(|t| {
            t == "VerifiablePresentation"
                || t.as_array()
                    .is_some_and(|a| a.iter().any(|x| x == "VerifiablePresentation"))
        });
        if !is_vp {
            return Err(bad("type must include VerifiablePresentation"));
        }
        let options = options_of(body.options);
        let report = verify::verify(&state, Submitted::Json(vp, Source::Json), &options).await;
        state.metrics().record_verification(report.outcome);
        Ok(report.into())
    }
}
