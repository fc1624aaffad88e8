//! Administration of OAuth clients (scope `admin`): create machine clients, list them, disable them.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};
use secrecy::ExposeSecret;

use super::{
    ApiTags,
    auth::{Authorized, scope},
    text::JsonText,
};
use crate::{
    app::AppState,
    db::oauth_client,
    error::ApiError,
    oauth::{Scope, ScopeSet, tokens},
};

/// Request to create a client-credentials client.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct CreateClientRequest {
    /// Display name (1–200 characters, not only blanks).
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: JsonText,
    /// Scopes the client may request (each a known scope, none blank).
    #[oai(validator(min_items = 1, max_items = 32))]
    pub scopes: Vec<JsonText>,
}

impl CreateClientRequest {
    /// The trimmed name and the scope set, or 422 naming the first member that is not acceptable:
    /// a non-string or blank name, a non-string, blank or unknown scope.
    fn parse(self) -> Result<(String, ScopeSet), ApiError> {
        let name = self.name.into_string("name")?;
        let name = name.trim();
        if name.is_empty() {
            return Err(ApiError::Unprocessable {
                code: "invalid_field",
                detail: "`name` must not be blank".into(),
            });
        }
        let mut scopes = Vec::with_capacity(self.scopes.len());
        for (i, scope) in self.scopes.into_iter().enumerate() {
            let scope = scope.into_string(&format!("scopes[{i}]"))?;
            let scope = scope.trim();
            if scope.is_empty() || scope.contains(char::is_whitespace) {
                return Err(ApiError::Unprocessable {
                    code: "invalid_field",
                    detail: format!("`scopes[{i}]` must be one scope, not blank or several"),
                });
            }
            scopes.push(scope.to_owned());
        }
        let scopes = ScopeSet::parse(&scopes.join(" ")).map_err(|e| ApiError::Unprocessable {
            code: "unknown_scope",
            detail: e.to_string(),
        })?;
        Ok((name.to_owned(), scopes))
    }
}

/// A newly created client, with its secret (shown only in this response).
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct CreatedClient {
    /// Client id (CUID2).
    pub client_id: String,
    /// Client secret; store it now, it cannot be retrieved later.
    pub client_secret: String,
    /// Scopes the client may request.
    pub scopes: Vec<String>,
}

/// A client as listed (never with secret material).
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ClientInfo {
    /// Client id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Allowed scopes.
    pub scopes: Vec<String>,
    /// `service` for client-credentials clients.
    pub kind: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Set when the client was disabled.
    pub disabled_at: Option<DateTime<Utc>>,
}

impl From<oauth_client::Model> for ClientInfo {
    fn from(m: oauth_client::Model) -> Self {
        Self {
            id: m.id,
            name: m.name,
            scopes: m
                .scopes
                .split_ascii_whitespace()
                .map(str::to_owned)
                .collect(),
            kind: m.kind,
            created_at: m.created_at,
            disabled_at: m.disabled_at,
        }
    }
}

/// Created.
#[derive(ApiResponse)]
pub enum CreateClientResponse {
    /// The client was created.
    #[oai(status = 201)]
    Created(Json<CreatedClient>),
}

/// Disabled.
#[derive(ApiResponse)]
pub enum DisableClientResponse {
    /// The client is disabled and its tokens are revoked.
    #[oai(status = 204)]
    Disabled,
}

/// OAuth client administration.
pub struct ClientsApi;

#[OpenApi(tag = "ApiTags::Clients")]
impl ClientsApi {
    /// Create a client-credentials client. The secret is returned once and stored only as a hash.
    #[oai(
        path = "/api/v1/clients",
        method = "post",
        operation_id = "createClient"
    )]
    async fn create_client(
        &self,
        #[oai(scope = "Scope::Admin")] auth: Authorized<scope::Admin>,
        state: Data<&AppState>,
        body: Json<CreateClientRequest>,
    ) -> Result<CreateClientResponse, ApiError> {
        let (name, scopes) = body.0.parse()?;
        let client = tokens::create_client(state.db(), &name, scopes).await?;
        tracing::info!(client_id = %client.client_id, created_by = %auth.client_id(), "client created");
        Ok(CreateClientResponse::Created(Json(CreatedClient {
            client_id: client.client_id,
            client_secret: client.client_secret.expose_secret().to_owned(),
            scopes: client
                .scopes
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
        })))
    }

    /// List clients (ids, names, scopes; never secrets).
    #[oai(path = "/api/v1/clients", method = "get", operation_id = "listClients")]
    async fn list_clients(
        &self,
        #[oai(scope = "Scope::Admin")] _auth: Authorized<scope::Admin>,
        state: Data<&AppState>,
    ) -> Result<Json<Vec<ClientInfo>>, ApiError> {
        let clients = tokens::list_clients(state.db()).await?;
        Ok(Json(clients.into_iter().map(ClientInfo::from).collect()))
    }

    /// Disable a client and revoke every access token issued to it. A client cannot disable itself.
    #[oai(
        path = "/api/v1/clients/:client_id/disable",
        method = "post",
        operation_id = "disableClient"
    )]
    async fn disable_client(
        &self,
        #[oai(scope = "Scope::Admin")] auth: Authorized<scope::Admin>,
        state: Data<&AppState>,
        client_id: Path<String>,
    ) -> Result<DisableClientResponse, ApiError> {
        if auth.client_id() == client_id.0 {
            return Err(ApiError::Conflict {
                code: "cannot_disable_self",
                detail: "a client cannot disable itself".into(),
            });
        }
        if !tokens::disable_client(state.db(), &client_id.0).await? {
            return Err(ApiError::NotFound { what: "client" });
        }
        state.token_cache().evict_client(&client_id.0);
        tracing::info!(client_id = %client_id.0, disabled_by = %auth.client_id(), "client disabled");
        Ok(DisableClientResponse::Disabled)
    }
}
