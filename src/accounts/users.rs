//! Users: parsed email addresses and display names, creation, lookup, listing, disabling.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionTrait,
};

use super::{Accounts, errors::AccountError, passwords::NewPassword, records::user, sessions};
use crate::db::audit_event;

/// A normalized (trimmed, lower-case) email address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Parses and normalizes an email address.
    pub fn parse(raw: &str) -> Result<Self, AccountError> {
        if raw.len() > 254 {
            return Err(AccountError::InvalidEmail(
                "the email address is too long".into(),
            ));
        }
        crate::ob::normalize_email(raw)
            .map(Self)
            .map_err(|_| AccountError::InvalidEmail("this is not an email address".into()))
    }

    /// The normalized address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A display name: trimmed, 1–100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Parses a display name.
    pub fn parse(raw: &str) -> Result<Self, AccountError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(AccountError::InvalidDisplayName("enter a name".into()));
        }
        if name.chars().count() > 100 {
            return Err(AccountError::InvalidDisplayName(
                "the name must be at most 100 characters long".into(),
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(AccountError::InvalidDisplayName(
                "the name must not contain control characters".into(),
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A user to create.
#[derive(Debug)]
pub struct NewUser {
    pub email: Email,
    pub display_name: DisplayName,
    pub password: NewPassword,
    pub is_admin: bool,
    /// Whether the address counts as confirmed (staff created by an admin or the CLI).
    pub email_verified: bool,
}

/// Finds a user by normalized email.
pub async fn find_by_email(
    db: &impl ConnectionTrait,
    email: &Email,
) -> Result<Option<user::Model>, AccountError> {
    Ok(user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(db)
        .await?)
}

/// Finds a user by id.
pub async fn find_by_id(
    db: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<user::Model>, AccountError> {
    Ok(user::Entity::find_by_id(id.to_owned()).one(db).await?)
}

/// Inserts a user with an already computed password hash (inside the caller's transaction).
pub(crate) async fn insert(
    db: &impl ConnectionTrait,
    accounts: &Accounts,
    new: &NewUser,
    password_hash: String,
) -> Result<user::Model, AccountError> {
    if find_by_email(db, &new.email).await?.is_some() {
        return Err(AccountError::EmailTaken);
    }
    let now = accounts.clock().now();
    let model = user::ActiveModel {
        id: Set(crate::db::new_id()),
        email: Set(new.email.as_str().to_owned()),
        display_name: Set(new.display_name.as_str().to_owned()),
        password_hash: Set(password_hash),
        is_admin: Set(new.is_admin),
        email_verified_at: Set(new.email_verified.then_some(now)),
        disabled_at: Set(None),
        failed_sign_ins: Set(0),
        locked_until: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .map_err(|e| match e.sql_err() {
        // A concurrent insert of the same address lost the race on the unique index.
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => AccountError::EmailTaken,
        _ => AccountError::Db(e),
    })?;
    Ok(model)
}

/// Creates a user (admin API, CLI) and records `user.created`.
pub async fn create_user(
    db: &sea_orm::DatabaseConnection,
    accounts: &Accounts,
    new: NewUser,
    actor: &str,
) -> Result<user::Model, AccountError> {
    let hash = accounts.hasher().hash(&new.password).await?;
    let txn = db.begin().await?;
    let model = insert(&txn, accounts, &new, hash).await?;
    audit_event::record(
        &txn,
        actor,
        "user.created",
        "user",
        &model.id,
        serde_json::json!({"is_admin": model.is_admin}),
    )
    .await?;
    txn.commit().await?;
    Ok(model)
}

/// Users ordered by email, with the total count.
pub async fn list_users(
    db: &impl ConnectionTrait,
    limit: u64,
    offset: u64,
) -> Result<(Vec<user::Model>, u64), AccountError> {
    let total = user::Entity::find().count(db).await?;
    let rows = user::Entity::find()
        .order_by_asc(user::Column::Email)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await?;
    Ok((rows, total))
}

/// Disables a user (or enables them again); disabling ends every session.
pub async fn set_disabled(
    db: &sea_orm::DatabaseConnection,
    accounts: &Accounts,
    user_id: &str,
    disabled: bool,
    actor: &str,
) -> Result<user::Model, AccountError> {
    let txn = db.begin().await?;
    let found = find_by_id(&txn, user_id)
        .await?
        .ok_or(AccountError::NotFound("user"))?;
    let now = accounts.clock().now();
    let mut active: user::ActiveModel = found.into();
    active.disabled_at = Set(disabled.then_some(now));
    active.updated_at = Set(now);
    let model = active.update(&txn).await?;
    if disabled {
        sessions::end_all(&txn, user_id, None).await?;
    }
    // The running instances forget the user's cached tokens and scope ceiling when this commits
    // (PostgreSQL; on SQLite the caches' two-second window bounds it).
    crate::invalidation::announce(
        &txn,
        &crate::invalidation::Change::Principal(super::memberships::Principal::User(
            user_id.to_owned(),
        )),
    )
    .await?;
    audit_event::record(
        &txn,
        actor,
        if disabled {
            "user.disabled"
        } else {
            "user.enabled"
        },
        "user",
        user_id,
        serde_json::json!({}),
    )
    .await?;
    txn.commit().await?;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_normalized_and_names_are_checked() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
        assert!(Email::parse("not an email").is_err());
        assert!(DisplayName::parse("  ").is_err());
        assert!(DisplayName::parse("a\u{0007}b").is_err());
        assert_eq!(DisplayName::parse(" Ada ").unwrap().as_str(), "Ada");
    }
}
