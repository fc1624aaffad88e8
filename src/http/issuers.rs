//! Issuer and signing-key management: `/api/v1/issuers`, `/api/v1/issuers/{id}/keys`.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
    types::MaybeUndefined,
};
use sea_orm::EntityTrait;

use super::tenancy::{self, Role};
use super::{
    ApiTags,
    auth::{Authorized, scope},
};
use crate::{
    app::AppState,
    db::{issuer, signing_key},
    error::ApiError,
    invalidation::{self, Change},
    issuers::{self, IssuerError, NewIssuer, ProfileFields, ProfileUpdate},
    keys::{
        identity::{IdType, verification_method_id},
        store::{KeyAlgorithm, KeyError, KeyStore, RotationOutcome},
    },
    oauth::Scope,
};

impl From<IssuerError> for ApiError {
    fn from(err: IssuerError) -> Self {
        match err {
            IssuerError::Invalid { .. } => ApiError::Unprocessable {
                code: "invalid_profile",
                detail: err.to_string(),
            },
            IssuerError::NotFound => ApiError::NotFound { what: "issuer" },
            IssuerError::IdentifierTaken(_) => ApiError::Conflict {
                code: "identifier_taken",
                detail: err.to_string(),
            },
            IssuerError::Key(k) => k.into(),
            IssuerError::Db(db) => db.into(),
        }
    }
}

impl From<KeyError> for ApiError {
    fn from(err: KeyError) -> Self {
        match err {
            KeyError::NotFound(what) => ApiError::NotFound { what },
            KeyError::RotationNotSupported(_) => ApiError::Conflict {
                code: "rotation_not_supported",
                detail: err.to_string(),
            },
            KeyError::AlreadyRevoked(_) => ApiError::Conflict {
                code: "key_already_revoked",
                detail: err.to_string(),
            },
            KeyError::NoActiveKey(_) => ApiError::Conflict {
                code: "no_active_key",
                detail: err.to_string(),
            },
            KeyError::AlgorithmNotSupported { .. } => ApiError::Conflict {
                code: "algorithm_not_supported",
                detail: err.to_string(),
            },
            KeyError::Contention(_) => ApiError::Unavailable,
            KeyError::Db(db) => db.into(),
            other => ApiError::internal(other),
        }
    }
}

/// Request to create an issuer.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct CreateIssuerRequest {
    /// Display name (1–200 characters).
    pub name: String,
    /// Home page (http or https URL).
    pub url: Option<String>,
    /// Contact email.
    pub email: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Image: an https URL or a `data:image/…` URI.
    pub image: Option<String>,
    /// Identifier type: `did:web` (default), `url`, or `did:key` (single key, cannot rotate).
    pub id_type: Option<String>,
    /// did:web only: take the host's bare DID `did:web:<host>` (served at `/.well-known/did.json`).
    /// At most one issuer can.
    #[oai(default)]
    pub well_known: bool,
}

/// Partial profile update. An absent field is unchanged; `null` clears an optional field.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct UpdateIssuerRequest {
    /// New display name.
    pub name: Option<String>,
    /// Home page.
    pub url: MaybeUndefined<String>,
    /// Contact email.
    pub email: MaybeUndefined<String>,
    /// Description.
    pub description: MaybeUndefined<String>,
    /// Image URL or data URI.
    pub image: MaybeUndefined<String>,
}

/// An issuer.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct IssuerResource {
    /// Our id (CUID).
    pub id: String,
    /// The identifier that appears in credentials (`issuer.id`).
    pub issuer_id: String,
    /// `did:web`, `url` or `did:key`.
    pub id_type: String,
    /// Display name.
    pub name: String,
    /// Home page.
    pub url: Option<String>,
    /// Contact email.
    pub email: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Image.
    pub image: Option<String>,
    /// Where the issuer's public Profile is published.
    pub profile_url: String,
    /// Where its DID document is published (did:web issuers).
    pub did_document_url: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last profile change.
    pub updated_at: DateTime<Utc>,
}

/// A page of issuers.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct IssuerPage {
    /// Issuers on this page.
    pub items: Vec<IssuerResource>,
    /// Total number of issuers.
    pub total: u64,
}

