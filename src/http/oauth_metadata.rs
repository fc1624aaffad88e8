//! OAuth 2.0 authorization server metadata (RFC 8414) at `/.well-known/oauth-authorization-server`,
//! cacheable, with a strong ETag and 304 for `If-None-Match`.

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Header, payload::Json};

use super::{ApiTags, publication};
use crate::{app::AppState, oauth::metadata};

/// How long clients and proxies may keep the document before revalidating it.
const CACHE_CONTROL: &str = "public, max-age=3600";

/// The RFC 8414 document.
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case", skip_serializing_if_is_none)]
pub struct AuthorizationServerMetadataBody {
    /// The issuer identifier (this server's public base URL).
    pub issuer: String,
    /// Authorization endpoint (code flow with PKCE S256).
    pub authorization_endpoint: String,
    /// Token endpoint.
    pub token_endpoint: String,
    /// Dynamic client registration (RFC 7591).
    pub registration_endpoint: String,
    /// Token revocation (RFC 7009).
    pub revocation_endpoint: String,
    /// Token introspection (RFC 7662).
    pub introspection_endpoint: String,
    /// Every scope the server knows.
    pub scopes_supported: Vec<String>,
    /// `code`.
    pub response_types_supported: Vec<String>,
    /// `query`.
    pub response_modes_supported: Vec<String>,
    /// `authorization_code`, `refresh_token`, `client_credentials`.
    pub grant_types_supported: Vec<String>,
    /// Client authentication at the token endpoint.
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// Client authentication at the revocation endpoint.
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// Client authentication at the introspection endpoint.
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// `S256` only (`plain` is refused).
    pub code_challenge_methods_supported: Vec<String>,
    /// Authorization responses carry `iss` (RFC 9207).
    pub authorization_response_iss_parameter_supported: bool,
    /// The API documentation.
    pub service_documentation: String,
}

impl From<metadata::AuthorizationServerMetadata> for AuthorizationServerMetadataBody {
    fn from(m: metadata::AuthorizationServerMetadata) -> Self {
        let owned = |v: Vec<&'static str>| v.into_iter().map(str::to_owned).collect();
        Self {
            issuer: m.issuer,
            authorization_endpoint: m.authorization_endpoint,
            token_endpoint: m.token_endpoint,
            registration_endpoint: m.registration_endpoint,
            revocation_endpoint: m.revocation_endpoint,
            introspection_endpoint: m.introspection_endpoint,
            scopes_supported: owned(m.scopes_supported),
            response_types_supported: owned(m.response_types_supported),
            response_modes_supported: owned(m.response_modes_supported),
            grant_types_supported: owned(m.grant_types_supported),
            token_endpoint_auth_methods_supported: owned(m.token_endpoint_auth_methods_supported),
            revocation_endpoint_auth_methods_supported: owned(
                m.revocation_endpoint_auth_methods_supported,
            ),
            introspection_endpoint_auth_methods_supported: owned(
                m.introspection_endpoint_auth_methods_supported,
            ),
            code_challenge_methods_supported: owned(m.code_challenge_methods_supported),
            authorization_response_iss_parameter_supported: m
                .authorization_response_iss_parameter_supported,
            service_documentation: m.service_documentation,
        }
    }
}

/// Metadata answers.
// Built once per request and moved straight into the response: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(ApiResponse)]
pub enum MetadataResponse {
    /// The document.
    #[oai(status = 200)]
    Ok(
        Json<AuthorizationServerMetadataBody>,
        /// Strong entity tag of the document.
        #[oai(header = "ETag")]
        String,
        /// Caching policy.
        #[oai(header = "Cache-Control")]
        String,
    ),
    /// Unchanged since the tag in `If-None-Match`.
    #[oai(status = 304)]
    NotModified(
        /// Strong entity tag of the document.
        #[oai(header = "ETag")]
        String,
        /// Caching policy.
        #[oai(header = "Cache-Control")]
        String,
    ),
}

/// OAuth 2.0 discovery.
pub struct OAuthMetadataApi;

#[OpenApi(tag = "ApiTags::OAuth")]
impl OAuthMetadataApi {
    /// Authorization server metadata (RFC 8414): the issuer, every endpoint (authorization,
    /// token, registration, revocation, introspection), the supported grant types, response
    /// types, client authentication methods, PKCE methods (`S256` only) and scopes. Cacheable; a
    /// matching `If-None-Match` gets 304.
    #[oai(
        path = "/.well-known/oauth-authorization-server",
        method = "get",
        operation_id = "authorizationServerMetadata"
    )]
    async fn metadata(
        &self,
        state: Data<&AppState>,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> MetadataResponse {
        let doc = metadata::document(state.public_url());
        if publication::matches(if_none_match.0.as_deref(), &doc.etag) {
            MetadataResponse::NotModified(doc.etag, CACHE_CONTROL.into())
        } else {
            MetadataResponse::Ok(Json(doc.metadata.into()), doc.etag, CACHE_CONTROL.into())
        }
    }
}
