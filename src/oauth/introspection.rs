//! Token introspection (RFC 7662): whether a token is active, and for an active one its scopes,
//! client, subject and lifetime. Access tokens are resolved through the bearer-token cache (the
//! same path every API request takes, so an answer costs no more than a bearer check); refresh
//! tokens are read from their family table. A token that is unknown, expired, revoked, consumed
//! by rotation, or whose client is disabled is simply inactive.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::{
    OAuthError, ScopeSet,
    cache::TokenCache,
    revocation::{MAX_TOKEN_LEN, TokenTypeHint},
    tokens::{self, ACCESS_TOKEN_PREFIX, hash_secret},
};
use crate::{
    accounts::memberships::Principal,
    db::{oauth_client, refresh_token},
    error::ApiError,
};

/// The kind of an active token (`token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// An access token: `Bearer`.
    Bearer,
    /// A refresh token: `refresh_token`.
    RefreshToken,
}

impl TokenKind {
    /// The `token_type` member.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bearer => "Bearer",
            Self::RefreshToken => "refresh_token",
        }
    }
}

/// An active token's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveToken {
    pub token_type: TokenKind,
    pub client_id: String,
    /// The user a user-bound token acts for; otherwise the client itself.
    pub sub: String,
    pub scope: ScopeSet,
    pub expires_at: DateTime<Utc>,
    pub issued_at: DateTime<Utc>,
}

/// What introspection says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Introspection {
    /// `{"active": false}`, whatever the reason.
    Inactive,
    Active(ActiveToken),
}

/// Introspects `token`. `now` decides refresh-token expiry (access tokens are checked by the
/// bearer path against the system clock, exactly as the API checks them).
pub async fn introspect(
    db: &impl ConnectionTrait,
    cache: &TokenCache,
    token: &str,
    hint: Option<TokenTypeHint>,
    now: DateTime<Utc>,
) -> Result<Introspection, OAuthError> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN || token.chars().any(char::is_control) {
        return Ok(Introspection::Inactive);
    }
    let looks_like_access = token.starts_with(ACCESS_TOKEN_PREFIX);
    let order = if looks_like_access && hint != Some(TokenTypeHint::RefreshToken) {
        [TokenTypeHint::AccessToken, TokenTypeHint::RefreshToken]
    } else {
        [TokenTypeHint::RefreshToken, TokenTypeHint::AccessToken]
    };
    for kind in order {
        let found = match kind {
            // Only our access tokens carry the prefix: anything else is no access token.
            TokenTypeHint::AccessToken if looks_like_access => {
                access_token(db, cache, token).await?
            }
            TokenTypeHint::AccessToken => None,
            TokenTypeHint::RefreshToken => refresh(db, token, now).await?,
        };
        if let Some(active) = found {
            return Ok(Introspection::Active(active));
        }
    }
    Ok(Introspection::Inactive)
}

async fn access_token(
    db: &impl ConnectionTrait,
    cache: &TokenCache,
    token: &str,
) -> Result<Option<ActiveToken>, OAuthError> {
    match tokens::resolve_token_cached(db, cache, token).await {
        Ok(ctx) => Ok(Some(ActiveToken {
            token_type: TokenKind::Bearer,
            sub: match &ctx.principal {
                Principal::User(user) => user.clone(),
                Principal::Client(client) => client.clone(),
            },
            client_id: ctx.client_id,
            scope: ctx.scopes,
            expires_at: ctx.expires_at,
            issued_at: ctx.issued_at,
        })),
        Err(ApiError::InvalidToken) => Ok(None),
        Err(other) => Err(OAuthError::server_error(&other)),
    }
}

async fn refresh(
    db: &impl ConnectionTrait,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<ActiveToken>, OAuthError> {
    let Some(row) = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(hash_secret(token)))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let expires_at = row.expires_at.min(row.family_expires_at);
    if row.revoked_at.is_some() || row.consumed_at.is_some() || expires_at <= now {
        return Ok(None);
    }
    let client_enabled = oauth_client::Entity::find_by_id(row.client_id.clone())
        .one(db)
        .await?
        .is_some_and(|c| c.disabled_at.is_none());
    if !client_enabled {
        return Ok(None);
    }
    let scope = ScopeSet::parse(&row.scopes).map_err(|e| OAuthError::server_error(&e))?;
    Ok(Some(ActiveToken {
        token_type: TokenKind::RefreshToken,
        client_id: row.client_id,
        sub: row.user_id,
        scope,
        expires_at,
        issued_at: row.created_at,
    }))
}
