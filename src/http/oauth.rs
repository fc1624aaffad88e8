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

/// Credentials from `Authorization: Basic` (RFC 6749 §2.3.1: each part form-urlencoded). Also
/// the `oauth_form` fuzz target's entry (through `http::fuzzing`).
pub(crate) fn basic_credentials(req: &Request) -> Result<Option<(String, String)>, OAuthError> {
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
    /// Responses are never cached. Requests are rate limited per client address (a correct secret
    /// is let through an exhausted address bucket) and failed authentications per client id; a 429
    /// says in `Retry-After` how long to wait.
    #[oai(path = "/oauth/token", method = "post", operation_id = "token")]
    async fn token(
        &self,
        state: Data<&AppState>,
        req: &Request,
        form: Form<TokenRequest>,
    ) -> Result<TokenResponse, OAuthError> {
        // An exhausted address bucket refuses everything but a correct client secret.
        let ip_wait = state.auth_rate_limit_wait(req);
        let form = form.0;
        let client = match authenticate(&state, req, &form).await {
            Ok(client) => client,
            Err(err) => {
                return Err(match ip_wait {
                    Some(wait) => OAuthError::rate_limited_for(wait),
                    None => err,
                });
            }
        };
        let grant_type = form.grant_type.unwrap_or_default();
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

/// Reads the client's credentials (Basic or form) and authenticates it. A client id whose failure
/// bucket is empty is refused (429, the real wait) before its secret is looked at; each failed
/// authentication drains its bucket.
async fn authenticate(
    state: &AppState,
    req: &Request,
    form: &TokenRequest,
) -> Result<crate::db::oauth_client::Model, OAuthError> {
    let form_id = form.client_id.clone();
    let form_secret = form.client_secret.clone();
    let basic = basic_credentials(req)?;
    let (client_id, client_secret, used_basic) = match (basic, form_id, form_secret) {
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
    if form.grant_type.is_none() {
        return Err(OAuthError::invalid_request("grant_type is required"));
    }
    if let Some(wait) = state.auth_failures().blocked_for(&client_id) {
        tracing::warn!(
            client_id,
            "too many failed authentications of this client; refused"
        );
        return Err(OAuthError::rate_limited_for(wait));
    }
    match tokens::authenticate_client(state.db(), &client_id, &client_secret, used_basic).await {
        Ok(client) => Ok(client),
        Err(err) => {
            if err.error == "invalid_client" {
                state.auth_failures().record_failure(&client_id);
            }
            Err(err)
        }
    }
}
