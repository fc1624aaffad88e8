//! The `authorization_code` grant (RFC 6749 §4.1.3): the code must be ours, unexpired, unexchanged,
//! issued to this client for this exact redirect URI, and the PKCE verifier must hash to its
//! challenge. The exchange is a compare-and-set UPDATE (`exchanged_at IS NULL`), so of two
//! concurrent exchanges exactly one wins; any second presentation revokes every token issued from
//! the code (RFC 6749 §4.1.2, RFC 9700 §4.14).

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, sea_query::Expr,
};
use secrecy::SecretString;
use serde_json::json;

use super::{
    OAuthError, Scope, ScopeSet, authorization,
    authorization_grant::{ExchangeRefused, GrantState},
    pkce::CodeChallenge,
    refresh_family::{self, RefreshLifetimes, RefreshState},
    tokens::{self, TokenGrant},
};
use crate::db::{self, audit_event, authorization_code, oauth_client};

/// A successful exchange.
#[derive(Debug)]
pub struct Exchanged {
    pub access: TokenGrant,
    /// Only when `offline_access` was granted.
    pub refresh_token: Option<SecretString>,
    pub user_id: String,
}

/// A refused exchange, and the user whose grant was revoked (a replay), for cache eviction.
#[derive(Debug)]
pub struct ExchangeFailure {
    pub error: OAuthError,
    pub grant_revoked_for: Option<String>,
}

impl From<OAuthError> for ExchangeFailure {
    fn from(error: OAuthError) -> Self {
        Self {
            error,
            grant_revoked_for: None,
        }
    }
}

impl From<sea_orm::DbErr> for ExchangeFailure {
    fn from(err: sea_orm::DbErr) -> Self {
        OAuthError::from(err).into()
    }
}

/// What the token request presented.
#[derive(Debug, Clone, Copy)]
pub struct CodeRequest<'a> {
    pub code: Option<&'a str>,
    pub redirect_uri: Option<&'a str>,
    pub code_verifier: Option<&'a str>,
}

/// Lifetimes of what an exchange issues.
#[derive(Debug, Clone, Copy)]
pub struct Issued {
    pub access_ttl_secs: u64,
    pub refresh: RefreshLifetimes,
}

fn invalid_grant(why: &str) -> OAuthError {
    OAuthError::invalid_grant(why)
}

/// Revokes the grant `code` started and every token descending from it.
async fn revoke_grant(
    db: &impl sea_orm::ConnectionTrait,
    code: &authorization_code::Model,
    client_id: &str,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    authorization_code::Entity::update_many()
        .col_expr(authorization_code::Column::RevokedAt, Expr::value(now))
        .filter(authorization_code::Column::Id.eq(code.id.clone()))
        .filter(authorization_code::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    let (refresh, access) = refresh_family::revoke_family(db, &code.id, now).await?;
    audit_event::record(
        db,
        &format!("client:{client_id}"),
        "oauth.code_replay_detected",
        "grant",
        &code.id,
        json!({"userId": code.user_id, "accessTokensRevoked": access, "refreshTokensRevoked": refresh}),
    )
    .await?;
    tracing::warn!(client_id, grant = %code.id, "authorization code replayed: grant revoked");
    Ok(())
}

/// A token request's code parameters, checked for presence and shape (no database involved yet).
#[derive(Debug, Clone)]
pub struct CheckedCode {
    pub code: String,
    pub redirect_uri: String,
    pub code_verifier: String,
}

impl CodeRequest<'_> {
    /// Refuses a request that lacks a parameter or whose code cannot be one of ours.
    pub fn check(self) -> Result<CheckedCode, ExchangeFailure> {
        let code = self
            .code
            .filter(|c| !c.is_empty())
            .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
        let redirect_uri = self
            .redirect_uri
            .ok_or_else(|| OAuthError::invalid_request("redirect_uri is required"))?;
        let verifier = self
            .code_verifier
            .ok_or_else(|| OAuthError::invalid_request("code_verifier is required (PKCE)"))?;
        if !authorization::code_well_formed(code) {
            return Err(invalid_grant("the authorization code is not valid").into());
        }
        Ok(CheckedCode {
            code: code.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            code_verifier: verifier.to_owned(),
        })
    }
}

impl ExchangeFailure {
    /// Whether the refusal wrote something that must be committed (a replay revoked the grant).
    pub fn keeps_writes(&self) -> bool {
        self.grant_revoked_for.is_some()
    }
}

