//! The Open Badges 3.0 REST API (host role) at `/ims/ob/v3p0`: `getCredentials`,
//! `upsertCredential`, `getProfile`, `putProfile` and `getServiceDescription`, and the account
//! endpoints that link DIDs to an earner (`/api/v1/account/dids`).
//!
//! The OB 3.0 operations take bearer tokens from the authorization-code flow (the `OAuth2ACG`
//! scheme), whose principal is the person who granted them. Every error on `/ims/` paths is an
//! `Imsx_StatusInfo` (rendered by the front line, see `error::render_error`).

use std::marker::PhantomData;

use poem::{IntoResponse, Request, RequestBody, Response, http::StatusCode, web::Data};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ApiRequest, ApiResponse, ExtractParamOptions, OAuthScopes,
    Object, OpenApi, SecurityScheme,
    auth::Bearer,
    param::{Header, Path, Query},
    payload::{Json, ParsePayload, Payload},
    registry::{MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry},
    types::Type,
};
use serde_json::Value;

use super::{
    ApiTags,
    account::{SessionCaller, SessionWriter},
    documented::JsonText,
};
use crate::{
    accounts::memberships::Principal,
    app::AppState,
    error::ApiError,
    oauth::{AccessContext, Scope, tokens::resolve_token_cached},
    ob3::{
        did_link::{self, DidLinkError},
        discovery,
        profile::{self, ProfileError},
        provider::{self, HeldCredential, PageRequest},
        uploads::{self, Upload, UploadError, UploadFormat, Upserted},
    },
};

/// The OB 3.0 scopes, as the `OAuth2ACG` scheme declares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, OAuthScopes)]
pub enum Ob3Scope {
    /// Read the badges you hold.
    #[oai(rename = "https://purl.imsglobal.org/spec/ob/v3p0/scope/credential.readonly")]
    CredentialReadonly,
    /// Add badges to your collection and update them.
    #[oai(rename = "https://purl.imsglobal.org/spec/ob/v3p0/scope/credential.upsert")]
    CredentialUpsert,
    /// Read your profile.
    #[oai(rename = "https://purl.imsglobal.org/spec/ob/v3p0/scope/profile.readonly")]
    ProfileReadonly,
    /// Update your profile.
    #[oai(rename = "https://purl.imsglobal.org/spec/ob/v3p0/scope/profile.update")]
    ProfileUpdate,
}

/// OAuth 2.0 authorization code grant (with PKCE): tokens a person granted to a client.
#[derive(SecurityScheme)]
#[oai(
    rename = "OAuth2ACG",
    ty = "oauth2",
    flows(authorization_code(
        authorization_url = "/oauth/authorize",
        token_url = "/oauth/token",
        refresh_url = "/oauth/token",
        scopes = "Ob3Scope"
    )),
    checker = "check_bearer"
)]
pub struct Ob3Auth(pub AccessContext);

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<AccessContext> {
    let state = req
        .data::<AppState>()
        .ok_or_else(|| ApiError::internal(std::io::Error::other("application state missing")))?;
    Ok(resolve_token_cached(state.db(), state.token_cache(), &bearer.token).await?)
}

/// An OB 3.0 scope as a type, for [`Ob3Authorized`].
pub trait Ob3RequiredScope: Send + Sync + 'static {
    /// The scope.
    const SCOPE: Scope;
}

/// Marker types, one per OB 3.0 scope.
pub mod ob3_scope {
    use super::{Ob3RequiredScope, Scope};

    /// `…/scope/credential.readonly`.
    pub struct CredentialReadonly;
    impl Ob3RequiredScope for CredentialReadonly {
        const SCOPE: Scope = Scope::ObCredentialReadonly;
    }
    /// `…/scope/credential.upsert`.
    pub struct CredentialUpsert;
    impl Ob3RequiredScope for CredentialUpsert {
        const SCOPE: Scope = Scope::ObCredentialUpsert;
    }
    /// `…/scope/profile.readonly`.
    pub struct ProfileReadonly;
    impl Ob3RequiredScope for ProfileReadonly {
        const SCOPE: Scope = Scope::ObProfileReadonly;
    }
    /// `…/scope/profile.update`.
    pub struct ProfileUpdate;
    impl Ob3RequiredScope for ProfileUpdate {
        const SCOPE: Scope = Scope::ObProfileUpdate;
    }
}

