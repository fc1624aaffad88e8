//! OAuth 2.0 dynamic client registration (RFC 7591) at `POST /oauth/register` and the client
//! configuration endpoint (RFC 7592) at `/oauth/register/{client_id}`. OAuth wire format
//! (snake_case members, the RFC 7591 error vocabulary).

use poem::{
    Request, RequestBody,
    http::{StatusCode, header},
    web::Data,
};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::Path,
    payload::{Json, ParsePayload, Payload},
    registry::{MetaMediaType, MetaResponse, MetaResponses, MetaSchemaRef, Registry},
    types::Type,
};
use secrecy::ExposeSecret;

use super::{ApiTags, oauth::OAuthErrorBody};
use crate::{
    app::AppState,
    invalidation::{self, Change},
    oauth::{
        OAuthError,
        client_metadata::{ClientMetadata, MetadataError, RawClientMetadata},
        metadata::{self, REGISTRATION_PATH},
        registration::{self, Registered, RegistrationError},
    },
};

/// Client metadata (RFC 7591 §2) as a wallet or host sends it.
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case", skip_serializing_if_is_none)]
pub struct RegistrationRequest {
    /// Name shown to people on the consent page.
    pub client_name: String,
    /// Home page of the client (https; every other URL shares its host).
    pub client_uri: String,
    /// Logo (https, same host as `client_uri`).
    pub logo_uri: String,
    /// Terms of service (https, same host).
    pub tos_uri: String,
    /// Privacy policy (https, same host).
    pub policy_uri: String,
    /// Identifier of the client software.
    pub software_id: String,
    /// Version of the client software.
    pub software_version: String,
    /// Redirect URIs (1 to 10): https on the host of `client_uri`, `http://localhost`,
    /// `http://127.0.0.1` or `http://[::1]` (any port), or a private-use scheme such as
    /// `com.example.app:/callback`. No fragments, no user information.
    pub redirect_uris: Vec<String>,
    /// Space-separated scopes: the OB 3.0 scopes and `offline_access`.
    pub scope: String,
    /// `client_secret_basic` (default), `client_secret_post`, or `none` for a public native
    /// client (no secret; PKCE only).
    pub token_endpoint_auth_method: Option<String>,
    /// `authorization_code` (default) and optionally `refresh_token`.
    pub grant_types: Option<Vec<String>>,
    /// `code` (the default and only value).
    pub response_types: Option<Vec<String>>,
    /// Ways to reach the people responsible for the client.
    pub contacts: Option<Vec<String>>,
    /// RFC 7592 update only: must be the client's id.
    pub client_id: Option<String>,
    /// RFC 7592 update only: when present, must be the client's current secret.
    pub client_secret: Option<String>,
}

/// A registered client (RFC 7591 §3.2.1, RFC 7592 §3).
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case", skip_serializing_if_is_none)]
pub struct RegistrationBody {
    /// The client identifier.
    pub client_id: String,
    /// The client secret: only in the answer that issued it (never for a public client; the
    /// server keeps only its hash).
    pub client_secret: Option<String>,
    /// When the client id was issued (seconds since the epoch).
    pub client_id_issued_at: i64,
    /// 0: the secret does not expire.
    pub client_secret_expires_at: i64,
    /// The client configuration endpoint (RFC 7592).
    pub registration_client_uri: String,
    /// Bearer token for the client configuration endpoint.
    pub registration_access_token: String,
    pub client_name: String,
    pub client_uri: String,
    pub logo_uri: String,
    pub tos_uri: String,
    pub policy_uri: String,
    pub software_id: String,
    pub software_version: String,
    pub redirect_uris: Vec<String>,
    /// Space-separated scopes.
    pub scope: String,
    pub token_endpoint_auth_method: String,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    pub contacts: Option<Vec<String>>,
}

