//! Token revocation (RFC 7009). A client revokes only its own tokens: an unknown token, an already
//! revoked one and another client's token all change nothing, and the endpoint answers 200 alike
//! (so revocation cannot be used to learn which tokens exist). Revoking an access token ends that
//! token; revoking a refresh token ends its whole family: every refresh token and every access
//! token carrying the same grant id.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect,
    sea_query::Expr,
};
use serde_json::json;

use super::tokens::hash_secret;
use crate::db::{self, access_token, audit_event, oauth_client, refresh_token};

/// Longest token value looked at; anything longer is no token of ours.
pub const MAX_TOKEN_LEN: usize = 512;

/// `token_type_hint` (RFC 7009 §2.1, RFC 7662 §2.1). Unknown hints are ignored (the search then
/// covers every token type, as RFC 7009 requires when a hint does not help).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenTypeHint {
    AccessToken,
    RefreshToken,
}

impl TokenTypeHint {
    /// Parses a hint; `None` for an absent or unknown one.
    pub fn parse(hint: Option<&str>) -> Option<Self> {
        match hint? {
            "access_token" => Some(Self::AccessToken),
            "refresh_token" => Some(Self::RefreshToken),
            _ => None,
        }
    }
}

/// What a revocation changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// Nothing: the token is unknown, already revoked, or another client's.
    Nothing,
    /// One access token; its hash, for evicting it from the token caches.
    AccessToken { token_hash: String },
    /// A refresh-token family: how many tokens it ended, and the hashes of the access tokens that
    /// were still live (for evicting them from the token caches).
    RefreshFamily {
        grant_id: String,
        refresh_tokens: u64,
        access_tokens: u64,
        live_access_hashes: Vec<String>,
    },
}

/// Revokes `token` if it belongs to `client` (RFC 7009 §2.1), in one transaction with its audit
/// event. The hint only decides which kind of token is looked for first.
pub async fn revoke(
    db: &DatabaseConnection,
    client: &oauth_client::Model,
    token: &str,
    hint: Option<TokenTypeHint>,
    now: DateTime<Utc>,
) -> Result<Revoked, DbErr> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN || token.chars().any(char::is_control) {
        return Ok(Revoked::Nothing);
    }
    let hash = hash_secret(token);
    let order = match hint {
        Some(TokenTypeHint::RefreshToken) => {
            [TokenTypeHint::RefreshToken, TokenTypeHint::AccessToken]
        }
        _ => [TokenTypeHint::AccessToken, TokenTypeHint::RefreshToken],
    };
    for kind in order {
        let outcome = match kind {
            TokenTypeHint::AccessToken => revoke_access_token(db, client, &hash, now).await?,
            TokenTypeHint::RefreshToken => revoke_refresh_family(db, client, &hash, now).await?,
        };
        if let Some(outcome) = outcome {
            return Ok(outcome);
        }
    }
    Ok(Revoked::Nothing)
}

/// `None` when no access token has this hash; `Some(Nothing)` when it is another client's or
/// already revoked.
async fn revoke_access_token(
    db: &DatabaseConnection,
    client: &oauth_client::Model,
    hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<Revoked>, DbErr> {
    let Some(row) = access_token::Entity::find()
        .filter(access_token::Column::TokenHash.eq(hash))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    if row.client_id != client.id {
        tracing::info!(client_id = %client.id, "revocation of another client's access token ignored");
        return Ok(Some(Revoked::Nothing));
    }
    let txn = db::begin_write(db).await?;
    let changed = access_token::Entity::update_many()
        .col_expr(access_token::Column::RevokedAt, Expr::value(now))
        .filter(access_token::Column::Id.eq(row.id.as_str()))
        .filter(access_token::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?
        .rows_affected;
    if changed == 0 {
        return Ok(Some(Revoked::Nothing));
    }
    audit_event::record(
        &txn,
        &client.id,
        "token.revoked",
        "access_token",
        &row.id,
        json!({"userId": row.user_id, "grantId": row.grant_id}),
    )
    .await?;
    txn.commit().await?;
    Ok(Some(Revoked::AccessToken {
        token_hash: hash.to_owned(),
    }))
}

/// `None` when no refresh token has this hash; `Some(Nothing)` when it is another client's.
async fn revoke_refresh_family(
    db: &DatabaseConnection,
    client: &oauth_client::Model,
    hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<Revoked>, DbErr> {
    let Some(row) = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(hash))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    if row.client_id != client.id {
        tracing::info!(client_id = %client.id, "revocation of another client's refresh token ignored");
        return Ok(Some(Revoked::Nothing));
    }
    let txn = db::begin_write(db).await?;
    let outcome = revoke_family(&txn, &row.grant_id, now).await?;
    if let Revoked::RefreshFamily {
        refresh_tokens,
        access_tokens,
        ..
    } = &outcome
    {
        audit_event::record(
            &txn,
            &client.id,
            "token.family_revoked",
            "grant",
            &row.grant_id,
            json!({
                "userId": row.user_id,
                "refreshTokensRevoked": refresh_tokens,
                "accessTokensRevoked": access_tokens,
            }),
        )
        .await?;
    }
    txn.commit().await?;
    Ok(Some(outcome))
}

/// Ends the family `grant_id` inside the caller's transaction: every refresh token and every
/// access token that carries it. `Nothing` when it was already over.
pub async fn revoke_family(
    txn: &impl ConnectionTrait,
    grant_id: &str,
    now: DateTime<Utc>,
) -> Result<Revoked, DbErr> {
    let live_access_hashes: Vec<String> = access_token::Entity::find()
        .select_only()
        .column(access_token::Column::TokenHash)
        .filter(access_token::Column::GrantId.eq(grant_id))
        .filter(access_token::Column::RevokedAt.is_null())
        .into_tuple()
        .all(txn)
        .await?;
    let refresh_tokens = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(now))
        .filter(refresh_token::Column::GrantId.eq(grant_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(txn)
        .await?
        .rows_affected;
    let access_tokens = access_token::Entity::update_many()
        .col_expr(access_token::Column::RevokedAt, Expr::value(now))
        .filter(access_token::Column::GrantId.eq(grant_id))
        .filter(access_token::Column::RevokedAt.is_null())
        .exec(txn)
        .await?
        .rows_affected;
    if refresh_tokens == 0 && access_tokens == 0 {
        return Ok(Revoked::Nothing);
    }
    Ok(Revoked::RefreshFamily {
        grant_id: grant_id.to_owned(),
        refresh_tokens,
        access_tokens,
        live_access_hashes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints() {
        assert_eq!(
            TokenTypeHint::parse(Some("refresh_token")),
            Some(TokenTypeHint::RefreshToken)
        );
        assert_eq!(
            TokenTypeHint::parse(Some("access_token")),
            Some(TokenTypeHint::AccessToken)
        );
        assert_eq!(TokenTypeHint::parse(Some("id_token")), None);
        assert_eq!(TokenTypeHint::parse(None), None);
    }
}