/// A public signing key and its state (never private material).
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct KeyResource {
    /// Key id (CUID, never reused).
    pub id: String,
    /// `Ed25519` or `P-256`.
    pub algorithm: String,
    /// `active`, `retired` or `revoked`.
    pub state: String,
    /// Public key, multibase Multikey (`z6Mk…` for Ed25519, `zDn…` for P-256).
    pub public_key_multibase: String,
    /// The verification-method id proofs use.
    pub verification_method: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When it stopped signing.
    pub retired_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Why it was revoked.
    pub revocation_reason: Option<String>,
}

/// Result of a rotation.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct RotationResult {
    /// The new active key.
    pub active: KeyResource,
    /// The key that was retired, if there was one.
    pub retired_key_id: Option<String>,
}

/// Request to revoke a key.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct RevokeKeyRequest {
    /// Why (kept in the audit trail).
    #[oai(validator(min_length = 1, max_length = 1000))]
    pub reason: String,
}

/// Issuer created.
#[derive(ApiResponse)]
pub enum CreatedIssuer {
    /// Created, with its first signing key.
    #[oai(status = 201)]
    Created(Json<IssuerResource>),
}

fn issuer_resource(state: &AppState, m: issuer::Model) -> IssuerResource {
    let base = state.public_url().as_str().trim_end_matches('/').to_owned();
    let did_document_url = (m.id_type == IdType::DidWeb.as_str()).then(|| {
        if crate::keys::identity::is_host_did(&m.issuer_id) {
            format!("{base}/.well-known/did.json")
        } else {
            format!("{base}/issuers/{}/did.json", m.id)
        }
    });
    IssuerResource {
        profile_url: format!("{base}/issuers/{}", m.id),
        did_document_url,
        id: m.id,
        issuer_id: m.issuer_id,
        id_type: m.id_type,
        name: m.name,
        url: m.url,
        email: m.email,
        description: m.description,
        image: m.image,
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
}

fn key_resource(issuer: &issuer::Model, k: signing_key::Model) -> KeyResource {
    KeyResource {
        verification_method: verification_method_id(issuer, &k),
        id: k.id,
        algorithm: k.algorithm,
        state: k.state,
        public_key_multibase: k.public_key,
        created_at: k.created_at,
        retired_at: k.retired_at,
        revoked_at: k.revoked_at,
        revocation_reason: k.revocation_reason,
    }
}

fn optional(
    value: Option<String>,
    parse: impl Fn(&str) -> Result<String, IssuerError>,
) -> Result<Option<String>, IssuerError> {
    value
        .filter(|v| !v.trim().is_empty())
        .map(|v| parse(&v))
        .transpose()
}

fn maybe(
    value: MaybeUndefined<String>,
    parse: impl Fn(&str) -> Result<String, IssuerError>,
) -> Result<Option<Option<String>>, IssuerError> {
    match value {
        MaybeUndefined::Undefined => Ok(None),
        MaybeUndefined::Null => Ok(Some(None)),
        MaybeUndefined::Value(v) => Ok(Some(Some(parse(&v)?))),
    }
}

impl TryFrom<CreateIssuerRequest> for NewIssuer {
    type Error = IssuerError;

    fn try_from(r: CreateIssuerRequest) -> Result<Self, Self::Error> {
        let id_type = match r.id_type.as_deref() {
            None => IdType::DidWeb,
            Some(t) => t
                .parse()
                .map_err(
                    |e: crate::keys::identity::UnknownIdType| IssuerError::Invalid {
                        field: "idType",
                        reason: e.to_string(),
                    },
                )?,
        };
        Ok(NewIssuer {
            profile: ProfileFields {
                name: issuers::parse_name(&r.name)?,
                url: optional(r.url, |v| issuers::parse_web_url("url", v))?,
                email: optional(r.email, issuers::parse_email)?,
                description: optional(r.description, issuers::parse_description)?,
                image: optional(r.image, issuers::parse_image)?,
            },
            id_type,
            well_known: r.well_known,
        })
    }
}

impl TryFrom<UpdateIssuerRequest> for ProfileUpdate {
    type Error = IssuerError;

    fn try_from(r: UpdateIssuerRequest) -> Result<Self, Self::Error> {
        Ok(ProfileUpdate {
            name: r.name.map(|n| issuers::parse_name(&n)).transpose()?,
            url: maybe(r.url, |v| issuers::parse_web_url("url", v))?,
            email: maybe(r.email, issuers::parse_email)?,
            description: maybe(r.description, issuers::parse_description)?,
            image: maybe(r.image, issuers::parse_image)?,
        })
    }
}

/// Issuers and their signing keys.
pub struct IssuersApi;

#[OpenApi(tag = "ApiTags::Issuers")]
impl IssuersApi {
    /// Create an issuer. It gets its identifier (`did:web:<host>:issuers:<id>` by default) and its
    /// first Ed25519 signing key, generated here and stored encrypted under the active KEK.
    #[oai(
        path = "/api/v1/issuers",
        method = "post",
        operation_id = "createIssuer"
    )]
    async fn create_issuer(
        &self,
        #[oai(scope = "Scope::IssuersWrite")] auth: Authorized<scope::IssuersWrite>,
        state: Data<&AppState>,
        body: Json<CreateIssuerRequest>,
    ) -> Result<CreatedIssuer, ApiError> {
        let new = NewIssuer::try_from(body.0)?;
        // A caller limited to some issuers becomes the owner of the issuer it creates.
        let owner = (!auth.caller.is_global()).then_some(&auth.caller.principal);
        let (issuer, _key) = issuers::create_owned_issuer(
            state.db(),
            state.keys(),
            state.public_url(),
            new,
            &auth.actor(),
            owner,
        )
        .await?;
        if let Some(owner) = owner {
            invalidation::changed(&state, Change::Principal(owner.clone())).await;
        }
        Ok(CreatedIssuer::Created(Json(issuer_resource(
            &state, issuer,
        ))))
    }

    /// List issuers, oldest first.
    #[oai(path = "/api/v1/issuers", method = "get", operation_id = "listIssuers")]
    async fn list_issuers(
        &self,
        #[oai(scope = "Scope::IssuersRead")] auth: Authorized<scope::IssuersRead>,
        state: Data<&AppState>,
        /// Page size (1–500, default 50).
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "500"))
        )]
        limit: Query<u64>,
        /// Items to skip.
        #[oai(default, validator(minimum(value = "0")))]
        offset: Query<u64>,
    ) -> Result<Json<IssuerPage>, ApiError> {
        let (items, total) = issuers::list_visible_issuers(
            state.db(),
            auth.caller.visible_issuers(),
            limit.0,
            offset.0,
        )
        .await?;
        Ok(Json(IssuerPage {
            items: items
                .into_iter()
                .map(|m| issuer_resource(&state, m))
                .collect(),
            total,
        }))
    }

    /// Get one issuer.
    #[oai(
        path = "/api/v1/issuers/:id",
        method = "get",
        operation_id = "getIssuer"
    )]
    async fn get_issuer(
        &self,
        #[oai(scope = "Scope::IssuersRead")] auth: Authorized<scope::IssuersRead>,
        state: Data<&AppState>,
        /// Issuer id (CUID).
        id: Path<String>,
    ) -> Result<Json<IssuerResource>, ApiError> {
        tenancy::issuer(&auth.caller, &id, Role::Viewer)?;
        let issuer = issuers::find_issuer(state.db(), &id.0).await?;
        Ok(Json(issuer_resource(&state, issuer)))
    }

    /// Update an issuer's profile (name, url, email, description, image). The identifier and keys
    /// do not change.
    #[oai(
        path = "/api/v1/issuers/:id",
        method = "patch",
        operation_id = "updateIssuer"
    )]
    async fn update_issuer(
        &self,
        #[oai(scope = "Scope::IssuersWrite")] auth: Authorized<scope::IssuersWrite>,
        state: Data<&AppState>,
        /// Issuer id (CUID).
        id: Path<String>,
        body: Json<UpdateIssuerRequest>,
    ) -> Result<Json<IssuerResource>, ApiError> {
        tenancy::issuer(&auth.caller, &id, Role::Owner)?;
        let update = ProfileUpdate::try_from(body.0)?;
        let issuer = issuers::update_issuer(state.db(), &id.0, update, &auth.actor()).await?;
        // Credentials embed the issuer's profile: drop cached issuance contexts everywhere.
        invalidation::changed(&state, Change::Issuer(issuer.id.clone())).await;
        Ok(Json(issuer_resource(&state, issuer)))
    }

    /// List an issuer's public keys with their states (active, retired, revoked). Never returns
    /// private material.
    #[oai(
        path = "/api/v1/issuers/:id/keys",
        method = "get",
        operation_id = "listIssuerKeys"
    )]
    async fn list_keys(
        &self,
        #[oai(scope = "Scope::IssuersRead")] auth: Authorized<scope::IssuersRead>,
        state: Data<&AppState>,
        /// Issuer id (CUID).
        id: Path<String>,
    ) -> Result<Json<Vec<KeyResource>>, ApiError> {
        tenancy::issuer(&auth.caller, &id, Role::Viewer)?;
        let issuer = issuers::find_issuer(state.db(), &id.0).await?;
        let keys = KeyStore::list_keys(state.db(), &issuer.id).await?;
        Ok(Json(
            keys.into_iter().map(|k| key_resource(&issuer, k)).collect(),
        ))
    }

    /// Rotate the issuer's signing key of one algorithm (Ed25519 unless `algorithm` says
    /// otherwise): the active key is retired (it stays published so that credentials it signed keep
    /// verifying) and a new key becomes active. An issuer without a P-256 key gets its first one.
    /// 409 for did:key issuers.
    #[oai(
        path = "/api/v1/issuers/:id/keys/rotate",
        method = "post",
        operation_id = "rotateIssuerKey"
    )]
    async fn rotate_key(
        &self,
        #[oai(scope = "Scope::KeysManage")] auth: Authorized<scope::KeysManage>,
        state: Data<&AppState>,
        /// Issuer id (CUID).
        id: Path<String>,
        /// `Ed25519` (default; Data Integrity and EdDSA JWTs) or `P-256` (ES256 JWTs).
        algorithm: Query<Option<String>>,
    ) -> Result<Json<RotationResult>, ApiError> {
        tenancy::issuer(&auth.caller, &id, Role::Owner)?;
        let algorithm = match algorithm.0.as_deref() {
            None => KeyAlgorithm::Ed25519,
            Some(a) => a
                .parse()
                .map_err(
                    |e: crate::keys::store::UnknownAlgorithm| ApiError::Unprocessable {
                        code: "invalid_request",
                        detail: format!("algorithm: {e}"),
                    },
                )?,
        };
        let issuer = issuers::find_issuer(state.db(), &id.0).await?;
        let outcome = state
            .keys()
            .rotate(state.db(), &issuer, algorithm, &auth.actor(), None)
            .await?;
        let RotationOutcome::Rotated { old, new } = outcome else {
            return Err(ApiError::Unavailable);
        };
        invalidation::changed(&state, Change::Issuer(issuer.id.clone())).await;
        let key = signing_key::Entity::find_by_id(new)
            .one(state.db())
            .await?
            .ok_or(ApiError::NotFound { what: "key" })?;
        Ok(Json(RotationResult {
            active: key_resource(&issuer, key),
            retired_key_id: old,
        }))
    }

    /// Revoke a key (compromise). It is no longer published as valid. Revoking the active key
    /// activates a new one of the same algorithm at once. Revocation is final (409 when already
    /// revoked).
    #[oai(
        path = "/api/v1/issuers/:id/keys/:key_id/revoke",
        method = "post",
        operation_id = "revokeIssuerKey"
    )]
    async fn revoke_key(
        &self,
        #[oai(scope = "Scope::KeysManage")] auth: Authorized<scope::KeysManage>,
        state: Data<&AppState>,
        /// Issuer id (CUID).
        id: Path<String>,
        /// Key id.
        key_id: Path<String>,
        body: Json<RevokeKeyRequest>,
    ) -> Result<Json<KeyResource>, ApiError> {
        tenancy::issuer(&auth.caller, &id, Role::Owner)?;
        let issuer = issuers::find_issuer(state.db(), &id.0).await?;
        let key = state
            .keys()
            .revoke(
                state.db(),
                &issuer,
                &key_id.0,
                body.reason.trim(),
                &auth.actor(),
            )
            .await?;
        // New credentials and status lists must not be signed with the revoked key.
        invalidation::changed(&state, Change::Issuer(issuer.id.clone())).await;
        Ok(Json(key_resource(&issuer, key)))
    }
}

fn default_limit() -> u64 {
    50
}
