//! Connections: starting one (discovery, registration, a pending authorization with PKCE and a
//! single-use `state` bound to the person who started it), completing it at the callback (the code
//! exchange), authorized calls (refresh when expired, and once more on a 401), and disconnecting
//! (revocation at the host).

use chrono::{DateTime, Duration, Utc};
use reqwest::header::{ACCEPT, AUTHORIZATION};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Set, sea_query::Expr,
};
use secrecy::{ExposeSecret, SecretString};

use super::{
    ConsumerError,
    registration::{self, ClientProfile},
    remote_host::{self, HostBase, RemoteHost},
    tokens::{self, ClientAuth, SecretColumn},
};
use crate::{
    accounts::memberships::{self, Principal, Role},
    app::AppState,
    db::host_connection,
    verify::fetch::{OutboundRequest, OutboundResponse},
};

/// How long a started authorization may take to come back.
const PENDING_LIFETIME_MINUTES: i64 = 10;
/// Refresh this long before the access token's expiry.
const EXPIRY_MARGIN_SECS: i64 = 30;

const SCOPE_CREDENTIAL_READ: &str =
    "https://purl.imsglobal.org/spec/ob/v3p0/scope/credential.readonly";
const SCOPE_CREDENTIAL_UPSERT: &str =
    "https://purl.imsglobal.org/spec/ob/v3p0/scope/credential.upsert";
const SCOPE_PROFILE_READ: &str = "https://purl.imsglobal.org/spec/ob/v3p0/scope/profile.readonly";
const SCOPE_PROFILE_UPDATE: &str = "https://purl.imsglobal.org/spec/ob/v3p0/scope/profile.update";

/// Who a connection acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// An earner: imports their badges and profile from the host.
    User(String),
    /// An issuer: pushes credentials and its Profile to a recipient's host.
    Issuer(String),
}

impl Owner {
    /// `user` or `issuer`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::User(_) => "user",
            Self::Issuer(_) => "issuer",
        }
    }

    /// The user or issuer id.
    pub fn id(&self) -> &str {
        match self {
            Self::User(id) | Self::Issuer(id) => id,
        }
    }
}

/// What a connection may do at the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read the person's badges and profile (import).
    Read,
    /// Add badges and update the profile (push).
    Write,
    /// Both.
    Full,
}

impl Access {
    /// Parses `read`, `write` or `full`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "read" => Some(Self::Read),
            "write" => Some(Self::Write),
            "full" => Some(Self::Full),
            _ => None,
        }
    }

    /// The default for an owner: earners read, issuers write.
    pub fn default_for(owner: &Owner) -> Self {
        match owner {
            Owner::User(_) => Self::Read,
            Owner::Issuer(_) => Self::Write,
        }
    }

    /// The scopes asked for (always with `offline_access`, so the grant outlives an hour).
    pub fn scope(self) -> String {
        let scopes: &[&str] = match self {
            Self::Read => &[SCOPE_CREDENTIAL_READ, SCOPE_PROFILE_READ],
            Self::Write => &[SCOPE_CREDENTIAL_UPSERT, SCOPE_PROFILE_UPDATE],
            Self::Full => &[
                SCOPE_CREDENTIAL_READ,
                SCOPE_CREDENTIAL_UPSERT,
                SCOPE_PROFILE_READ,
                SCOPE_PROFILE_UPDATE,
            ],
        };
        let mut out = scopes.join(" ");
        out.push_str(" offline_access");
        out
    }
}

/// A started connection: send the person's browser to `authorization_url`.
#[derive(Debug, Clone)]
pub struct Started {
    pub connection_id: String,
    pub authorization_url: String,
    pub host: RemoteHost,
}

/// Checks that `user_id` may make connections for `owner` (issuers: role owner or issuer).
pub async fn authorize_owner(
    db: &impl ConnectionTrait,
    user_id: &str,
    owner: &Owner,
) -> Result<(), ConsumerError> {
    match owner {
        Owner::User(id) if id == user_id => Ok(()),
        Owner::User(_) => Err(ConsumerError::NotFound),
        Owner::Issuer(issuer_id) => {
            let access = memberships::load_access(db, &Principal::User(user_id.to_owned())).await?;
            match access.role_on(issuer_id) {
                Some(Role::Owner | Role::Issuer) => Ok(()),
                _ => Err(ConsumerError::Forbidden),
            }
        }
    }
}

