//! Keeps the in-memory caches (signed status lists, issuance contexts) in step with the database
//! across instances. A change evicts this instance's entries at once; on PostgreSQL it is also
//! announced with `NOTIFY` (inside the changing transaction where there is one, so it is delivered
//! exactly when the change commits), and every instance `LISTEN`s and evicts what others announce.
//! Whatever is not announced (SQLite shared with another process, a lost listener connection) is
//! bounded by the caches' revalidation interval (`cache_revalidate_ms`).

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, sqlx::postgres::PgListener};

use crate::{accounts::memberships::Principal, app::AppState};

/// The PostgreSQL notification channel.
pub const CHANNEL: &str = "oxbadge_invalidate";

/// Something cached that changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A status list's entries (its signed form must be rebuilt).
    StatusList(String),
    /// An achievement's definition.
    Achievement(String),
    /// An issuer's profile or keys (every achievement of it).
    Issuer(String),
    /// A principal's issuer memberships (its cached tokens must resolve them again).
    Principal(Principal),
    /// A client was disabled, re-keyed or deleted (its cached tokens must be checked again).
    Client(String),
    /// One access token was revoked (by the SHA-256 hash the caches key it by).
    AccessToken(String),
}

impl Change {
    fn payload(&self) -> String {
        match self {
            Change::StatusList(id) => format!("status:{id}"),
            Change::Achievement(id) => format!("achievement:{id}"),
            Change::Issuer(id) => format!("issuer:{id}"),
            Change::Principal(p) => format!("principal:{}:{}", p.kind(), p.id()),
            Change::Client(id) => format!("client:{id}"),
            Change::AccessToken(hash) => format!("token:{hash}"),
        }
    }

    fn parse(payload: &str) -> Option<Self> {
        let (kind, id) = payload.split_once(':')?;
        let id = id.to_owned();
        match kind {
            "status" => Some(Change::StatusList(id)),
            "achievement" => Some(Change::Achievement(id)),
            "issuer" => Some(Change::Issuer(id)),
            "principal" => match id.split_once(':')? {
                ("client", p) => Some(Change::Principal(Principal::Client(p.to_owned()))),
                ("user", p) => Some(Change::Principal(Principal::User(p.to_owned()))),
                _ => None,
            },
            "client" => Some(Change::Client(id)),
            "token" => Some(Change::AccessToken(id)),
            _ => None,
        }
    }
}

/// Evicts what `change` affects from this instance's caches.
pub fn evict(state: &AppState, change: &Change) {
    match change {
        Change::StatusList(id) => state.status_cache().invalidate(id),
        Change::Achievement(id) => state.issuance_contexts().invalidate_achievement(id),
        Change::Issuer(id) => {
            state.issuance_contexts().invalidate_issuer(id);
            state.status_cache().invalidate_issuer(id);
            state.verifier().keys_changed();
        }
        Change::Principal(p) => {
            state.token_cache().evict_principal(p);
            state.ceiling_cache().evict_principal(p);
        }
        Change::Client(id) => {
            state.token_cache().evict_client(id);
            state.client_cache().evict(id);
        }
        Change::AccessToken(hash) => state.token_cache().evict_token(hash),
    }
}

/// Announces `change` to the other instances (PostgreSQL only; a no-op on SQLite). Inside a
/// transaction the notification is delivered when it commits, and not at all if it rolls back.
pub async fn announce(db: &impl ConnectionTrait, change: &Change) -> Result<(), DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [CHANNEL.into(), change.payload().into()],
    ))
    .await?;
    Ok(())
}

/// After a committed change outside a transaction of ours: evicts locally and announces. An
/// announcement that fails is logged; other instances then catch up within the revalidation
/// interval.
pub async fn changed(state: &AppState, change: Change) {
    evict(state, &change);
    if let Err(err) = announce(state.db(), &change).await {
        tracing::warn!(error = %err, ?change, "could not announce a change to other instances");
    }
}

/// A listener on [`CHANNEL`] (PostgreSQL only). Taken before the server starts serving, so that no
/// announcement made after this instance's first answer is missed.
pub async fn subscribe(state: &AppState) -> Option<PgListener> {
    if state.db().get_database_backend() != DbBackend::Postgres {
        return None;
    }
    let pool = state.db().get_postgres_connection_pool();
    let mut listener = match PgListener::connect_with(pool).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for cache invalidations; relying on revalidation");
            return None;
        }
    };
    if let Err(err) = listener.listen(CHANNEL).await {
        tracing::warn!(error = %err, "cannot listen for cache invalidations; relying on revalidation");
        return None;
    }
    Some(listener)
}

/// Applies other instances' announcements until the pool closes. When the connection drops,
/// everything cached is evicted (announcements may have been missed) and the listener reconnects.
pub async fn listen(state: AppState, mut listener: PgListener) {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => match Change::parse(notification.payload()) {
                Some(change) => evict(&state, &change),
                None => tracing::debug!(payload = notification.payload(), "unknown announcement"),
            },
            Ok(None) => {
                tracing::warn!("cache invalidation listener reconnecting; dropping cached entries");
                evict_all(&state);
            }
            Err(err) => {
                if state.db().get_postgres_connection_pool().is_closed() {
                    return;
                }
                tracing::warn!(error = %err, "cache invalidation listener failed; retrying");
                evict_all(&state);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn evict_all(state: &AppState) {
    state.status_cache().invalidate_all();
    state.issuance_contexts().invalidate_all();
    state.verifier().keys_changed();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        for change in [
            Change::StatusList("l1".into()),
            Change::Achievement("a1".into()),
            Change::Issuer("i1".into()),
            Change::AccessToken("ab12".into()),
        ] {
            assert_eq!(Change::parse(&change.payload()), Some(change));
        }
        assert_eq!(Change::parse("nonsense"), None);
    }
}
