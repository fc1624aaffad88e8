//! Errors that reach HTTP clients, and the ONE place that turns any error into a response:
//! RFC 9457 problem documents for the service API, the OAuth error vocabulary under `/oauth`, and
//! `Imsx_StatusInfo` under `/ims`.

use poem::{
    IntoResponse, Response,
    error::ResponseError,
    http::{HeaderValue, StatusCode, header},
};
use poem_openapi::{
    ApiResponse, Object,
    registry::{MetaMediaType, MetaResponse, MetaResponses, Registry},
    types::Type,
};
use serde::{Deserialize, Serialize};

/// Media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Prefix of every problem `type`: stable, so clients can match on it.
pub const PROBLEM_TYPE_PREFIX: &str = "urn:oxbadge:problem:";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, Deserialize, Object)]
#[oai(rename = "Problem", skip_serializing_if_is_none)]
pub struct Problem {
    /// URI identifying the problem type: `urn:oxbadge:problem:<code>`.
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short human-readable summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// Explanation specific to this occurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Stable machine-readable code (the last part of `type`).
    pub code: String,
    /// Request id of the failed request (also in the `X-Request-Id` header).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[oai(rename = "requestId")]
    #[serde(rename = "requestId")]
    pub request_id: Option<String>,
}

impl Problem {
    /// Builds a problem document for `status` with a stable `code`.
    pub fn new(status: StatusCode, code: &str, detail: Option<String>) -> Self {
        Self {
            problem_type: format!("{PROBLEM_TYPE_PREFIX}{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            code: code.to_owned(),
            request_id: None,
        }
    }

    fn into_response_with(self, extra: Option<(header::HeaderName, String)>) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut resp = Response::builder()
            .status(status)
            .content_type(PROBLEM_JSON)
            .body(body);
        if let Some((name, value)) = extra
            && let Ok(v) = HeaderValue::from_str(&value)
        {
            resp.headers_mut().insert(name, v);
        }
        resp
    }
}

