//! The authorization request (RFC 6749 §4.1.1 with PKCE, RFC 7636): raw query parameters become a
//! typed [`AuthorizationRequest`] once. Failures split in two, as §4.1.2.1 demands: an unknown
//! client or a redirect URI that is not registered exactly is shown to the person as a page and
//! never redirected to (else we would be an open redirector); every other problem is sent back to
//! the (now trusted) redirect URI with `error`, `error_description`, `state` and `iss` (RFC 9207).

use sea_orm::{ConnectionTrait, DbErr, EntityTrait};
use serde::{Deserialize, Serialize};
use url::Url;

use super::{ScopeSet, pkce::CodeChallenge};
use crate::db::oauth_client;

/// Longest `state` accepted (it is echoed back in a URL).
const MAX_STATE: usize = 1024;

/// The query of `GET /oauth/authorize`, as sent. The consent form carries the same fields.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct RawAuthorizationRequest {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
}

/// A checked authorization request: the client, an exactly registered redirect URI, the state,
/// known scopes the client may be granted, and an S256 challenge.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    pub client: oauth_client::Model,
    pub redirect_uri: String,
    pub state: String,
    pub scopes: ScopeSet,
    pub challenge: CodeChallenge,
}

/// An error answered by redirecting to the client (RFC 6749 §4.1.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorRedirect {
    pub redirect_uri: String,
    pub error: &'static str,
    pub description: String,
    pub state: Option<String>,
}

impl ErrorRedirect {
    /// The `Location` to send the browser to; `issuer` is this server's public base URL.
    pub fn location(&self, issuer: &str) -> String {
        let mut params = vec![
            ("error", self.error),
            ("error_description", self.description.as_str()),
        ];
        if let Some(state) = &self.state {
            params.push(("state", state));
        }
        params.push(("iss", issuer));
        redirect_with(&self.redirect_uri, &params)
    }
}

/// Why an authorization request cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizeError {
    /// Shown as an error page (400), never redirected: the client or the redirect URI cannot be
    /// trusted.
    #[error("{0}")]
    Page(&'static str),
    /// Sent back to the client's redirect URI.
    #[error("{}: {}", .0.error, .0.description)]
    Redirect(ErrorRedirect),
    /// Database failure (500 page).
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// `redirect_uri` with `params` appended to its query (existing query parameters are kept).
pub fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    match Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut pairs = url.query_pairs_mut();
                for (k, v) in params {
                    pairs.append_pair(k, v);
                }
            }
            url.to_string()
        }
        // Registered URIs are absolute URLs; this is unreachable for a matched one.
        Err(_) => redirect_uri.to_owned(),
    }
}

/// Whether `client` may use the authorization-code flow with `redirect_uri` (compared exactly,
/// character for character, with one of its registered URIs).
pub fn redirect_uri_registered(client: &oauth_client::Model, redirect_uri: &str) -> bool {
    client
        .redirect_uris
        .split_ascii_whitespace()
        .any(|registered| registered == redirect_uri)
}

fn may_use_code_flow(client: &oauth_client::Model) -> bool {
    client.disabled_at.is_none()
        && client.grant_types.as_deref().is_none_or(|g| {
            g.split_ascii_whitespace()
                .any(|t| t == "authorization_code")
        })
}

/// Checks the client and the redirect URI only: what decides between a page and a redirect.
pub async fn trusted_redirect(
    db: &impl ConnectionTrait,
    raw: &RawAuthorizationRequest,
) -> Result<(oauth_client::Model, String), AuthorizeError> {
    let client_id = raw
        .client_id
        .as_deref()
        .filter(|id| !id.is_empty() && id.len() <= 128 && !id.chars().any(char::is_control))
        .ok_or(AuthorizeError::Page(
            "The application did not say who it is (client_id is missing or malformed).",
        ))?;
    let client = oauth_client::Entity::find_by_id(client_id.to_owned())
        .one(db)
        .await?
        .filter(may_use_code_flow)
        .ok_or(AuthorizeError::Page(
            "This application is not known here, or it may not ask for access.",
        ))?;
    let redirect_uri = raw
        .redirect_uri
        .as_deref()
        .filter(|uri| redirect_uri_registered(&client, uri))
        .ok_or(AuthorizeError::Page(
            "The application asked to send you to an address it has not registered, so you were not sent there.",
        ))?
        .to_owned();
    Ok((client, redirect_uri))
}