impl RegistrationBody {
    fn new(registered: Registered, public_url: &url::Url) -> Self {
        let c = registered.client;
        Self {
            registration_client_uri: format!(
                "{}{REGISTRATION_PATH}/{}",
                metadata::issuer(public_url),
                c.client_id
            ),
            client_id: c.client_id,
            client_secret: registered
                .client_secret
                .map(|s| s.expose_secret().to_owned()),
            client_id_issued_at: c.client_id_issued_at.timestamp(),
            client_secret_expires_at: 0,
            registration_access_token: registered
                .registration_access_token
                .expose_secret()
                .to_owned(),
            client_name: c.client_name,
            client_uri: c.client_uri,
            logo_uri: c.logo_uri,
            tos_uri: c.tos_uri,
            policy_uri: c.policy_uri,
            software_id: c.software_id,
            software_version: c.software_version,
            redirect_uris: c.redirect_uris,
            scope: c.scope.to_string(),
            token_endpoint_auth_method: c.token_endpoint_auth_method.as_str().to_owned(),
            grant_types: c.grant_types,
            response_types: c.response_types,
            contacts: (!c.contacts.is_empty()).then_some(c.contacts),
        }
    }
}

/// The JSON request body, read without judging it: a body that is not valid metadata must become
/// `invalid_client_metadata` (RFC 7591 §3.2.2), and only after the caller was let in, so the
/// handler decides. Documented with the schema of [`RegistrationRequest`].
pub struct MetadataPayload(Result<RawClientMetadata, MetadataError>);

impl Payload for MetadataPayload {
    const CONTENT_TYPE: &'static str = "application/json";

    fn check_content_type(content_type: &str) -> bool {
        <Json<RegistrationRequest> as Payload>::check_content_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        RegistrationRequest::schema_ref()
    }

    fn register(registry: &mut Registry) {
        RegistrationRequest::register(registry);
    }
}

impl ParsePayload for MetadataPayload {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let bytes = <Vec<u8> as poem::FromRequest>::from_request(request, body).await?;
        Ok(Self(RawClientMetadata::from_json(&bytes)))
    }
}

// The two-argument form: the one-argument arm recurses without `$crate::`, which fails outside
// poem-openapi.
poem_openapi::impl_apirequest_for_payload!(MetadataPayload,);

/// The registration endpoints' errors (400, 429, 500; 401 is an answer of its own).
pub struct RegistrationFailure(OAuthError);

impl From<OAuthError> for RegistrationFailure {
    fn from(err: OAuthError) -> Self {
        Self(err)
    }
}

impl From<MetadataError> for RegistrationFailure {
    fn from(err: MetadataError) -> Self {
        Self(OAuthError::new(
            StatusCode::BAD_REQUEST,
            err.code(),
            err.to_string(),
        ))
    }
}

impl From<sea_orm::DbErr> for RegistrationFailure {
    fn from(err: sea_orm::DbErr) -> Self {
        Self(OAuthError::server_error(&err))
    }
}

impl From<RegistrationFailure> for poem::Error {
    fn from(err: RegistrationFailure) -> Self {
        err.0.into()
    }
}

