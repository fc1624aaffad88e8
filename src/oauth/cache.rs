//! Short-lived in-memory caches: resolved bearer tokens, keyed by the token's SHA-256 (the token
//! itself is never held), authenticated client rows and users' scope ceilings. A token hit still checks the token's own
//! expiry; entries live at most `TTL`; disabling a client on this instance evicts its tokens and its
//! row at once. Another instance may honour a disabled client for at most `TTL`.

use std::{
    collections::HashMap,
    sync::RwLock,
    time::{Duration, Instant},
};

use chrono::Utc;

use super::AccessContext;
use crate::accounts::memberships::Principal;

/// How long a resolved token is trusted without asking the database again.
pub const TTL: Duration = Duration::from_secs(2);
/// Entries kept at most (the cache is cleared when full; it refills from the database).
const CAPACITY: usize = 100_000;

/// Resolved tokens by SHA-256 hash.
#[derive(Default)]
pub struct TokenCache {
    entries: RwLock<HashMap<String, (AccessContext, Instant)>>,
}

impl TokenCache {
    /// A cached, still-valid context for `token_hash`.
    pub fn get(&self, token_hash: &str) -> Option<AccessContext> {
        let map = self.entries.read().ok()?;
        let (ctx, at) = map.get(token_hash)?;
        (at.elapsed() < TTL && ctx.expires_at > Utc::now()).then(|| ctx.clone())
    }

    /// Remembers a context resolved from the database.
    pub fn put(&self, token_hash: String, ctx: AccessContext) {
        if let Ok(mut map) = self.entries.write() {
            if map.len() >= CAPACITY {
                map.clear();
            }
            map.insert(token_hash, (ctx, Instant::now()));
        }
    }

    /// Forgets every token of `client_id` (after disabling the client).
    pub fn evict_client(&self, client_id: &str) {
        if let Ok(mut map) = self.entries.write() {
            map.retain(|_, (ctx, _)| ctx.client_id != client_id);
        }
    }

    /// Forgets one token (it was revoked).
    pub fn evict_token(&self, token_hash: &str) {
        if let Ok(mut map) = self.entries.write() {
            map.remove(token_hash);
        }
    }

    /// Forgets every token whose principal is `principal` (its memberships or flags changed), so
    /// the next request resolves the new set of issuers.
    pub fn evict_principal(&self, principal: &Principal) {
        if let Ok(mut map) = self.entries.write() {
            map.retain(|_, (ctx, _)| &ctx.principal != principal);
        }
    }
}

/// Authenticated clients by id, for at most [`TTL`]: the token, revocation and introspection
/// endpoints check a presented secret against the cached row's hash (in constant time, as against
/// the database's) instead of reading the row on every request. Disabling, re-keying, updating or
/// deleting a client evicts it here at once and, on PostgreSQL, on every other instance
/// ([`crate::invalidation::Change::Client`]); whatever is not announced lasts at most [`TTL`], the
/// same window as a disabled client's cached tokens.
#[derive(Default)]
pub struct ClientCache {
    entries: RwLock<HashMap<String, (crate::db::oauth_client::Model, Instant)>>,
}

impl ClientCache {
    /// The cached row of `client_id`, when it was read less than [`TTL`] ago.
    pub fn get(&self, client_id: &str) -> Option<crate::db::oauth_client::Model> {
        let map = self.entries.read().ok()?;
        let (client, at) = map.get(client_id)?;
        (at.elapsed() < TTL).then(|| client.clone())
    }

    /// Remembers a row read from the database.
    pub fn put(&self, client: crate::db::oauth_client::Model) {
        if let Ok(mut map) = self.entries.write() {
            if map.len() >= CAPACITY {
                map.clear();
            }
            map.insert(client.id.clone(), (client, Instant::now()));
        }
    }

    /// Forgets `client_id` (it was disabled, re-keyed, updated or deleted).
    pub fn evict(&self, client_id: &str) {
        if let Ok(mut map) = self.entries.write() {
            map.remove(client_id);
        }
    }
}

