//! The signed-in person's own account as JSON: register, who am I, change password, list and
//! end sessions.
//!
//! Authentication: the same session cookie the pages use (`oxbadge_session`, or
//! `__Host-oxbadge_session` under TLS), obtained by signing in at `/account/sign-in`. Writes
//! must also send the session's CSRF token in the `X-CSRF-Token` header (`GET /api/v1/account`
//! returns it) and must not be cross-site (`Sec-Fetch-Site`). The OpenAPI document declares the
//! cookie as the `sessionCookie` security scheme (an API key in a cookie) on these operations;
//! they are not part of the bearer-token (`oauth2`) scheme.

use std::net::{IpAddr, SocketAddr};

use chrono::{DateTime, Utc};
use poem::{Request, RequestBody, web::Data};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ApiResponse, ExtractParamOptions, Object, OpenApi,
    param::Path,
    payload::Json,
    registry::{MetaSecurityScheme, Registry},
};

use super::ApiTags;
use crate::{
    accounts::{AccountError, SessionUser, csrf, self_service, session_cookie, sessions},
    app::AppState,
    error::ApiError,
};

/// Header carrying the CSRF token on JSON writes.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Maps a domain error to its HTTP answer (the doc of each `AccountError` variant names it).
pub fn account_error(err: AccountError) -> ApiError {
    match err {
        AccountError::InvalidCredentials => ApiError::Unauthenticated {
            code: "invalid_credentials",
            detail: err.to_string(),
        },
        AccountError::EmailNotVerified => ApiError::Forbidden {
            code: "email_not_verified",
            detail: err.to_string(),
        },
        AccountError::RegistrationClosed => ApiError::Forbidden {
            code: "registration_closed",
            detail: err.to_string(),
        },
        AccountError::InvalidEmail(detail) => ApiError::Unprocessable {
            code: "invalid_email",
            detail,
        },
        AccountError::InvalidDisplayName(detail) => ApiError::Unprocessable {
            code: "invalid_display_name",
            detail,
        },
        AccountError::WeakPassword(detail) => ApiError::Unprocessable {
            code: "weak_password",
            detail: detail.to_owned(),
        },
        AccountError::EmailTaken => ApiError::Conflict {
            code: "email_taken",
            detail: err.to_string(),
        },
        AccountError::InvalidLink => ApiError::bad_request("invalid_link", err.to_string()),
        AccountError::NotFound(what) => ApiError::NotFound { what },
        AccountError::RateLimited { retry_after_secs } => {
            ApiError::TooManyRequests { retry_after_secs }
        }
        AccountError::Db(e) => ApiError::from(e),
        AccountError::Hashing(e) => ApiError::internal(std::io::Error::other(e)),
    }
}

/// A request from a signed-in browser session (reads).
pub struct SessionCaller {
    /// Who is signed in.
    pub user: SessionUser,
    cookie: String,
}

