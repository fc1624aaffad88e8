//! Failed client authentications, counted per client id: a token bucket per client that each
//! failure drains and time refills. While a client's bucket is empty, its authentication is refused
//! (429 with the real wait) before the secret is looked at, from any address, which bounds guessing
//! a client's secret by the number of addresses an attacker has. Successes cost nothing. The
//! buckets live in the instance's rate-limit store (`crate::rate_limit`): shared by every instance
//! when Redis is configured.

use std::time::Duration;

use crate::rate_limit::{Limiter, Quota, RateLimitStore};

/// Per-client failure buckets.
#[derive(Debug)]
pub struct FailureBuckets {
    limiter: Limiter,
}

impl FailureBuckets {
    /// `burst` failures at once, refilled at `per_minute` failures a minute, counted in this
    /// process only.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self::shared(per_minute, burst, RateLimitStore::local())
    }

    /// The same, counted in `store` (shared by the instances that use the same Redis).
    pub fn shared(per_minute: u32, burst: u32, store: RateLimitStore) -> Self {
        Self {
            limiter: Limiter::new("client_failures", Quota::new(per_minute, burst), store),
        }
    }

    /// `Some(wait)` while `client_id` has no failure left: how long until it has one again.
    pub async fn blocked_for(&self, client_id: &str) -> Option<Duration> {
        self.limiter.blocked_for(client_id).await
    }

    /// Records a failed authentication of `client_id`.
    pub async fn record_failure(&self, client_id: &str) {
        self.limiter.record(client_id).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn failures_drain_the_bucket_and_the_wait_is_the_refill_time() {
        let buckets = FailureBuckets::new(6, 3);
        for _ in 0..3 {
            assert!(buckets.blocked_for("c").await.is_none());
            buckets.record_failure("c").await;
        }
        let wait = buckets.blocked_for("c").await.unwrap();
        // 6 a minute: one every 10 s.
        assert!(
            wait > Duration::from_secs(9) && wait <= Duration::from_secs(10),
            "{wait:?}"
        );
        assert!(buckets.blocked_for("other").await.is_none());
    }
}
