//! OAuth 2.0 endpoints. This issue: the token endpoint with the client-credentials grant
//! (client_secret_basic and client_secret_post), rate limited per client address.

use base64::{Engine, engine::general_purpose::STANDARD};
use poem::{Request, web::Data};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    payload::{Form, Json},
    registry::{MetaMediaType, MetaResponse, MetaResponses, Registry},
    types::Type,
};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::ApiTags;
use crate::{
    app::AppState,
    oauth::{OAuthError, tokens},
};

/// Token request (RFC 6749 §4.4), form-encoded.
#[derive(Debug, Deserialize, Object)]
#[oai(rename_all = "snake_case", skip_serializing_if_is_none)]
pub struct TokenRequest {
    /// `client_credentials`.
    pub grant_type: Option<String>,
    /// Space-separated scopes; all of the client's scopes when absent.
    pub scope: Option<String>,
    /// For client_secret_post.
    pub client_id: Option<String>,
    /// For client_secret_post.
    pub client_secret: Option<String>,
}

/// Successful token response (RFC 6749 §5.1).
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case", skip_serializing_if_is_none)]
pub struct TokenBody {
    /// The opaque bearer token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Lifetime in seconds.
    pub expires_in: i64,
    /// Granted scopes, space-separated.
    pub scope: String,
}

/// OAuth error body (RFC 6749 §5.2).
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case", skip_serializing_if_is_none)]
pub struct OAuthErrorBody {
    /// Error code: invalid_request, invalid_client, invalid_grant, unauthorized_client,
    /// unsupported_grant_type, invalid_scope, temporarily_unavailable, server_error.
    pub error: String,
    /// Human-readable explanation.
    pub error_description: Option<String>,
}

/// Token endpoint responses.
#[derive(ApiResponse)]
pub enum TokenResponse {
    /// A token was issued. Never cached.
    #[oai(status = 200)]
    Ok(
        Json<TokenBody>,
        #[oai(header = "Cache-Control")] String,
        #[oai(header = "Pragma")] String,
    ),
}

impl ApiResponse for OAuthError {
    fn meta() -> MetaResponses {
        let statuses: [(u16, &'static str); 4] = [
            (
                400,
                "invalid_request, invalid_scope, unsupported_grant_type, ...",
            ),
            (401, "invalid_client"),
            (429, "rate limited (temporarily_unavailable)"),
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

/// Credentials from `Authorization: Basic` (RFC 6749 §2.3.1: each part form-urlencoded).
fn basic_credentials(req: &Request) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = req.headers().get(poem::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| OAuthError::invalid_client(true))?;
    let Some(encoded) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return Err(OAuthError::invalid_client(true));
    };
    let decoded = STANDARD
        .decode(encoded.trim())
        .map_err(|_| OAuthError::invalid_client(true))?;
    let decoded = String::from_utf8(decoded).map_err(|_| OAuthError::invalid_client(true))?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(|| OAuthError::invalid_client(true))?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((unescape(id), unescape(secret))))
}

/// OAuth 2.0 authorization server endpoints.
pub struct OAuthApi;

#[OpenApi(tag = "ApiTags::OAuth")]
impl OAuthApi {
    /// Token endpoint (RFC 6749 §3.2). Supports `grant_type=client_credentials` with client
    /// authentication by HTTP Basic (`client_secret_basic`) or form fields (`client_secret_post`).
    /// Responses are never cached; requests are rate limited per client address.
    #[oai(path = "/oauth/token", method = "post", operation_id = "token")]
    async fn token(
        &self,
        state: Data<&AppState>,
        req: &Request,
        form: Form<TokenRequest>,
    ) -> Result<TokenResponse, OAuthError> {
        state.check_auth_rate_limit(req)?;
        let form = form.0;
        let basic = basic_credentials(req)?;
        let (client_id, client_secret, used_basic) =
            match (basic, form.client_id, form.client_secret) {
                (Some(_), _, Some(_)) => {
                    return Err(OAuthError::invalid_request(
                        "use exactly one client authentication method",
                    ));
                }
                (Some((id, secret)), form_id, None) => {
                    if form_id.is_some_and(|f| f != id) {
                        return Err(OAuthError::invalid_request(
                            "client_id in the body differs from the authenticated client",
                        ));
                    }
                    (id, secret, true)
                }
                (None, Some(id), Some(secret)) => (id, secret, false),
                (None, _, _) => return Err(OAuthError::invalid_client(false)),
            };
        let grant_type = form
            .grant_type
            .ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
        let client =
            tokens::authenticate_client(state.db(), &client_id, &client_secret, used_basic).await?;
        if grant_type != "client_credentials" {
            return Err(OAuthError::unsupported_grant_type(&grant_type));
        }
        if client.kind != "service" {
            return Err(OAuthError::unauthorized_client(
                "this client may not use the client_credentials grant",
            ));
        }
        let grant = tokens::issue_token(
            state.db(),
            &client,
            form.scope.as_deref(),
            state.settings().access_token_ttl_secs,
        )
        .await?;
        Ok(TokenResponse::Ok(
            Json(TokenBody {
                access_token: grant.access_token.expose_secret().to_owned(),
                token_type: "Bearer".into(),
                expires_in: grant.expires_in,
                scope: grant.scopes.to_string(),
            }),
            "no-store".into(),
            "no-cache".into(),
        ))
    }
}
