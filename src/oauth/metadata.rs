//! Authorization server metadata (RFC 8414), served at `/.well-known/oauth-authorization-server`:
//! where every endpoint is, what the server supports, with an entity tag so clients revalidate
//! for free. The document depends only on the public URL and this build (it is built per request:
//! a few microseconds, and the entity tag spares clients the body).

use serde::Serialize;
use url::Url;

use super::Scope;

/// Path of the metadata document.
pub const WELL_KNOWN_PATH: &str = "/.well-known/oauth-authorization-server";
/// Authorization endpoint path.
pub const AUTHORIZATION_PATH: &str = "/oauth/authorize";
/// Token endpoint path.
pub const TOKEN_PATH: &str = "/oauth/token";
/// Registration endpoint path (RFC 7591).
pub const REGISTRATION_PATH: &str = "/oauth/register";
/// Revocation endpoint path (RFC 7009).
pub const REVOCATION_PATH: &str = "/oauth/revoke";
/// Introspection endpoint path (RFC 7662).
pub const INTROSPECTION_PATH: &str = "/oauth/introspect";

/// The RFC 8414 document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthorizationServerMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub registration_endpoint: String,
    pub revocation_endpoint: String,
    pub introspection_endpoint: String,
    pub scopes_supported: Vec<&'static str>,
    pub response_types_supported: Vec<&'static str>,
    pub response_modes_supported: Vec<&'static str>,
    pub grant_types_supported: Vec<&'static str>,
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    pub revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    pub introspection_endpoint_auth_methods_supported: Vec<&'static str>,
    pub code_challenge_methods_supported: Vec<&'static str>,
    pub authorization_response_iss_parameter_supported: bool,
    pub service_documentation: String,
}

/// The metadata document with its serialized form and strong entity tag.
#[derive(Debug, Clone)]
pub struct MetadataDocument {
    pub metadata: AuthorizationServerMetadata,
    /// `"<hex>"`, the first 128 bits of the SHA-256 of the serialized document.
    pub etag: String,
}

/// The issuer identifier: the public base URL without a trailing slash (RFC 8414 §2: no query,
/// no fragment), so `<issuer>/.well-known/oauth-authorization-server` is this document.
pub fn issuer(public_url: &Url) -> String {
    let mut base = public_url.clone();
    base.set_query(None);
    base.set_fragment(None);
    base.as_str().trim_end_matches('/').to_owned()
}

/// Builds the document for the service at `public_url`.
pub fn document(public_url: &Url) -> MetadataDocument {
    let issuer = issuer(public_url);
    let at = |path: &str| format!("{issuer}{path}");
    let metadata = AuthorizationServerMetadata {
        authorization_endpoint: at(AUTHORIZATION_PATH),
        token_endpoint: at(TOKEN_PATH),
        registration_endpoint: at(REGISTRATION_PATH),
        revocation_endpoint: at(REVOCATION_PATH),
        introspection_endpoint: at(INTROSPECTION_PATH),
        scopes_supported: Scope::ALL.iter().map(|s| s.as_str()).collect(),
        response_types_supported: vec!["code"],
        response_modes_supported: vec!["query"],
        grant_types_supported: vec!["authorization_code", "refresh_token", "client_credentials"],
        token_endpoint_auth_methods_supported: vec![
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        // A public client revokes its own tokens by client_id alone (RFC 7009 §2.1).
        revocation_endpoint_auth_methods_supported: vec![
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        // Introspection answers authenticated confidential clients only.
        introspection_endpoint_auth_methods_supported: vec![
            "client_secret_basic",
            "client_secret_post",
        ],
        code_challenge_methods_supported: vec!["S256"],
        authorization_response_iss_parameter_supported: true,
        service_documentation: at("/docs"),
        issuer,
    };
    let serialized = serde_json::to_string(&metadata).unwrap_or_default();
    let etag = crate::cache::strong_etag(&serialized);
    MetadataDocument { metadata, etag }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_hang_off_the_issuer_and_the_etag_follows_the_content() {
        let a = document(&Url::parse("https://badges.example/").unwrap());
        assert_eq!(a.metadata.issuer, "https://badges.example");
        assert_eq!(
            a.metadata.registration_endpoint,
            "https://badges.example/oauth/register"
        );
        assert_eq!(a.metadata.code_challenge_methods_supported, vec!["S256"]);
        let b = document(&Url::parse("https://other.example").unwrap());
        assert_ne!(a.etag, b.etag);
        assert_eq!(
            a.etag,
            document(&Url::parse("https://badges.example").unwrap()).etag
        );
    }
}
