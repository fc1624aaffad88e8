//! Connections to other OB 3.0 hosts (oxbadge as a Service Consumer), for the signed-in person
//! (`/api/v1/account/hosts`: connect, import) and for the issuers they staff
//! (`/api/v1/issuers/{id}/hosts`: connect, push credentials and the Profile). Session cookie;
//! writes also `X-CSRF-Token`. A host's failure is a 502 (`host_error`, `host_rejected_token`) or
//! 504 (`host_unreachable`) problem whose detail quotes what the host did.

use poem::web::Data;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, param::Path, payload::Json};
use serde_json::Value;

use super::{
    ApiTags,
    account::{SessionCaller, SessionWriter},
};
use crate::{
    app::AppState,
    db::host_connection,
    error::{ApiError, UpstreamError},
    ob3::consumer::{
        ConsumerError,
        connection::{self, Access, Owner},
        import::{self, ImportReport},
        push,
        remote_host::HostBase,
    },
};

impl From<ConsumerError> for UpstreamError {
    fn from(err: ConsumerError) -> Self {
        Self(err.into())
    }
}

impl From<ConsumerError> for ApiError {
    fn from(err: ConsumerError) -> Self {
        match err {
            ConsumerError::InvalidBaseUrl(detail) => ApiError::Unprocessable {
                code: "invalid_host_url",
                detail,
            },
            ConsumerError::Refused(detail) => ApiError::Unprocessable {
                code: "host_refused",
                detail,
            },
            ConsumerError::Unreachable(detail) => ApiError::GatewayTimeout {
                code: "host_unreachable",
                detail,
            },
            ConsumerError::HostError(detail) => ApiError::BadGateway {
                code: "host_error",
                detail,
            },
            ConsumerError::TokenRejected(detail) => ApiError::BadGateway {
                code: "host_rejected_token",
                detail,
            },
            ConsumerError::Authorization(detail) => ApiError::BadRequest {
                code: "authorization_failed",
                detail,
            },
            ConsumerError::NotFound => ApiError::NotFound {
                what: "host connection",
            },
            ConsumerError::NotConnected(detail) => ApiError::Conflict {
                code: "host_not_connected",
                detail,
            },
            ConsumerError::Forbidden => ApiError::InsufficientRole { required: "issuer" },
            ConsumerError::RateLimited(wait) => ApiError::TooManyRequests {
                retry_after_secs: wait.as_secs().max(1),
            },
            ConsumerError::Envelope(e) => ApiError::internal(e),
            ConsumerError::Db(e) => e.into(),
        }
    }
}

/// What a connection may do at the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum HostAccess {
    /// Read badges and the profile (`credential.readonly`, `profile.readonly`).
    Read,
    /// Add badges and update the profile (`credential.upsert`, `profile.update`).
    Write,
    /// Both.
    Full,
}

impl From<HostAccess> for Access {
    fn from(a: HostAccess) -> Self {
        match a {
            HostAccess::Read => Access::Read,
            HostAccess::Write => Access::Write,
            HostAccess::Full => Access::Full,
        }
    }
}

/// Connecting a host.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ConnectHostRequest {
    /// The host's base URL (its discovery document is `<base>/ims/ob/v3p0/discovery`).
    #[oai(validator(max_length = 2048))]
    pub base_url: String,
    /// What to ask for; default `read` for a person, `write` for an issuer.
    pub access: Option<HostAccess>,
}

/// A started connection.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct StartedConnection {
    /// The connection.
    pub connection_id: String,
    /// Open this in the person's browser: they sign in at the host and allow the access; the host
    /// sends the browser back to `/account/hosts/callback`, which completes the connection.
    pub authorization_url: String,
}

