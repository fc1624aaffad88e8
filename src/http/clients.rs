//! Administration of OAuth clients (scope `admin`, global callers only): create clients (global, or
//! limited to some issuers with a role on each), list, read, update, rotate the secret, disable,
//! delete. Also the public scope catalogue.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, param::Path, payload::Json};
use secrecy::ExposeSecret;

use super::{
    ApiTags,
    auth::{Authorized, scope},
    text::JsonText,
};
use crate::{
    accounts::memberships::{MembershipError, Role},
    app::AppState,
    error::ApiError,
    invalidation::{self, Change},
    oauth::{
        Scope, ScopeSet,
        clients::{self, ClientError, ClientSpec, ClientUpdate, ClientView},
    },
};

impl From<ClientError> for ApiError {
    fn from(err: ClientError) -> Self {
        match err {
            ClientError::NotFound => ApiError::NotFound { what: "client" },
            ClientError::Invalid(detail) => ApiError::Unprocessable {
                code: "invalid_request",
                detail,
            },
            // In a client's `issuers`, an unknown issuer is a bad field, not a missing resource.
            ClientError::Membership(MembershipError::NotFound("issuer")) => {
                ApiError::Unprocessable {
                    code: "unknown_issuer",
                    detail: "issuers: a named issuer does not exist".into(),
                }
            }
            ClientError::Membership(m) => m.into(),
            ClientError::Db(db) => db.into(),
        }
    }
}

impl From<MembershipError> for ApiError {
    fn from(err: MembershipError) -> Self {
        match err {
            MembershipError::NotFound(what) => ApiError::NotFound { what },
            MembershipError::LastOwner => ApiError::Conflict {
                code: "last_owner",
                detail: err.to_string(),
            },
            MembershipError::UnknownClient(_) => ApiError::Unprocessable {
                code: "unknown_client",
                detail: err.to_string(),
            },
            MembershipError::UnknownUser(_) => ApiError::Unprocessable {
                code: "unknown_user",
                detail: err.to_string(),
            },
            MembershipError::Db(db) => db.into(),
        }
    }
}

/// A role on an issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum MemberRole {
    /// Everything, including signing keys, the profile and the members.
    Owner,
    /// Achievements, issuance, revocation and suspension.
    Issuer,
    /// Read only.
    Viewer,
}

impl From<MemberRole> for Role {
    fn from(r: MemberRole) -> Self {
        match r {
            MemberRole::Owner => Role::Owner,
            MemberRole::Issuer => Role::Issuer,
            MemberRole::Viewer => Role::Viewer,
        }
    }
}

impl From<Role> for MemberRole {
    fn from(r: Role) -> Self {
        match r {
            Role::Owner => MemberRole::Owner,
            Role::Issuer => MemberRole::Issuer,
            Role::Viewer => MemberRole::Viewer,
        }
    }
}

/// A client's role on one issuer.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct IssuerRole {
    /// Issuer id (CUID).
    #[oai(validator(min_length = 1, max_length = 64))]
    pub issuer_id: String,
    /// `owner`, `issuer` or `viewer`.
    pub role: MemberRole,
}

fn parse_memberships(
    list: Option<Vec<IssuerRole>>,
) -> Result<Option<HashMap<String, Role>>, ApiError> {
    let Some(list) = list else {
        return Ok(None);
    };
    let mut out = HashMap::with_capacity(list.len());
    for m in list {
        if out
            .insert(m.issuer_id.clone(), Role::from(m.role))
            .is_some()
        {
            return Err(ApiError::Unprocessable {
                code: "invalid_request",
                detail: format!("issuers: `{}` is named twice", m.issuer_id),
            });
        }
    }
    Ok(Some(out))
}