/// A caller whose valid token carries the OB 3.0 scope `S` (403 `forbidden` otherwise).
pub struct Ob3Authorized<S: Ob3RequiredScope> {
    /// Who is calling.
    pub caller: AccessContext,
    _scope: PhantomData<S>,
}

impl<S: Ob3RequiredScope> Ob3Authorized<S> {
    /// The person the token acts for; 403 for a client's own token.
    fn user_id(&self) -> Result<&str, ApiError> {
        match &self.caller.principal {
            Principal::User(id) => Ok(id),
            Principal::Client(_) => Err(ApiError::Forbidden {
                code: "forbidden",
                detail: "this operation needs a token a person granted (authorization code flow)"
                    .into(),
            }),
        }
    }
}

impl<'a, S: Ob3RequiredScope> ApiExtractor<'a> for Ob3Authorized<S> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <Ob3Auth as ApiExtractor<'a>>::register(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        <Ob3Auth as ApiExtractor<'a>>::security_schemes()
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let Ob3Auth(caller) =
            <Ob3Auth as ApiExtractor<'a>>::from_request(request, body, Default::default()).await?;
        caller.require(S::SCOPE)?;
        Ok(Self {
            caller,
            _scope: PhantomData,
        })
    }
}

/// `imsx_CodeMinor.imsx_codeMinorField[]`.
#[derive(Debug, Object)]
#[oai(rename = "Imsx_CodeMinorField")]
pub struct ImsxCodeMinorField {
    /// Always `TargetEndSystem`.
    #[oai(rename = "imsx_codeMinorFieldName")]
    pub name: String,
    /// `forbidden`, `invalid_data`, `invalid_query_parameter`, `not_found`,
    /// `unauthorizedrequest`, `server_busy`, `internal_server_error`, ...
    #[oai(rename = "imsx_codeMinorFieldValue")]
    pub value: String,
}

/// `imsx_CodeMinor`.
#[derive(Debug, Object)]
#[oai(rename = "Imsx_CodeMinor")]
pub struct ImsxCodeMinor {
    /// The code minor values.
    #[oai(rename = "imsx_codeMinorField")]
    pub fields: Vec<ImsxCodeMinorField>,
}

/// The 1EdTech status information every error of the OB 3.0 API carries.
#[derive(Debug, Object)]
#[oai(rename = "Imsx_StatusInfo", skip_serializing_if_is_none)]
pub struct ImsxStatusInfo {
    /// Always `failure` for errors.
    #[oai(rename = "imsx_codeMajor")]
    pub code_major: String,
    /// Always `error` for errors.
    #[oai(rename = "imsx_severity")]
    pub severity: String,
    /// What went wrong, for people.
    #[oai(rename = "imsx_description")]
    pub description: Option<String>,
    /// The machine-readable reason.
    #[oai(rename = "imsx_CodeMinor")]
    pub code_minor: Option<ImsxCodeMinor>,
}

/// An error of the OB 3.0 API: an [`ApiError`] the front line renders as `Imsx_StatusInfo`.
pub struct Ob3Error(pub ApiError);

impl<E: Into<ApiError>> From<E> for Ob3Error {
    fn from(err: E) -> Self {
        Self(err.into())
    }
}

impl From<Ob3Error> for poem::Error {
    fn from(err: Ob3Error) -> Self {
        err.0.into()
    }
}

