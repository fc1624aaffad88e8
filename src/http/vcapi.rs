//! The W3C VC API endpoints VC tooling and conformance suites call: `POST /credentials/issue` and
//! `POST /credentials/status`.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::{Value, json};

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
}
