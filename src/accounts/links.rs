//! Single-use links sent by mail: email verification (24 h) and password reset (1 h). The token
//! is random (256 bits) and only its SHA-256 is stored; using it is one compare-and-set UPDATE,
//! so two concurrent uses cannot both succeed.

use chrono::Duration;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, sea_query::Expr,
};
use secrecy::SecretString;

use super::{errors::AccountError, records::link, secret_token};
use crate::clock::Clock;

/// What a link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Confirms the email address (24 h).
    VerifyEmail,
    /// Sets a new password (1 h).
    ResetPassword,
}

impl Purpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
        }
    }

    /// How long a link of this purpose works.
    pub fn lifetime(self) -> Duration {
        match self {
            Self::VerifyEmail => Duration::hours(24),
            Self::ResetPassword => Duration::hours(1),
        }
    }
}

/// Creates a link token for `user_id`; the returned secret goes into the mail and nowhere else.
pub async fn create(
    db: &impl ConnectionTrait,
    clock: &Clock,
    user_id: &str,
    purpose: Purpose,
) -> Result<SecretString, AccountError> {
    let now = clock.now();
    let secret = secret_token::generate();
    link::ActiveModel {
        id: Set(crate::db::new_id()),
        user_id: Set(user_id.to_owned()),
        purpose: Set(purpose.as_str().to_owned()),
        token_hash: Set(secret_token::hash_secret(&secret)),
        created_at: Set(now),
        expires_at: Set(now + purpose.lifetime()),
        used_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(secret)
}

/// Uses a link token: marks it used and returns its user id. Unknown, used, expired and
/// wrong-purpose tokens are all `InvalidLink`.
pub async fn consume(
    db: &impl ConnectionTrait,
    clock: &Clock,
    token: &str,
    purpose: Purpose,
) -> Result<String, AccountError> {
    if !secret_token::well_formed(token) {
        return Err(AccountError::InvalidLink);
    }
    let now = clock.now();
    let hash = secret_token::hash(token);
    let updated = link::Entity::update_many()
        .col_expr(link::Column::UsedAt, Expr::value(Some(now)))
        .filter(link::Column::TokenHash.eq(hash.clone()))
        .filter(link::Column::Purpose.eq(purpose.as_str()))
        .filter(link::Column::UsedAt.is_null())
        .filter(link::Column::ExpiresAt.gt(now))
        .exec(db)
        .await?;
    if updated.rows_affected != 1 {
        return Err(AccountError::InvalidLink);
    }
    link::Entity::find()
        .filter(link::Column::TokenHash.eq(hash))
        .one(db)
        .await?
        .map(|l| l.user_id)
        .ok_or(AccountError::InvalidLink)
}

/// Whether a link token is currently usable (for showing the form before it is used).
pub async fn is_usable(
    db: &impl ConnectionTrait,
    clock: &Clock,
    token: &str,
    purpose: Purpose,
) -> Result<bool, AccountError> {
    if !secret_token::well_formed(token) {
        return Ok(false);
    }
    Ok(link::Entity::find()
        .filter(link::Column::TokenHash.eq(secret_token::hash(token)))
        .filter(link::Column::Purpose.eq(purpose.as_str()))
        .filter(link::Column::UsedAt.is_null())
        .filter(link::Column::ExpiresAt.gt(clock.now()))
        .one(db)
        .await?
        .is_some())
}