impl ApiResponse for Ob3Error {
    fn meta() -> MetaResponses {
        let statuses: [(u16, &'static str); 9] = [
            (
                400,
                "invalid_query_parameter: a query parameter is malformed or out of range",
            ),
            (
                401,
                "unauthorizedrequest: the token is missing, invalid, expired or revoked (WWW-Authenticate: Bearer)",
            ),
            (
                403,
                "forbidden: the token lacks the scope, or is not a person's token",
            ),
            (404, "not_found"),
            (413, "invalid_data: the body is too large"),
            (415, "invalid_data: unsupported media type"),
            (
                422,
                "invalid_data: the body is not a valid or verifiable credential or profile",
            ),
            (429, "server_busy: too many requests"),
            (500, "internal_server_error"),
        ];
        MetaResponses {
            responses: statuses
                .into_iter()
                .map(|(status, description)| MetaResponse {
                    description,
                    status: Some(status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: "application/json; charset=utf-8",
                        schema: ImsxStatusInfo::schema_ref(),
                    }],
                    headers: vec![],
                })
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        ImsxStatusInfo::register(registry);
    }
}

fn invalid_query(detail: impl Into<String>) -> Ob3Error {
    Ob3Error(ApiError::BadRequest {
        code: "invalid_query_parameter",
        detail: detail.into(),
    })
}

fn invalid_data(detail: impl Into<String>) -> Ob3Error {
    Ob3Error(ApiError::Unprocessable {
        code: "invalid_data",
        detail: detail.into(),
    })
}

/// `GetOpenBadgeCredentialsResponse` (documentation of the page body).
#[derive(Debug, Object)]
#[oai(rename = "GetOpenBadgeCredentialsResponse", rename_all = "camelCase")]
pub struct GetOpenBadgeCredentialsResponse {
    /// Credentials with an embedded proof, exactly as issued or uploaded.
    pub credential: Vec<Value>,
    /// VC-JWT credentials (compact JWS).
    pub compact_jws_string: Vec<String>,
}

/// A page body, serialized from the stored texts without re-encoding them.
pub struct CredentialsBody(String);

impl Payload for CredentialsBody {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn schema_ref() -> MetaSchemaRef {
        GetOpenBadgeCredentialsResponse::schema_ref()
    }

    fn register(registry: &mut Registry) {
        GetOpenBadgeCredentialsResponse::register(registry);
    }
}

impl IntoResponse for CredentialsBody {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type(Self::CONTENT_TYPE)
            .body(self.0)
    }
}

fn page_body(items: Vec<HeldCredential>) -> String {
    let mut json = Vec::new();
    let mut jwts = Vec::new();
    for item in items {
        match item {
            HeldCredential::Json(text) => json.push(text),
            HeldCredential::Jwt(jws) => {
                jwts.push(serde_json::to_string(&jws).unwrap_or_else(|_| "\"\"".into()))
            }
        }
    }
    format!(
        "{{\"credential\":[{}],\"compactJwsString\":[{}]}}",
        json.join(","),
        jwts.join(",")
    )
}

/// `getCredentials` answer.
#[derive(ApiResponse)]
pub enum CredentialsPage {
    /// A page of the earner's credentials.
    #[oai(status = 200)]
    Ok(
        CredentialsBody,
        /// Number of credentials in the (filtered) collection.
        #[oai(header = "X-Total-Count")]
        u64,
        /// `first`, `last`, and `next` / `prev` page URLs (RFC 8288).
        #[oai(header = "Link")]
        String,
    ),
}

macro_rules! credential_payload {
    ($name:ident, $ct:literal, $doc:literal) => {
        #[doc = $doc]
        pub struct $name(pub Vec<u8>);

        impl Payload for $name {
            const CONTENT_TYPE: &'static str = $ct;

            fn check_content_type(content_type: &str) -> bool {
                content_type
                    .split(';')
                    .next()
                    .is_some_and(|essence| essence.trim().eq_ignore_ascii_case($ct))
            }

            fn schema_ref() -> MetaSchemaRef {
                if $ct == "text/plain" {
                    MetaSchemaRef::Inline(Box::new(MetaSchema::new("string")))
                } else {
                    MetaSchemaRef::Inline(Box::new(MetaSchema::new("object")))
                }
            }
        }

        impl ParsePayload for $name {
            const IS_REQUIRED: bool = true;

            async fn from_request(
                _request: &Request,
                body: &mut RequestBody,
            ) -> poem::Result<Self> {
                Ok(Self(body.take()?.into_vec().await?))
            }
        }
    };
}

credential_payload!(JsonCredential, "application/json", "A JSON credential.");
credential_payload!(
    LdJsonCredential,
    "application/ld+json",
    "A JSON-LD credential."
);
credential_payload!(
    VcLdJsonCredential,
    "application/vc+ld+json",
    "A JSON-LD verifiable credential."
);
credential_payload!(JwtCredential, "text/plain", "A VC-JWT (compact JWS).");

/// The body of `upsertCredential`.
#[derive(ApiRequest)]
pub enum UpsertBody {
    /// An OpenBadgeCredential with an embedded proof.
    Json(JsonCredential),
    /// The same, as JSON-LD.
    LdJson(LdJsonCredential),
    /// The same, as a VC JSON-LD document.
    VcLdJson(VcLdJsonCredential),
    /// A VC-JWT.
    Jwt(JwtCredential),
}