fn parse_scopes(scopes: &[String]) -> Result<ScopeSet, ApiError> {
    ScopeSet::parse(&scopes.join(" ")).map_err(|e| ApiError::Unprocessable {
        code: "unknown_scope",
        detail: e.to_string(),
    })
}

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
    /// Redirect URIs (https, or http on a loopback host; at most 10) for the authorization-code
    /// flow.
    #[oai(validator(max_items = 10))]
    pub redirect_uris: Option<Vec<String>>,
    /// Limits the client to these issuers with these roles; without it the client is global (acts
    /// on every issuer).
    #[oai(validator(max_items = 1000))]
    pub issuers: Option<Vec<IssuerRole>>,
}

impl CreateClientRequest {
    /// The trimmed name and the scope set, or 422 naming the first member that is not acceptable:
    /// a non-string or blank name, a non-string, blank or unknown scope.
    fn parse_name_and_scopes(
        name: JsonText,
        scopes: Vec<JsonText>,
    ) -> Result<(String, ScopeSet), ApiError> {
        let name = name.into_string("name")?;
        let name = name.trim();
        if name.is_empty() {
            return Err(ApiError::Unprocessable {
                code: "invalid_field",
                detail: "`name` must not be blank".into(),
            });
        }
        let mut parsed = Vec::with_capacity(scopes.len());
        for (i, scope) in scopes.into_iter().enumerate() {
            let scope = scope.into_string(&format!("scopes[{i}]"))?;
            let scope = scope.trim();
            if scope.is_empty() || scope.contains(char::is_whitespace) {
                return Err(ApiError::Unprocessable {
                    code: "invalid_field",
                    detail: format!("`scopes[{i}]` must be one scope, not blank or several"),
                });
            }
            parsed.push(scope.to_owned());
        }
        let scopes = ScopeSet::parse(&parsed.join(" ")).map_err(|e| ApiError::Unprocessable {
            code: "unknown_scope",
            detail: e.to_string(),
        })?;
        Ok((name.to_owned(), scopes))
    }
}

/// A partial update of a client; absent fields stay as they are.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct UpdateClientRequest {
    /// Display name (1–200 characters).
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: Option<String>,
    /// Scopes the client may request. Narrowing them revokes the client's live tokens.
    #[oai(validator(min_items = 1, max_items = 32))]
    pub scopes: Option<Vec<String>>,
    /// Redirect URIs (replaces the list).
    #[oai(validator(max_items = 10))]
    pub redirect_uris: Option<Vec<String>>,
    /// Replaces the client's memberships and limits it to them (it is no longer global).
    #[oai(validator(max_items = 1000))]
    pub issuers: Option<Vec<IssuerRole>>,
    /// `true` makes the client global again; `false` limits it to its memberships.
    pub global: Option<bool>,
}

/// A newly created (or re-keyed) client, with its secret (shown only in this response).
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct CreatedClient {
    /// Client id (CUID2).
    pub client_id: String,
    /// Client secret; store it now, it cannot be retrieved later.
    pub client_secret: String,
    /// Scopes the client may request.
    pub scopes: Vec<String>,
    /// Whether the client acts on every issuer.
    pub global: bool,
    /// The issuers it is limited to (when not global).
    pub issuers: Vec<IssuerRole>,
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
    /// Whether the client acts on every issuer (clients created before tenancy are global).
    pub global: bool,
    /// Its memberships: the only issuers it may act on when it is not global.
    pub issuers: Vec<IssuerRole>,
    /// Registered redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Last change through client management.
    pub updated_at: Option<DateTime<Utc>>,
}

fn issuer_roles(map: &HashMap<String, Role>) -> Vec<IssuerRole> {
    let mut list: Vec<IssuerRole> = map
        .iter()
        .map(|(issuer_id, role)| IssuerRole {
            issuer_id: issuer_id.clone(),
            role: (*role).into(),
        })
        .collect();
    list.sort_by(|a, b| a.issuer_id.cmp(&b.issuer_id));
    list
}

fn words(s: &str) -> Vec<String> {
    s.split_ascii_whitespace().map(str::to_owned).collect()
}