/// Errors of the service API. Each variant's doc says the HTTP status it becomes.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed.
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    /// 401: no valid access token (`WWW-Authenticate: Bearer error="invalid_token"`).
    #[error("the access token is missing, invalid or expired")]
    InvalidToken,
    /// 401: the operation needs a signed-in person (a session cookie) and there is none, or the
    /// credentials a person gave are not accepted (`code` says which).
    #[error("{detail}")]
    Unauthenticated { code: &'static str, detail: String },
    /// 403: the caller is known but may not do this (`code` says why: an unconfirmed email,
    /// closed registration, a missing CSRF header).
    #[error("{detail}")]
    Forbidden { code: &'static str, detail: String },
    /// 403: the token lacks the scope the operation requires.
    #[error("this operation requires the scope `{required}`")]
    InsufficientScope { required: &'static str },
    /// 403: the caller is a member of the issuer, but its role there is below what the operation
    /// needs (`required` is a role name, or `global` for administration of the whole service).
    #[error("this operation requires the role `{required}`")]
    InsufficientRole { required: &'static str },
    /// 404: the addressed resource does not exist.
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// 409: the request conflicts with the resource's state.
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// 413: the body exceeds the configured limit.
    #[error("the request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// 415: the body's media type is not one the operation reads.
    #[error("{detail}")]
    UnsupportedMediaType { detail: String },
    /// 422: well-formed but semantically invalid.
    #[error("{detail}")]
    Unprocessable { code: &'static str, detail: String },
    /// 429: rate limited; retry after the given number of seconds.
    #[error("too many requests; retry after {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    /// 502: another host this request needed (an OB 3.0 host we are a client of) failed or
    /// answered something unusable; `detail` says what it did.
    #[error("{detail}")]
    BadGateway { code: &'static str, detail: String },
    /// 504: another host this request needed did not answer in time or could not be reached.
    #[error("{detail}")]
    GatewayTimeout { code: &'static str, detail: String },
    /// 503: a dependency (the database) is unavailable.
    #[error("the service is temporarily unavailable")]
    Unavailable,
    /// 500: a bug or an unexpected failure. The cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(err: sea_orm::DbErr) -> Self {
        match err {
            sea_orm::DbErr::ConnectionAcquire(_) | sea_orm::DbErr::Conn(_) => {
                tracing::error!(error = %err, "database unavailable");
                ApiError::Unavailable
            }
            other => ApiError::Internal(Box::new(other)),
        }
    }
}

impl ApiError {
    /// Shorthand for a 400 with a code.
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    /// Shorthand for a 500 from any error.
    pub fn internal(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(err))
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. }
            | Self::Conflict { code, .. }
            | Self::Unauthenticated { code, .. }
            | Self::Forbidden { code, .. }
            | Self::Unprocessable { code, .. }
            | Self::BadGateway { code, .. }
            | Self::GatewayTimeout { code, .. } => code,
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope { .. } => "insufficient_scope",
            Self::InsufficientRole { .. } => "insufficient_role",
            Self::NotFound { .. } => "not_found",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType { .. } => "unsupported_media_type",
            Self::TooManyRequests { .. } => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Internal(_) => "internal_error",
        }
    }

    /// The header that goes with this error (RFC 6750 challenge, `Retry-After`).
    fn extra_header(&self) -> Option<(header::HeaderName, String)> {
        match self {
            Self::InvalidToken => Some((
                header::WWW_AUTHENTICATE,
                r#"Bearer realm="oxbadge", error="invalid_token""#.to_owned(),
            )),
            Self::InsufficientScope { required } => Some((
                header::WWW_AUTHENTICATE,
                format!(
                    r#"Bearer realm="oxbadge", error="insufficient_scope", scope="{required}""#
                ),
            )),
            Self::TooManyRequests { retry_after_secs } => {
                Some((header::RETRY_AFTER, retry_after_secs.to_string()))
            }
            // A person signs in with a form, not a bearer token; the challenge names the session.
            Self::Unauthenticated { .. } => Some((
                header::WWW_AUTHENTICATE,
                r#"Cookie realm="oxbadge", form-action="/account/sign-in""#.to_owned(),
            )),
            _ => None,
        }
    }

    /// The problem document for this error.
    pub fn to_problem(&self) -> Problem {
        let detail = match self {
            Self::Internal(cause) => {
                tracing::error!(error = %cause, debug = ?cause, "internal error");
                Some(
                    "an unexpected error occurred; the request id identifies it in the logs".into(),
                )
            }
            other => Some(other.to_string()),
        };
        Problem::new(self.status(), self.code(), detail)
    }
}

impl ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            Self::InsufficientRole { .. } => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            Self::GatewayTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn as_response(&self) -> Response {
        self.to_problem().into_response_with(self.extra_header())
    }
}

const DOCUMENTED_ERRORS: &[(u16, &str)] = &[
    (400, "Malformed request (problem document)"),
    (401, "Missing, invalid or expired access token"),
    (403, "The access token lacks the required scope or role"),
    (404, "Not found"),
    (409, "Conflict with the current state"),
    (413, "Request body too large"),
    (415, "Unsupported content type"),
    (422, "Semantically invalid request"),
    (429, "Rate limited"),
    (500, "Internal error"),
    (503, "Temporarily unavailable"),
];

/// Problem-document responses for `(status, description)` pairs.
fn problem_responses(statuses: &[(u16, &'static str)]) -> Vec<MetaResponse> {
    statuses
        .iter()
        .map(|(status, description)| MetaResponse {
            description,
            status: Some(*status),
            status_range: None,
            content: vec![MetaMediaType {
                content_type: PROBLEM_JSON,
                schema: Problem::schema_ref(),
            }],
            headers: vec![],
        })
        .collect()
}

impl ApiResponse for ApiError {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: problem_responses(DOCUMENTED_ERRORS),
        }
    }

    fn register(registry: &mut Registry) {
        Problem::register(registry);
    }
}

/// [`ApiError`] from an operation that calls another host: documents 502 (the other host answered
/// with an error or refused our token) and 504 (it could not be reached in time) besides the usual
/// errors.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct UpstreamError(#[from] pub ApiError);

impl ResponseError for UpstreamError {
    fn status(&self) -> StatusCode {
        self.0.status()
    }

    fn as_response(&self) -> Response {
        self.0.as_response()
    }
}

const UPSTREAM_ERRORS: &[(u16, &str)] = &[
    (
        502,
        "The other host answered with an error or refused our token",
    ),
    (504, "The other host could not be reached in time"),
];

impl ApiResponse for UpstreamError {
    fn meta() -> MetaResponses {
        let mut meta = ApiError::meta();
        meta.responses.extend(problem_responses(UPSTREAM_ERRORS));
        meta.responses.sort_by_key(|r| r.status);
        meta
    }

    fn register(registry: &mut Registry) {
        ApiError::register(registry);
    }
}

/// Which error vocabulary a path answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFamily {
    /// RFC 9457 problem documents.
    Service,
    /// RFC 6749 `{error, error_description}`.
    OAuth,
    /// 1EdTech `Imsx_StatusInfo`.
    Ims,
}