/// Starts connecting `owner` to the host at `base`: reads its discovery document, registers
/// (or reuses our registration from an earlier connection of this owner to the host), and stores
/// a pending authorization. The caller sends `user_id`'s browser to the answer's URL.
/// Spends one of `owner`'s calls to other hosts (connections and imports share the budget,
/// `OXBADGE_HOST_CALLS_PER_MINUTE`), so nobody can make this server hammer another host.
pub async fn check_rate(state: &AppState, owner: &Owner) -> Result<(), ConsumerError> {
    let subject = format!("{}:{}", owner.kind(), owner.id());
    state
        .host_call_limiter()
        .check(&subject)
        .await
        .map_err(ConsumerError::RateLimited)
}

pub async fn start(
    state: &AppState,
    owner: &Owner,
    user_id: &str,
    base: HostBase,
    access: Access,
) -> Result<Started, ConsumerError> {
    authorize_owner(state.db(), user_id, owner).await?;
    check_rate(state, owner).await?;
    let fetcher = state.verifier().fetcher();
    let host = remote_host::discover(fetcher, base).await?;
    let scope = access.scope();
    let profile = ClientProfile::from_settings(state.settings(), state.public_url());
    let ring = state.keys().ring();
    let now = state.clock().now();
    let existing = host_connection::Entity::find()
        .filter(host_connection::Column::OwnerKind.eq(owner.kind()))
        .filter(host_connection::Column::OwnerId.eq(owner.id()))
        .filter(host_connection::Column::BaseUrl.eq(host.base.as_str()))
        .filter(host_connection::Column::RegistrationUrl.eq(host.registration_url.as_str()))
        .one(state.db())
        .await?;
    let state_value = tokens::random_token();
    let verifier = tokens::random_token();
    let revocation_url = remote_host::revocation_endpoint(fetcher, &host.token_url).await;
    let (id, client_id) = match existing {
        // Same host, same registration: keep our client (a host need not see us register twice).
        Some(row) if row.scopes_cover(&scope) => {
            let id = row.id.clone();
            let client_id = row.client_id.clone();
            let mut active: host_connection::ActiveModel = row.into();
            active.api_base = Set(host.api_base.clone());
            active.host_name = Set(host.name.clone());
            active.authorization_url = Set(host.authorization_url.clone());
            active.token_url = Set(host.token_url.clone());
            active.refresh_url = Set(host.refresh_url.clone());
            active.revocation_url = Set(revocation_url);
            active.state_hash = Set(Some(tokens::hash_state(&state_value)));
            active.pkce_verifier_sealed = Set(Some(tokens::seal(
                ring,
                &id,
                SecretColumn::PkceVerifier,
                &verifier,
            )?));
            active.pending_expires_at =
                Set(Some(now + Duration::minutes(PENDING_LIFETIME_MINUTES)));
            active.created_by = Set(user_id.to_owned());
            active.updated_at = Set(now);
            active.update(state.db()).await?;
            (id, client_id)
        }
        _ => {
            let registered =
                registration::register(fetcher, &host.registration_url, &profile, &scope).await?;
            let id = crate::db::new_id();
            let client_secret_sealed = registered
                .client_secret
                .as_ref()
                .map(|s| tokens::seal(ring, &id, SecretColumn::ClientSecret, s.expose_secret()))
                .transpose()?;
            host_connection::ActiveModel {
                id: Set(id.clone()),
                owner_kind: Set(owner.kind().to_owned()),
                owner_id: Set(owner.id().to_owned()),
                created_by: Set(user_id.to_owned()),
                base_url: Set(host.base.as_str().to_owned()),
                api_base: Set(host.api_base.clone()),
                host_name: Set(host.name.clone()),
                registration_url: Set(host.registration_url.clone()),
                authorization_url: Set(host.authorization_url.clone()),
                token_url: Set(host.token_url.clone()),
                refresh_url: Set(host.refresh_url.clone()),
                revocation_url: Set(revocation_url),
                client_id: Set(registered.client_id.clone()),
                client_secret_sealed: Set(client_secret_sealed),
                access_token_sealed: Set(None),
                refresh_token_sealed: Set(None),
                token_expires_at: Set(None),
                scopes: Set(scope.clone()),
                status: Set("pending".into()),
                state_hash: Set(Some(tokens::hash_state(&state_value))),
                pkce_verifier_sealed: Set(Some(tokens::seal(
                    ring,
                    &id,
                    SecretColumn::PkceVerifier,
                    &verifier,
                )?)),
                pending_expires_at: Set(Some(now + Duration::minutes(PENDING_LIFETIME_MINUTES))),
                last_error: Set(None),
                remote_profile: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(state.db())
            .await?;
            (id, registered.client_id)
        }
    };
    let mut url = url::Url::parse(&host.authorization_url)
        .map_err(|e| ConsumerError::HostError(format!("the authorization URL: {e}")))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", &profile.redirect_uri)
        .append_pair("scope", &scope)
        .append_pair("state", &state_value)
        .append_pair("code_challenge", &tokens::pkce_challenge(&verifier))
        .append_pair("code_challenge_method", "S256");
    Ok(Started {
        connection_id: id,
        authorization_url: url.to_string(),
        host,
    })
}

impl host_connection::Model {
    /// Whether the scopes recorded cover every scope of `scope`.
    fn scopes_cover(&self, scope: &str) -> bool {
        let have: Vec<&str> = self.scopes.split_whitespace().collect();
        scope.split_whitespace().all(|s| have.contains(&s))
    }

    /// Whether the grant includes `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.split_whitespace().any(|s| s == scope)
    }

    /// The owner.
    pub fn owner(&self) -> Owner {
        if self.owner_kind == "issuer" {
            Owner::Issuer(self.owner_id.clone())
        } else {
            Owner::User(self.owner_id.clone())
        }
    }
}

