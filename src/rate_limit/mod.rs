//! Every rate limit of the service in one place: a named [`Limiter`] (a quota per subject, such as
//! a client address or a client id) whose counters live either in this process (the default) or in
//! Redis (`OXBADGE_REDIS_URL`), where several instances share them so a limit does not multiply
//! with the number of instances.
//!
//! Both backends run the same GCRA (generic cell rate algorithm, the token bucket `governor`
//! implements): a subject's state is one "theoretical arrival time"; each admitted request pushes it
//! one emission interval (`60 s / per_minute`) further, and a request is refused while it lies more
//! than `burst - 1` intervals ahead. In Redis that arithmetic is one Lua script, atomic on the
//! server and timed by the server's clock, so instances whose clocks differ still agree.
//!
//! A Redis outage (refused connection, a reply slower than `redis_timeout_ms`) never lifts a limit
//! and never fails a request: the limiter answers from its local counters, one warning is logged
//! per minute while Redis stays away, and Redis is tried again in the background.

mod local;
mod redis;

use std::{sync::Arc, time::Duration};

use sha2::{Digest, Sha256};

use self::{local::LocalCells, redis::RedisCells};

pub use self::redis::RedisSetupError;

/// How many requests a limit admits: `per_minute` at a steady rate, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests per minute once the burst is spent (at least 1).
    pub per_minute: u32,
    /// Requests admitted at once from a full bucket (at least 1).
    pub burst: u32,
}

impl Quota {
    /// `per_minute` a minute, `burst` at once.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            per_minute: per_minute.max(1),
            burst: burst.max(1),
        }
    }

    /// `per_minute` a minute, all of them usable at once.
    pub fn per_minute(per_minute: u32) -> Self {
        Self::new(per_minute, per_minute)
    }

    /// The time one request adds to a subject's state.
    fn interval(self) -> Duration {
        Duration::from_secs(60) / self.per_minute.max(1)
    }

    /// How far ahead of now a subject's state may lie and still admit a request.
    fn tolerance(self) -> Duration {
        self.interval() * (self.burst.max(1) - 1)
    }
}

/// What a request does to a subject's bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Take one request if there is one; otherwise refuse and leave the bucket alone.
    Take,
    /// Only look: would a request be admitted now?
    Peek,
    /// Take one request whether or not there is one (an empty bucket stays empty): counting
    /// failures that have already happened.
    Drain,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Take => "take",
            Mode::Peek => "peek",
            Mode::Drain => "drain",
        }
    }
}

/// Where the counters live. Cheap to clone; every limiter of an instance holds the same store.
#[derive(Clone, Default)]
pub struct RateLimitStore {
    shared: Option<Arc<RedisCells>>,
}

impl std::fmt::Debug for RateLimitStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The Redis URL may hold a password: only say which backend it is.
        f.write_str(match self.shared {
            Some(_) => "RateLimitStore(redis)",
            None => "RateLimitStore(local)",
        })
    }
}

/// How to reach Redis. No `Debug`: the URL may hold a password.
#[derive(Clone)]
pub struct RedisOptions<'a> {
    /// `redis://[user:password@]host:port[/db]` (or `rediss://`).
    pub url: &'a str,
    /// Put before every key, so several deployments can share one Redis.
    pub key_prefix: &'a str,
    /// Longest wait for a reply (and for a connection) before the local counters answer.
    pub timeout: Duration,
}

impl RateLimitStore {
    /// Counters in this process only: every instance limits on its own.
    pub fn local() -> Self {
        Self { shared: None }
    }

    /// Counters in Redis, shared by every instance using the same Redis and key prefix. Connects
    /// once (bounded by the timeout); when Redis is not there yet, the limiters answer locally and
    /// keep trying in the background. Only a malformed URL is an error.
    pub async fn redis(options: RedisOptions<'_>) -> Result<Self, RedisSetupError> {
        let cells = RedisCells::connect(options).await?;
        Ok(Self {
            shared: Some(Arc::new(cells)),
        })
    }

