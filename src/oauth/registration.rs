//! Dynamic client registration (RFC 7591) and the client configuration endpoint (RFC 7592):
//! registering a wallet or host from checked [`ClientMetadata`], reading, replacing and deleting
//! it with its registration access token, and purging registered clients that never obtained a
//! token.
//!
//! A registered client is an `oauth_clients` row of kind [`KIND`], not global and member of no
//! issuer, so it reaches only what the users who approve it may see. Its secret (none for a public
//! client) and its registration access token are 256-bit random values stored as SHA-256 hashes;
//! each is returned exactly once, when it is made.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, Set, sea_query::Expr,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use subtle::ConstantTimeEq;

use super::{
    ScopeSet,
    client_metadata::{ClientMetadata, TokenEndpointAuthMethod},
    tokens::{CLIENT_SECRET_PREFIX, hash_secret, random_secret},
};
use crate::{
    accounts::memberships::{self, MembershipError},
    db::{
        self, access_token, audit_event, authorization_code, idempotency_key, oauth_client,
        oauth_consent, refresh_token,
    },
};

/// `oauth_clients.kind` of a dynamically registered client.
pub const KIND: &str = "registered";
/// Prefix of registration access tokens (RFC 7592).
const REGISTRATION_TOKEN_PREFIX: &str = "oxbrat_";
/// A registered client that has not obtained a token this long after registering is removed.
pub const UNUSED_CLIENT_LIFETIME: Duration = Duration::hours(24);
/// Longest bearer value looked at (ours are 50 characters).
const MAX_TOKEN_LEN: usize = 256;