/// What came back to the callback.
#[derive(Debug, Clone, Default)]
pub struct CallbackParams {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// Completes the authorization `user_id` started: the `state` is spent whatever the outcome
/// (single use), must be this person's and unexpired; the code is exchanged with the PKCE
/// verifier, and the tokens are sealed.
pub async fn complete(
    state: &AppState,
    user_id: &str,
    params: CallbackParams,
) -> Result<host_connection::Model, ConsumerError> {
    let invalid = || {
        ConsumerError::Authorization(
            "this authorization is unknown, was already used or has expired: connect again".into(),
        )
    };
    let state_value = params.state.filter(|s| !s.is_empty()).ok_or_else(invalid)?;
    let hash = tokens::hash_state(&state_value);
    let db = state.db();
    let row = host_connection::Entity::find()
        .filter(host_connection::Column::StateHash.eq(hash.as_str()))
        .one(db)
        .await?
        .ok_or_else(invalid)?;
    // Spend the state first: a replayed callback finds nothing.
    let spent = host_connection::Entity::update_many()
        .col_expr(
            host_connection::Column::StateHash,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            host_connection::Column::PkceVerifierSealed,
            Expr::value(Option::<String>::None),
        )
        .filter(host_connection::Column::Id.eq(row.id.as_str()))
        .filter(host_connection::Column::StateHash.eq(hash.as_str()))
        .exec(db)
        .await?;
    let now = state.clock().now();
    if spent.rows_affected != 1
        || row.created_by != user_id
        || row.pending_expires_at.is_none_or(|t| t <= now)
    {
        return Err(invalid());
    }
    if let Some(error) = params.error {
        let detail = params.error_description.unwrap_or_default();
        record_error(db, &row.id, &format!("authorization: {error} {detail}")).await?;
        return Err(ConsumerError::Authorization(if error == "access_denied" {
            "the host's person did not allow the access".into()
        } else {
            format!("the host answered {error}: {detail}")
        }));
    }
    let code = params.code.filter(|c| !c.is_empty()).ok_or_else(invalid)?;
    let ring = state.keys().ring();
    let verifier = tokens::open(
        ring,
        &row.id,
        SecretColumn::PkceVerifier,
        row.pkce_verifier_sealed.as_deref().ok_or_else(invalid)?,
    )?;
    let secret = client_secret(state, &row)?;
    let profile = ClientProfile::from_settings(state.settings(), state.public_url());
    let answer = tokens::token_request(
        state.verifier().fetcher(),
        &row.token_url,
        &ClientAuth {
            client_id: &row.client_id,
            client_secret: secret.as_ref(),
        },
        vec![
            ("grant_type".into(), "authorization_code".into()),
            ("code".into(), code),
            ("redirect_uri".into(), profile.redirect_uri),
            ("code_verifier".into(), verifier.expose_secret().to_owned()),
        ],
    )
    .await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => {
            record_error(db, &row.id, &e.to_string()).await?;
            return Err(e);
        }
    };
    store_tokens(state, row, answer, now).await
}