/// The body of `putProfile`.
#[derive(ApiRequest)]
pub enum ProfileRequest {
    /// A Profile (OB 3.0 `Profile` JSON).
    Json(JsonCredential),
}

/// `upsertCredential` answer: the credential in the format it is stored in.
pub enum UpsertResponse {
    /// 201 or 200, with the credential as JSON or as a compact JWS.
    Credential {
        status: StatusCode,
        format: UploadFormat,
        body: String,
    },
}

impl IntoResponse for UpsertResponse {
    fn into_response(self) -> Response {
        let Self::Credential {
            status,
            format,
            body,
        } = self;
        let content_type = match format {
            UploadFormat::Json => "application/json; charset=utf-8",
            UploadFormat::Jwt => "text/plain; charset=utf-8",
        };
        Response::builder()
            .status(status)
            .content_type(content_type)
            .body(body)
    }
}

impl ApiResponse for UpsertResponse {
    fn meta() -> MetaResponses {
        let content = || {
            vec![
                MetaMediaType {
                    content_type: "application/json; charset=utf-8",
                    schema: MetaSchemaRef::Inline(Box::new(MetaSchema::new("object"))),
                },
                MetaMediaType {
                    content_type: "text/plain; charset=utf-8",
                    schema: MetaSchemaRef::Inline(Box::new(MetaSchema::new("string"))),
                },
            ]
        };
        MetaResponses {
            responses: vec![
                MetaResponse {
                    description: "Replaced an older copy, or the stored copy is newer and was kept (it is returned)",
                    status: Some(200),
                    status_range: None,
                    content: content(),
                    headers: vec![],
                },
                MetaResponse {
                    description: "Added to the collection",
                    status: Some(201),
                    status_range: None,
                    content: content(),
                    headers: vec![],
                },
            ],
        }
    }

    fn register(_registry: &mut Registry) {}
}

/// `getServiceDescription` answer.
#[derive(ApiResponse)]
pub enum DiscoveryResponse {
    /// The Service Description Document (OpenAPI 3.0).
    #[oai(status = 200)]
    Ok(
        JsonText,
        /// Strong entity tag of the body.
        #[oai(header = "ETag")]
        String,
        /// Caching policy.
        #[oai(header = "Cache-Control")]
        String,
    ),
    /// Unchanged since the tag in `If-None-Match`.
    #[oai(status = 304)]
    NotModified(
        /// Strong entity tag of the body.
        #[oai(header = "ETag")]
        String,
    ),
}

/// A Profile (JSON text kept exactly).
pub struct ProfileBody(String);

impl Payload for ProfileBody {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new("object")))
    }
}

impl IntoResponse for ProfileBody {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type(Self::CONTENT_TYPE)
            .body(self.0)
    }
}

/// Profile answer.
#[derive(ApiResponse)]
pub enum ProfileResponse {
    /// The Profile.
    #[oai(status = 200)]
    Ok(ProfileBody),
}

fn profile_error(err: ProfileError) -> Ob3Error {
    match err {
        ProfileError::Invalid(detail) => invalid_data(detail),
        ProfileError::NotFound => Ob3Error(ApiError::NotFound { what: "profile" }),
        ProfileError::Db(e) => Ob3Error(e.into()),
    }
}

/// The OB 3.0 REST API.
pub struct Ob3Api;

