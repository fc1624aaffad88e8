//! Refresh tokens in families (one family per exchanged authorization code, `grant_id` = the code
//! id). The state of one token is a pure enum ([`RefreshState`]): `Active` until it is rotated
//! (`Consumed`, naming its successor) or its family ends (`Revoked`). Presenting a consumed token
//! again is a reuse: the whole family and every access token of the grant are revoked. Rotation is
//! a compare-and-set UPDATE, so two concurrent refreshes with one token cannot both win.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, sea_query::Expr};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::{
    OAuthError, ScopeSet, authorization,
    tokens::{self, PreparedToken, TokenGrant, hash_secret, random_secret},
};
use crate::db::{self, access_token, audit_event, oauth_client, refresh_token};

/// Prefix of refresh tokens (lets secret scanners and a quick check recognise one).
const REFRESH_TOKEN_PREFIX: &str = "oxbrt_";

/// How long refresh tokens live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshLifetimes {
    /// A token unused this long expires (each rotation starts a new idle period).
    pub idle: Duration,
    /// A family ends this long after its code was exchanged, however often it is refreshed.
    pub absolute: Duration,
}

/// Where one refresh token stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshState {
    /// Usable until `expires_at` (idle) and `family_expires_at` (absolute).
    Active {
        expires_at: DateTime<Utc>,
        family_expires_at: DateTime<Utc>,
    },
    /// Rotated; `replaced_by` is its successor.
    Consumed { replaced_by: Option<String> },
    /// Its family was revoked.
    Revoked,
}

/// Why a refresh is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RefreshRefused {
    /// `invalid_grant`, and the family must be revoked: the token was already rotated.
    #[error("the refresh token was already used")]
    Reused,
    /// `invalid_grant`: idle or absolute lifetime over.
    #[error("the refresh token has expired")]
    Expired,
    /// `invalid_grant`: the family was revoked.
    #[error("the refresh token was revoked")]
    Revoked,
    /// `invalid_scope`: the request asks for a scope the token does not carry.
    #[error("the requested scope exceeds the scope originally granted")]
    ScopeWidened,
}

impl RefreshState {
    /// The state of a stored token.
    pub fn from_row(row: &refresh_token::Model) -> Self {
        if row.revoked_at.is_some() {
            Self::Revoked
        } else if row.consumed_at.is_some() {
            Self::Consumed {
                replaced_by: row.replaced_by.clone(),
            }
        } else {
            Self::Active {
                expires_at: row.expires_at,
                family_expires_at: row.family_expires_at,
            }
        }
    }

    /// Checks a rotation at `now` for `requested` (None: the granted scopes) and returns the scopes
    /// of the new access token.
    pub fn rotate(
        &self,
        now: DateTime<Utc>,
        granted: ScopeSet,
        requested: Option<ScopeSet>,
    ) -> Result<ScopeSet, RefreshRefused> {
        match self {
            Self::Revoked => Err(RefreshRefused::Revoked),
            Self::Consumed { .. } => Err(RefreshRefused::Reused),
            Self::Active {
                expires_at,
                family_expires_at,
            } => {
                if now >= *expires_at || now >= *family_expires_at {
                    return Err(RefreshRefused::Expired);
                }
                match requested {
                    Some(req) if !granted.is_superset(req) => Err(RefreshRefused::ScopeWidened),
                    Some(req) => Ok(req),
                    None => Ok(granted),
                }
            }
        }
    }

    /// The idle deadline of a successor issued at `now` (never past the family's end).
    pub fn successor_expiry(
        now: DateTime<Utc>,
        family_expires_at: DateTime<Utc>,
        lifetimes: RefreshLifetimes,
    ) -> DateTime<Utc> {
        (now + lifetimes.idle).min(family_expires_at)
    }
}

/// A refresh token of the family `grant_id`, not stored yet: its row (hash only) and its value.
#[allow(clippy::too_many_arguments)]
pub fn prepare_row(
    id: String,
    grant_id: &str,
    client_id: &str,
    user_id: &str,
    scopes: ScopeSet,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    family_expires_at: DateTime<Utc>,
) -> (refresh_token::Model, SecretString) {
    let token = random_secret(REFRESH_TOKEN_PREFIX);
    let row = refresh_token::Model {
        id,
        token_hash: hash_secret(token.expose_secret()),
        grant_id: grant_id.to_owned(),
        client_id: client_id.to_owned(),
        user_id: user_id.to_owned(),
        scopes: scopes.to_string(),
        created_at: now,
        expires_at,
        family_expires_at,
        consumed_at: None,
        replaced_by: None,
        revoked_at: None,
    };
    (row, token)
}