/// A connection to another host (no secrets).
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct HostConnection {
    pub id: String,
    /// `user` or `issuer`.
    pub owner_kind: String,
    pub owner_id: String,
    pub base_url: String,
    /// The host's name (its discovery document's `info.title`).
    pub host_name: Option<String>,
    /// `pending`, `connected` or `disconnected`.
    pub status: String,
    /// The granted (or, while pending, requested) scopes.
    pub scopes: Vec<String>,
    /// When the access token expires (it is refreshed as needed).
    pub token_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The last problem talking to the host.
    pub last_error: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<host_connection::Model> for HostConnection {
    fn from(m: host_connection::Model) -> Self {
        Self {
            scopes: m.scopes.split_whitespace().map(str::to_owned).collect(),
            id: m.id,
            owner_kind: m.owner_kind,
            owner_id: m.owner_id,
            base_url: m.base_url,
            host_name: m.host_name,
            status: m.status,
            token_expires_at: m.token_expires_at,
            last_error: m.last_error,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// One imported credential.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ImportedCredential {
    pub credential_id: String,
    /// `created`, `replaced` or `kept` (the copy here is newer).
    pub outcome: String,
}

/// A credential that was not imported.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct RejectedCredential {
    pub credential_id: Option<String>,
    /// Why (the verification's failed checks, or what is malformed).
    pub reason: String,
}

/// The outcome of an import.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ImportReportBody {
    /// Pages of `getCredentials` read.
    pub pages: u32,
    /// The host's `X-Total-Count`.
    pub total: Option<u64>,
    /// Credentials received.
    pub received: u64,
    pub imported: Vec<ImportedCredential>,
    pub rejected: Vec<RejectedCredential>,
    /// The person's Profile at the host.
    pub profile: Option<Value>,
}

impl From<ImportReport> for ImportReportBody {
    fn from(r: ImportReport) -> Self {
        Self {
            pages: r.pages,
            total: r.total,
            received: r.received,
            imported: r
                .imported
                .into_iter()
                .map(|i| ImportedCredential {
                    credential_id: i.credential_id,
                    outcome: i.outcome.to_owned(),
                })
                .collect(),
            rejected: r
                .rejected
                .into_iter()
                .map(|r| RejectedCredential {
                    credential_id: r.credential_id,
                    reason: r.reason,
                })
                .collect(),
            profile: r.profile,
        }
    }
}

/// Pushing a credential issued here.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct PushCredentialRequest {
    /// The credential's id here (`GET /api/v1/credentials/{id}`).
    pub credential_id: String,
}

/// The host's answer to a push.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct PushResult {
    /// 201 (new at the host) or 200 (replaced, or the host kept its newer copy).
    pub host_status: u16,
    /// What the host echoed (the stored credential or Profile).
    pub host_body: Value,
}

/// Disconnect answer.
#[derive(ApiResponse)]
pub enum DisconnectResponse {
    /// Disconnected; the tokens were revoked at the host and forgotten here.
    #[oai(status = 204)]
    Done,
}

/// Start answer.
#[derive(ApiResponse)]
pub enum StartResponse {
    /// Registered at the host; the authorization is pending.
    #[oai(status = 201)]
    Started(Json<StartedConnection>),
}

async fn start(
    state: &AppState,
    owner: Owner,
    user_id: &str,
    body: ConnectHostRequest,
) -> Result<StartResponse, UpstreamError> {
    let access = body
        .access
        .map(Access::from)
        .unwrap_or_else(|| Access::default_for(&owner));
    let base = HostBase::parse(&body.base_url)?;
    let started = connection::start(state, &owner, user_id, base, access).await?;
    Ok(StartResponse::Started(Json(StartedConnection {
        connection_id: started.connection_id,
        authorization_url: started.authorization_url,
    })))
}

/// The signed-in person's and their issuers' connections to other OB 3.0 hosts.
pub struct HostsApi;

