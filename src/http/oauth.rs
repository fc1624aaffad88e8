//! OAuth 2.0 endpoints: the token endpoint with the client-credentials, authorization-code (PKCE)
//! and refresh-token grants; client authentication by client_secret_basic, client_secret_post, or
//! none (public clients, PKCE is their proof); rate limited per client address and, for failed
//! authentications and `invalid_grant` storms, per client id.

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
    db::oauth_client,
    oauth::{
        OAuthError,
        client_auth::{self, PresentedClient},
        client_metadata::TokenEndpointAuthMethod,
        code_exchange, grant_writer,
    },
};

/// Token request (RFC 6749 §4.1.3, §4.4, §6), form-encoded.
#[derive(Debug, Deserialize, Object)]
#[oai(rename_all = "snake_case", skip_serializing_if_is_none)]
pub struct TokenRequest {
    /// `client_credentials`, `authorization_code` or `refresh_token`.
    pub grant_type: Option<String>,
    /// Space-separated scopes. client_credentials: all of the client's scopes when absent;
    /// refresh_token: may only narrow the granted scopes.
    pub scope: Option<String>,
    /// For client_secret_post, and for public clients (`none`).
    pub client_id: Option<String>,
    /// For client_secret_post.
    pub client_secret: Option<String>,
    /// authorization_code: the code from the redirect.
    pub code: Option<String>,
    /// authorization_code: exactly the redirect URI of the authorization request.
    pub redirect_uri: Option<String>,
    /// authorization_code: the PKCE verifier (43-128 characters) whose S256 hash was the challenge.
    pub code_verifier: Option<String>,
    /// refresh_token: the refresh token (it is rotated: use the new one next time).
    pub refresh_token: Option<String>,
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
    /// A refresh token, when `offline_access` was granted (authorization_code and refresh_token
    /// grants). Each refresh returns a new one; the presented one stops working.
    pub refresh_token: Option<String>,
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

/// OAuth 2.0 authorization server endpoints.
pub struct OAuthApi;

#[OpenApi(tag = "ApiTags::OAuth")]
impl OAuthApi {
    /// Token endpoint (RFC 6749 §3.2). Grants: `client_credentials` (service clients),
    /// `authorization_code` (with the PKCE `code_verifier` and the exact `redirect_uri`; a code is
    /// single-use, and presenting it again revokes every token issued from it) and `refresh_token`
    /// (rotated on every use; presenting a used refresh token revokes its whole family). Client
    /// authentication: HTTP Basic (`client_secret_basic`), form fields (`client_secret_post`), or
    /// only `client_id` for public clients registered with `none`. User-bound access tokens live
    /// `user_token_ttl_secs` (1 h by default); a refresh token is returned when `offline_access` was
    /// granted. Responses are never cached. Requests are rate limited per client address (a correct
    /// secret is let through an exhausted address bucket), and failed authentications and
    /// `invalid_grant` answers per client id; a 429 says in `Retry-After` how long to wait.
    #[oai(path = "/oauth/token", method = "post", operation_id = "token")]
    async fn token(
        &self,
        state: Data<&AppState>,
        req: &Request,
        form: Form<TokenRequest>,
    ) -> Result<TokenResponse, OAuthError> {
        let form = form.0;
        let client = authenticate_caller(
            &state,
            req,
            form.client_id.as_deref(),
            form.client_secret.as_deref(),
            true,
        )
        .await?;
        if form.grant_type.is_none() {
            return Err(OAuthError::invalid_request("grant_type is required"));
        }
        let grant_type = form.grant_type.clone().unwrap_or_default();
        let result = match grant_type.as_str() {
            "client_credentials" => client_credentials(&state, &client, &form).await,
            "authorization_code" => authorization_code(&state, &client, &form).await,
            "refresh_token" => refresh(&state, &client, &form).await,
            other => Err(OAuthError::unsupported_grant_type(other)),
        };
        if let Err(err) = &result
            && err.error == "invalid_grant"
        {
            // Guessing codes or refresh tokens drains the client's failure bucket too.
            state.auth_failures().record_failure(&client.id).await;
        }
        let body = result?;
        Ok(TokenResponse::Ok(
            Json(body),
            "no-store".into(),
            "no-cache".into(),
        ))
    }
}

async fn client_credentials(
    state: &AppState,
    client: &oauth_client::Model,
    form: &TokenRequest,
) -> Result<TokenBody, OAuthError> {
    if client.kind != "service"
        || client.token_endpoint_auth_method == TokenEndpointAuthMethod::None.as_str()
    {
        return Err(OAuthError::unauthorized_client(
            "this client may not use the client_credentials grant",
        ));
    }
    let grant = grant_writer::client_credentials(state, client, form.scope.as_deref()).await?;
    tracing::info!(client_id = %client.id, scopes = %grant.scopes, "access token issued");
    Ok(TokenBody {
        access_token: grant.access_token.expose_secret().to_owned(),
        token_type: "Bearer".into(),
        expires_in: grant.expires_in,
        scope: grant.scopes.to_string(),
        refresh_token: None,
    })
}

async fn authorization_code(
    state: &AppState,
    client: &oauth_client::Model,
    form: &TokenRequest,
) -> Result<TokenBody, OAuthError> {
    let request = code_exchange::CodeRequest {
        code: form.code.as_deref(),
        redirect_uri: form.redirect_uri.as_deref(),
        code_verifier: form.code_verifier.as_deref(),
    };
    let exchanged = grant_writer::exchange_code(state, client, request)
        .await
        .map_err(|failure| failure.error)?;
    Ok(TokenBody {
        access_token: exchanged.access.access_token.expose_secret().to_owned(),
        token_type: "Bearer".into(),
        expires_in: exchanged.access.expires_in,
        scope: exchanged.access.scopes.to_string(),
        refresh_token: exchanged
            .refresh_token
            .map(|t| t.expose_secret().to_owned()),
    })
}

async fn refresh(
    state: &AppState,
    client: &oauth_client::Model,
    form: &TokenRequest,
) -> Result<TokenBody, OAuthError> {
    let presented = form
        .refresh_token
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
    let refreshed = grant_writer::refresh(state, client, presented, form.scope.as_deref())
        .await
        .map_err(|failure| failure.error)?;
    tracing::info!(client_id = %client.id, "refresh token rotated");
    Ok(TokenBody {
        access_token: refreshed.access.access_token.expose_secret().to_owned(),
        token_type: "Bearer".into(),
        expires_in: refreshed.access.expires_in,
        scope: refreshed.access.scopes.to_string(),
        refresh_token: Some(refreshed.refresh_token.expose_secret().to_owned()),
    })
}

/// Authenticates the calling client at the token, revocation and introspection endpoints
/// ([`client_auth`]): a client id whose failure bucket is empty is refused (429, the real wait)
/// before its secret is looked at, and each failed secret drains it; an address whose
/// authentication bucket is empty gets 429 unless it presents a correct secret (a public client
/// has none to present, so it is refused too). `allow_public`: whether a public client may call.
pub(crate) async fn authenticate_caller(
    state: &AppState,
    req: &Request,
    form_id: Option<&str>,
    form_secret: Option<&str>,
    allow_public: bool,
) -> Result<oauth_client::Model, OAuthError> {
    let ip_wait = state.auth_rate_limit_wait(req).await;
    let limited = |err: OAuthError| ip_wait.map(OAuthError::rate_limited_for).unwrap_or(err);
    let authorization = match req.headers().get(poem::http::header::AUTHORIZATION) {
        None => None,
        Some(value) => match value.to_str() {
            Ok(text) => Some(text),
            // Not even text: no credentials we could parse (answered like a malformed Basic).
            Err(_) => return Err(limited(OAuthError::invalid_client(true))),
        },
    };
    let presented =
        PresentedClient::from_parts(authorization, form_id, form_secret).map_err(limited)?;
    let confidential = matches!(presented, PresentedClient::Confidential { .. });
    if confidential
        && let Some(wait) = state
            .auth_failures()
            .blocked_for(presented.client_id())
            .await
    {
        tracing::warn!(
            client_id = presented.client_id(),
            "too many failed authentications of this client; refused"
        );
        return Err(OAuthError::rate_limited_for(wait));
    }
    match client_auth::authenticate(
        state.db(),
        Some(state.client_cache()),
        &presented,
        allow_public,
    )
    .await
    {
        Ok(client) if confidential => Ok(client),
        Ok(client) => match ip_wait {
            Some(wait) => Err(OAuthError::rate_limited_for(wait)),
            None => Ok(client),
        },
        Err(err) => {
            if confidential && err.error == "invalid_client" {
                state
                    .auth_failures()
                    .record_failure(presented.client_id())
                    .await;
            }
            Err(limited(err))
        }
    }
}
