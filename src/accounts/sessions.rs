//! Server-side sessions: a random 256-bit cookie value, stored as SHA-256; 12 h idle and 7 days
//! absolute lifetime; a new value at every sign-in; listing and ending them.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
    sea_query::Expr,
};
use secrecy::SecretString;

use super::{
    errors::AccountError,
    records::{session, user},
    secret_token,
};
use crate::clock::Clock;

/// A session ends after this long without a request.
pub const IDLE: Duration = Duration::hours(12);
/// A session ends this long after sign-in, whatever happens.
pub const ABSOLUTE: Duration = Duration::days(7);
/// `last_seen_at` is written at most this often per session.
const TOUCH_EVERY: Duration = Duration::minutes(1);

/// Who a signed-in session belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    /// The session's public id.
    pub session_id: String,
    pub user_id: String,
    pub email: String,
    pub display_name: String,
    pub is_admin: bool,
    pub email_verified: bool,
    /// When the password was checked for this session.
    pub authenticated_at: DateTime<Utc>,
}

/// Where a session was started from (kept for the session list).
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub user_agent: Option<String>,
    pub ip_address: Option<String>,
}

/// Starts a session for `user_id`; the returned secret is the cookie value (shown only now).
pub async fn start(
    db: &impl ConnectionTrait,
    clock: &Clock,
    user_id: &str,
    origin: Origin,
) -> Result<(SecretString, session::Model), AccountError> {
    let now = clock.now();
    let secret = secret_token::generate();
    let model = session::ActiveModel {
        id: Set(crate::db::new_id()),
        secret_hash: Set(secret_token::hash_secret(&secret)),
        user_id: Set(user_id.to_owned()),
        created_at: Set(now),
        authenticated_at: Set(now),
        last_seen_at: Set(now),
        expires_at: Set(now + ABSOLUTE),
        user_agent: Set(origin.user_agent.map(|ua| ua.chars().take(200).collect())),
        ip_address: Set(origin.ip_address),
    }
    .insert(db)
    .await?;
    Ok((secret, model))
}

/// The signed-in user of the cookie value `cookie`, if it names a live session of an enabled
/// user. Refreshes `last_seen_at` (at most once a minute); deletes the session once it is over.
pub async fn resolve(
    db: &impl ConnectionTrait,
    clock: &Clock,
    cookie: &str,
) -> Result<Option<SessionUser>, AccountError> {
    if !secret_token::well_formed(cookie) {
        return Ok(None);
    }
    let Some(s) = session::Entity::find()
        .filter(session::Column::SecretHash.eq(secret_token::hash(cookie)))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let now = clock.now();
    if now >= s.expires_at || now >= s.last_seen_at + IDLE {
        session::Entity::delete_by_id(s.id).exec(db).await?;
        return Ok(None);
    }
    let Some(u) = user::Entity::find_by_id(s.user_id.clone()).one(db).await? else {
        return Ok(None);
    };
    if u.disabled_at.is_some() {
        return Ok(None);
    }
    if now - s.last_seen_at >= TOUCH_EVERY {
        session::Entity::update_many()
            .col_expr(session::Column::LastSeenAt, Expr::value(now))
            .filter(session::Column::Id.eq(s.id.clone()))
            .exec(db)
            .await?;
    }
    Ok(Some(SessionUser {
        session_id: s.id,
        user_id: u.id,
        email: u.email,
        display_name: u.display_name,
        is_admin: u.is_admin,
        email_verified: u.email_verified_at.is_some(),
        authenticated_at: s.authenticated_at,
    }))
}

/// Ends the session of the cookie value `cookie` (sign-out). Unknown values are fine.
pub async fn end_by_cookie(db: &impl ConnectionTrait, cookie: &str) -> Result<(), AccountError> {
    if secret_token::well_formed(cookie) {
        session::Entity::delete_many()
            .filter(session::Column::SecretHash.eq(secret_token::hash(cookie)))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Ends one of `user_id`'s sessions by its public id; `NotFound` when it is not theirs.
pub async fn end_by_id(
    db: &impl ConnectionTrait,
    user_id: &str,
    session_id: &str,
) -> Result<(), AccountError> {
    let deleted = session::Entity::delete_many()
        .filter(session::Column::Id.eq(session_id))
        .filter(session::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    if deleted.rows_affected == 0 {
        return Err(AccountError::NotFound("session"));
    }
    Ok(())
}

/// Ends every session of `user_id` except `keep` (password change, reset, disable).
pub async fn end_all(
    db: &impl ConnectionTrait,
    user_id: &str,
    keep: Option<&str>,
) -> Result<u64, AccountError> {
    let mut q = session::Entity::delete_many().filter(session::Column::UserId.eq(user_id));
    if let Some(keep) = keep {
        q = q.filter(session::Column::Id.ne(keep));
    }
    Ok(q.exec(db).await?.rows_affected)
}

/// The live sessions of `user_id`, newest first.
pub async fn list(
    db: &impl ConnectionTrait,
    clock: &Clock,
    user_id: &str,
) -> Result<Vec<session::Model>, AccountError> {
    let now = clock.now();
    Ok(session::Entity::find()
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::ExpiresAt.gt(now))
        .filter(session::Column::LastSeenAt.gt(now - IDLE))
        .order_by_desc(session::Column::CreatedAt)
        .all(db)
        .await?)
}