async fn resolve_caller(req: &Request) -> poem::Result<SessionCaller> {
    let state = req
        .data::<AppState>()
        .ok_or_else(|| ApiError::internal(std::io::Error::other("application state missing")))?;
    let secure = state.accounts().secure_cookies();
    let cookie = session_cookie::read(
        req.headers()
            .get_all(poem::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
        secure,
    )
    .map(str::to_owned);
    let not_signed_in = || ApiError::Unauthenticated {
        code: "not_signed_in",
        detail: "sign in first: this operation needs a signed-in session cookie".into(),
    };
    let cookie = cookie.ok_or_else(not_signed_in)?;
    let user = sessions::resolve(state.db(), state.clock(), &cookie)
        .await
        .map_err(account_error)?
        .ok_or_else(not_signed_in)?;
    Ok(SessionCaller { user, cookie })
}

/// Name of the session cookie's security scheme in the OpenAPI document.
pub const SESSION_SCHEME: &str = "sessionCookie";

/// Declares the session cookie as an `apiKey` security scheme `in: cookie`. Registered by hand
/// rather than derived, so that the name comes from [`session_cookie::NAME`] and the cookie is
/// read by [`resolve_caller`] alone (it knows the `__Host-` name used under TLS; the derived
/// extractor would read one fixed name).
fn register_session_scheme(registry: &mut Registry) {
    registry.create_security_scheme(
        SESSION_SCHEME,
        MetaSecurityScheme {
            ty: "apiKey",
            description: Some(
                "The browser session cookie set by signing in at `/account/sign-in` (named \
                 `__Host-oxbadge_session` when the service runs under TLS). Writes also need the \
                 session's CSRF token in the `X-CSRF-Token` header (`GET /api/v1/account` returns \
                 it) and must not be cross-site.",
            ),
            name: Some(session_cookie::NAME),
            key_in: Some("cookie"),
            scheme: None,
            bearer_format: None,
            flows: None,
            openid_connect_url: None,
        },
    );
}

/// Both session extractors are security-scheme extractors: the operation's OpenAPI `security`
/// names [`SESSION_SCHEME`].
macro_rules! session_extractor {
    ($ty:ty, $extract:expr) => {
        impl<'a> ApiExtractor<'a> for $ty {
            const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

            type ParamType = ();
            type ParamRawType = ();

            fn register(registry: &mut Registry) {
                register_session_scheme(registry);
            }

            fn security_schemes() -> Vec<&'static str> {
                vec![SESSION_SCHEME]
            }

            async fn from_request(
                request: &'a Request,
                _body: &mut RequestBody,
                _param_opts: ExtractParamOptions<Self::ParamType>,
            ) -> poem::Result<Self> {
                $extract(request).await
            }
        }
    };
}

session_extractor!(SessionCaller, resolve_caller);
session_extractor!(SessionWriter, resolve_writer);

/// A state-changing request from a signed-in session: the CSRF header matched and the request
/// was not cross-site. Checked before the body is read.
pub struct SessionWriter(pub SessionCaller);

async fn resolve_writer(req: &Request) -> poem::Result<SessionWriter> {
    let caller = resolve_caller(req).await?;
    let fetch_site = req
        .headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok());
    let token = req
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !csrf::fetch_site_allowed(fetch_site) || !csrf::verify(&caller.cookie, token) {
        return Err(ApiError::Forbidden {
            code: "csrf_token_invalid",
            detail:
                "missing or invalid X-CSRF-Token header (GET /api/v1/account returns the token)"
                    .into(),
        }
        .into());
    }
    Ok(SessionWriter(caller))
}

/// Self-service registration.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct RegisterRequest {
    /// Email address (normalized to lower case).
    #[oai(validator(max_length = 254))]
    pub email: String,
    /// Display name (1–100 characters).
    #[oai(validator(max_length = 200))]
    pub display_name: String,
    /// Password: at least 12 characters, not a common password.
    #[oai(validator(max_length = 1024))]
    pub password: String,
}

/// What happens next after a registration.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct RegistrationAccepted {
    /// Always `verification_sent`: the answer does not say whether the address already had an
    /// account (that address gets a notice by mail instead).
    pub status: String,
}

/// Registration response.
#[derive(ApiResponse)]
pub enum RegisterResponse {
    /// Accepted: a confirmation link was mailed.
    #[oai(status = 202)]
    Accepted(Json<RegistrationAccepted>),
}

/// The signed-in person.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct AccountInfo {
    /// User id.
    pub id: String,
    /// Email address.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// Global administrator.
    pub is_admin: bool,
    /// Whether the email address is confirmed.
    pub email_verified: bool,
    /// Id of the current session.
    pub session_id: String,
    /// CSRF token to send as `X-CSRF-Token` on writes.
    pub csrf_token: String,
}

/// A password change.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ChangePasswordRequest {
    /// The current password.
    #[oai(validator(max_length = 1024))]
    pub current_password: String,
    /// The new password: at least 12 characters, not a common password.
    #[oai(validator(max_length = 1024))]
    pub new_password: String,
}

