//! Authorization server: clients, grants, tokens and scopes: the client-credentials grant for
//! machine clients, and the authorization-code flow with PKCE, consent and rotating refresh-token
//! families for people's applications. Opaque random tokens and codes are stored only as SHA-256
//! hashes.

pub mod authorization;
pub mod authorization_grant;
pub mod authorization_request;
pub mod cache;
pub mod client_auth;
pub mod client_metadata;
pub mod clients;
pub mod code_exchange;
pub mod consents;
pub mod grant_writer;
pub mod introspection;
pub mod metadata;
pub mod pkce;
pub mod refresh_family;
pub mod registration;
pub mod revocation;
pub mod scopes;
pub mod throttle;
pub mod tokens;

use poem::{
    IntoResponse, Response,
    error::ResponseError,
    http::{HeaderValue, StatusCode, header},
};
use serde::Serialize;

pub use scopes::{Scope, ScopeSet};
pub use tokens::{AccessContext, NewClient, TokenGrant};

/// An error in the OAuth 2.0 vocabulary (RFC 6749 §5.2), answered by `/oauth/*` endpoints.
#[derive(Debug, Clone, thiserror::Error, Serialize)]
#[error("{error}: {error_description}")]
pub struct OAuthError {
    #[serde(skip)]
    status: StatusCode,
    /// The RFC 6749 error code.
    pub error: &'static str,
    /// Human-readable explanation (never contains secrets).
    pub error_description: String,
    #[serde(skip)]
    basic_challenge: bool,
    /// Seconds for `Retry-After` on a 429.
    #[serde(skip)]
    retry_after_secs: Option<u64>,
}

impl OAuthError {
    /// A new error with an explicit status.
    pub fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            error_description: description.into(),
            basic_challenge: false,
            retry_after_secs: None,
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// 401 `invalid_client`; `basic` adds the HTTP Basic challenge when the client tried Basic auth.
    pub fn invalid_client(basic: bool) -> Self {
        Self {
            basic_challenge: basic,
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            )
        }
    }

    /// 400 `invalid_scope`.
    pub fn invalid_scope(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", description)
    }

    /// 400 `invalid_grant`: a code or refresh token that is not (or no longer) valid for this
    /// client.
    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    /// 400 `unsupported_grant_type`.
    pub fn unsupported_grant_type(grant: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!("grant_type `{grant}` is not supported"),
        )
    }

    /// 400 `unauthorized_client`.
    pub fn unauthorized_client(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unauthorized_client", description)
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
            "too many requests from this address; retry later",
        )
    }

    /// 429 whose `Retry-After` says `wait` (rounded up to whole seconds, at least 1).
    pub fn rate_limited_for(wait: std::time::Duration) -> Self {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Self {
            retry_after_secs: Some(secs.max(1)),
            ..Self::rate_limited()
        }
    }

    /// 500 `server_error`; the cause is logged, not sent.
    pub fn server_error(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "oauth server error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "an unexpected error occurred",
        )
    }
}

/// Deletes what can never be used again: authorization codes a day past their expiry (kept that
/// long so a late replay is still recognised and revokes its grant), and refresh tokens that are
/// revoked or past their idle or absolute deadline. Returns (codes, refresh tokens) deleted.
pub async fn purge_expired_grants(
    db: &impl sea_orm::ConnectionTrait,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(u64, u64), sea_orm::DbErr> {
    use crate::db::{authorization_code, refresh_token};
    use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter};
    let codes = authorization_code::Entity::delete_many()
        .filter(authorization_code::Column::ExpiresAt.lt(now - chrono::Duration::days(1)))
        .exec(db)
        .await?
        .rows_affected;
    let refresh = refresh_token::Entity::delete_many()
        .filter(
            Condition::any()
                .add(refresh_token::Column::RevokedAt.is_not_null())
                .add(refresh_token::Column::ExpiresAt.lt(now))
                .add(refresh_token::Column::FamilyExpiresAt.lt(now)),
        )
        .exec(db)
        .await?
        .rows_affected;
    if codes + refresh > 0 {
        tracing::info!(
            codes,
            refresh,
            "purged expired authorization codes and refresh tokens"
        );
    }
    Ok((codes, refresh))
}

impl From<sea_orm::DbErr> for OAuthError {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::server_error(&err)
    }
}

impl ResponseError for OAuthError {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn as_response(&self) -> Response {
        let mut resp = poem::web::Json(self)
            .with_status(self.status)
            .into_response();
        let headers = resp.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if self.basic_challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="oxbadge""#),
            );
        }
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            let secs = self.retry_after_secs.unwrap_or(60).to_string();
            if let Ok(value) = HeaderValue::from_str(&secs) {
                headers.insert(header::RETRY_AFTER, value);
            }
        }
        resp
    }
}