    /// Whether the counters are shared through Redis (configured; it may be down at the moment).
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }
}

/// One named limit over many subjects (addresses, client ids).
pub struct Limiter {
    name: &'static str,
    quota: Quota,
    local: LocalCells,
    store: RateLimitStore,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("name", &self.name)
            .field("quota", &self.quota)
            .field("store", &self.store)
            .finish()
    }
}

impl Limiter {
    /// A limit called `name` (it names the Redis keys: keep it stable and distinct).
    pub fn new(name: &'static str, quota: Quota, store: RateLimitStore) -> Self {
        Self {
            name,
            quota,
            local: LocalCells::new(quota),
            store,
        }
    }

    /// A limit whose counters are in this process only.
    pub fn local(name: &'static str, quota: Quota) -> Self {
        Self::new(name, quota, RateLimitStore::local())
    }

    /// The limit's quota.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// Takes one request for `subject`: `Ok` when it is admitted, otherwise `Err(wait)` with how
    /// long until one will be (nothing is taken then).
    pub async fn check(&self, subject: &str) -> Result<(), Duration> {
        match self.run(subject, Mode::Take).await {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// `Some(wait)` while `subject` has nothing left: how long until it has. Takes nothing.
    pub async fn blocked_for(&self, subject: &str) -> Option<Duration> {
        self.run(subject, Mode::Peek).await
    }

    /// Counts one request of `subject` that already happened (a failed authentication), whether
    /// or not the bucket had room for it.
    pub async fn record(&self, subject: &str) {
        self.run(subject, Mode::Drain).await;
    }

    async fn run(&self, subject: &str, mode: Mode) -> Option<Duration> {
        if let Some(shared) = &self.store.shared
            && let Some(answer) = shared
                .run(self.name, &key_part(subject), self.quota, mode)
                .await
        {
            return answer;
        }
        self.local.run(subject, mode)
    }
}

/// The subject as it goes into a Redis key: short ones as they are, long ones (a made-up client
/// id can be as long as a request body) as their SHA-256, so keys stay small.
fn key_part(subject: &str) -> String {
    if subject.len() <= 64 && subject.bytes().all(|b| b.is_ascii_graphic()) {
        subject.to_owned()
    } else {
        format!("sha256:{}", hex::encode(Sha256::digest(subject.as_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_arithmetic() {
        let q = Quota::new(6, 3);
        assert_eq!(q.interval(), Duration::from_secs(10));
        assert_eq!(q.tolerance(), Duration::from_secs(20));
        assert_eq!(Quota::new(0, 0), Quota::new(1, 1));
    }

    #[test]
    fn long_or_odd_subjects_are_hashed_in_keys() {
        assert_eq!(key_part("192.0.2.1"), "192.0.2.1");
        assert!(key_part(&"x".repeat(65)).starts_with("sha256:"));
        assert!(key_part("a b").starts_with("sha256:"));
        assert_ne!(key_part("a b"), key_part("a c"));
    }

    #[tokio::test]
    async fn a_local_limiter_takes_peeks_and_drains() {
        let limiter = Limiter::local("t", Quota::new(6, 3));
        for _ in 0..3 {
            assert!(limiter.blocked_for("c").await.is_none());
            assert!(limiter.check("c").await.is_ok());
        }
        let wait = limiter.check("c").await.unwrap_err();
        assert!(
            wait > Duration::from_secs(9) && wait <= Duration::from_secs(10),
            "{wait:?}"
        );
        let peeked = limiter.blocked_for("c").await.unwrap();
        assert!(
            peeked > Duration::from_secs(9) && peeked <= wait,
            "{peeked:?}"
        );
        // Draining an empty bucket keeps it empty, not emptier.
        for _ in 0..5 {
            limiter.record("c").await;
        }
        assert!(limiter.blocked_for("c").await.unwrap() <= Duration::from_secs(10));
        assert!(limiter.check("other").await.is_ok());
    }
}
