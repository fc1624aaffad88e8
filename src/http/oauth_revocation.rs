//! OAuth 2.0 token revocation (RFC 7009) at `POST /oauth/revoke` and token introspection
//! (RFC 7662) at `POST /oauth/introspect`: form-encoded, client-authenticated like the token
//! endpoint, OAuth wire format.

use poem::{Request, web::Data};
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Form, payload::Json};
use serde::Deserialize;

use super::ApiTags;
use crate::{
    app::AppState,
    db::oauth_client,
    invalidation::{self, Change},
    oauth::{
        OAuthError,
        introspection::{self, Introspection},
        revocation::{self, Revoked, TokenTypeHint},
    },
};

/// A revocation or introspection request, form-encoded.
#[derive(Debug, Deserialize, Object)]
#[oai(rename_all = "snake_case", skip_serializing_if_is_none)]
pub struct TokenCheckRequest {
    /// The token (access or refresh token).
    pub token: Option<String>,
    /// `access_token` or `refresh_token`: where to look first. Other values are ignored.
    pub token_type_hint: Option<String>,
    /// For client_secret_post, or alone for a public client (revocation only).
    pub client_id: Option<String>,
    /// For client_secret_post.
    pub client_secret: Option<String>,
}

/// An introspection answer (RFC 7662 §2.2). An inactive token is `{"active": false}` and nothing
/// else, whatever the reason.
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case", skip_serializing_if_is_none)]
pub struct IntrospectionBody {
    /// Whether the token is active.
    pub active: bool,
    /// Space-separated scopes.
    pub scope: Option<String>,
    /// The client the token was issued to.
    pub client_id: Option<String>,
    /// The user a user-bound token acts for; the client for a client's own token.
    pub sub: Option<String>,
    /// Expiry (seconds since the epoch).
    pub exp: Option<i64>,
    /// Issue time (seconds since the epoch).
    pub iat: Option<i64>,
    /// `Bearer` (an access token) or `refresh_token`.
    pub token_type: Option<String>,
    /// This server.
    pub iss: Option<String>,
}

/// `POST /oauth/revoke` answers.
#[derive(ApiResponse)]
pub enum RevokeResponse {
    /// Done, or nothing to do: an unknown, already revoked or another client's token is answered
    /// the same way (RFC 7009 §2.2).
    #[oai(status = 200)]
    Ok(
        /// `no-store`.
        #[oai(header = "Cache-Control")]
        String,
    ),
}

/// `POST /oauth/introspect` answers.
#[derive(ApiResponse)]
pub enum IntrospectResponse {
    /// What the server knows of the token.
    #[oai(status = 200)]
    Ok(
        Json<IntrospectionBody>,
        /// `no-store`.
        #[oai(header = "Cache-Control")]
        String,
    ),
}

/// Authenticates the calling client exactly as the token endpoint does
/// ([`super::oauth::authenticate_caller`]).
async fn authenticate(
    state: &AppState,
    req: &Request,
    form: &TokenCheckRequest,
    allow_public: bool,
) -> Result<oauth_client::Model, OAuthError> {
    super::oauth::authenticate_caller(
        state,
        req,
        form.client_id.as_deref(),
        form.client_secret.as_deref(),
        allow_public,
    )
    .await
}

fn required_token(form: &TokenCheckRequest) -> Result<&str, OAuthError> {
    form.token
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("token is required"))
}

/// OAuth 2.0 revocation and introspection.
pub struct OAuthRevocationApi;

#[OpenApi(tag = "ApiTags::OAuth")]
impl OAuthRevocationApi {
    /// Token revocation (RFC 7009). The client authenticates as at the token endpoint (HTTP Basic
    /// or form fields); a public client sends only its `client_id`. A client revokes only its own
    /// tokens. Revoking an access token ends it at once (on every instance); revoking a refresh
    /// token ends its whole family: every refresh token and access token descending from the same
    /// authorization. Always 200 for a valid request, whether or not the token existed.
    #[oai(path = "/oauth/revoke", method = "post", operation_id = "revokeToken")]
    async fn revoke(
        &self,
        state: Data<&AppState>,
        req: &Request,
        form: Form<TokenCheckRequest>,
    ) -> Result<RevokeResponse, OAuthError> {
        let client = authenticate(&state, req, &form, true).await?;
        let token = required_token(&form)?;
        let hint = TokenTypeHint::parse(form.token_type_hint.as_deref());
        let outcome =
            revocation::revoke(state.db(), &client, token, hint, state.clock().now()).await?;
        match outcome {
            Revoked::Nothing => {}
            Revoked::AccessToken { token_hash } => {
                invalidation::changed(&state, Change::AccessToken(token_hash)).await;
            }
            Revoked::RefreshFamily {
                live_access_hashes, ..
            } => {
                for hash in live_access_hashes {
                    invalidation::changed(&state, Change::AccessToken(hash)).await;
                }
            }
        }
        Ok(RevokeResponse::Ok("no-store".into()))
    }

    /// Token introspection (RFC 7662), for authenticated confidential clients (HTTP Basic or form
    /// fields); anyone else gets 401 `invalid_client`. An unknown, expired, revoked or rotated
    /// token is `{"active": false}`. Access tokens are answered from the same cache as bearer
    /// checks.
    #[oai(
        path = "/oauth/introspect",
        method = "post",
        operation_id = "introspectToken"
    )]
    async fn introspect(
        &self,
        state: Data<&AppState>,
        req: &Request,
        form: Form<TokenCheckRequest>,
    ) -> Result<IntrospectResponse, OAuthError> {
        authenticate(&state, req, &form, false).await?;
        let token = required_token(&form)?;
        let hint = TokenTypeHint::parse(form.token_type_hint.as_deref());
        let answer = introspection::introspect(
            state.db(),
            state.token_cache(),
            token,
            hint,
            state.clock().now(),
        )
        .await?;
        let body = match answer {
            Introspection::Inactive => IntrospectionBody {
                active: false,
                scope: None,
                client_id: None,
                sub: None,
                exp: None,
                iat: None,
                token_type: None,
                iss: None,
            },
            Introspection::Active(t) => IntrospectionBody {
                active: true,
                scope: Some(t.scope.to_string()),
                client_id: Some(t.client_id),
                sub: Some(t.sub),
                exp: Some(t.expires_at.timestamp()),
                iat: Some(t.issued_at.timestamp()),
                token_type: Some(t.token_type.as_str().to_owned()),
                iss: Some(crate::oauth::metadata::issuer(state.public_url())),
            },
        };
        Ok(IntrospectResponse::Ok(Json(body), "no-store".into()))
    }
}