/// Revokes every refresh token of the family `grant_id` and every access token of the grant.
/// Returns (refresh tokens, access tokens) revoked.
pub async fn revoke_family(
    db: &impl ConnectionTrait,
    grant_id: &str,
    now: DateTime<Utc>,
) -> Result<(u64, u64), DbErr> {
    let refresh = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(now))
        .filter(refresh_token::Column::GrantId.eq(grant_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?
        .rows_affected;
    let access = access_token::Entity::update_many()
        .col_expr(access_token::Column::RevokedAt, Expr::value(now))
        .filter(access_token::Column::GrantId.eq(grant_id))
        .filter(access_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?
        .rows_affected;
    Ok((refresh, access))
}

/// What a successful refresh hands back.
#[derive(Debug)]
pub struct Refreshed {
    pub access: TokenGrant,
    pub refresh_token: SecretString,
    /// The user the tokens act for (the caller evicts cached tokens on a reuse).
    pub user_id: String,
}

/// A refused refresh: the OAuth error, and the user whose family was revoked (when it was).
#[derive(Debug)]
pub struct RefreshFailure {
    pub error: OAuthError,
    pub family_revoked_for: Option<String>,
}

impl From<OAuthError> for RefreshFailure {
    fn from(error: OAuthError) -> Self {
        Self {
            error,
            family_revoked_for: None,
        }
    }
}

impl From<DbErr> for RefreshFailure {
    fn from(err: DbErr) -> Self {
        OAuthError::from(err).into()
    }
}

fn invalid_grant(why: impl Into<String>) -> OAuthError {
    OAuthError::invalid_grant(why)
}

/// A refresh request checked for shape (no database involved yet).
#[derive(Debug, Clone)]
pub struct CheckedRefresh {
    pub presented: String,
    pub requested: Option<ScopeSet>,
}

/// Refuses a refresh token that cannot be one of ours and a scope that does not parse.
pub fn check_request(
    presented: &str,
    requested: Option<&str>,
) -> Result<CheckedRefresh, RefreshFailure> {
    if !presented.starts_with(REFRESH_TOKEN_PREFIX) || presented.len() > 128 {
        return Err(invalid_grant("the refresh token is not valid").into());
    }
    let requested = match requested.map(str::trim).filter(|s| !s.is_empty()) {
        Some(raw) => {
            Some(ScopeSet::parse(raw).map_err(|e| OAuthError::invalid_scope(e.to_string()))?)
        }
        None => None,
    };
    Ok(CheckedRefresh {
        presented: presented.to_owned(),
        requested,
    })
}

/// A refresh token that passed every check that needs no write, with its successor and the new
/// access token (not stored yet), or a token that was already used (presenting it again revokes
/// its family).
#[derive(Debug)]
pub enum PreparedRefresh {
    Rotate(Box<Rotation>),
    Reuse(Box<refresh_token::Model>),
}

/// What a rotation stores: the presented token is marked consumed and replaced by `successor`
/// (compare-and-set), the successor and the access token are inserted.
#[derive(Debug)]
pub struct Rotation {
    pub row: refresh_token::Model,
    pub successor: refresh_token::Model,
    pub successor_secret: SecretString,
    pub access: PreparedToken,
}

impl Rotation {
    /// What the caller is handed once the rotation is committed.
    pub fn into_refreshed(self) -> Refreshed {
        Refreshed {
            access: self.access.grant,
            refresh_token: self.successor_secret,
            user_id: self.row.user_id,
        }
    }
}

/// The `refresh_token` grant's checks for the authenticated `client`, with reads only: the token
/// is this client's, active (neither expired, revoked nor consumed), the scope only narrows, and
/// the new access token is capped by what the user and client may still have. The write (the
/// compare-and-set that consumes the presented token, and the inserts) is the grant writer's
/// ([`super::grant_writer`]).
pub async fn prepare(
    db: &impl ConnectionTrait,
    ceilings: &super::cache::CeilingCache,
    now: DateTime<Utc>,
    client: &oauth_client::Model,
    request: &CheckedRefresh,
    lifetimes: RefreshLifetimes,
    access_ttl_secs: u64,
) -> Result<PreparedRefresh, RefreshFailure> {
    let row = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(hash_secret(&request.presented)))
        .one(db)
        .await?
        .filter(|r| r.client_id == client.id)
        .ok_or_else(|| invalid_grant("the refresh token is not valid"))?;
    let granted = ScopeSet::parse(&row.scopes)
        .map_err(|e| OAuthError::server_error(&format!("stored refresh scopes: {e}")))?;
    let state = RefreshState::from_row(&row);
    let scopes = match state.rotate(now, granted, request.requested) {
        Ok(scopes) => scopes,
        Err(RefreshRefused::Reused) => return Ok(PreparedRefresh::Reuse(Box::new(row))),
        Err(RefreshRefused::ScopeWidened) => {
            return Err(OAuthError::invalid_scope(RefreshRefused::ScopeWidened.to_string()).into());
        }
        Err(other) => return Err(invalid_grant(other.to_string()).into()),
    };
    let ceiling = authorization::cached_scope_ceiling(db, ceilings, &row.user_id).await?;
    let client_allowed = ScopeSet::parse(&client.scopes).unwrap_or_default();
    let access_scopes: ScopeSet = scopes
        .iter()
        .filter(|s| ceiling.contains(*s) && client_allowed.contains(*s))
        .collect();
    if access_scopes.is_empty() {
        return Err(invalid_grant("nothing of the grant can be issued any more").into());
    }
    let (successor, successor_secret) = prepare_row(
        db::new_id(),
        &row.grant_id,
        &client.id,
        &row.user_id,
        granted,
        now,
        RefreshState::successor_expiry(now, row.family_expires_at, lifetimes),
        row.family_expires_at,
    );
    let access = tokens::prepare_token(
        &client.id,
        Some(&row.user_id),
        Some(&row.grant_id),
        access_scopes,
        access_ttl_secs,
    );
    Ok(PreparedRefresh::Rotate(Box::new(Rotation {
        row,
        successor,
        successor_secret,
        access,
    })))
}

/// The refusal of a refresh token that was used before (or by a concurrent request that won):
/// its whole family is revoked (inside `txn`, to be committed) and the detection audited.
pub(crate) async fn refuse_reuse(
    txn: &impl ConnectionTrait,
    row: &refresh_token::Model,
    client_id: &str,
    now: DateTime<Utc>,
) -> Result<RefreshFailure, DbErr> {
    let (refresh, access) = revoke_family(txn, &row.grant_id, now).await?;
    audit_event::record(
        txn,
        &format!("client:{client_id}"),
        "oauth.refresh_reuse_detected",
        "grant",
        &row.grant_id,
        json!({"userId": row.user_id, "refreshTokensRevoked": refresh, "accessTokensRevoked": access}),
    )
    .await?;
    tracing::warn!(client_id, grant = %row.grant_id, "refresh token reuse: family revoked");
    Ok(RefreshFailure {
        error: invalid_grant(RefreshRefused::Reused.to_string()),
        family_revoked_for: Some(row.user_id.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lifetimes() -> RefreshLifetimes {
        RefreshLifetimes {
            idle: Duration::days(7),
            absolute: Duration::days(90),
        }
    }

    fn active(now: DateTime<Utc>) -> RefreshState {
        RefreshState::Active {
            expires_at: now + Duration::days(7),
            family_expires_at: now + Duration::days(90),
        }
    }

    #[test]
    fn rotation_narrows_never_widens() {
        let now = Utc::now();
        let granted = ScopeSet::parse("issuers:read credentials:read offline_access").unwrap();
        let narrow = ScopeSet::parse("issuers:read").unwrap();
        let wide = ScopeSet::parse("issuers:read credentials:issue").unwrap();
        assert_eq!(active(now).rotate(now, granted, None), Ok(granted));
        assert_eq!(active(now).rotate(now, granted, Some(narrow)), Ok(narrow));
        assert_eq!(
            active(now).rotate(now, granted, Some(wide)),
            Err(RefreshRefused::ScopeWidened)
        );
    }

    #[test]
    fn consumed_is_reuse_revoked_is_revoked_and_lifetimes_end() {
        let now = Utc::now();
        let granted = ScopeSet::parse("issuers:read").unwrap();
        let consumed = RefreshState::Consumed {
            replaced_by: Some("next".into()),
        };
        assert_eq!(
            consumed.rotate(now, granted, None),
            Err(RefreshRefused::Reused)
        );
        assert_eq!(
            RefreshState::Revoked.rotate(now, granted, None),
            Err(RefreshRefused::Revoked)
        );
        assert_eq!(
            active(now).rotate(now + Duration::days(7), granted, None),
            Err(RefreshRefused::Expired)
        );
        let old_family = RefreshState::Active {
            expires_at: now + Duration::days(7),
            family_expires_at: now + Duration::days(1),
        };
        assert_eq!(
            old_family.rotate(now + Duration::days(2), granted, None),
            Err(RefreshRefused::Expired)
        );
    }

    #[test]
    fn a_successor_never_outlives_its_family() {
        let now = Utc::now();
        assert_eq!(
            RefreshState::successor_expiry(now, now + Duration::days(90), lifetimes()),
            now + Duration::days(7)
        );
        assert_eq!(
            RefreshState::successor_expiry(now, now + Duration::days(2), lifetimes()),
            now + Duration::days(2)
        );
    }
}