#[OpenApi(tag = "ApiTags::Ob3")]
impl Ob3Api {
    /// `getCredentials`: the credentials of the person who granted the token, the ones issued
    /// on this host to their verified email or a DID they linked and the ones they uploaded, in
    /// a stable order (oldest addition first). `limit` (1–1000, default 100) and `offset`
    /// (default 0) page; `since` (RFC 3339) keeps the credentials added after that time.
    /// `X-Total-Count` is the size of the whole (filtered) collection; `Link` names `first` and
    /// `last` always, `next` when more follow, `prev` when `offset > 0`. Data Integrity
    /// credentials are in `credential`, VC-JWTs in `compactJwsString`.
    #[oai(
        path = "/ims/ob/v3p0/credentials",
        method = "get",
        operation_id = "getCredentials"
    )]
    async fn get_credentials(
        &self,
        state: Data<&AppState>,
        #[oai(scope = "Ob3Scope::CredentialReadonly")] auth: Ob3Authorized<
            ob3_scope::CredentialReadonly,
        >,
        /// Page size, 1–1000 (default 100).
        limit: Query<Option<String>>,
        /// Credentials to skip (default 0).
        offset: Query<Option<String>>,
        /// Only credentials added to the collection after this time (RFC 3339).
        since: Query<Option<String>>,
    ) -> Result<CredentialsPage, Ob3Error> {
        let user_id = auth.user_id()?.to_owned();
        let limit = match limit.0.as_deref() {
            None => provider::DEFAULT_LIMIT,
            Some(text) => match text.trim().parse::<u64>() {
                Ok(0) | Err(_) => {
                    return Err(invalid_query("`limit` must be a positive integer"));
                }
                Ok(n) => n.min(provider::MAX_LIMIT),
            },
        };
        let offset = match offset.0.as_deref() {
            None => 0,
            Some(text) => text
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n <= i64::MAX as u64 / 2)
                .ok_or_else(|| invalid_query("`offset` must be a non-negative integer"))?,
        };
        let since_at = match since.0.as_deref() {
            None => None,
            Some(text) => Some(
                chrono::DateTime::parse_from_rfc3339(text.trim())
                    .map_err(|_| invalid_query("`since` must be an RFC 3339 date-time"))?
                    .with_timezone(&chrono::Utc),
            ),
        };
        let request = PageRequest {
            limit,
            offset,
            since: since_at,
        };
        let page = provider::credentials_page(state.db(), &user_id, request).await?;
        let mut base = state
            .public_url()
            .join("/ims/ob/v3p0/credentials")
            .map_err(ApiError::internal)?;
        if let Some(text) = since.0.as_deref() {
            base.query_pairs_mut().append_pair("since", text.trim());
        }
        let link = provider::link_header(&base, request, page.total);
        Ok(CredentialsPage::Ok(
            CredentialsBody(page_body(page.items)),
            page.total,
            link,
        ))
    }

    /// `upsertCredential`: adds a credential issued elsewhere to the collection of the person
    /// who granted the token, or replaces their older copy. The same credential is the same
    /// `issuer.id` and `id`; the newer `validFrom` (`issuanceDate`) wins, so an older copy is
    /// answered 200 with the stored newer one, unchanged. JSON (`application/json`,
    /// `application/ld+json`, `application/vc+ld+json`) or a VC-JWT (`text/plain`); verified by
    /// this service's verifier first (a credential that does not verify is 422 `invalid_data`,
    /// with the failed checks in `imsx_description`). Stored byte for byte and answered in the
    /// format it came in: 201 added, 200 replaced or kept.
    #[oai(
        path = "/ims/ob/v3p0/credentials",
        method = "post",
        operation_id = "upsertCredential"
    )]
    async fn upsert_credential(
        &self,
        state: Data<&AppState>,
        #[oai(scope = "Ob3Scope::CredentialUpsert")] auth: Ob3Authorized<
            ob3_scope::CredentialUpsert,
        >,
        body: UpsertBody,
    ) -> Result<UpsertResponse, Ob3Error> {
        let user_id = auth.user_id()?.to_owned();
        let (format, bytes) = match body {
            UpsertBody::Json(JsonCredential(b))
            | UpsertBody::LdJson(LdJsonCredential(b))
            | UpsertBody::VcLdJson(VcLdJsonCredential(b)) => (UploadFormat::Json, b),
            UpsertBody::Jwt(JwtCredential(b)) => (UploadFormat::Jwt, b),
        };
        let upload_error = |e: UploadError| match e {
            UploadError::Db(e) => Ob3Error(e.into()),
            other => invalid_data(other.to_string()),
        };
        let upload = Upload::parse(format, &bytes).map_err(upload_error)?;
        upload.verify(&state).await.map_err(upload_error)?;
        let (status, format, body) = match uploads::upsert(state.db(), &user_id, &upload).await? {
            Upserted::Created { format, body } => (StatusCode::CREATED, format, body),
            Upserted::Replaced { format, body } | Upserted::KeptNewer { format, body } => {
                (StatusCode::OK, format, body)
            }
        };
        Ok(UpsertResponse::Credential {
            status,
            format,
            body,
        })
    }

    /// `getProfile`: the Profile of the person who granted the token (their own, once PUT;
    /// until then `id` `urn:oxbadge:user:<user id>`, `name`, and `email` once verified). A
    /// client's own token that acts for exactly one issuer gets that issuer's Profile; other
    /// client tokens are 403.
    #[oai(
        path = "/ims/ob/v3p0/profile",
        method = "get",
        operation_id = "getProfile"
    )]
    async fn get_profile(
        &self,
        state: Data<&AppState>,
        #[oai(scope = "Ob3Scope::ProfileReadonly")] auth: Ob3Authorized<ob3_scope::ProfileReadonly>,
    ) -> Result<ProfileResponse, Ob3Error> {
        if let Principal::Client(_) = &auth.caller.principal {
            let only = auth
                .caller
                .visible_issuers()
                .filter(|m| m.len() == 1)
                .and_then(|m| m.keys().next().cloned());
            let Some(issuer_id) = only else {
                return Err(Ob3Error(ApiError::Forbidden {
                    code: "forbidden",
                    detail: "this client token acts for no single issuer, so it has no Profile"
                        .into(),
                }));
            };
            let issuer = crate::issuers::find_issuer(state.db(), &issuer_id).await?;
            return Ok(ProfileResponse::Ok(ProfileBody(
                crate::issuers::profile_document(&issuer).to_string(),
            )));
        }
        let user_id = auth.user_id()?.to_owned();
        let text = profile::user_profile(state.db(), &user_id)
            .await
            .map_err(profile_error)?;
        Ok(ProfileResponse::Ok(ProfileBody(text)))
    }

    /// `putProfile`: replaces the Profile of the person who granted the token with the whole
    /// Profile given (`id` a URI and `type` including `Profile` are required; `name`,
    /// `description`, `email`, `phone` strings, `url` a URI), kept exactly, and answers it.
    /// Issuer Profiles are not changed here (403): use the Issuers API.
    #[oai(
        path = "/ims/ob/v3p0/profile",
        method = "put",
        operation_id = "putProfile"
    )]
    async fn put_profile(
        &self,
        state: Data<&AppState>,
        #[oai(scope = "Ob3Scope::ProfileUpdate")] auth: Ob3Authorized<ob3_scope::ProfileUpdate>,
        body: ProfileRequest,
    ) -> Result<ProfileResponse, Ob3Error> {
        let user_id = auth.user_id()?.to_owned();
        let ProfileRequest::Json(JsonCredential(bytes)) = body;
        let text =
            std::str::from_utf8(&bytes).map_err(|_| invalid_data("the body is not UTF-8 text"))?;
        let value: Value = serde_json::from_str(text)
            .map_err(|e| invalid_data(format!("the body is not JSON: {e}")))?;
        profile::validate_profile(&value).map_err(profile_error)?;
        let stored = profile::put_user_profile(state.db(), &user_id, text)
            .await
            .map_err(profile_error)?;
        Ok(ProfileResponse::Ok(ProfileBody(stored)))
    }

    /// `getServiceDescription`: the Service Description Document, an OpenAPI 3.0 profile of
    /// this API with `info.termsOfService`, `info.x-imssf-privacyPolicyUrl`, the optional
    /// `info.x-imssf-image`, and the `OAuth2ACG` security scheme (`x-imssf-registrationUrl`,
    /// authorization, token and refresh URLs, the four OB 3.0 scopes). Never protected;
    /// strong ETag, `If-None-Match` answers 304.
    #[oai(
        path = "/ims/ob/v3p0/discovery",
        method = "get",
        operation_id = "getServiceDescription"
    )]
    async fn discovery(
        &self,
        state: Data<&AppState>,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> Result<DiscoveryResponse, Ob3Error> {
        let sdd = discovery::service_description(state.settings(), state.public_url());
        if super::publication::matches(if_none_match.0.as_deref(), &sdd.etag) {
            return Ok(DiscoveryResponse::NotModified(sdd.etag));
        }
        Ok(DiscoveryResponse::Ok(
            JsonText(sdd.json),
            sdd.etag,
            "public, max-age=300".to_owned(),
        ))
    }
}