/// Users' scope ceilings ([`super::authorization::scope_ceiling`]) by user id, for at most
/// [`TTL`], so that the token endpoint's code exchanges and refreshes do not read the user and
/// their memberships on every request. Only a ceiling that grants something is kept: a user who is
/// not yet confirmed (or disabled) is read again each time, so confirming an address takes effect at
/// once. A membership change or a disabled account evicts the user here and, on PostgreSQL, on every
/// other instance ([`crate::invalidation::Change::Principal`]); whatever is not announced lasts at
/// most [`TTL`], the same window as the user's cached tokens.
#[derive(Default)]
pub struct CeilingCache {
    entries: RwLock<HashMap<String, (super::ScopeSet, Instant)>>,
}

impl CeilingCache {
    /// The cached ceiling of `user_id`, when it was read less than [`TTL`] ago.
    pub fn get(&self, user_id: &str) -> Option<super::ScopeSet> {
        let map = self.entries.read().ok()?;
        let (set, at) = map.get(user_id)?;
        (at.elapsed() < TTL).then_some(*set)
    }

    /// Remembers a ceiling read from the database (an empty one is not kept).
    pub fn put(&self, user_id: &str, ceiling: super::ScopeSet) {
        if ceiling.is_empty() {
            return;
        }
        if let Ok(mut map) = self.entries.write() {
            if map.len() >= CAPACITY {
                map.clear();
            }
            map.insert(user_id.to_owned(), (ceiling, Instant::now()));
        }
    }

    /// Forgets the ceiling of `principal` when it is a user (their memberships or flags changed).
    pub fn evict_principal(&self, principal: &Principal) {
        if let Principal::User(id) = principal
            && let Ok(mut map) = self.entries.write()
        {
            map.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::ScopeSet;

    fn ctx(client: &str, expires_in: i64) -> AccessContext {
        AccessContext {
            client_id: client.into(),
            principal: Principal::Client(client.into()),
            access: crate::accounts::memberships::IssuerAccess::Global,
            scopes: ScopeSet::all(),
            expires_at: Utc::now() + chrono::Duration::seconds(expires_in),
            issued_at: Utc::now(),
        }
    }

    #[test]
    fn hits_expire_with_the_token_and_evict_by_client() {
        let cache = TokenCache::default();
        cache.put("a".into(), ctx("c1", 60));
        cache.put("b".into(), ctx("c2", 60));
        cache.put("expired".into(), ctx("c1", -1));
        assert!(cache.get("a").is_some());
        assert!(
            cache.get("expired").is_none(),
            "an expired token is never served"
        );
        cache.evict_client("c1");
        assert!(cache.get("a").is_none());
        assert!(cache.get("b").is_some());
        cache.evict_principal(&Principal::Client("c2".into()));
        assert!(cache.get("b").is_none());
    }

    #[test]
    fn clients_are_evicted_by_id() {
        use crate::db::oauth_client;
        let cache = ClientCache::default();
        let client = oauth_client::Model::for_tests;
        cache.put(client("c1"));
        cache.put(client("c2"));
        assert_eq!(cache.get("c1").map(|c| c.id), Some("c1".to_owned()));
        cache.evict("c1");
        assert!(cache.get("c1").is_none());
        assert!(cache.get("c2").is_some());
    }

    #[test]
    fn ceilings_are_kept_only_when_they_grant_something() {
        let cache = CeilingCache::default();
        cache.put("u1", ScopeSet::all());
        cache.put("u2", ScopeSet::empty());
        cache.put("u3", ScopeSet::all());
        assert_eq!(cache.get("u1"), Some(ScopeSet::all()));
        assert_eq!(cache.get("u2"), None, "an empty ceiling is read again");
        cache.evict_principal(&Principal::Client("u1".into()));
        assert!(
            cache.get("u1").is_some(),
            "a client of the same id is not the user"
        );
        cache.evict_principal(&Principal::User("u1".into()));
        assert!(cache.get("u1").is_none());
        assert!(cache.get("u3").is_some());
    }
}