impl From<ClientView> for ClientInfo {
    fn from(v: ClientView) -> Self {
        let m = v.client;
        Self {
            issuers: issuer_roles(&v.memberships),
            id: m.id,
            name: m.name,
            scopes: words(&m.scopes),
            kind: m.kind,
            created_at: m.created_at,
            disabled_at: m.disabled_at,
            global: m.global,
            redirect_uris: words(&m.redirect_uris),
            updated_at: m.updated_at,
        }
    }
}

fn with_secret(c: clients::WithSecret) -> CreatedClient {
    CreatedClient {
        client_id: c.view.client.id.clone(),
        client_secret: c.client_secret.expose_secret().to_owned(),
        scopes: words(&c.view.client.scopes),
        global: c.view.client.global,
        issuers: issuer_roles(&c.view.memberships),
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

/// Deleted.
#[derive(ApiResponse)]
pub enum DeleteClientResponse {
    /// The client, its tokens and its memberships are gone.
    #[oai(status = 204)]
    Deleted,
}

/// One scope of the catalogue.
#[derive(Debug, Object)]
pub struct ScopeInfo {
    /// The scope string, as requested and granted.
    pub scope: String,
    /// What granting it allows, in plain words (the consent page shows the same text).
    pub description: String,
}

fn not_self(
    auth: &Authorized<scope::Admin>,
    client_id: &str,
    code: &'static str,
    verb: &str,
) -> Result<(), ApiError> {
    if auth.client_id() == client_id {
        return Err(ApiError::Conflict {
            code,
            detail: format!("a client cannot {verb} itself"),
        });
    }
    Ok(())
}

/// OAuth client administration.
pub struct ClientsApi;

#[OpenApi(tag = "ApiTags::Clients")]
impl ClientsApi {
    /// Create a client-credentials client. The secret is returned once and stored only as a hash.
    /// With `issuers` the client is limited to those issuers (404 for any other), with the given
    /// role on each; without it the client is global. Global callers only.
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
        auth.caller.require_global()?;
        let CreateClientRequest {
            name,
            scopes,
            redirect_uris,
            issuers,
        } = body.0;
        let (name, scopes) = CreateClientRequest::parse_name_and_scopes(name, scopes)?;
        let spec = ClientSpec {
            scopes,
            name,
            redirect_uris: redirect_uris.unwrap_or_default(),
            issuers: parse_memberships(issuers)?,
        };
        let client = clients::create_client(state.db(), spec, &auth.actor()).await?;
        tracing::info!(client_id = %client.view.client.id, created_by = %auth.actor(), "client created");
        Ok(CreateClientResponse::Created(Json(with_secret(client))))
    }

    /// List clients (ids, names, scopes, memberships; never secrets). Global callers only.
    #[oai(path = "/api/v1/clients", method = "get", operation_id = "listClients")]
    async fn list_clients(
        &self,
        #[oai(scope = "Scope::Admin")] auth: Authorized<scope::Admin>,
        state: Data<&AppState>,
    ) -> Result<Json<Vec<ClientInfo>>, ApiError> {
        auth.caller.require_global()?;
        let clients = clients::list_clients(state.db()).await?;
        Ok(Json(clients.into_iter().map(ClientInfo::from).collect()))
    }

    /// Get one client (never its secret). Global callers only.
    #[oai(
        path = "/api/v1/clients/:client_id",
        method = "get",
        operation_id = "getClient"
    )]
    async fn get_client(
        &self,
        #[oai(scope = "Scope::Admin")] auth: Authorized<scope::Admin>,
        state: Data<&AppState>,
        /// Client id.
        client_id: Path<String>,
    ) -> Result<Json<ClientInfo>, ApiError> {
        auth.caller.require_global()?;
        let client = clients::get_client(state.db(), &client_id).await?;
        Ok(Json(client.into()))
    }

    /// Update a client: name, allowed scopes (narrowing them revokes its live tokens), redirect
    /// URIs, memberships (`issuers` replaces them and makes the client non-global) or `global`.
    /// Removing or demoting an issuer's last owner is refused with 409 `last_owner`. Global callers
    /// only.
    #[oai(
        path = "/api/v1/clients/:client_id",
        method = "patch",
        operation_id = "updateClient"
    )]
    async fn update_client(
        &self,
        #[oai(scope = "Scope::Admin")] auth: Authorized<scope::Admin>,
        state: Data<&AppState>,
        /// Client id.
        client_id: Path<String>,
        body: Json<UpdateClientRequest>,
    ) -> Result<Json<ClientInfo>, ApiError> {
        auth.caller.require_global()?;
        let body = body.0;
        let update = ClientUpdate {
            name: body.name,
            scopes: body.scopes.as_deref().map(parse_scopes).transpose()?,
            redirect_uris: body.redirect_uris,
            issuers: parse_memberships(body.issuers)?,
            global: body.global,
        };
        let client = clients::update_client(state.db(), &client_id, update, &auth.actor()).await?;
        invalidation::changed(&state, Change::Client(client_id.0.clone())).await;
        Ok(Json(client.into()))
    }

    /// Replace a client's secret. The old secret stops working at once and every access token
    /// issued to the client is revoked; the new secret is returned only in this response. Global
    /// callers only.
    #[oai(
        path = "/api/v1/clients/:client_id/rotate-secret",
        method = "post",
        operation_id = "rotateClientSecret"
    )]
    async fn rotate_secret(
        &self,
        #[oai(scope = "Scope::Admin")] auth: Authorized<scope::Admin>,
        state: Data<&AppState>,
        /// Client id.
        client_id: Path<String>,
    ) -> Result<Json<CreatedClient>, ApiError> {
        auth.caller.require_global()?;
        let client = clients::rotate_secret(state.db(), &client_id, &auth.actor()).await?;
        invalidation::changed(&state, Change::Client(client_id.0.clone())).await;
        Ok(Json(with_secret(client)))
    }

    /// Disable a client and revoke every access token issued to it. A client cannot disable itself.
    /// Global callers only.
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
        auth.caller.require_global()?;
        not_self(&auth, &client_id, "cannot_disable_self", "disable")?;
        if !clients::disable_client(state.db(), &client_id, &auth.actor()).await? {
            return Err(ApiError::NotFound { what: "client" });
        }
        invalidation::changed(&state, Change::Client(client_id.0.clone())).await;
        tracing::info!(client_id = %client_id.0, disabled_by = %auth.actor(), "client disabled");
        Ok(DisableClientResponse::Disabled)
    }

    /// Delete a client with its tokens and memberships. A client cannot delete itself; the last
    /// owner of an issuer cannot be deleted (409 `last_owner`). Global callers only.
    #[oai(
        path = "/api/v1/clients/:client_id",
        method = "delete",
        operation_id = "deleteClient"
    )]
    async fn delete_client(
        &self,
        #[oai(scope = "Scope::Admin")] auth: Authorized<scope::Admin>,
        state: Data<&AppState>,
        /// Client id.
        client_id: Path<String>,
    ) -> Result<DeleteClientResponse, ApiError> {
        auth.caller.require_global()?;
        not_self(&auth, &client_id, "cannot_delete_self", "delete")?;
        clients::delete_client(state.db(), &client_id, &auth.actor()).await?;
        invalidation::changed(&state, Change::Client(client_id.0.clone())).await;
        Ok(DeleteClientResponse::Deleted)
    }

    /// The scope catalogue: every scope this service grants, with what it allows in plain words.
    /// Public.
    #[oai(
        path = "/api/v1/scopes",
        method = "get",
        operation_id = "listScopes",
        tag = "ApiTags::OAuth"
    )]
    async fn list_scopes(&self) -> Json<Vec<ScopeInfo>> {
        Json(
            Scope::ALL
                .into_iter()
                .map(|s| ScopeInfo {
                    scope: s.as_str().to_owned(),
                    description: s.description().to_owned(),
                })
                .collect(),
        )
    }
}
