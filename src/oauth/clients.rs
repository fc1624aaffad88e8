//! Client management: create (optionally limited to some issuers), read, update, rotate the secret,
//! disable and delete OAuth clients. Every change is audited; secrets are returned once and stored
//! only as hashes; a rotated secret stops working at once and every token issued under the client
//! is revoked.

use std::collections::HashMap;

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, Set, sea_query::Expr,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use url::Url;

use super::{
    ScopeSet,
    tokens::{CLIENT_SECRET_PREFIX, hash_secret, random_secret},
};
use crate::{
    accounts::memberships::{self, MembershipError, Principal, Role},
    db::{self, access_token, audit_event, idempotency_key, oauth_client},
};

/// Most redirect URIs a client may register.
pub const MAX_REDIRECT_URIS: usize = 10;

/// Failures of client management, each with the HTTP status it becomes.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// 404: no such client.
    #[error("client not found")]
    NotFound,
    /// 422: a field is invalid.
    #[error("{0}")]
    Invalid(String),
    /// A membership could not be changed (404 unknown issuer, 409 last owner).
    #[error(transparent)]
    Membership(#[from] MembershipError),
    /// Database failure.
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A client with its memberships (never secret material).
#[derive(Debug, Clone)]
pub struct ClientView {
    pub client: oauth_client::Model,
    /// Issuer id → role; meaningful only when the client is not global.
    pub memberships: HashMap<String, Role>,
}

/// What a new client gets.
#[derive(Debug, Clone, Default)]
pub struct ClientSpec {
    pub name: String,
    pub scopes: ScopeSet,
    pub redirect_uris: Vec<String>,
    /// `Some` limits the client to these issuers (it is then not global); `None` makes it global.
    pub issuers: Option<HashMap<String, Role>>,
}

/// A partial update.
#[derive(Debug, Clone, Default)]
pub struct ClientUpdate {
    pub name: Option<String>,
    pub scopes: Option<ScopeSet>,
    pub redirect_uris: Option<Vec<String>>,
    /// Replaces the memberships and makes the client non-global.
    pub issuers: Option<HashMap<String, Role>>,
    /// `Some(true)` makes the client global again (its memberships are kept but unused);
    /// `Some(false)` limits it to its memberships.
    pub global: Option<bool>,
}

/// A client created or re-keyed: the secret exists only here.
#[derive(Debug)]
pub struct WithSecret {
    pub view: ClientView,
    pub client_secret: SecretString,
}

/// Checks redirect URIs: absolute `https` URLs (or `http` on a loopback host), no fragment, at most
/// [`MAX_REDIRECT_URIS`]. Returns them in their parsed (normalized) form.
pub fn parse_redirect_uris(uris: &[String]) -> Result<Vec<String>, ClientError> {
    if uris.len() > MAX_REDIRECT_URIS {
        return Err(ClientError::Invalid(format!(
            "redirectUris: at most {MAX_REDIRECT_URIS}"
        )));
    }
    let mut out = Vec::with_capacity(uris.len());
    for raw in uris {
        let bad = |why: &str| ClientError::Invalid(format!("redirectUris: `{raw}` {why}"));
        if raw.len() > 2048 {
            return Err(bad("is too long"));
        }
        let url = Url::parse(raw).map_err(|_| bad("is not an absolute URL"))?;
        let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => return Err(bad("must be https (http only on a loopback host)")),
        }
        if url.fragment().is_some() {
            return Err(bad("must not have a fragment"));
        }
        let url = url.to_string();
        if !out.contains(&url) {
            out.push(url);
        }
    }
    Ok(out)
}

fn parse_name(name: &str) -> Result<String, ClientError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ClientError::Invalid(
            "name: must be 1 to 200 characters".into(),
        ));
    }
    Ok(name.to_owned())
}

/// The memberships of a client.
async fn view(db: &impl ConnectionTrait, client: oauth_client::Model) -> Result<ClientView, DbErr> {
    let memberships = memberships::member_roles(db, &Principal::Client(client.id.clone())).await?;
    Ok(ClientView {
        client,
        memberships,
    })
}

/// One client.
pub async fn get_client(
    db: &impl ConnectionTrait,
    client_id: &str,
) -> Result<ClientView, ClientError> {
    let client = oauth_client::Entity::find_by_id(client_id.to_owned())
        .one(db)
        .await?
        .ok_or(ClientError::NotFound)?;
    Ok(view(db, client).await?)
}

/// Every client with its memberships, oldest first.
pub async fn list_clients(db: &impl ConnectionTrait) -> Result<Vec<ClientView>, DbErr> {
    let clients = super::tokens::list_clients(db).await?;
    let mut out = Vec::with_capacity(clients.len());
    for c in clients {
        out.push(view(db, c).await?);
    }
    Ok(out)
}

