//! Client secrets and access tokens: generation, hashed storage, constant-time checks.
//!
//! Secrets and tokens are 256-bit random values. Because they carry full entropy, a single SHA-256 is
//! the right storage hash (a slow password hash would add latency to every token check and no
//! security); comparisons of hashes are constant-time.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use rand::{RngCore, rngs::OsRng};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, Set, TransactionSession, TransactionTrait, sea_query::Expr,
};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{OAuthError, ScopeSet};
use crate::{
    accounts::memberships::{self, IssuerAccess, Principal, Role},
    db::{access_token, new_id, oauth_client},
    error::ApiError,
};

/// Prefix of client secrets (lets secret scanners recognise a leaked one).
pub(crate) const CLIENT_SECRET_PREFIX: &str = "oxbcs_";
/// Prefix of access tokens.
pub(crate) const ACCESS_TOKEN_PREFIX: &str = "oxbat_";

/// A freshly created client. The secret exists only here; the database holds its hash.
#[derive(Debug)]
pub struct NewClient {
    pub client_id: String,
    pub client_secret: SecretString,
    pub scopes: ScopeSet,
}

/// A freshly issued access token.
#[derive(Debug)]
pub struct TokenGrant {
    pub access_token: SecretString,
    pub expires_in: i64,
    pub scopes: ScopeSet,
}

/// Who is calling and what they may do, resolved from a valid bearer token.
#[derive(Debug, Clone)]
pub struct AccessContext {
    /// The client the token was issued to.
    pub client_id: String,
    /// Who acts: the client itself, or the user a user-bound token carries.
    pub principal: Principal,
    /// The issuers the principal may act on, resolved with the token.
    pub access: IssuerAccess,
    pub scopes: ScopeSet,
    pub expires_at: DateTime<Utc>,
    /// When the token was issued (introspection's `iat`).
    pub issued_at: DateTime<Utc>,
}

impl AccessContext {
    /// Succeeds when the token carries `scope`; otherwise 403 `insufficient_scope`.
    pub fn require(&self, scope: super::Scope) -> Result<(), ApiError> {
        if self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(ApiError::InsufficientScope {
                required: scope.as_str(),
            })
        }
    }

    /// Succeeds when the principal may act on `issuer_id` with at least `min`. An issuer outside the
    /// principal's set is 404 `not_found`, exactly like an issuer that does not exist (never 403,
    /// so membership does not reveal which issuers exist); a role below `min` is 403
    /// `insufficient_role`.
    pub fn require_issuer(&self, issuer_id: &str, min: Role) -> Result<(), ApiError> {
        match self.access.role_on(issuer_id) {
            None => Err(ApiError::NotFound { what: "issuer" }),
            Some(role) if role < min => Err(ApiError::InsufficientRole {
                required: min.as_str(),
            }),
            Some(_) => Ok(()),
        }
    }

    /// The issuers (id → role) the principal is limited to; `None` for a global principal.
    pub fn visible_issuers(&self) -> Option<&HashMap<String, Role>> {
        match &self.access {
            IssuerAccess::Global => None,
            IssuerAccess::Members(map) => Some(map),
        }
    }

    /// Whether the principal acts on every issuer.
    pub fn is_global(&self) -> bool {
        self.access.is_global()
    }

    /// Succeeds for a global principal (administration of clients and the whole audit trail);
    /// otherwise 403 `insufficient_role`.
    pub fn require_global(&self) -> Result<(), ApiError> {
        if self.is_global() {
            Ok(())
        } else {
            Err(ApiError::InsufficientRole { required: "global" })
        }
    }
}

pub(crate) fn random_secret(prefix: &str) -> SecretString {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let value = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes));
    zeroize::Zeroize::zeroize(&mut bytes);
    SecretString::from(value)
}

