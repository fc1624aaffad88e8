//! Failed client authentications, counted per client id: a token bucket per client that each
//! failure drains and time refills. While a client's bucket is empty, its authentication is refused
//! (429 with the real wait) before the secret is looked at, from any address, which bounds guessing
//! a client's secret by the number of addresses an attacker has. Successes cost nothing.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Buckets kept before full (idle) ones are dropped; bounds memory under a flood of made-up ids.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Per-client failure buckets.
#[derive(Debug)]
pub struct FailureBuckets {
    capacity: f64,
    per_second: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl FailureBuckets {
    /// `burst` failures at once, refilled at `per_minute` failures a minute.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            capacity: f64::from(burst.max(1)),
            per_second: f64::from(per_minute.max(1)) / 60.0,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> Bucket {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        Bucket {
            tokens: (bucket.tokens + elapsed * self.per_second).min(self.capacity),
            updated: now,
        }
    }

    /// `Some(wait)` while `client_id` has no failure left: how long until it has one again.
    pub fn blocked_for(&self, client_id: &str) -> Option<Duration> {
        let now = Instant::now();
        let buckets = self.buckets.lock().ok()?;
        let bucket = self.refilled(*buckets.get(client_id)?, now);
        (bucket.tokens < 1.0)
            .then(|| Duration::from_secs_f64((1.0 - bucket.tokens) / self.per_second))
    }

    /// Records a failed authentication of `client_id`.
    pub fn record_failure(&self, client_id: &str) {
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else {
            return;
        };
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(client_id) {
            let capacity = self.capacity;
            buckets.retain(|_, b| self.refilled(*b, now).tokens < capacity);
            if buckets.len() >= MAX_TRACKED {
                // Every tracked client is draining: forget the fullest rather than grow.
                return;
            }
        }
        let bucket = buckets.entry(client_id.to_owned()).or_insert(Bucket {
            tokens: self.capacity,
            updated: now,
        });
        let mut refilled = self.refilled(*bucket, now);
        refilled.tokens = (refilled.tokens - 1.0).max(0.0);
        *bucket = refilled;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_drain_the_bucket_and_the_wait_is_the_refill_time() {
        let buckets = FailureBuckets::new(6, 3);
        for _ in 0..3 {
            assert!(buckets.blocked_for("c").is_none());
            buckets.record_failure("c");
        }
        let wait = buckets.blocked_for("c").unwrap();
        // 6 a minute: one every 10 s.
        assert!(
            wait > Duration::from_secs(9) && wait <= Duration::from_secs(10),
            "{wait:?}"
        );
        assert!(buckets.blocked_for("other").is_none());
    }
}
