//! Remembered consents per (user, client): the union of the scopes the user approved. The consent
//! page is skipped while a request asks for no more; withdrawing a consent (the account page) ends
//! every token and pending code the client holds for the user.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, Set, sea_query::Expr,
};
use serde_json::json;

use super::ScopeSet;
use crate::db::{
    self, access_token, audit_event, authorization_code, oauth_client, oauth_consent, refresh_token,
};

/// The scopes `user_id` approved for `client_id` (empty when none).
pub async fn remembered(
    db: &impl ConnectionTrait,
    user_id: &str,
    client_id: &str,
) -> Result<ScopeSet, DbErr> {
    Ok(oauth_consent::Entity::find()
        .filter(oauth_consent::Column::UserId.eq(user_id))
        .filter(oauth_consent::Column::ClientId.eq(client_id))
        .one(db)
        .await?
        .and_then(|c| ScopeSet::parse(&c.scopes).ok())
        .unwrap_or_default())
}

/// Adds `scopes` to what `user_id` approved for `client_id` (audited as `oauth.consent_granted`).
pub async fn remember(
    db: &impl ConnectionTrait,
    user_id: &str,
    client_id: &str,
    scopes: ScopeSet,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let existing = oauth_consent::Entity::find()
        .filter(oauth_consent::Column::UserId.eq(user_id))
        .filter(oauth_consent::Column::ClientId.eq(client_id))
        .one(db)
        .await?;
    let union = match &existing {
        Some(row) => {
            let before = ScopeSet::parse(&row.scopes).unwrap_or_default();
            before.iter().chain(scopes.iter()).collect::<ScopeSet>()
        }
        None => scopes,
    };
    match existing {
        Some(row) => {
            let mut row: oauth_consent::ActiveModel = row.into();
            row.scopes = Set(union.to_string());
            row.updated_at = Set(now);
            row.update(db).await?;
        }
        None => {
            oauth_consent::ActiveModel {
                id: Set(db::new_id()),
                user_id: Set(user_id.to_owned()),
                client_id: Set(client_id.to_owned()),
                scopes: Set(union.to_string()),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(db)
            .await?;
        }
    }
    audit_event::record(
        db,
        &format!("user:{user_id}"),
        "oauth.consent_granted",
        "client",
        client_id,
        json!({"scopes": scopes.to_string(), "remembered": union.to_string()}),
    )
    .await
}

/// One application a user approved, for the account page.
#[derive(Debug, Clone)]
pub struct ApprovedClient {
    pub client_id: String,
    pub client_name: String,
    pub scopes: ScopeSet,
    pub approved_at: DateTime<Utc>,
}

/// The applications `user_id` approved, most recent first.
pub async fn list_for_user(
    db: &impl ConnectionTrait,
    user_id: &str,
) -> Result<Vec<ApprovedClient>, DbErr> {
    let rows = oauth_consent::Entity::find()
        .filter(oauth_consent::Column::UserId.eq(user_id))
        .order_by_desc(oauth_consent::Column::UpdatedAt)
        .all(db)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let name = oauth_client::Entity::find_by_id(row.client_id.clone())
            .one(db)
            .await?
            .map(|c| c.name)
            .unwrap_or_else(|| row.client_id.clone());
        out.push(ApprovedClient {
            client_id: row.client_id,
            client_name: name,
            scopes: ScopeSet::parse(&row.scopes).unwrap_or_default(),
            approved_at: row.updated_at,
        });
    }
    Ok(out)
}

/// Withdraws the consent of `user_id` for `client_id` and ends what the client holds for the
/// user: access tokens, refresh tokens and unexchanged codes, in one transaction (audited as
/// `oauth.consent_revoked`). False when there was no consent.
pub async fn revoke(
    db: &DatabaseConnection,
    user_id: &str,
    client_id: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let txn = db::begin_write(db).await?;
    let deleted = oauth_consent::Entity::delete_many()
        .filter(oauth_consent::Column::UserId.eq(user_id))
        .filter(oauth_consent::Column::ClientId.eq(client_id))
        .exec(&txn)
        .await?
        .rows_affected;
    let access = access_token::Entity::update_many()
        .col_expr(access_token::Column::RevokedAt, Expr::value(now))
        .filter(access_token::Column::UserId.eq(user_id))
        .filter(access_token::Column::ClientId.eq(client_id))
        .filter(access_token::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?
        .rows_affected;
    let refresh = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(now))
        .filter(refresh_token::Column::UserId.eq(user_id))
        .filter(refresh_token::Column::ClientId.eq(client_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?
        .rows_affected;
    authorization_code::Entity::update_many()
        .col_expr(authorization_code::Column::RevokedAt, Expr::value(now))
        .filter(authorization_code::Column::UserId.eq(user_id))
        .filter(authorization_code::Column::ClientId.eq(client_id))
        .filter(authorization_code::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    if deleted > 0 || access > 0 || refresh > 0 {
        audit_event::record(
            &txn,
            &format!("user:{user_id}"),
            "oauth.consent_revoked",
            "client",
            client_id,
            json!({"accessTokensRevoked": access, "refreshTokensRevoked": refresh}),
        )
        .await?;
    }
    txn.commit().await?;
    Ok(deleted > 0)
}