/// Failures of the registration endpoints, each with the HTTP status it becomes.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// 401 `invalid_token`: the registration access token (or the initial access token) is
    /// missing or wrong, or the client does not exist. The three are indistinguishable.
    #[error("the access token is missing, invalid, or does not belong to this client")]
    InvalidToken,
    /// 400 `invalid_client_metadata` / `invalid_redirect_uri`.
    #[error(transparent)]
    Metadata(#[from] super::client_metadata::MetadataError),
    /// 400 `invalid_request`: the client cannot be deleted while it is an issuer's last owner.
    #[error("the client is the last owner of an issuer; give the issuer another owner first")]
    LastOwner,
    /// 500: database failure.
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl From<MembershipError> for RegistrationError {
    fn from(err: MembershipError) -> Self {
        match err {
            MembershipError::LastOwner => Self::LastOwner,
            MembershipError::Db(db) => Self::Db(db),
            other => Self::Db(DbErr::Custom(other.to_string())),
        }
    }
}

/// A registered client as the configuration endpoint shows it (never secret material).
#[derive(Debug, Clone)]
pub struct RegisteredClient {
    pub client_id: String,
    pub client_id_issued_at: DateTime<Utc>,
    pub client_name: String,
    pub client_uri: String,
    pub logo_uri: String,
    pub tos_uri: String,
    pub policy_uri: String,
    pub software_id: String,
    pub software_version: String,
    pub redirect_uris: Vec<String>,
    pub scope: ScopeSet,
    pub token_endpoint_auth_method: TokenEndpointAuthMethod,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    pub contacts: Vec<String>,
}

impl RegisteredClient {
    fn from_model(row: &oauth_client::Model) -> Self {
        let words = |s: &Option<String>| -> Vec<String> {
            s.as_deref()
                .unwrap_or_default()
                .split_ascii_whitespace()
                .map(str::to_owned)
                .collect()
        };
        let text = |s: &Option<String>| s.clone().unwrap_or_default();
        Self {
            client_id: row.id.clone(),
            client_id_issued_at: row.created_at,
            client_name: row.name.clone(),
            client_uri: text(&row.client_uri),
            logo_uri: text(&row.logo_uri),
            tos_uri: text(&row.tos_uri),
            policy_uri: text(&row.policy_uri),
            software_id: text(&row.software_id),
            software_version: text(&row.software_version),
            redirect_uris: row
                .redirect_uris
                .split_ascii_whitespace()
                .map(str::to_owned)
                .collect(),
            scope: ScopeSet::parse(&row.scopes).unwrap_or_default(),
            token_endpoint_auth_method: TokenEndpointAuthMethod::parse(
                &row.token_endpoint_auth_method,
            )
            .unwrap_or_default(),
            grant_types: words(&row.grant_types),
            response_types: words(&row.response_types),
            contacts: row
                .contacts
                .as_deref()
                .and_then(|c| serde_json::from_str(c).ok())
                .unwrap_or_default(),
        }
    }
}

/// A registration answer: the client, and the secrets made by this request (each exists only
/// here; the database holds hashes).
#[derive(Debug)]
pub struct Registered {
    pub client: RegisteredClient,
    /// The client secret, when this request issued one (never for a public client).
    pub client_secret: Option<SecretString>,
    /// The registration access token: the new one after a registration, the presented one after a
    /// read or an update.
    pub registration_access_token: SecretString,
}

/// Whether `presented` is the configured initial access token (`OXBADGE_REGISTRATION_TOKEN`).
/// Compared as SHA-256 digests in constant time, so neither the content nor the length of the
/// configured token leaks through timing.
pub fn initial_token_matches(configured: &SecretString, presented: Option<&str>) -> bool {
    let Some(presented) = presented else {
        return false;
    };
    let want = hash_secret(configured.expose_secret());
    let got = hash_secret(presented);
    want.as_bytes().ct_eq(got.as_bytes()).into()
}

/// The value of an `Authorization: Bearer …` header (scheme case-insensitive).
pub fn bearer_value(header: Option<&str>) -> Option<&str> {
    let header = header?.trim();
    let (scheme, value) = header.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(value.trim())
        .filter(|v| !v.is_empty() && v.len() <= MAX_TOKEN_LEN)
}

fn metadata_columns(row: &mut oauth_client::ActiveModel, metadata: &ClientMetadata) {
    let join = |items: Vec<&str>| items.join(" ");
    row.name = Set(metadata.client_name.clone());
    row.scopes = Set(metadata.scope.to_string());
    row.redirect_uris = Set(join(
        metadata.redirect_uris.iter().map(|u| u.as_str()).collect(),
    ));
    row.client_uri = Set(Some(metadata.client_uri.to_string()));
    row.logo_uri = Set(Some(metadata.logo_uri.to_string()));
    row.tos_uri = Set(Some(metadata.tos_uri.to_string()));
    row.policy_uri = Set(Some(metadata.policy_uri.to_string()));
    row.software_id = Set(Some(metadata.software_id.clone()));
    row.software_version = Set(Some(metadata.software_version.clone()));
    row.contacts = Set(Some(json!(metadata.contacts).to_string()));
    row.grant_types = Set(Some(join(
        metadata.grant_types.iter().map(|g| g.as_str()).collect(),
    )));
    row.response_types = Set(Some(metadata.response_types.join(" ")));
    row.token_endpoint_auth_method = Set(metadata.token_endpoint_auth_method.as_str().to_owned());
}

fn audit_details(metadata: &ClientMetadata) -> serde_json::Value {
    json!({
        "clientName": metadata.client_name,
        "clientUri": metadata.client_uri.as_str(),
        "softwareId": metadata.software_id,
        "softwareVersion": metadata.software_version,
        "redirectUris": metadata.redirect_uris.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
        "scope": metadata.scope.to_string(),
        "tokenEndpointAuthMethod": metadata.token_endpoint_auth_method.as_str(),
    })
}

/// Registers a client (RFC 7591 §3.1). `origin` says in the audit trail where the request came
/// from (the client address). The client secret (unless the client is public) and the
/// registration access token are returned once.
pub async fn register(
    db: &DatabaseConnection,
    metadata: ClientMetadata,
    now: DateTime<Utc>,
    origin: &str,
) -> Result<Registered, DbErr> {
    let client_id = db::new_id();
    let client_secret = metadata
        .token_endpoint_auth_method
        .is_confidential()
        .then(|| random_secret(CLIENT_SECRET_PREFIX));
    let registration_access_token = random_secret(REGISTRATION_TOKEN_PREFIX);
    let mut row = oauth_client::ActiveModel {
        id: Set(client_id.clone()),
        secret_hash: Set(client_secret
            .as_ref()
            .map(|s| hash_secret(s.expose_secret()))
            .unwrap_or_default()),
        kind: Set(KIND.to_owned()),
        created_at: Set(now),
        disabled_at: Set(None),
        global: Set(false),
        updated_at: Set(None),
        registration_token_hash: Set(Some(hash_secret(registration_access_token.expose_secret()))),
        registered_dynamically: Set(true),
        first_token_at: Set(None),
        ..Default::default()
    };
    metadata_columns(&mut row, &metadata);
    let txn = db::begin_write(db).await?;
    let inserted = row.insert(&txn).await?;
    let mut details = audit_details(&metadata);
    details["origin"] = json!(origin);
    audit_event::record(
        &txn,
        "anonymous",
        "client.registered",
        "client",
        &client_id,
        details,
    )
    .await?;
    txn.commit().await?;
    Ok(Registered {
        client: RegisteredClient::from_model(&inserted),
        client_secret,
        registration_access_token,
    })
}

/// The registered client `client_id` when `presented` is its registration access token. An
/// unknown client, a client that was not registered dynamically and a wrong token are the same
/// `InvalidToken`, reached through the same hash and comparison.
pub async fn authorize_configuration(
    db: &impl ConnectionTrait,
    client_id: &str,
    presented: Option<&str>,
) -> Result<oauth_client::Model, RegistrationError> {
    let presented = presented.ok_or(RegistrationError::InvalidToken)?;
    if client_id.is_empty() || client_id.len() > 64 || client_id.chars().any(char::is_control) {
        return Err(RegistrationError::InvalidToken);
    }
    let row = oauth_client::Entity::find_by_id(client_id.to_owned())
        .one(db)
        .await?
        .filter(|c| c.registered_dynamically && c.disabled_at.is_none());
    let stored = row
        .as_ref()
        .and_then(|c| c.registration_token_hash.clone())
        .unwrap_or_else(|| "0".repeat(64));
    let matches: bool = hash_secret(presented)
        .as_bytes()
        .ct_eq(stored.as_bytes())
        .into();
    match row {
        Some(row) if matches => Ok(row),
        _ => {
            tracing::info!(client_id, "registration access token refused");
            Err(RegistrationError::InvalidToken)
        }
    }
}

/// The client as registered (RFC 7592 §2.1), answered with the token that authorized the read.
pub fn read(row: &oauth_client::Model, presented: &str) -> Registered {
    Registered {
        client: RegisteredClient::from_model(row),
        client_secret: None,
        registration_access_token: SecretString::from(presented.to_owned()),
    }
}

/// Replaces the client's metadata (RFC 7592 §2.2). The client id never changes. A client that
/// becomes confidential gets a new secret (returned once); one that becomes public loses its
/// secret. Narrowing the scopes revokes the client's live tokens, which may carry a scope it no
/// longer has. `client_secret` in the request, when present, must be the current secret.
pub async fn update(
    db: &DatabaseConnection,
    current: oauth_client::Model,
    metadata: ClientMetadata,
    presented_secret: Option<&str>,
    presented_token: &str,
    now: DateTime<Utc>,
) -> Result<Registered, RegistrationError> {
    if let Some(secret) = presented_secret {
        let matches: bool = hash_secret(secret)
            .as_bytes()
            .ct_eq(current.secret_hash.as_bytes())
            .into();
        if !matches {
            return Err(
                super::client_metadata::MetadataError::InvalidClientMetadata(
                    "client_secret does not match the client's current secret".into(),
                )
                .into(),
            );
        }
    }
    let client_id = current.id.clone();
    let was_confidential = !current.secret_hash.is_empty();
    let old_scopes = ScopeSet::parse(&current.scopes).unwrap_or_default();
    let confidential = metadata.token_endpoint_auth_method.is_confidential();
    let mut row: oauth_client::ActiveModel = current.into();
    metadata_columns(&mut row, &metadata);
    let client_secret = (confidential && !was_confidential).then(|| {
        let secret = random_secret(CLIENT_SECRET_PREFIX);
        row.secret_hash = Set(hash_secret(secret.expose_secret()));
        secret
    });
    if !confidential {
        row.secret_hash = Set(String::new());
    }
    row.updated_at = Set(Some(now));
    let txn = db::begin_write(db).await?;
    let updated = row.update(&txn).await?;
    let (mut revoked_access, mut revoked_refresh) = (0, 0);
    if !metadata.scope.is_superset(old_scopes) {
        (revoked_access, revoked_refresh) = revoke_client_tokens(&txn, &client_id, now).await?;
    }
    let mut details = audit_details(&metadata);
    details["tokensRevoked"] = json!(revoked_access + revoked_refresh);
    audit_event::record(
        &txn,
        &client_id,
        "client.registration_updated",
        "client",
        &client_id,
        details,
    )
    .await?;
    txn.commit().await?;
    Ok(Registered {
        client: RegisteredClient::from_model(&updated),
        client_secret,
        registration_access_token: SecretString::from(presented_token.to_owned()),
    })
}

async fn revoke_client_tokens(
    db: &impl ConnectionTrait,
    client_id: &str,
    now: DateTime<Utc>,
) -> Result<(u64, u64), DbErr> {
    let access = access_token::Entity::update_many()
        .col_expr(access_token::Column::RevokedAt, Expr::value(now))
        .filter(access_token::Column::ClientId.eq(client_id))
        .filter(access_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?
        .rows_affected;
    let refresh = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(now))
        .filter(refresh_token::Column::ClientId.eq(client_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?
        .rows_affected;
    Ok((access, refresh))
}

/// Deletes the client with everything it holds: tokens, refresh families, codes, consents,
/// idempotency records, memberships. Inside the caller's transaction.
async fn delete_rows(
    db: &impl ConnectionTrait,
    client_id: &str,
    actor: &str,
) -> Result<(), RegistrationError> {
    memberships::remove_client_memberships(db, client_id, actor).await?;
    access_token::Entity::delete_many()
        .filter(access_token::Column::ClientId.eq(client_id))
        .exec(db)
        .await?;
    refresh_token::Entity::delete_many()
        .filter(refresh_token::Column::ClientId.eq(client_id))
        .exec(db)
        .await?;
    authorization_code::Entity::delete_many()
        .filter(authorization_code::Column::ClientId.eq(client_id))
        .exec(db)
        .await?;
    oauth_consent::Entity::delete_many()
        .filter(oauth_consent::Column::ClientId.eq(client_id))
        .exec(db)
        .await?;
    idempotency_key::Entity::delete_many()
        .filter(idempotency_key::Column::ClientId.eq(client_id))
        .exec(db)
        .await?;
    oauth_client::Entity::delete_by_id(client_id.to_owned())
        .exec(db)
        .await?;
    Ok(())
}

/// Deletes a registered client (RFC 7592 §2.3): its tokens stop working at once.
pub async fn delete(
    db: &DatabaseConnection,
    current: &oauth_client::Model,
) -> Result<(), RegistrationError> {
    let txn = db::begin_write(db).await?;
    delete_rows(&txn, &current.id, &current.id).await?;
    audit_event::record(
        &txn,
        &current.id,
        "client.registration_deleted",
        "client",
        &current.id,
        json!({"clientName": current.name}),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Removes the dynamically registered clients that were registered more than
/// [`UNUSED_CLIENT_LIFETIME`] before `now` and never obtained a token; returns their ids. Each is
/// deleted in its own transaction that checks again that it is still unused, so a client getting
/// its first token meanwhile is kept.
pub async fn purge_unused(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
) -> Result<Vec<String>, DbErr> {
    let cutoff = now - UNUSED_CLIENT_LIFETIME;
    let candidates = oauth_client::Entity::find()
        .filter(oauth_client::Column::RegisteredDynamically.eq(true))
        .filter(oauth_client::Column::FirstTokenAt.is_null())
        .filter(oauth_client::Column::CreatedAt.lt(cutoff))
        .all(db)
        .await?;
    let mut purged = Vec::new();
    for candidate in candidates {
        let txn = db::begin_write(db).await?;
        let still_unused = oauth_client::Entity::find_by_id(candidate.id.clone())
            .filter(oauth_client::Column::FirstTokenAt.is_null())
            .one(&txn)
            .await?
            .is_some();
        if !still_unused {
            continue;
        }
        match delete_rows(&txn, &candidate.id, "system").await {
            Ok(()) => {}
            Err(RegistrationError::Db(err)) => return Err(err),
            Err(other) => {
                tracing::warn!(client_id = %candidate.id, error = %other, "unused registered client kept");
                continue;
            }
        }
        audit_event::record(
            &txn,
            "system",
            "client.registration_purged",
            "client",
            &candidate.id,
            json!({"clientName": candidate.name, "registeredAt": candidate.created_at}),
        )
        .await?;
        txn.commit().await?;
        purged.push(candidate.id);
    }
    Ok(purged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_values() {
        assert_eq!(bearer_value(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer_value(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_value(Some("Basic abc")), None);
        assert_eq!(bearer_value(Some("Bearer ")), None);
        assert_eq!(bearer_value(None), None);
    }

    #[test]
    fn initial_token_compares_whole_values() {
        let configured = SecretString::from("s3cret-initial".to_owned());
        assert!(initial_token_matches(&configured, Some("s3cret-initial")));
        assert!(!initial_token_matches(&configured, Some("s3cret")));
        assert!(!initial_token_matches(&configured, None));
    }
}