/// Hex SHA-256 of a secret value; what the database stores.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Creates a client-credentials client allowed the given scopes.
pub async fn create_client(
    db: &impl ConnectionTrait,
    name: &str,
    scopes: ScopeSet,
) -> Result<NewClient, sea_orm::DbErr> {
    let client_id = new_id();
    let client_secret = random_secret(CLIENT_SECRET_PREFIX);
    oauth_client::ActiveModel {
        id: Set(client_id.clone()),
        name: Set(name.to_owned()),
        secret_hash: Set(hash_secret(client_secret.expose_secret())),
        scopes: Set(scopes.to_string()),
        kind: Set("service".to_owned()),
        created_at: Set(Utc::now()),
        disabled_at: Set(None),
        global: Set(true),
        redirect_uris: Set(String::new()),
        updated_at: Set(None),
        // The metadata columns take their defaults (a confidential client, not registered
        // dynamically).
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(NewClient {
        client_id,
        client_secret,
        scopes,
    })
}

/// Number of clients (used to decide whether to bootstrap the admin client).
pub async fn count_clients(db: &impl ConnectionTrait) -> Result<u64, sea_orm::DbErr> {
    oauth_client::Entity::find().count(db).await
}

/// All clients, oldest first.
pub async fn list_clients(
    db: &impl ConnectionTrait,
) -> Result<Vec<oauth_client::Model>, sea_orm::DbErr> {
    oauth_client::Entity::find()
        .order_by_asc(oauth_client::Column::CreatedAt)
        .all(db)
        .await
}

/// Disables a client and revokes its live tokens in one transaction. False when it does not exist.
pub async fn disable_client<C>(db: &C, client_id: &str) -> Result<bool, sea_orm::DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = db.begin().await?;
    let now = Utc::now();
    let updated = oauth_client::Entity::update_many()
        .col_expr(oauth_client::Column::DisabledAt, Expr::value(now))
        .filter(oauth_client::Column::Id.eq(client_id))
        .filter(oauth_client::Column::DisabledAt.is_null())
        .exec(&txn)
        .await?
        .rows_affected;
    let exists = updated > 0
        || oauth_client::Entity::find_by_id(client_id.to_owned())
            .one(&txn)
            .await?
            .is_some();
    access_token::Entity::update_many()
        .col_expr(access_token::Column::RevokedAt, Expr::value(now))
        .filter(access_token::Column::ClientId.eq(client_id))
        .filter(access_token::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(exists)
}

/// A client row, from `cache` when it holds a fresh one (only existing clients are cached).
pub async fn find_client(
    db: &impl ConnectionTrait,
    cache: Option<&super::cache::ClientCache>,
    client_id: &str,
) -> Result<Option<oauth_client::Model>, sea_orm::DbErr> {
    if let Some(hit) = cache.and_then(|c| c.get(client_id)) {
        return Ok(Some(hit));
    }
    let client = oauth_client::Entity::find_by_id(client_id.to_owned())
        .one(db)
        .await?;
    if let (Some(cache), Some(row)) = (cache, &client) {
        cache.put(row.clone());
    }
    Ok(client)
}

/// Checks a client's id and secret. Unknown clients cost the same hash and comparison as known
/// ones, so timing does not reveal which client ids exist.
pub async fn authenticate_client(
    db: &impl ConnectionTrait,
    cache: Option<&super::cache::ClientCache>,
    client_id: &str,
    client_secret: &str,
    basic: bool,
) -> Result<oauth_client::Model, OAuthError> {
    // No client id has a control character (PostgreSQL cannot even compare one with U+0000).
    if client_id.is_empty() || client_id.chars().any(char::is_control) {
        tracing::info!("client authentication failed: malformed client_id");
        return Err(OAuthError::invalid_client(basic));
    }
    let client = find_client(db, cache, client_id).await?;
    let presented = hash_secret(client_secret);
    let stored = client
        .as_ref()
        .map(|c| c.secret_hash.clone())
        .unwrap_or_else(|| "0".repeat(64));
    let matches: bool = presented.as_bytes().ct_eq(stored.as_bytes()).into();
    match client {
        Some(c) if matches && c.disabled_at.is_none() => Ok(c),
        _ => {
            tracing::info!(client_id, "client authentication failed");
            Err(OAuthError::invalid_client(basic))
        }
    }
}

/// Issues an access token to an authenticated client for the requested scopes (all of the client's
/// scopes when none are requested).
pub async fn issue_token(
    db: &impl ConnectionTrait,
    client: &oauth_client::Model,
    requested: Option<&str>,
    ttl_secs: u64,
) -> Result<TokenGrant, OAuthError> {
    let prepared = prepare_client_token(client, requested, ttl_secs)?;
    access_token::Entity::insert(access_token::ActiveModel::from(prepared.row))
        .exec(db)
        .await?;
    if client.first_token_at.is_none() {
        mark_first_token(db, &client.id).await?;
    }
    tracing::info!(client_id = %client.id, scopes = %prepared.grant.scopes, "access token issued");
    Ok(prepared.grant)
}

/// An access token ready to be stored: its row (hash only) and what the caller is handed once the
/// row is committed.
#[derive(Debug)]
pub struct PreparedToken {
    pub row: access_token::Model,
    pub grant: TokenGrant,
}

/// A new access token for `client_id` (acting for `user_id`, descending from `grant_id`), not
/// stored yet.
pub fn prepare_token(
    client_id: &str,
    user_id: Option<&str>,
    grant_id: Option<&str>,
    scopes: ScopeSet,
    ttl_secs: u64,
) -> PreparedToken {
    let token = random_secret(ACCESS_TOKEN_PREFIX);
    let now = Utc::now();
    let ttl = i64::try_from(ttl_secs).unwrap_or(i64::MAX / 2);
    PreparedToken {
        row: access_token::Model {
            id: new_id(),
            token_hash: hash_secret(token.expose_secret()),
            client_id: client_id.to_owned(),
            scopes: scopes.to_string(),
            expires_at: now + Duration::seconds(ttl),
            created_at: now,
            revoked_at: None,
            user_id: user_id.map(str::to_owned),
            grant_id: grant_id.map(str::to_owned),
        },
        grant: TokenGrant {
            access_token: token,
            expires_in: ttl,
            scopes,
        },
    }
}

/// The client-credentials grant's checks (the requested scopes, all of the client's when none
/// are requested) and its token, not stored yet.
pub fn prepare_client_token(
    client: &oauth_client::Model,
    requested: Option<&str>,
    ttl_secs: u64,
) -> Result<PreparedToken, OAuthError> {
    let allowed = ScopeSet::parse(&client.scopes)
        .map_err(|e| OAuthError::server_error(&format!("stored client scopes: {e}")))?;
    let scopes = match requested {
        Some(req) if !req.trim().is_empty() => {
            let req = ScopeSet::parse(req).map_err(|e| OAuthError::invalid_scope(e.to_string()))?;
            if !allowed.is_superset(req) {
                return Err(OAuthError::invalid_scope(
                    "the requested scope exceeds what this client may be granted",
                ));
            }
            req
        }
        _ => allowed,
    };
    if scopes.is_empty() {
        return Err(OAuthError::invalid_scope("no scope can be granted"));
    }
    Ok(prepare_token(&client.id, None, None, scopes, ttl_secs))
}

/// Records that `client_id` obtained its first token (dynamically registered clients that never do
/// are purged, see [`super::registration::purge_unused`]). A no-op once set.
pub async fn mark_first_token(
    db: &impl ConnectionTrait,
    client_id: &str,
) -> Result<(), sea_orm::DbErr> {
    oauth_client::Entity::update_many()
        .col_expr(oauth_client::Column::FirstTokenAt, Expr::value(Utc::now()))
        .filter(oauth_client::Column::Id.eq(client_id))
        .filter(oauth_client::Column::FirstTokenAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Stores a new access token that descends from the authorization code `grant_id` (the code
/// exchange and every refresh of its family pass it), so revoking the grant revokes the token. The
/// caller has already checked the client, the user and the scopes.
pub async fn store_grant_token(
    db: &impl ConnectionTrait,
    client_id: &str,
    user_id: Option<&str>,
    grant_id: Option<&str>,
    scopes: ScopeSet,
    ttl_secs: u64,
) -> Result<TokenGrant, sea_orm::DbErr> {
    let grant = insert_token(db, client_id, user_id, grant_id, scopes, ttl_secs).await?;
    mark_first_token(db, client_id).await?;
    Ok(grant)
}

/// Stores a new access token (no other write: see [`store_grant_token`] for the first-token mark).
pub(crate) async fn insert_token(
    db: &impl ConnectionTrait,
    client_id: &str,
    user_id: Option<&str>,
    grant_id: Option<&str>,
    scopes: ScopeSet,
    ttl_secs: u64,
) -> Result<TokenGrant, sea_orm::DbErr> {
    let prepared = prepare_token(client_id, user_id, grant_id, scopes, ttl_secs);
    access_token::Entity::insert(access_token::ActiveModel::from(prepared.row))
        .exec(db)
        .await?;
    Ok(prepared.grant)
}

/// Issues an access token with which `client_id` acts for the user `user_id` (what the
/// authorization-code flow grants): the token's principal is the user, so it reaches only the
/// issuers the user is a member of. The scopes must be within the client's allowed scopes and the
/// client must be enabled.
pub async fn issue_user_token(
    db: &impl ConnectionTrait,
    client_id: &str,
    user_id: &str,
    scopes: ScopeSet,
    ttl_secs: u64,
) -> Result<TokenGrant, OAuthError> {
    let client = oauth_client::Entity::find_by_id(client_id.to_owned())
        .one(db)
        .await?
        .filter(|c| c.disabled_at.is_none())
        .ok_or_else(|| OAuthError::invalid_client(false))?;
    let allowed = ScopeSet::parse(&client.scopes)
        .map_err(|e| OAuthError::server_error(&format!("stored client scopes: {e}")))?;
    if scopes.is_empty() || !allowed.is_superset(scopes) {
        return Err(OAuthError::invalid_scope(
            "the requested scope exceeds what this client may be granted",
        ));
    }
    let grant = insert_token(db, client_id, Some(user_id), None, scopes, ttl_secs).await?;
    if client.first_token_at.is_none() {
        mark_first_token(db, client_id).await?;
    }
    tracing::info!(client_id, user_id, scopes = %scopes, "user access token issued");
    Ok(grant)
}

/// Resolves a presented bearer token through `cache` (see [`super::cache`]), asking the database on
/// a miss.
pub async fn resolve_token_cached(
    db: &impl ConnectionTrait,
    cache: &super::cache::TokenCache,
    token: &str,
) -> Result<AccessContext, ApiError> {
    if !token.starts_with(ACCESS_TOKEN_PREFIX) || token.len() > 128 {
        return Err(ApiError::InvalidToken);
    }
    let hash = hash_secret(token);
    if let Some(ctx) = cache.get(&hash) {
        return Ok(ctx);
    }
    let ctx = resolve_hashed(db, &hash).await?;
    cache.put(hash, ctx.clone());
    Ok(ctx)
}

/// Resolves a presented bearer token. The lookup is by hash, so the comparison happens on a value
/// an attacker cannot choose byte by byte.
pub async fn resolve_token(
    db: &impl ConnectionTrait,
    token: &str,
) -> Result<AccessContext, ApiError> {
    if !token.starts_with(ACCESS_TOKEN_PREFIX) || token.len() > 128 {
        return Err(ApiError::InvalidToken);
    }
    resolve_hashed(db, &hash_secret(token)).await
}

async fn resolve_hashed(
    db: &impl ConnectionTrait,
    token_hash: &str,
) -> Result<AccessContext, ApiError> {
    // The token and its client in one query: a global client needs nothing more.
    let (row, client) = access_token::Entity::find()
        .filter(access_token::Column::TokenHash.eq(token_hash))
        .find_also_related(oauth_client::Entity)
        .one(db)
        .await?
        .ok_or(ApiError::InvalidToken)?;
    let client = client.ok_or(ApiError::InvalidToken)?;
    if row.revoked_at.is_some() || row.expires_at <= Utc::now() || client.disabled_at.is_some() {
        return Err(ApiError::InvalidToken);
    }
    let scopes = ScopeSet::parse(&row.scopes).map_err(ApiError::internal)?;
    let principal = match row.user_id {
        Some(user) => Principal::User(user),
        None => Principal::Client(row.client_id.clone()),
    };
    let access = match &principal {
        Principal::Client(_) if client.global => IssuerAccess::Global,
        other => memberships::load_access(db, other).await?,
    };
    Ok(AccessContext {
        client_id: row.client_id,
        principal,
        access,
        scopes,
        expires_at: row.expires_at,
        issued_at: row.created_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_prefixed_and_256_bit() {
        let a = random_secret(ACCESS_TOKEN_PREFIX);
        let b = random_secret(ACCESS_TOKEN_PREFIX);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(a.expose_secret().starts_with(ACCESS_TOKEN_PREFIX));
        let raw = URL_SAFE_NO_PAD
            .decode(&a.expose_secret()[ACCESS_TOKEN_PREFIX.len()..])
            .unwrap();
        assert_eq!(raw.len(), 32);
        assert!(!format!("{a:?}").contains(&a.expose_secret()[6..]));
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