#[OpenApi(tag = "ApiTags::Account")]
impl HostsApi {
    /// The signed-in person's connections to other OB 3.0 hosts, newest first.
    #[oai(
        path = "/api/v1/account/hosts",
        method = "get",
        operation_id = "listHostConnections"
    )]
    async fn list(
        &self,
        caller: SessionCaller,
        state: Data<&AppState>,
    ) -> Result<Json<Vec<HostConnection>>, ApiError> {
        let rows = connection::list(state.db(), &Owner::User(caller.user.user_id.clone())).await?;
        Ok(Json(rows.into_iter().map(Into::into).collect()))
    }

    /// Starts connecting another OB 3.0 host: reads its discovery document, registers this
    /// service there (RFC 7591), and answers the authorization URL (authorization code with
    /// PKCE S256) to open in the person's browser. 422 `invalid_host_url` or `host_refused`
    /// (https only; private addresses only when configured); 502/504 when the host fails.
    #[oai(
        path = "/api/v1/account/hosts",
        method = "post",
        operation_id = "connectHost"
    )]
    async fn connect(
        &self,
        SessionWriter(caller): SessionWriter,
        state: Data<&AppState>,
        body: Json<ConnectHostRequest>,
    ) -> Result<StartResponse, UpstreamError> {
        let user = caller.user.user_id.clone();
        start(&state, Owner::User(user.clone()), &user, body.0).await
    }

    /// Imports from a connected host: every page of its `getCredentials` (following
    /// `Link: rel="next"`), each credential verified here and the verifiable ones added to the
    /// person's collection (the OB 3.0 equality rule: the newer `validFrom` wins); the report
    /// lists the others with the reason. Also reads the person's Profile there.
    #[oai(
        path = "/api/v1/account/hosts/:id/import",
        method = "post",
        operation_id = "importFromHost"
    )]
    async fn import(
        &self,
        SessionWriter(caller): SessionWriter,
        state: Data<&AppState>,
        /// The connection.
        id: Path<String>,
    ) -> Result<Json<ImportReportBody>, UpstreamError> {
        let owner = Owner::User(caller.user.user_id.clone());
        let row = connection::get(state.db(), &owner, &id.0).await?;
        Ok(Json(import::import(&state, row).await?.into()))
    }

    /// Disconnects a host: revokes our tokens there and forgets them here.
    #[oai(
        path = "/api/v1/account/hosts/:id",
        method = "delete",
        operation_id = "disconnectHost"
    )]
    async fn disconnect(
        &self,
        SessionWriter(caller): SessionWriter,
        state: Data<&AppState>,
        /// The connection.
        id: Path<String>,
    ) -> Result<DisconnectResponse, UpstreamError> {
        let owner = Owner::User(caller.user.user_id.clone());
        let row = connection::get(state.db(), &owner, &id.0).await?;
        connection::disconnect(&state, row).await?;
        Ok(DisconnectResponse::Done)
    }

    /// An issuer's connections to recipients' hosts (role owner or issuer).
    #[oai(
        path = "/api/v1/issuers/:id/hosts",
        method = "get",
        operation_id = "listIssuerHostConnections"
    )]
    async fn list_for_issuer(
        &self,
        caller: SessionCaller,
        state: Data<&AppState>,
        /// The issuer.
        id: Path<String>,
    ) -> Result<Json<Vec<HostConnection>>, ApiError> {
        let owner = Owner::Issuer(id.0);
        connection::authorize_owner(state.db(), &caller.user.user_id, &owner).await?;
        let rows = connection::list(state.db(), &owner).await?;
        Ok(Json(rows.into_iter().map(Into::into).collect()))
    }

    /// Starts connecting a recipient's host for an issuer (role owner or issuer): the person at
    /// the host authorizes in their browser (send them the answer's URL).
    #[oai(
        path = "/api/v1/issuers/:id/hosts",
        method = "post",
        operation_id = "connectIssuerHost"
    )]
    async fn connect_for_issuer(
        &self,
        SessionWriter(caller): SessionWriter,
        state: Data<&AppState>,
        /// The issuer.
        id: Path<String>,
        body: Json<ConnectHostRequest>,
    ) -> Result<StartResponse, UpstreamError> {
        start(&state, Owner::Issuer(id.0), &caller.user.user_id, body.0).await
    }

    /// Sends a credential this issuer issued to the connected host (`upsertCredential`).
    #[oai(
        path = "/api/v1/issuers/:id/hosts/:connection_id/credentials",
        method = "post",
        operation_id = "pushCredentialToHost"
    )]
    async fn push_credential(
        &self,
        SessionWriter(caller): SessionWriter,
        state: Data<&AppState>,
        /// The issuer.
        id: Path<String>,
        /// The connection.
        connection_id: Path<String>,
        body: Json<PushCredentialRequest>,
    ) -> Result<Json<PushResult>, UpstreamError> {
        let owner = Owner::Issuer(id.0);
        connection::authorize_owner(state.db(), &caller.user.user_id, &owner).await?;
        let row = connection::get(state.db(), &owner, &connection_id.0).await?;
        let (_, outcome) = push::push_issued_credential(&state, row, &body.0.credential_id).await?;
        Ok(Json(PushResult {
            host_status: outcome.status,
            host_body: serde_json::from_str(&outcome.body).unwrap_or(Value::String(outcome.body)),
        }))
    }

    /// Puts this issuer's Profile at the connected host (`putProfile`).
    #[oai(
        path = "/api/v1/issuers/:id/hosts/:connection_id/profile",
        method = "put",
        operation_id = "pushProfileToHost"
    )]
    async fn push_profile(
        &self,
        SessionWriter(caller): SessionWriter,
        state: Data<&AppState>,
        /// The issuer.
        id: Path<String>,
        /// The connection.
        connection_id: Path<String>,
    ) -> Result<Json<PushResult>, UpstreamError> {
        let owner = Owner::Issuer(id.0);
        connection::authorize_owner(state.db(), &caller.user.user_id, &owner).await?;
        let row = connection::get(state.db(), &owner, &connection_id.0).await?;
        let (_, profile) = push::push_issuer_profile(&state, row).await?;
        Ok(Json(PushResult {
            host_status: 200,
            host_body: profile,
        }))
    }

    /// Disconnects an issuer's host connection (role owner or issuer).
    #[oai(
        path = "/api/v1/issuers/:id/hosts/:connection_id",
        method = "delete",
        operation_id = "disconnectIssuerHost"
    )]
    async fn disconnect_for_issuer(
        &self,
        SessionWriter(caller): SessionWriter,
        state: Data<&AppState>,
        /// The issuer.
        id: Path<String>,
        /// The connection.
        connection_id: Path<String>,
    ) -> Result<DisconnectResponse, UpstreamError> {
        let owner = Owner::Issuer(id.0);
        connection::authorize_owner(state.db(), &caller.user.user_id, &owner).await?;
        let row = connection::get(state.db(), &owner, &connection_id.0).await?;
        connection::disconnect(&state, row).await?;
        Ok(DisconnectResponse::Done)
    }
}