/// Creates a client; with `issuers` it is limited to them (and not global).
pub async fn create_client(
    db: &DatabaseConnection,
    spec: ClientSpec,
    actor: &str,
) -> Result<WithSecret, ClientError> {
    let name = parse_name(&spec.name)?;
    if spec.scopes.is_empty() {
        return Err(ClientError::Invalid("scopes: at least one".into()));
    }
    let redirect_uris = parse_redirect_uris(&spec.redirect_uris)?;
    let client_id = db::new_id();
    let client_secret = random_secret(CLIENT_SECRET_PREFIX);
    let txn = db::begin_write(db).await?;
    oauth_client::ActiveModel {
        id: Set(client_id.clone()),
        name: Set(name),
        secret_hash: Set(hash_secret(client_secret.expose_secret())),
        scopes: Set(spec.scopes.to_string()),
        kind: Set("service".to_owned()),
        created_at: Set(Utc::now()),
        disabled_at: Set(None),
        global: Set(spec.issuers.is_none()),
        redirect_uris: Set(redirect_uris.join(" ")),
        updated_at: Set(None),
        // The metadata columns take their defaults (a confidential client, not registered
        // dynamically).
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    if let Some(issuers) = &spec.issuers {
        memberships::replace_client_memberships(&txn, &client_id, issuers, actor).await?;
    }
    audit_event::record(
        &txn,
        actor,
        "client.created",
        "client",
        &client_id,
        json!({
            "scopes": spec.scopes.to_string(),
            "global": spec.issuers.is_none(),
            "issuers": spec.issuers.as_ref().map(roles_json),
        }),
    )
    .await?;
    let view = get_client(&txn, &client_id).await?;
    txn.commit().await?;
    Ok(WithSecret {
        view,
        client_secret,
    })
}

fn roles_json(roles: &HashMap<String, Role>) -> serde_json::Value {
    let mut sorted: Vec<_> = roles.iter().collect();
    sorted.sort();
    json!(
        sorted
            .into_iter()
            .map(|(issuer, role)| json!({"issuerId": issuer, "role": role.as_str()}))
            .collect::<Vec<_>>()
    )
}

async fn revoke_tokens(db: &impl ConnectionTrait, client_id: &str) -> Result<u64, DbErr> {
    Ok(access_token::Entity::update_many()
        .col_expr(access_token::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(access_token::Column::ClientId.eq(client_id))
        .filter(access_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?
        .rows_affected)
}

/// Applies an update. Narrowing the scopes revokes the client's live tokens (they may carry a
/// scope it no longer has); membership changes reach live tokens through the token cache, which
/// the caller evicts.
pub async fn update_client(
    db: &DatabaseConnection,
    client_id: &str,
    update: ClientUpdate,
    actor: &str,
) -> Result<ClientView, ClientError> {
    if update.global == Some(true) && update.issuers.is_some() {
        return Err(ClientError::Invalid(
            "global: a global client cannot also be limited to issuers".into(),
        ));
    }
    let name = update.name.as_deref().map(parse_name).transpose()?;
    if update.scopes.is_some_and(|s| s.is_empty()) {
        return Err(ClientError::Invalid("scopes: at least one".into()));
    }
    let redirect_uris = update
        .redirect_uris
        .as_deref()
        .map(parse_redirect_uris)
        .transpose()?;
    let txn = db::begin_write(db).await?;
    let current = oauth_client::Entity::find_by_id(client_id.to_owned())
        .one(&txn)
        .await?
        .ok_or(ClientError::NotFound)?;
    let old_scopes = ScopeSet::parse(&current.scopes).unwrap_or_default();
    let mut row: oauth_client::ActiveModel = current.into();
    let mut changed = serde_json::Map::new();
    if let Some(name) = name {
        changed.insert("name".into(), json!(name));
        row.name = Set(name);
    }
    let mut revoked = 0;
    if let Some(scopes) = update.scopes {
        changed.insert("scopes".into(), json!(scopes.to_string()));
        row.scopes = Set(scopes.to_string());
        if !scopes.is_superset(old_scopes) {
            revoked = revoke_tokens(&txn, client_id).await?;
        }
    }
    if let Some(uris) = redirect_uris {
        changed.insert("redirectUris".into(), json!(uris));
        row.redirect_uris = Set(uris.join(" "));
    }
    if let Some(issuers) = &update.issuers {
        memberships::replace_client_memberships(&txn, client_id, issuers, actor).await?;
        changed.insert("issuers".into(), roles_json(issuers));
        row.global = Set(false);
    }
    if let Some(global) = update.global {
        changed.insert("global".into(), json!(global));
        row.global = Set(global);
    } else if update.issuers.is_some() {
        changed.insert("global".into(), json!(false));
    }
    row.updated_at = Set(Some(Utc::now()));
    let updated = row.update(&txn).await?;
    if revoked > 0 {
        changed.insert("tokensRevoked".into(), json!(revoked));
    }
    audit_event::record(
        &txn,
        actor,
        "client.updated",
        "client",
        client_id,
        serde_json::Value::Object(changed),
    )
    .await?;
    let view = view(&txn, updated).await?;
    txn.commit().await?;
    Ok(view)
}

/// Replaces the client's secret: the old one stops working at once and every token issued under
/// the client is revoked, in one transaction. The new secret is returned once.
pub async fn rotate_secret(
    db: &DatabaseConnection,
    client_id: &str,
    actor: &str,
) -> Result<WithSecret, ClientError> {
    let client_secret = random_secret(CLIENT_SECRET_PREFIX);
    let txn = db::begin_write(db).await?;
    let updated = oauth_client::Entity::update_many()
        .col_expr(
            oauth_client::Column::SecretHash,
            Expr::value(hash_secret(client_secret.expose_secret())),
        )
        .col_expr(oauth_client::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(oauth_client::Column::Id.eq(client_id))
        .exec(&txn)
        .await?
        .rows_affected;
    if updated == 0 {
        return Err(ClientError::NotFound);
    }
    let revoked = revoke_tokens(&txn, client_id).await?;
    audit_event::record(
        &txn,
        actor,
        "client.secret_rotated",
        "client",
        client_id,
        json!({"tokensRevoked": revoked}),
    )
    .await?;
    let view = get_client(&txn, client_id).await?;
    txn.commit().await?;
    Ok(WithSecret {
        view,
        client_secret,
    })
}

/// Disables a client and revokes its live tokens (audited). False when it does not exist.
pub async fn disable_client(
    db: &DatabaseConnection,
    client_id: &str,
    actor: &str,
) -> Result<bool, ClientError> {
    let txn = db::begin_write(db).await?;
    let Some(current) = oauth_client::Entity::find_by_id(client_id.to_owned())
        .one(&txn)
        .await?
    else {
        return Ok(false);
    };
    if current.disabled_at.is_none() {
        let mut row: oauth_client::ActiveModel = current.into();
        row.disabled_at = Set(Some(Utc::now()));
        row.update(&txn).await?;
    }
    let revoked = revoke_tokens(&txn, client_id).await?;
    audit_event::record(
        &txn,
        actor,
        "client.disabled",
        "client",
        client_id,
        json!({"tokensRevoked": revoked}),
    )
    .await?;
    txn.commit().await?;
    Ok(true)
}

/// Deletes a client with its tokens, memberships and idempotency records. Refused (409) while it is
/// the last owner of an issuer.
pub async fn delete_client(
    db: &DatabaseConnection,
    client_id: &str,
    actor: &str,
) -> Result<(), ClientError> {
    let txn = db::begin_write(db).await?;
    let current = oauth_client::Entity::find_by_id(client_id.to_owned())
        .one(&txn)
        .await?
        .ok_or(ClientError::NotFound)?;
    memberships::remove_client_memberships(&txn, client_id, actor).await?;
    access_token::Entity::delete_many()
        .filter(access_token::Column::ClientId.eq(client_id))
        .exec(&txn)
        .await?;
    idempotency_key::Entity::delete_many()
        .filter(idempotency_key::Column::ClientId.eq(client_id))
        .exec(&txn)
        .await?;
    oauth_client::Entity::delete_by_id(client_id.to_owned())
        .exec(&txn)
        .await?;
    audit_event::record(
        &txn,
        actor,
        "client.deleted",
        "client",
        client_id,
        json!({"name": current.name}),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_https_or_loopback() {
        assert!(parse_redirect_uris(&["https://wallet.example/cb".into()]).is_ok());
        assert!(parse_redirect_uris(&["http://127.0.0.1:8080/cb".into()]).is_ok());
        assert!(parse_redirect_uris(&["http://wallet.example/cb".into()]).is_err());
        assert!(parse_redirect_uris(&["https://wallet.example/cb#x".into()]).is_err());
        assert!(parse_redirect_uris(&["/cb".into()]).is_err());
        let many: Vec<String> = (0..11).map(|i| format!("https://w.example/{i}")).collect();
        assert!(parse_redirect_uris(&many).is_err());
    }
}
