//! What happens between a checked authorization request and the redirect back to the client: the
//! ceiling of what the signed-in user may grant (their role), the remembered consent that lets the
//! consent page be skipped, the approval or denial, and the single-use code that is issued.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, Set};
use secrecy::{ExposeSecret, SecretString};

use super::{
    Scope, ScopeSet,
    authorization_grant::CODE_LIFETIME,
    authorization_request::{AuthorizationRequest, AuthorizeError, ErrorRedirect, redirect_with},
    consents,
    tokens::{hash_secret, random_secret},
};
use crate::{
    accounts::{
        memberships::{self, Principal, Role},
        records::user,
    },
    db::{self, authorization_code},
};

/// Prefix of authorization codes.
const CODE_PREFIX: &str = "oxbac_";

/// The most a token acting for `user_id` may carry: the OB 3.0 scopes and `offline_access` for
/// every confirmed, enabled user; service scopes by the user's strongest issuer role (viewer:
/// reading; issuer: also writing, issuing and status; owner: also keys); `admin` and everything
/// for administrators. A disabled, unconfirmed or deleted user may grant nothing.
pub async fn scope_ceiling(db: &impl ConnectionTrait, user_id: &str) -> Result<ScopeSet, DbErr> {
    let Some(row) = user::Entity::find_by_id(user_id.to_owned())
        .one(db)
        .await?
        .filter(|u| u.disabled_at.is_none() && u.email_verified_at.is_some())
    else {
        return Ok(ScopeSet::empty());
    };
    let mut set: ScopeSet = [
        Scope::ObCredentialReadonly,
        Scope::ObCredentialUpsert,
        Scope::ObProfileReadonly,
        Scope::ObProfileUpdate,
        Scope::OfflineAccess,
    ]
    .into_iter()
    .collect();
    if row.is_admin {
        return Ok(set.iter().chain(ScopeSet::all().iter()).collect());
    }
    let roles = memberships::member_roles(db, &Principal::User(row.id)).await?;
    let service: &[Scope] = match roles.values().max() {
        None => &[],
        Some(Role::Viewer) => &[
            Scope::IssuersRead,
            Scope::CredentialsRead,
            Scope::CredentialsVerify,
        ],
        Some(Role::Issuer) => &[
            Scope::IssuersRead,
            Scope::IssuersWrite,
            Scope::CredentialsIssue,
            Scope::CredentialsRead,
            Scope::CredentialsStatus,
            Scope::CredentialsVerify,
        ],
        Some(Role::Owner) => &[
            Scope::IssuersRead,
            Scope::IssuersWrite,
            Scope::KeysManage,
            Scope::CredentialsIssue,
            Scope::CredentialsRead,
            Scope::CredentialsStatus,
            Scope::CredentialsVerify,
        ],
    };
    for scope in service {
        set.insert(*scope);
    }
    Ok(set)
}

/// What the authorization endpoint does next for a signed-in user.
#[derive(Debug)]
pub enum Next {
    /// Ask: the request wants scopes the user has not approved for this client yet.
    Consent,
    /// Already approved: go back to the client (the `Location`, carrying a fresh code).
    Redirect(String),
}

fn scope_error(req: &AuthorizationRequest) -> AuthorizeError {
    AuthorizeError::Redirect(ErrorRedirect {
        redirect_uri: req.redirect_uri.clone(),
        error: "invalid_scope",
        description: "the requested scope exceeds what your account may grant".into(),
        state: Some(req.state.clone()),
    })
}

/// [`scope_ceiling`] through `cache` (the token endpoint's reads; see
/// [`super::cache::CeilingCache`] for how long a ceiling is trusted).
pub async fn cached_scope_ceiling(
    db: &impl ConnectionTrait,
    cache: &super::cache::CeilingCache,
    user_id: &str,
) -> Result<ScopeSet, DbErr> {
    if let Some(hit) = cache.get(user_id) {
        return Ok(hit);
    }
    let ceiling = scope_ceiling(db, user_id).await?;
    cache.put(user_id, ceiling);
    Ok(ceiling)
}

/// The error redirect a denial sends (`access_denied`).
pub fn denied(req: &AuthorizationRequest) -> ErrorRedirect {
    ErrorRedirect {
        redirect_uri: req.redirect_uri.clone(),
        error: "access_denied",
        description: "the user denied the request".into(),
        state: Some(req.state.clone()),
    }
}

/// Decides for a signed-in user: refuse scopes above the user's role (`invalid_scope`, nothing
/// issued), skip the page when the consent already covers the request, otherwise ask.
pub async fn begin(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    issuer: &str,
    req: &AuthorizationRequest,
    user_id: &str,
) -> Result<Next, AuthorizeError> {
    if !scope_ceiling(db, user_id).await?.is_superset(req.scopes) {
        return Err(scope_error(req));
    }
    let remembered = consents::remembered(db, user_id, &req.client.id).await?;
    if remembered.is_superset(req.scopes) {
        let txn = db::begin_write(db).await?;
        let location = issue_code(&txn, now, issuer, req, user_id).await?;
        txn.commit().await?;
        return Ok(Next::Redirect(location));
    }
    Ok(Next::Consent)
}

/// The user approved: remember the consent and issue a code; returns the `Location`.
pub async fn approve(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    issuer: &str,
    req: &AuthorizationRequest,
    user_id: &str,
) -> Result<String, AuthorizeError> {
    let txn = db::begin_write(db).await?;
    if !scope_ceiling(&txn, user_id).await?.is_superset(req.scopes) {
        return Err(scope_error(req));
    }
    consents::remember(&txn, user_id, &req.client.id, req.scopes, now).await?;
    let location = issue_code(&txn, now, issuer, req, user_id).await?;
    txn.commit().await?;
    Ok(location)
}

async fn issue_code(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    issuer: &str,
    req: &AuthorizationRequest,
    user_id: &str,
) -> Result<String, DbErr> {
    let code: SecretString = random_secret(CODE_PREFIX);
    authorization_code::ActiveModel {
        id: Set(db::new_id()),
        code_hash: Set(hash_secret(code.expose_secret())),
        client_id: Set(req.client.id.clone()),
        user_id: Set(user_id.to_owned()),
        redirect_uri: Set(req.redirect_uri.clone()),
        scopes: Set(req.scopes.to_string()),
        code_challenge: Set(req.challenge.as_str().to_owned()),
        created_at: Set(now),
        expires_at: Set(now + CODE_LIFETIME),
        exchanged_at: Set(None),
        revoked_at: Set(None),
    }
    .insert(db)
    .await?;
    tracing::info!(client_id = %req.client.id, user_id, "authorization code issued");
    Ok(redirect_with(
        &req.redirect_uri,
        &[
            ("code", code.expose_secret()),
            ("state", &req.state),
            ("iss", issuer),
        ],
    ))
}

/// Whether a presented code looks like one of ours (a cheap check before any database work).
pub fn code_well_formed(code: &str) -> bool {
    code.starts_with(CODE_PREFIX) && code.len() <= 128
}

/// Looks a stored code up by the presented value.
pub async fn find_code(
    db: &impl ConnectionTrait,
    code: &str,
) -> Result<Option<authorization_code::Model>, DbErr> {
    use sea_orm::{ColumnTrait, QueryFilter};
    authorization_code::Entity::find()
        .filter(authorization_code::Column::CodeHash.eq(hash_secret(code)))
        .one(db)
        .await
}
