//! What people do for themselves: register, confirm their email address, ask for a reset link,
//! set a new password with it, change their password. Mail goes out after the commit.

use sea_orm::{ActiveModelTrait, Set, TransactionTrait};

use super::{
    Accounts,
    errors::AccountError,
    links::{self, Purpose},
    passwords::NewPassword,
    records::user,
    sessions::{self, SessionUser},
    users::{self, DisplayName, Email, NewUser},
};
use crate::db::audit_event;

/// Self-service registration. The answer is the same whether or not the address already has an
/// account (no enumeration): a new account gets a verification link, an existing one a notice.
pub async fn register(
    db: &sea_orm::DatabaseConnection,
    accounts: &Accounts,
    client_ip: std::net::IpAddr,
    email: &str,
    display_name: &str,
    password: &str,
) -> Result<(), AccountError> {
    // Every registration hashes a password and sends mail: limited per address on every edge.
    accounts.address_limiter().check(client_ip).await?;
    if !accounts.registration_open() {
        return Err(AccountError::RegistrationClosed);
    }
    let email = Email::parse(email)?;
    let display_name = DisplayName::parse(display_name)?;
    let password = NewPassword::parse(password)?;
    // Hashed before the lookup, so both answers take the same time.
    let hash = accounts.hasher().hash(&password).await?;
    let new = NewUser {
        email,
        display_name,
        password,
        is_admin: false,
        email_verified: false,
    };
    let txn = db.begin().await?;
    let created = match users::insert(&txn, accounts, &new, hash).await {
        Ok(created) => created,
        Err(AccountError::EmailTaken) => {
            txn.rollback().await?;
            accounts
                .mailer()
                .send_later(accounts.already_registered_mail(new.email.as_str()));
            return Ok(());
        }
        Err(other) => return Err(other),
    };
    let token = links::create(&txn, accounts.clock(), &created.id, Purpose::VerifyEmail).await?;
    audit_event::record(
        &txn,
        &format!("user:{}", created.id),
        "user.registered",
        "user",
        &created.id,
        serde_json::json!({}),
    )
    .await?;
    txn.commit().await?;
    accounts
        .mailer()
        .send_later(accounts.verification_mail(&created.email, &token));
    Ok(())
}

/// Confirms an email address with a verification link.
pub async fn verify_email(
    db: &sea_orm::DatabaseConnection,
    accounts: &Accounts,
    token: &str,
) -> Result<user::Model, AccountError> {
    let txn = db.begin().await?;
    let user_id = links::consume(&txn, accounts.clock(), token, Purpose::VerifyEmail).await?;
    let found = users::find_by_id(&txn, &user_id)
        .await?
        .ok_or(AccountError::InvalidLink)?;
    let now = accounts.clock().now();
    let mut active: user::ActiveModel = found.into();
    active.email_verified_at = Set(Some(now));
    active.updated_at = Set(now);
    let model = active.update(&txn).await?;
    audit_event::record(
        &txn,
        &format!("user:{user_id}"),
        "user.email_verified",
        "user",
        &user_id,
        serde_json::json!({}),
    )
    .await?;
    txn.commit().await?;
    Ok(model)
}

/// Sends a password-reset link when the address has an enabled account; answers the same
/// either way.
pub async fn request_password_reset(
    db: &sea_orm::DatabaseConnection,
    accounts: &Accounts,
    email: &str,
) -> Result<(), AccountError> {
    let Ok(email) = Email::parse(email) else {
        return Ok(());
    };
    let Some(found) = users::find_by_email(db, &email).await? else {
        return Ok(());
    };
    if found.disabled_at.is_some() {
        return Ok(());
    }
    let txn = db.begin().await?;
    let token = links::create(&txn, accounts.clock(), &found.id, Purpose::ResetPassword).await?;
    audit_event::record(
        &txn,
        "anonymous",
        "user.password_reset_requested",
        "user",
        &found.id,
        serde_json::json!({}),
    )
    .await?;
    txn.commit().await?;
    accounts
        .mailer()
        .send_later(accounts.reset_mail(&found.email, &token));
    Ok(())
}

/// Creates a reset link on an administrator's or the CLI's behalf and returns the mail that
/// carries it (the caller sends it: in the background for the API, at once for the CLI).
pub async fn reset_link_mail_for(
    db: &sea_orm::DatabaseConnection,
    accounts: &Accounts,
    user_id: &str,
    actor: &str,
) -> Result<super::mail::OutgoingMail, AccountError> {
    let found = users::find_by_id(db, user_id)
        .await?
        .ok_or(AccountError::NotFound("user"))?;
    let txn = db.begin().await?;
    let token = links::create(&txn, accounts.clock(), &found.id, Purpose::ResetPassword).await?;
    audit_event::record(
        &txn,
        actor,
        "user.password_reset_requested",
        "user",
        &found.id,
        serde_json::json!({}),
    )
    .await?;
    txn.commit().await?;
    Ok(accounts.reset_mail(&found.email, &token))
}

/// Sets a new password with a reset link: the link is used up, every session of the user ends,
/// and the lockout is cleared.
pub async fn reset_password(
    db: &sea_orm::DatabaseConnection,
    accounts: &Accounts,
    token: &str,
    new_password: &str,
) -> Result<(), AccountError> {
    let password = NewPassword::parse(new_password)?;
    let hash = accounts.hasher().hash(&password).await?;
    let txn = db.begin().await?;
    let user_id = links::consume(&txn, accounts.clock(), token, Purpose::ResetPassword).await?;
    let found = users::find_by_id(&txn, &user_id)
        .await?
        .ok_or(AccountError::InvalidLink)?;
    let now = accounts.clock().now();
    let mut active: user::ActiveModel = found.into();
    active.password_hash = Set(hash);
    active.failed_sign_ins = Set(0);
    active.locked_until = Set(None);
    // Following a link from the mailbox proves the address too.
    if active.email_verified_at.as_ref().is_none() {
        active.email_verified_at = Set(Some(now));
    }
    active.updated_at = Set(now);
    active.update(&txn).await?;
    let ended = sessions::end_all(&txn, &user_id, None).await?;
    audit_event::record(
        &txn,
        &format!("user:{user_id}"),
        "user.password_reset",
        "user",
        &user_id,
        serde_json::json!({"sessions_ended": ended}),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Changes the password of a signed-in user after checking the current one; every other session
/// of the user ends.
pub async fn change_password(
    db: &sea_orm::DatabaseConnection,
    accounts: &Accounts,
    who: &SessionUser,
    current: &str,
    new_password: &str,
) -> Result<(), AccountError> {
    let found = users::find_by_id(db, &who.user_id)
        .await?
        .ok_or(AccountError::NotFound("user"))?;
    if !accounts
        .hasher()
        .verify(current, Some(&found.password_hash))
        .await?
    {
        return Err(AccountError::InvalidCredentials);
    }
    let password = NewPassword::parse(new_password)?;
    let hash = accounts.hasher().hash(&password).await?;
    let txn = db.begin().await?;
    let now = accounts.clock().now();
    let mut active: user::ActiveModel = found.into();
    active.password_hash = Set(hash);
    active.updated_at = Set(now);
    active.update(&txn).await?;
    let ended = sessions::end_all(&txn, &who.user_id, Some(&who.session_id)).await?;
    audit_event::record(
        &txn,
        &format!("user:{}", who.user_id),
        "user.password_changed",
        "user",
        &who.user_id,
        serde_json::json!({"other_sessions_ended": ended}),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}