impl ApiResponse for RegistrationFailure {
    fn meta() -> MetaResponses {
        let statuses: [(u16, &'static str); 3] = [
            (
                400,
                "invalid_client_metadata, invalid_redirect_uri, or invalid_request",
            ),
            (
                429,
                "rate limited (temporarily_unavailable); see Retry-After",
            ),
            (500, "server_error"),
        ];
        MetaResponses {
            responses: statuses
                .into_iter()
                .map(|(status, description)| MetaResponse {
                    description,
                    status: Some(status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: "application/json",
                        schema: OAuthErrorBody::schema_ref(),
                    }],
                    headers: vec![],
                })
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        OAuthErrorBody::register(registry);
    }
}

const NO_STORE: &str = "no-store";
const BEARER_CHALLENGE: &str = r#"Bearer realm="oxbadge", error="invalid_token""#;

/// `POST /oauth/register` answers.
// Built once per request and moved straight into the response: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(ApiResponse)]
pub enum RegisterResponse {
    /// Registered. `client_secret` and `registration_access_token` appear only here: store them.
    #[oai(status = 201)]
    Created(
        Json<RegistrationBody>,
        /// `no-store`.
        #[oai(header = "Cache-Control")]
        String,
    ),
    /// `OXBADGE_REGISTRATION_TOKEN` is configured and the request does not carry it as a bearer
    /// token (`invalid_token`).
    #[oai(status = 401)]
    Unauthorized(
        Json<OAuthErrorBody>,
        /// `Bearer` challenge.
        #[oai(header = "WWW-Authenticate")]
        String,
    ),
}

/// Client configuration answers (RFC 7592).
// Built once per request and moved straight into the response: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(ApiResponse)]
pub enum ConfigurationResponse {
    /// The client as registered (after an update: as updated). A secret appears only when this
    /// request issued one.
    #[oai(status = 200)]
    Ok(
        Json<RegistrationBody>,
        /// `no-store`.
        #[oai(header = "Cache-Control")]
        String,
    ),
    /// Deleted: the client and every token it held are gone.
    #[oai(status = 204)]
    Deleted,
    /// The registration access token is missing or wrong, or the client does not exist
    /// (`invalid_token`).
    #[oai(status = 401)]
    Unauthorized(
        Json<OAuthErrorBody>,
        /// `Bearer` challenge.
        #[oai(header = "WWW-Authenticate")]
        String,
    ),
}

fn invalid_token_body() -> Json<OAuthErrorBody> {
    Json(OAuthErrorBody {
        error: "invalid_token".into(),
        error_description: Some(RegistrationError::InvalidToken.to_string()),
    })
}

fn bearer(req: &Request) -> Option<&str> {
    registration::bearer_value(
        req.headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    )
}

fn failure(err: RegistrationError) -> Result<ConfigurationResponse, RegistrationFailure> {
    match err {
        RegistrationError::InvalidToken => Ok(ConfigurationResponse::Unauthorized(
            invalid_token_body(),
            BEARER_CHALLENGE.into(),
        )),
        RegistrationError::Metadata(m) => Err(m.into()),
        RegistrationError::LastOwner => Err(OAuthError::invalid_request(err.to_string()).into()),
        RegistrationError::Db(db) => Err(db.into()),
    }
}

/// OAuth 2.0 dynamic client registration.
pub struct OAuthRegistrationApi;

#[OpenApi(tag = "ApiTags::OAuth")]
impl OAuthRegistrationApi {
    /// Dynamic client registration (RFC 7591). Open to anyone, as OB 3.0 requires, unless
    /// `OXBADGE_REGISTRATION_TOKEN` is configured (then `Authorization: Bearer <that token>` is
    /// required). Rate limited per client address (429 with `Retry-After`). Required metadata:
    /// `client_name`, `client_uri`, `logo_uri`, `tos_uri`, `policy_uri`, `software_id`,
    /// `software_version`, `redirect_uris`, `scope`. A client that obtains no token within 24 h
    /// of registering is removed.
    #[oai(
        path = "/oauth/register",
        method = "post",
        operation_id = "registerClient"
    )]
    async fn register(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: MetadataPayload,
    ) -> Result<RegisterResponse, RegistrationFailure> {
        state.check_auth_rate_limit(req).await?;
        if let Some(configured) = &state.settings().registration_token
            && !registration::initial_token_matches(configured, bearer(req))
        {
            tracing::info!("registration without the configured initial access token refused");
            return Ok(RegisterResponse::Unauthorized(
                Json(OAuthErrorBody {
                    error: "invalid_token".into(),
                    error_description: Some(
                        "this server requires an initial access token to register clients".into(),
                    ),
                }),
                BEARER_CHALLENGE.into(),
            ));
        }
        let metadata = ClientMetadata::try_from(body.0?)?;
        let origin = req
            .remote_addr()
            .as_socket_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        let registered =
            registration::register(state.db(), metadata, state.clock().now(), &origin).await?;
        Ok(RegisterResponse::Created(
            Json(RegistrationBody::new(registered, state.public_url())),
            NO_STORE.into(),
        ))
    }

    /// Reads a registered client (RFC 7592 §2.1) with `Authorization: Bearer
    /// <registration_access_token>`.
    #[oai(
        path = "/oauth/register/:client_id",
        method = "get",
        operation_id = "readClientRegistration"
    )]
    async fn read(
        &self,
        state: Data<&AppState>,
        req: &Request,
        /// The client id.
        client_id: Path<String>,
    ) -> Result<ConfigurationResponse, RegistrationFailure> {
        state.check_auth_rate_limit(req).await?;
        let presented = bearer(req);
        let row = match registration::authorize_configuration(state.db(), &client_id.0, presented)
            .await
        {
            Ok(row) => row,
            Err(err) => return failure(err),
        };
        let registered = registration::read(&row, presented.unwrap_or_default());
        Ok(ConfigurationResponse::Ok(
            Json(RegistrationBody::new(registered, state.public_url())),
            NO_STORE.into(),
        ))
    }

    /// Replaces a registered client's metadata (RFC 7592 §2.2) with `Authorization: Bearer
    /// <registration_access_token>`. The same rules as registration apply; the client id cannot
    /// change. Narrowing the scopes revokes the client's live tokens.
    #[oai(
        path = "/oauth/register/:client_id",
        method = "put",
        operation_id = "updateClientRegistration"
    )]
    async fn update(
        &self,
        state: Data<&AppState>,
        req: &Request,
        /// The client id.
        client_id: Path<String>,
        body: MetadataPayload,
    ) -> Result<ConfigurationResponse, RegistrationFailure> {
        state.check_auth_rate_limit(req).await?;
        let presented = bearer(req);
        let row = match registration::authorize_configuration(state.db(), &client_id.0, presented)
            .await
        {
            Ok(row) => row,
            Err(err) => return failure(err),
        };
        let raw = body.0?;
        if raw.client_id.as_deref().is_some_and(|id| id != row.id) {
            return Err(MetadataError::InvalidClientMetadata(
                "client_id must be the id of the client being updated".into(),
            )
            .into());
        }
        let presented_secret = raw.client_secret.clone();
        let metadata = ClientMetadata::try_from(raw)?;
        let updated = match registration::update(
            state.db(),
            row,
            metadata,
            presented_secret.as_deref(),
            presented.unwrap_or_default(),
            state.clock().now(),
        )
        .await
        {
            Ok(updated) => updated,
            Err(err) => return failure(err),
        };
        invalidation::changed(&state, Change::Client(client_id.0.clone())).await;
        Ok(ConfigurationResponse::Ok(
            Json(RegistrationBody::new(updated, state.public_url())),
            NO_STORE.into(),
        ))
    }

    /// Deletes a registered client (RFC 7592 §2.3) with `Authorization: Bearer
    /// <registration_access_token>`: the client and every token it holds stop working at once.
    #[oai(
        path = "/oauth/register/:client_id",
        method = "delete",
        operation_id = "deleteClientRegistration"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        req: &Request,
        /// The client id.
        client_id: Path<String>,
    ) -> Result<ConfigurationResponse, RegistrationFailure> {
        state.check_auth_rate_limit(req).await?;
        let row = match registration::authorize_configuration(state.db(), &client_id.0, bearer(req))
            .await
        {
            Ok(row) => row,
            Err(err) => return failure(err),
        };
        if let Err(err) = registration::delete(state.db(), &row).await {
            return failure(err);
        }
        invalidation::changed(&state, Change::Client(row.id.clone())).await;
        Ok(ConfigurationResponse::Deleted)
    }
}