/// Parses and checks a whole authorization request (not yet what the signed-in user may grant).
pub async fn parse(
    db: &impl ConnectionTrait,
    raw: &RawAuthorizationRequest,
) -> Result<AuthorizationRequest, AuthorizeError> {
    let (client, redirect_uri) = trusted_redirect(db, raw).await?;
    let state = raw.state.clone().filter(|s| !s.is_empty());
    let fail = |error: &'static str, description: String| {
        AuthorizeError::Redirect(ErrorRedirect {
            redirect_uri: redirect_uri.clone(),
            error,
            description,
            state: state.clone(),
        })
    };
    match raw.response_type.as_deref() {
        Some("code") => {}
        None | Some("") => {
            return Err(fail("invalid_request", "response_type is required".into()));
        }
        Some(_) => {
            return Err(fail(
                "unsupported_response_type",
                "only response_type=code is supported".into(),
            ));
        }
    }
    let Some(state) = state.clone() else {
        return Err(fail("invalid_request", "state is required".into()));
    };
    if state.len() > MAX_STATE {
        return Err(fail("invalid_request", "state is too long".into()));
    }
    let challenge = CodeChallenge::parse(
        raw.code_challenge.as_deref(),
        raw.code_challenge_method.as_deref(),
    )
    .map_err(|e| fail("invalid_request", e.to_string()))?;
    let scopes = ScopeSet::parse(raw.scope.as_deref().unwrap_or_default())
        .map_err(|e| fail("invalid_scope", e.to_string()))?;
    if scopes.is_empty() {
        return Err(fail("invalid_scope", "scope is required".into()));
    }
    let allowed = ScopeSet::parse(&client.scopes).unwrap_or_default();
    if !allowed.is_superset(scopes) {
        return Err(fail(
            "invalid_scope",
            "the requested scope exceeds what this client may be granted".into(),
        ));
    }
    Ok(AuthorizationRequest {
        client,
        redirect_uri,
        state,
        scopes,
        challenge,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_keep_the_registered_query_and_encode_values() {
        let loc = redirect_with(
            "https://wallet.example/cb?x=1",
            &[("code", "a b&c"), ("state", "s=1")],
        );
        assert_eq!(
            loc,
            "https://wallet.example/cb?x=1&code=a+b%26c&state=s%3D1"
        );
        let err = ErrorRedirect {
            redirect_uri: "http://127.0.0.1:9/cb".into(),
            error: "access_denied",
            description: "no".into(),
            state: Some("st".into()),
        };
        assert_eq!(
            err.location("https://badges.example"),
            "http://127.0.0.1:9/cb?error=access_denied&error_description=no&state=st&iss=https%3A%2F%2Fbadges.example"
        );
    }

    #[test]
    fn redirect_uris_match_exactly() {
        let client = oauth_client::Model {
            redirect_uris: "https://wallet.example/cb http://127.0.0.1:8000/cb".into(),
            ..oauth_client::Model::for_tests("c")
        };
        assert!(redirect_uri_registered(
            &client,
            "https://wallet.example/cb"
        ));
        for bad in [
            "https://wallet.example/cb/",
            "https://wallet.example/cb?x",
            "https://wallet.example/c",
            "https://wallet.example/cb.evil.example",
            "https://wallet.example.evil.example/cb",
            "https://evil@wallet.example/cb",
            "https://wallet.example%2Fcb",
            "HTTPS://wallet.example/cb",
            "http://127.0.0.1:8001/cb",
            "",
        ] {
            assert!(!redirect_uri_registered(&client, bad), "{bad}");
        }
    }
}
