//! The `authorization_code` grant (RFC 6749 §4.1.3): the code must be ours, unexpired, unexchanged,
//! issued to this client for this exact redirect URI, and the PKCE verifier must hash to its
//! challenge. The exchange is a compare-and-set UPDATE (`exchanged_at IS NULL`), so of two
//! concurrent exchanges exactly one wins; any second presentation revokes every token issued from
//! the code (RFC 6749 §4.1.2, RFC 9700 §4.14).

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, sea_query::Expr};
use secrecy::SecretString;
use serde_json::json;

use super::{
    OAuthError, Scope, ScopeSet, authorization,
    authorization_grant::{ExchangeRefused, GrantState},
    pkce::CodeChallenge,
    refresh_family::{self, RefreshLifetimes, RefreshState},
    tokens::{self, PreparedToken, TokenGrant},
};
use crate::db::{self, audit_event, authorization_code, oauth_client, refresh_token};

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
pub(crate) async fn revoke_grant(
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

/// A code that passed every check that needs no write, with the tokens an exchange would hand out
/// (not stored yet), or a code that was already exchanged (presenting it again revokes its grant).
#[derive(Debug)]
pub enum PreparedExchange {
    Fresh(Box<FreshExchange>),
    Replay(Box<authorization_code::Model>),
}

/// What a successful exchange stores: the code is marked exchanged (compare-and-set), the access
/// token and, with `offline_access`, the first refresh token of the grant's family are inserted.
#[derive(Debug)]
pub struct FreshExchange {
    pub code: authorization_code::Model,
    pub access: PreparedToken,
    pub refresh: Option<(refresh_token::Model, SecretString)>,
    pub scopes: ScopeSet,
}

impl FreshExchange {
    /// What the caller is handed once the exchange is committed.
    pub fn into_exchanged(self) -> Exchanged {
        Exchanged {
            access: self.access.grant,
            refresh_token: self.refresh.map(|(_, secret)| secret),
            user_id: self.code.user_id,
        }
    }
}

/// Checks a code for the authenticated `client` with reads only: ours, this client's, unexpired,
/// unrevoked, this redirect URI, the PKCE verifier, and what the user and client may still be
/// granted. The write (the compare-and-set on `exchanged_at` and the inserts) is the grant
/// writer's ([`super::grant_writer`]), so a code read here as unexchanged may still lose a race
/// there.
pub async fn prepare(
    db: &impl ConnectionTrait,
    ceilings: &super::cache::CeilingCache,
    now: DateTime<Utc>,
    client: &oauth_client::Model,
    request: &CheckedCode,
    issued: Issued,
) -> Result<PreparedExchange, ExchangeFailure> {
    let row = authorization::find_code(db, &request.code)
        .await?
        .ok_or_else(|| invalid_grant("the authorization code is not valid"))?;
    if row.client_id != client.id {
        // Another client's code: refused and left alone (its owner may still exchange it).
        return Err(invalid_grant("the authorization code was not issued to this client").into());
    }
    let state = GrantState::from_columns(row.expires_at, row.exchanged_at, row.revoked_at);
    match state.exchange(now) {
        Ok(_) => {}
        Err(ExchangeRefused::Replayed) => return Ok(PreparedExchange::Replay(Box::new(row))),
        Err(other) => return Err(invalid_grant(&other.to_string()).into()),
    }
    if row.redirect_uri != request.redirect_uri {
        return Err(invalid_grant("redirect_uri differs from the authorization request").into());
    }
    if !CodeChallenge::from_stored(row.code_challenge.clone())
        .is_satisfied_by(&request.code_verifier)
    {
        return Err(invalid_grant("the PKCE code_verifier does not match the challenge").into());
    }
    // Capped again by what the user and the client may hold now.
    let ceiling = authorization::cached_scope_ceiling(db, ceilings, &row.user_id).await?;
    let client_allowed = ScopeSet::parse(&client.scopes).unwrap_or_default();
    let approved = ScopeSet::parse(&row.scopes).unwrap_or_default();
    let scopes: ScopeSet = approved
        .iter()
        .filter(|s| ceiling.contains(*s) && client_allowed.contains(*s))
        .collect();
    if scopes.is_empty() {
        return Err(invalid_grant("nothing of the grant can be issued any more").into());
    }
    let access = tokens::prepare_token(
        &client.id,
        Some(&row.user_id),
        Some(&row.id),
        scopes,
        issued.access_ttl_secs,
    );
    let refresh = scopes.contains(Scope::OfflineAccess).then(|| {
        let family_expires_at = now + issued.refresh.absolute;
        refresh_family::prepare_row(
            db::new_id(),
            &row.id,
            &client.id,
            &row.user_id,
            scopes,
            now,
            RefreshState::successor_expiry(now, family_expires_at, issued.refresh),
            family_expires_at,
        )
    });
    Ok(PreparedExchange::Fresh(Box::new(FreshExchange {
        code: row,
        access,
        refresh,
        scopes,
    })))
}

/// The refusal of a code that was exchanged before (or by a concurrent request that won): the
/// grant and every token descending from it are revoked (inside `txn`, to be committed).
pub(crate) async fn refuse_replay(
    txn: &impl ConnectionTrait,
    code: &authorization_code::Model,
    client_id: &str,
    now: DateTime<Utc>,
) -> Result<ExchangeFailure, sea_orm::DbErr> {
    revoke_grant(txn, code, client_id, now).await?;
    Ok(ExchangeFailure {
        error: invalid_grant("the authorization code was already used"),
        grant_revoked_for: Some(code.user_id.clone()),
    })
}