/// Exchanges a code for the authenticated `client` in a transaction of its own.
pub async fn exchange(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    client: &oauth_client::Model,
    request: CodeRequest<'_>,
    issued: Issued,
) -> Result<Exchanged, ExchangeFailure> {
    let request = request.check()?;
    let txn = db::begin_write(db).await?;
    let result = exchange_in(&txn, now, client, &request, issued).await;
    if result
        .as_ref()
        .map_or_else(ExchangeFailure::keeps_writes, |_| true)
    {
        txn.commit().await?;
    }
    result
}

/// Exchanges a checked code inside the caller's write transaction (or savepoint). The caller
/// commits when this succeeds or when the failure [`keeps_writes`](ExchangeFailure::keeps_writes),
/// and rolls back otherwise.
pub async fn exchange_in(
    txn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    client: &oauth_client::Model,
    request: &CheckedCode,
    issued: Issued,
) -> Result<Exchanged, ExchangeFailure> {
    let code = request.code.as_str();
    let redirect_uri = request.redirect_uri.as_str();
    let verifier = request.code_verifier.as_str();
    let row = authorization::find_code(txn, code)
        .await?
        .ok_or_else(|| invalid_grant("the authorization code is not valid"))?;
    if row.client_id != client.id {
        // Another client's code: refused and left alone (its owner may still exchange it).
        return Err(invalid_grant("the authorization code was not issued to this client").into());
    }
    let state = GrantState::from_columns(row.expires_at, row.exchanged_at, row.revoked_at);
    match state.exchange(now) {
        Ok(_) => {}
        Err(ExchangeRefused::Replayed) => {
            revoke_grant(txn, &row, &client.id, now).await?;
            return Err(ExchangeFailure {
                error: invalid_grant("the authorization code was already used"),
                grant_revoked_for: Some(row.user_id),
            });
        }
        Err(other) => return Err(invalid_grant(&other.to_string()).into()),
    }
    if row.redirect_uri != redirect_uri {
        return Err(invalid_grant("redirect_uri differs from the authorization request").into());
    }
    if !CodeChallenge::from_stored(row.code_challenge.clone()).is_satisfied_by(verifier) {
        return Err(invalid_grant("the PKCE code_verifier does not match the challenge").into());
    }
    let won = authorization_code::Entity::update_many()
        .col_expr(authorization_code::Column::ExchangedAt, Expr::value(now))
        .filter(authorization_code::Column::Id.eq(row.id.clone()))
        .filter(authorization_code::Column::ExchangedAt.is_null())
        .filter(authorization_code::Column::RevokedAt.is_null())
        .exec(txn)
        .await?
        .rows_affected;
    if won == 0 {
        // A concurrent exchange won between our read and our write: this one is the replay.
        revoke_grant(txn, &row, &client.id, now).await?;
        return Err(ExchangeFailure {
            error: invalid_grant("the authorization code was already used"),
            grant_revoked_for: Some(row.user_id),
        });
    }
    // Capped again by what the user and the client may hold now.
    let ceiling = authorization::scope_ceiling(txn, &row.user_id).await?;
    let client_allowed = ScopeSet::parse(&client.scopes).unwrap_or_default();
    let approved = ScopeSet::parse(&row.scopes).unwrap_or_default();
    let scopes: ScopeSet = approved
        .iter()
        .filter(|s| ceiling.contains(*s) && client_allowed.contains(*s))
        .collect();
    if scopes.is_empty() {
        return Err(invalid_grant("nothing of the grant can be issued any more").into());
    }
    let access = tokens::insert_token(
        txn,
        &client.id,
        Some(&row.user_id),
        Some(&row.id),
        scopes,
        issued.access_ttl_secs,
    )
    .await?;
    let refresh_token = if scopes.contains(Scope::OfflineAccess) {
        let family_expires_at = now + issued.refresh.absolute;
        Some(
            refresh_family::store(
                txn,
                db::new_id(),
                &row.id,
                &client.id,
                &row.user_id,
                scopes,
                now,
                RefreshState::successor_expiry(now, family_expires_at, issued.refresh),
                family_expires_at,
            )
            .await?,
        )
    } else {
        None
    };
    if client.first_token_at.is_none() {
        oauth_client::Entity::update_many()
            .col_expr(oauth_client::Column::FirstTokenAt, Expr::value(now))
            .filter(oauth_client::Column::Id.eq(client.id.clone()))
            .filter(oauth_client::Column::FirstTokenAt.is_null())
            .exec(txn)
            .await?;
    }
    audit_event::record(
        txn,
        &format!("client:{}", client.id),
        "oauth.code_exchanged",
        "grant",
        &row.id,
        json!({"userId": row.user_id, "scopes": scopes.to_string(), "refreshToken": refresh_token.is_some()}),
    )
    .await?;
    Ok(Exchanged {
        access,
        refresh_token,
        user_id: row.user_id,
    })
}