/// A fresh DID-link challenge.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct DidChallenge {
    /// The nonce: the presentation proof's `challenge`.
    pub challenge: String,
    /// The presentation proof's `domain`.
    pub domain: String,
    /// When the nonce stops working.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// A DID linked to the account.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct LinkedDid {
    /// The DID.
    pub did: String,
    /// When it was linked.
    pub linked_at: chrono::DateTime<chrono::Utc>,
}

/// Link answer.
#[derive(ApiResponse)]
pub enum LinkDidResponse {
    /// Linked (or already linked to this account).
    #[oai(status = 201)]
    Linked(Json<LinkedDid>),
}

/// Unlink answer.
#[derive(ApiResponse)]
pub enum UnlinkDidResponse {
    /// Unlinked.
    #[oai(status = 204)]
    Done,
}

fn did_error(err: DidLinkError) -> ApiError {
    match err {
        DidLinkError::Rejected(detail) => ApiError::Unprocessable {
            code: "presentation_rejected",
            detail,
        },
        DidLinkError::Taken => ApiError::Conflict {
            code: "did_taken",
            detail: err.to_string(),
        },
        DidLinkError::NotFound => ApiError::NotFound { what: "linked DID" },
        DidLinkError::Db(e) => e.into(),
    }
}

/// The signed-in person's DIDs (session cookie; writes also `X-CSRF-Token`).
pub struct DidsApi;