async fn record_error(
    db: &DatabaseConnection,
    id: &str,
    message: &str,
) -> Result<(), ConsumerError> {
    host_connection::Entity::update_many()
        .col_expr(
            host_connection::Column::LastError,
            Expr::value(Some(message.chars().take(500).collect::<String>())),
        )
        .filter(host_connection::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

fn client_secret(
    state: &AppState,
    row: &host_connection::Model,
) -> Result<Option<SecretString>, ConsumerError> {
    row.client_secret_sealed
        .as_deref()
        .map(|t| tokens::open(state.keys().ring(), &row.id, SecretColumn::ClientSecret, t))
        .transpose()
}

async fn store_tokens(
    state: &AppState,
    row: host_connection::Model,
    answer: tokens::TokenAnswer,
    now: DateTime<Utc>,
) -> Result<host_connection::Model, ConsumerError> {
    let ring = state.keys().ring();
    let id = row.id.clone();
    let keep_refresh = row.refresh_token_sealed.clone();
    let requested = row.scopes.clone();
    let mut active: host_connection::ActiveModel = row.into();
    active.access_token_sealed = Set(Some(tokens::seal(
        ring,
        &id,
        SecretColumn::AccessToken,
        answer.access_token.expose_secret(),
    )?));
    // A refresh answer without a new refresh token keeps the old one (RFC 6749 §6).
    active.refresh_token_sealed = Set(match &answer.refresh_token {
        Some(t) => Some(tokens::seal(
            ring,
            &id,
            SecretColumn::RefreshToken,
            t.expose_secret(),
        )?),
        None => keep_refresh,
    });
    active.token_expires_at = Set(answer.expires_in.map(|s| now + Duration::seconds(s)));
    active.scopes = Set(answer.scope.unwrap_or(requested));
    active.status = Set("connected".into());
    active.state_hash = Set(None);
    active.pkce_verifier_sealed = Set(None);
    active.pending_expires_at = Set(None);
    active.last_error = Set(None);
    active.updated_at = Set(now);
    Ok(active.update(state.db()).await?)
}

/// The owner's connections, newest first.
pub async fn list(
    db: &impl ConnectionTrait,
    owner: &Owner,
) -> Result<Vec<host_connection::Model>, ConsumerError> {
    Ok(host_connection::Entity::find()
        .filter(host_connection::Column::OwnerKind.eq(owner.kind()))
        .filter(host_connection::Column::OwnerId.eq(owner.id()))
        .order_by_desc(host_connection::Column::CreatedAt)
        .all(db)
        .await?)
}

/// One connection of the owner.
pub async fn get(
    db: &impl ConnectionTrait,
    owner: &Owner,
    id: &str,
) -> Result<host_connection::Model, ConsumerError> {
    host_connection::Entity::find_by_id(id)
        .filter(host_connection::Column::OwnerKind.eq(owner.kind()))
        .filter(host_connection::Column::OwnerId.eq(owner.id()))
        .one(db)
        .await?
        .ok_or(ConsumerError::NotFound)
}

/// Refreshes the connection's tokens now (at the `refreshUrl`, else the token URL).
pub async fn refresh(
    state: &AppState,
    row: host_connection::Model,
) -> Result<host_connection::Model, ConsumerError> {
    let ring = state.keys().ring();
    let refresh_token = row
        .refresh_token_sealed
        .as_deref()
        .map(|t| tokens::open(ring, &row.id, SecretColumn::RefreshToken, t))
        .transpose()?
        .ok_or_else(|| {
            ConsumerError::TokenRejected(
                "the access expired and the host gave no refresh token: connect again".into(),
            )
        })?;
    let secret = client_secret(state, &row)?;
    let url = row
        .refresh_url
        .clone()
        .unwrap_or_else(|| row.token_url.clone());
    let answer = tokens::token_request(
        state.verifier().fetcher(),
        &url,
        &ClientAuth {
            client_id: &row.client_id,
            client_secret: secret.as_ref(),
        },
        vec![
            ("grant_type".into(), "refresh_token".into()),
            (
                "refresh_token".into(),
                refresh_token.expose_secret().to_owned(),
            ),
        ],
    )
    .await;
    match answer {
        Ok(answer) => store_tokens(state, row, answer, state.clock().now()).await,
        Err(e) => {
            record_error(state.db(), &row.id, &e.to_string()).await?;
            Err(e)
        }
    }
}

/// The connection's access token (opened), after a refresh when it is (about to be) expired.
pub async fn access_token(
    state: &AppState,
    mut row: host_connection::Model,
) -> Result<(host_connection::Model, SecretString), ConsumerError> {
    if row.status != "connected" {
        return Err(ConsumerError::NotConnected(format!(
            "the connection to {} is {}: connect again",
            row.base_url, row.status
        )));
    }
    let now = state.clock().now();
    if row
        .token_expires_at
        .is_some_and(|t| t <= now + Duration::seconds(EXPIRY_MARGIN_SECS))
    {
        row = refresh(state, row).await?;
    }
    let sealed = row
        .access_token_sealed
        .as_deref()
        .ok_or_else(|| ConsumerError::NotConnected("the connection has no token".into()))?;
    let token = tokens::open(
        state.keys().ring(),
        &row.id,
        SecretColumn::AccessToken,
        sealed,
    )?;
    Ok((row, token))
}

/// Sends a request built by `build` with the connection's bearer token; on a 401 refreshes once
/// and retries. Any other answer goes back to the caller.
pub async fn authorized_send(
    state: &AppState,
    row: host_connection::Model,
    build: impl Fn() -> OutboundRequest,
) -> Result<(host_connection::Model, OutboundResponse), ConsumerError> {
    let (row, token) = access_token(state, row).await?;
    let fetcher = state.verifier().fetcher();
    let send = |token: &SecretString| {
        fetcher.send(
            build()
                .header(AUTHORIZATION, format!("Bearer {}", token.expose_secret()))
                .header(ACCEPT, "application/json"),
        )
    };
    let answer = send(&token).await?;
    if answer.status != 401 || row.refresh_token_sealed.is_none() {
        if answer.status == 401 {
            return Err(ConsumerError::TokenRejected(format!(
                "the host refused our token (HTTP 401): {}",
                super::excerpt(&answer.body)
            )));
        }
        return Ok((row, answer));
    }
    let row = refresh(state, row).await?;
    let (row, token) = access_token(state, row).await?;
    let answer = send(&token).await?;
    if answer.status == 401 {
        return Err(ConsumerError::TokenRejected(format!(
            "the host refused our token even after a refresh (HTTP 401): {}",
            super::excerpt(&answer.body)
        )));
    }
    Ok((row, answer))
}

/// Disconnects: revokes the refresh and access tokens at the host (when it publishes a revocation
/// endpoint; a failure there is recorded, not fatal) and forgets them here.
pub async fn disconnect(
    state: &AppState,
    row: host_connection::Model,
) -> Result<host_connection::Model, ConsumerError> {
    let ring = state.keys().ring();
    if let Some(url) = row.revocation_url.clone() {
        let secret = client_secret(state, &row)?;
        let client = ClientAuth {
            client_id: &row.client_id,
            client_secret: secret.as_ref(),
        };
        for (column, sealed, hint) in [
            (
                SecretColumn::RefreshToken,
                row.refresh_token_sealed.as_deref(),
                "refresh_token",
            ),
            (
                SecretColumn::AccessToken,
                row.access_token_sealed.as_deref(),
                "access_token",
            ),
        ] {
            let Some(sealed) = sealed else { continue };
            let token = tokens::open(ring, &row.id, column, sealed)?;
            if let Err(e) =
                tokens::revoke(state.verifier().fetcher(), &url, &client, &token, hint).await
            {
                tracing::warn!(connection = %row.id, error = %e, "revocation at the host failed");
            }
        }
    }
    let mut active: host_connection::ActiveModel = row.into();
    active.access_token_sealed = Set(None);
    active.refresh_token_sealed = Set(None);
    active.token_expires_at = Set(None);
    active.state_hash = Set(None);
    active.pkce_verifier_sealed = Set(None);
    active.pending_expires_at = Set(None);
    active.status = Set("disconnected".into());
    active.updated_at = Set(state.clock().now());
    Ok(active.update(state.db()).await?)
}
