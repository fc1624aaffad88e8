//! Client authentication at the token, revocation and introspection endpoints (RFC 6749 §2.3): HTTP
//! Basic (`client_secret_basic`), form fields (`client_secret_post`), or for a public client only
//! its `client_id` (PKCE is its proof at the token endpoint; RFC 7009 §2.1 lets it revoke its own
//! tokens). A dynamically registered confidential client must use the method it registered.

use base64::{Engine, engine::general_purpose::STANDARD};
use sea_orm::ConnectionTrait;

use super::{OAuthError, client_metadata::TokenEndpointAuthMethod, tokens};
use crate::db::oauth_client;

/// The credentials a request presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresentedClient {
    /// A client id with its secret; `basic` when it came in the `Authorization` header.
    Confidential {
        client_id: String,
        client_secret: String,
        basic: bool,
    },
    /// Only a client id (a public client).
    Public { client_id: String },
}

impl PresentedClient {
    /// The presented client id.
    pub fn client_id(&self) -> &str {
        match self {
            Self::Confidential { client_id, .. } | Self::Public { client_id } => client_id,
        }
    }

    /// Reads the credentials from the `Authorization` header value and the form's `client_id` and
    /// `client_secret`. Two methods at once, or a form id differing from the Basic one, is
    /// `invalid_request`; no credentials at all is `invalid_client`.
    pub fn from_parts(
        authorization: Option<&str>,
        form_id: Option<&str>,
        form_secret: Option<&str>,
    ) -> Result<Self, OAuthError> {
        let basic = authorization.map(parse_basic).transpose()?;
        // An empty `client_id` field is no client id (some clients send one beside Basic).
        let form_id = form_id.filter(|id| !id.is_empty());
        match (basic, form_id, form_secret) {
            (Some(_), _, Some(_)) => Err(OAuthError::invalid_request(
                "use exactly one client authentication method",
            )),
            (Some((id, secret)), form_id, None) => {
                if form_id.is_some_and(|f| f != id) {
                    return Err(OAuthError::invalid_request(
                        "client_id in the body differs from the authenticated client",
                    ));
                }
                Ok(Self::Confidential {
                    client_id: id,
                    client_secret: secret,
                    basic: true,
                })
            }
            (None, Some(id), Some(secret)) => Ok(Self::Confidential {
                client_id: id.to_owned(),
                client_secret: secret.to_owned(),
                basic: false,
            }),
            (None, Some(id), None) => Ok(Self::Public {
                client_id: id.to_owned(),
            }),
            (None, None, _) => Err(OAuthError::invalid_client(false)),
        }
    }

    /// Whether a failure should carry the Basic challenge.
    pub fn used_basic(&self) -> bool {
        matches!(self, Self::Confidential { basic: true, .. })
    }
}

/// `Authorization: Basic` credentials (each part form-urlencoded, RFC 6749 §2.3.1); any other
/// scheme, or a malformed value, is `invalid_client` with the Basic challenge.
pub fn parse_basic(value: &str) -> Result<(String, String), OAuthError> {
    let refuse = || OAuthError::invalid_client(true);
    let (scheme, encoded) = value.trim().split_once(' ').ok_or_else(refuse)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(refuse());
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| refuse())?;
    let decoded = String::from_utf8(decoded).map_err(|_| refuse())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(refuse)?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok((unescape(id), unescape(secret)))
}

/// Authenticates a confidential client by its secret, or a public client (registered with
/// `token_endpoint_auth_method: none`) by its id when `allow_public`. A confidential client that
/// leaves its secret out is refused like a wrong secret.
pub async fn authenticate(
    db: &impl ConnectionTrait,
    cache: Option<&super::cache::ClientCache>,
    presented: &PresentedClient,
    allow_public: bool,
) -> Result<oauth_client::Model, OAuthError> {
    match presented {
        PresentedClient::Confidential {
            client_id,
            client_secret,
            basic,
        } => {
            let client =
                tokens::authenticate_client(db, cache, client_id, client_secret, *basic).await?;
            registered_method_used(client, *basic)
        }
        PresentedClient::Public { client_id } => {
            if !allow_public || client_id.is_empty() || client_id.chars().any(char::is_control) {
                return Err(OAuthError::invalid_client(false));
            }
            let client = tokens::find_client(db, cache, client_id).await?;
            match client {
                Some(c)
                    if c.disabled_at.is_none()
                        && c.token_endpoint_auth_method
                            == TokenEndpointAuthMethod::None.as_str() =>
                {
                    Ok(c)
                }
                _ => {
                    tracing::info!(client_id, "public client authentication failed");
                    Err(OAuthError::invalid_client(false))
                }
            }
        }
    }
}

/// A dynamically registered confidential client must authenticate by the method it registered
/// (RFC 7591 `token_endpoint_auth_method`); clients created by administrators may use either.
fn registered_method_used(
    client: oauth_client::Model,
    used_basic: bool,
) -> Result<oauth_client::Model, OAuthError> {
    let expected = if used_basic {
        TokenEndpointAuthMethod::ClientSecretBasic
    } else {
        TokenEndpointAuthMethod::ClientSecretPost
    };
    if client.registered_dynamically && client.token_endpoint_auth_method != expected.as_str() {
        tracing::info!(client_id = %client.id, "client used another authentication method than it registered");
        return Err(OAuthError::invalid_client(used_basic));
    }
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_from_header_or_form() {
        let basic = format!("Basic {}", STANDARD.encode("id%3A1:se%20cret"));
        assert_eq!(
            PresentedClient::from_parts(Some(&basic), None, None).unwrap(),
            PresentedClient::Confidential {
                client_id: "id:1".into(),
                client_secret: "se cret".into(),
                basic: true
            }
        );
        assert_eq!(
            PresentedClient::from_parts(None, Some("c"), None).unwrap(),
            PresentedClient::Public {
                client_id: "c".into()
            }
        );
        assert!(PresentedClient::from_parts(Some(&basic), None, Some("s")).is_err());
        assert!(PresentedClient::from_parts(Some(&basic), Some("other"), None).is_err());
        assert_eq!(
            PresentedClient::from_parts(None, None, None)
                .unwrap_err()
                .error,
            "invalid_client"
        );
        assert!(PresentedClient::from_parts(Some("Bearer x"), None, None).is_err());
    }
}
