//! Signing in with email and password: per-address limit, per-account lockout with back-off,
//! one answer for every failure (unknown, locked, disabled, wrong password), a dummy hash for
//! unknown addresses so timing matches, and a new session (a new cookie value) on success.

use std::net::IpAddr;

use sea_orm::{
    ColumnTrait, EntityTrait, QueryFilter, TransactionTrait,
    sea_query::{Expr, ExprTrait},
};
use secrecy::SecretString;

use super::{
    Accounts,
    errors::AccountError,
    links::{self, Purpose},
    records::user,
    sessions::{self, Origin, SessionUser},
    sign_in_throttle::lock_for,
    users::{self, Email},
};
use crate::db::audit_event;

/// A successful sign-in: the new cookie value and who it belongs to.
pub struct SignedIn {
    /// The session cookie value (shown only now).
    pub cookie: SecretString,
    pub user: SessionUser,
}

/// Checks `email` and `password` and starts a session.
pub async fn sign_in(
    db: &sea_orm::DatabaseConnection,
    accounts: &Accounts,
    ip: IpAddr,
    email: &str,
    password: &str,
    user_agent: Option<String>,
) -> Result<SignedIn, AccountError> {
    accounts.address_limiter().check(ip).await?;
    let found = match Email::parse(email) {
        Ok(email) => users::find_by_email(db, &email).await?,
        Err(_) => None,
    };
    let Some(found) = found else {
        // Same work as for a real account, then the same answer.
        accounts.hasher().verify(password, None).await?;
        audit_event::record(
            db,
            "anonymous",
            "user.sign_in_failed",
            "user",
            "unknown",
            serde_json::json!({"ip": ip.to_string(), "reason": "unknown_account"}),
        )
        .await?;
        return Err(AccountError::InvalidCredentials);
    };
    let now = accounts.clock().now();
    // The hash is checked in every case, so a locked or disabled account takes as long.
    let password_ok = accounts
        .hasher()
        .verify(password, Some(&found.password_hash))
        .await?;
    let locked = found.locked_until.is_some_and(|until| until > now);
    if found.disabled_at.is_some() || locked {
        audit_event::record(
            db,
            "anonymous",
            "user.sign_in_failed",
            "user",
            &found.id,
            serde_json::json!({
                "ip": ip.to_string(),
                "reason": if locked { "locked" } else { "disabled" },
            }),
        )
        .await?;
        return Err(AccountError::InvalidCredentials);
    }
    if !password_ok {
        record_failure(db, accounts, &found, ip).await?;
        return Err(AccountError::InvalidCredentials);
    }
    if found.email_verified_at.is_none() {
        let token = links::create(db, accounts.clock(), &found.id, Purpose::VerifyEmail).await?;
        accounts
            .mailer()
            .send_later(accounts.verification_mail(&found.email, &token));
        return Err(AccountError::EmailNotVerified);
    }
    let txn = db.begin().await?;
    user::Entity::update_many()
        .col_expr(user::Column::FailedSignIns, Expr::value(0))
        .col_expr(
            user::Column::LockedUntil,
            Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
        )
        .filter(user::Column::Id.eq(found.id.clone()))
        .exec(&txn)
        .await?;
    let (cookie, session) = sessions::start(
        &txn,
        accounts.clock(),
        &found.id,
        Origin {
            user_agent,
            ip_address: Some(ip.to_string()),
        },
    )
    .await?;
    audit_event::record(
        &txn,
        &format!("user:{}", found.id),
        "user.signed_in",
        "user",
        &found.id,
        serde_json::json!({"ip": ip.to_string(), "session": session.id}),
    )
    .await?;
    txn.commit().await?;
    Ok(SignedIn {
        cookie,
        user: SessionUser {
            session_id: session.id,
            user_id: found.id,
            email: found.email,
            display_name: found.display_name,
            is_admin: found.is_admin,
            email_verified: true,
            authenticated_at: session.authenticated_at,
        },
    })
}

/// Counts a failed password and locks the account once the count reaches the limit.
async fn record_failure(
    db: &sea_orm::DatabaseConnection,
    accounts: &Accounts,
    found: &user::Model,
    ip: IpAddr,
) -> Result<(), AccountError> {
    let txn = db.begin().await?;
    user::Entity::update_many()
        .col_expr(
            user::Column::FailedSignIns,
            Expr::col(user::Column::FailedSignIns).add(1),
        )
        .filter(user::Column::Id.eq(found.id.clone()))
        .exec(&txn)
        .await?;
    let failures = users::find_by_id(&txn, &found.id)
        .await?
        .map(|u| u.failed_sign_ins)
        .unwrap_or(found.failed_sign_ins + 1);
    audit_event::record(
        &txn,
        "anonymous",
        "user.sign_in_failed",
        "user",
        &found.id,
        serde_json::json!({"ip": ip.to_string(), "reason": "wrong_password", "failures": failures}),
    )
    .await?;
    if let Some(lock) = lock_for(failures) {
        let until = accounts.clock().now() + lock;
        user::Entity::update_many()
            .col_expr(user::Column::LockedUntil, Expr::value(Some(until)))
            .filter(user::Column::Id.eq(found.id.clone()))
            .exec(&txn)
            .await?;
        audit_event::record(
            &txn,
            "system",
            "user.locked",
            "user",
            &found.id,
            serde_json::json!({"failures": failures, "locked_secs": lock.num_seconds()}),
        )
        .await?;
        tracing::warn!(user = %found.id, failures, locked_secs = lock.num_seconds(), "account locked after failed sign-ins");
    }
    txn.commit().await?;
    Ok(())
}
