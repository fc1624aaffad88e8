//! The consumer side of the OB 3.0 REST API: this service as the OAuth client of another OB 3.0
//! host. A connection is made by discovery (the host's Service Description Document), dynamic
//! registration, and the authorization-code grant with PKCE in the person's browser; the tokens
//! (and our client secret there) are sealed with the KEK ring. Through a connection an earner
//! imports their badges and profile, and an issuer pushes credentials and its Profile. Every
//! outbound call goes through the verifier's hardened client (`verify::fetch::Fetcher::send`).

pub mod connection;
pub mod import;
pub mod push;
pub mod registration;
pub mod remote_host;
pub mod tokens;

use sea_orm::DbErr;

use crate::{keys::envelope::EnvelopeError, verify::fetch::FetchError};

/// Why a consumer operation failed. The HTTP edges map each to a status (in the doc comment).
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// 422 `invalid_host_url`: the base URL is not an absolute http(s) URL.
    #[error("{0}")]
    InvalidBaseUrl(String),
    /// 422 `host_refused`: policy forbids calling that address (https only, no private addresses
    /// unless configured).
    #[error("{0}")]
    Refused(String),
    /// 504 `host_unreachable`: the host did not answer (network failure, timeout).
    #[error("{0}")]
    Unreachable(String),
    /// 502 `host_error`: the host answered, but not what the OB 3.0 API says it must.
    #[error("{0}")]
    HostError(String),
    /// 502 `host_rejected_token`: the host refused our tokens even after a refresh: the person
    /// there withdrew the access; connect again.
    #[error("{0}")]
    TokenRejected(String),
    /// 400 `authorization_failed`: the authorization did not complete (denied at the host, an
    /// unknown, used or expired `state`).
    #[error("{0}")]
    Authorization(String),
    /// 404: no such connection for this owner.
    #[error("host connection not found")]
    NotFound,
    /// 409 `host_not_connected`: the connection has no usable grant (pending or disconnected).
    #[error("{0}")]
    NotConnected(String),
    /// 403 `insufficient_role`: issuer connections need the role owner or issuer.
    #[error("connecting a host for an issuer requires the role owner or issuer there")]
    Forbidden,
    /// 429 `rate_limited`: this owner started too many connections or imports in a short time
    /// (each one calls another host); retry after the given wait.
    #[error("too many calls to other hosts; retry later")]
    RateLimited(std::time::Duration),
    /// 500: sealing or opening a secret failed (a KEK is missing).
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// 500 (503 when the database is unreachable).
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl From<FetchError> for ConsumerError {
    fn from(err: FetchError) -> Self {
        match err {
            FetchError::Refused { .. } => Self::Refused(err.to_string()),
            FetchError::Failed { .. } | FetchError::RateLimited { .. } => {
                Self::Unreachable(err.to_string())
            }
            FetchError::NotServed { .. } | FetchError::Unusable { .. } => {
                Self::HostError(err.to_string())
            }
        }
    }
}

/// A short excerpt of a host's answer for an error message (never more than 300 characters).
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}