/// One session of the signed-in person.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct SessionInfo {
    /// Session id.
    pub id: String,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// Last request seen (to the minute).
    pub last_seen_at: DateTime<Utc>,
    /// Absolute end.
    pub expires_at: DateTime<Utc>,
    /// The browser's User-Agent at sign-in.
    pub user_agent: Option<String>,
    /// Whether this is the session making the request.
    pub current: bool,
}

/// Done, nothing to return.
#[derive(ApiResponse)]
pub enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
}

fn client_ip(req: &Request) -> IpAddr {
    req.remote_addr()
        .as_socket_addr()
        .map(SocketAddr::ip)
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// The signed-in person's account.
pub struct AccountApi;

#[OpenApi(tag = "ApiTags::Account")]
impl AccountApi {
    /// Register an account (self-service; off when `registration_open` is false, then 403).
    /// Public. A confirmation link is mailed; the account can sign in once it is confirmed. The
    /// answer is the same whether or not the address already has an account.
    #[oai(
        path = "/api/v1/account/register",
        method = "post",
        operation_id = "registerAccount"
    )]
    async fn register(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<RegisterRequest>,
    ) -> Result<RegisterResponse, ApiError> {
        self_service::register(
            state.db(),
            state.accounts(),
            client_ip(req),
            &body.email,
            &body.display_name,
            &body.password,
        )
        .await
        .map_err(account_error)?;
        Ok(RegisterResponse::Accepted(Json(RegistrationAccepted {
            status: "verification_sent".into(),
        })))
    }

    /// The signed-in person (session cookie), with the CSRF token for writes.
    #[oai(path = "/api/v1/account", method = "get", operation_id = "getAccount")]
    async fn me(&self, caller: SessionCaller) -> Result<Json<AccountInfo>, ApiError> {
        let u = caller.user;
        Ok(Json(AccountInfo {
            csrf_token: csrf::token_for(&caller.cookie),
            id: u.user_id,
            email: u.email,
            display_name: u.display_name,
            is_admin: u.is_admin,
            email_verified: u.email_verified,
            session_id: u.session_id,
        }))
    }

    /// Change the password (session cookie + `X-CSRF-Token`). Every other session ends.
    #[oai(
        path = "/api/v1/account/password",
        method = "post",
        operation_id = "changePassword"
    )]
    async fn change_password(
        &self,
        SessionWriter(caller): SessionWriter,
        state: Data<&AppState>,
        body: Json<ChangePasswordRequest>,
    ) -> Result<NoContent, ApiError> {
        self_service::change_password(
            state.db(),
            state.accounts(),
            &caller.user,
            &body.current_password,
            &body.new_password,
        )
        .await
        .map_err(account_error)?;
        Ok(NoContent::Done)
    }

    /// The signed-in person's live sessions, newest first (session cookie).
    #[oai(
        path = "/api/v1/account/sessions",
        method = "get",
        operation_id = "listAccountSessions"
    )]
    async fn list_sessions(
        &self,
        caller: SessionCaller,
        state: Data<&AppState>,
    ) -> Result<Json<Vec<SessionInfo>>, ApiError> {
        let rows = sessions::list(state.db(), state.clock(), &caller.user.user_id)
            .await
            .map_err(account_error)?;
        Ok(Json(
            rows.into_iter()
                .map(|s| SessionInfo {
                    current: s.id == caller.user.session_id,
                    id: s.id,
                    created_at: s.created_at,
                    last_seen_at: s.last_seen_at,
                    expires_at: s.expires_at,
                    user_agent: s.user_agent,
                })
                .collect(),
        ))
    }

    /// End one of the signed-in person's sessions (session cookie + `X-CSRF-Token`); 404 when
    /// it is not theirs.
    #[oai(
        path = "/api/v1/account/sessions/:id",
        method = "delete",
        operation_id = "endAccountSession"
    )]
    async fn end_session(
        &self,
        SessionWriter(caller): SessionWriter,
        state: Data<&AppState>,
        id: Path<String>,
    ) -> Result<NoContent, ApiError> {
        sessions::end_by_id(state.db(), &caller.user.user_id, &id)
            .await
            .map_err(account_error)?;
        Ok(NoContent::Done)
    }
}