impl ErrorFamily {
    /// The family of a request path.
    pub fn for_path(path: &str) -> Self {
        if path.starts_with("/oauth/") {
            Self::OAuth
        } else if path.starts_with("/ims/") {
            Self::Ims
        } else {
            Self::Service
        }
    }
}

/// Maps framework errors (routing, parsing, content type, auth extraction, size limit) to a stable code.
fn code_for_status(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "malformed_request",
        StatusCode::UNAUTHORIZED => "invalid_token",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_ACCEPTABLE => "not_acceptable",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        _ if status.is_client_error() => "client_error",
        _ => "internal_error",
    }
}

/// Renders any error that escaped a handler or the framework, in the vocabulary of `family`.
/// This is the one mapping from errors to HTTP.
pub fn render_error(err: poem::Error, family: ErrorFamily, request_id: Option<&str>) -> Response {
    if let Some(oauth) = err.downcast_ref::<crate::oauth::OAuthError>() {
        return oauth.as_response();
    }
    let api = err
        .downcast_ref::<ApiError>()
        .or_else(|| err.downcast_ref::<UpstreamError>().map(|u| &u.0));
    let mut problem = match api {
        Some(api) => {
            if family == ErrorFamily::Service {
                let mut p = api.to_problem();
                p.request_id = request_id.map(str::to_owned);
                return p.into_response_with(api.extra_header());
            }
            api.to_problem()
        }
        None => {
            let status = err.status();
            let detail = if status.is_server_error() {
                tracing::error!(error = %err, "unhandled framework error");
                "an unexpected error occurred; the request id identifies it in the logs".to_owned()
            } else {
                err.to_string()
            };
            Problem::new(status, code_for_status(status), Some(detail))
        }
    };
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match family {
        ErrorFamily::Service => {
            problem.request_id = request_id.map(str::to_owned);
            let extra = (status == StatusCode::UNAUTHORIZED).then(|| {
                (
                    header::WWW_AUTHENTICATE,
                    r#"Bearer realm="oxbadge""#.to_owned(),
                )
            });
            problem.into_response_with(extra)
        }
        ErrorFamily::OAuth => {
            let error = match status {
                StatusCode::UNAUTHORIZED => "invalid_client",
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                    "temporarily_unavailable"
                }
                s if s.is_server_error() => "server_error",
                _ => "invalid_request",
            };
            // RFC 6749 §5.2: request errors are 400 whatever the framework said (415, 413, ...).
            // A method the endpoint does not have is no token request: it stays 405 (with Allow).
            let status = match error {
                "invalid_request" if status != StatusCode::METHOD_NOT_ALLOWED => {
                    StatusCode::BAD_REQUEST
                }
                _ => status,
            };
            crate::oauth::OAuthError::new(status, error, problem.detail.unwrap_or_default())
                .as_response()
        }
        ErrorFamily::Ims => {
            let minor = match status {
                StatusCode::BAD_REQUEST => "invalid_query_parameter",
                StatusCode::UNAUTHORIZED => "unauthorizedrequest",
                StatusCode::FORBIDDEN => "forbidden",
                StatusCode::NOT_FOUND => "not_found",
                StatusCode::UNPROCESSABLE_ENTITY
                | StatusCode::UNSUPPORTED_MEDIA_TYPE
                | StatusCode::PAYLOAD_TOO_LARGE => "invalid_data",
                StatusCode::TOO_MANY_REQUESTS => "server_busy",
                _ => "internal_server_error",
            };
            let body = serde_json::json!({
                "imsx_codeMajor": "failure",
                "imsx_severity": "error",
                "imsx_description": problem.detail.unwrap_or_else(|| minor.replace('_', " ")),
                "imsx_CodeMinor": {"imsx_codeMinorField": [{
                    "imsx_codeMinorFieldName": "TargetEndSystem",
                    "imsx_codeMinorFieldValue": minor,
                }]},
            });
            let mut resp = poem::web::Json(body).with_status(status).into_response();
            if status == StatusCode::UNAUTHORIZED {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="oxbadge""#),
                );
            }
            resp
        }
    }
}