#[OpenApi(tag = "ApiTags::Account")]
impl DidsApi {
    /// A single-use nonce (valid 10 minutes) for linking a DID: sign a DID-auth Verifiable
    /// Presentation whose `holder` is the DID, with a Data Integrity proof (`proofPurpose`
    /// `authentication`) carrying `challenge` = this nonce and `domain` = the returned domain
    /// (this service's host), and POST it to `/api/v1/account/dids`.
    #[oai(
        path = "/api/v1/account/dids/challenge",
        method = "post",
        operation_id = "createDidChallenge"
    )]
    async fn challenge(
        &self,
        SessionWriter(caller): SessionWriter,
        state: Data<&AppState>,
    ) -> Result<Json<DidChallenge>, ApiError> {
        let challenge =
            did_link::create_challenge(state.db(), &caller.user.user_id, state.clock().now())
                .await?;
        Ok(Json(DidChallenge {
            challenge: challenge.nonce,
            domain: did_link::expected_domain(state.public_url()),
            expires_at: challenge.expires_at,
        }))
    }

    /// Links the DID that signed a DID-auth presentation (see `createDidChallenge`); the nonce
    /// is spent by this call whatever its outcome. Credentials issued on this host to the DID
    /// join the person's OB 3.0 collection. 422 `presentation_rejected` when the presentation
    /// does not verify or names no open challenge; 409 `did_taken` when another account has
    /// the DID.
    #[oai(
        path = "/api/v1/account/dids",
        method = "post",
        operation_id = "linkDid"
    )]
    async fn link(
        &self,
        SessionWriter(caller): SessionWriter,
        state: Data<&AppState>,
        presentation: Json<Value>,
    ) -> Result<LinkDidResponse, ApiError> {
        let now = state.clock().now();
        let did = did_link::link(&state, &caller.user.user_id, presentation.0, now)
            .await
            .map_err(did_error)?;
        Ok(LinkDidResponse::Linked(Json(LinkedDid {
            did,
            linked_at: now,
        })))
    }

    /// The DIDs linked to the signed-in person's account, oldest first.
    #[oai(
        path = "/api/v1/account/dids",
        method = "get",
        operation_id = "listDids"
    )]
    async fn list(
        &self,
        caller: SessionCaller,
        state: Data<&AppState>,
    ) -> Result<Json<Vec<LinkedDid>>, ApiError> {
        let rows = did_link::list(state.db(), &caller.user.user_id).await?;
        Ok(Json(
            rows.into_iter()
                .map(|r| LinkedDid {
                    did: r.did,
                    linked_at: r.linked_at,
                })
                .collect(),
        ))
    }

    /// Unlinks a DID (URL-encode it in the path); its credentials leave the collection.
    #[oai(
        path = "/api/v1/account/dids/:did",
        method = "delete",
        operation_id = "unlinkDid"
    )]
    async fn unlink(
        &self,
        SessionWriter(caller): SessionWriter,
        state: Data<&AppState>,
        /// The DID.
        did: Path<String>,
    ) -> Result<UnlinkDidResponse, ApiError> {
        did_link::unlink(state.db(), &caller.user.user_id, &did.0)
            .await
            .map_err(did_error)?;
        Ok(UnlinkDidResponse::Done)
    }
}
