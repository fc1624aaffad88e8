//! Per-account lockout arithmetic and the per-address limit on sign-in attempts.
//!
//! After [`FREE_FAILURES`] failed sign-ins in a row an account is locked for one minute, and each
//! further failure doubles the lock, up to one hour. A success resets the count. The per-address
//! limit (a keyed token bucket) caps how many accounts one address can try.

use std::net::IpAddr;

use chrono::Duration;

use super::errors::AccountError;
use crate::rate_limit::{Limiter, Quota, RateLimitStore};

/// Failed sign-ins allowed before the account is locked.
pub const FREE_FAILURES: i32 = 5;
/// The first lock.
pub const FIRST_LOCK_SECS: i64 = 60;
/// The longest lock.
pub const MAX_LOCK_SECS: i64 = 3600;

/// How long to lock an account that has now failed `failures` times in a row (`None`: no lock).
pub fn lock_for(failures: i32) -> Option<Duration> {
    if failures < FREE_FAILURES {
        return None;
    }
    let doublings = u32::try_from(failures - FREE_FAILURES)
        .unwrap_or(u32::MAX)
        .min(16);
    let secs = FIRST_LOCK_SECS
        .saturating_mul(1_i64 << doublings)
        .min(MAX_LOCK_SECS);
    Some(Duration::seconds(secs))
}

/// Sign-in attempts per client address (also registrations and password-reset requests), in
/// the instance's rate-limit store (`crate::rate_limit`): shared by every instance when Redis is
/// configured.
#[derive(Debug)]
pub struct AddressLimiter {
    limiter: Limiter,
}

impl AddressLimiter {
    /// `per_minute` attempts per address per minute, all of them usable at once, counted in this
    /// process only.
    pub fn new(per_minute: u32) -> Self {
        Self::shared(per_minute, RateLimitStore::local())
    }

    /// The same, counted in `store`.
    pub fn shared(per_minute: u32, store: RateLimitStore) -> Self {
        Self {
            limiter: Limiter::new("sign_in", Quota::per_minute(per_minute), store),
        }
    }

    /// Takes one attempt for `ip`, or says how long to wait.
    pub async fn check(&self, ip: IpAddr) -> Result<(), AccountError> {
        self.limiter.check(&ip.to_string()).await.map_err(|wait| {
            tracing::warn!(%ip, "sign-in attempts from this address are rate limited");
            AccountError::RateLimited {
                retry_after_secs: wait.as_secs().max(1),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_lock_for_a_minute_then_double_up_to_an_hour() {
        assert_eq!(lock_for(0), None);
        assert_eq!(lock_for(4), None);
        assert_eq!(lock_for(5), Some(Duration::minutes(1)));
        assert_eq!(lock_for(6), Some(Duration::minutes(2)));
        assert_eq!(lock_for(7), Some(Duration::minutes(4)));
        assert_eq!(lock_for(10), Some(Duration::minutes(32)));
        assert_eq!(lock_for(11), Some(Duration::hours(1)));
        assert_eq!(lock_for(1000), Some(Duration::hours(1)));
    }

    #[tokio::test]
    async fn address_limit_refuses_past_the_burst() {
        let limiter = AddressLimiter::new(3);
        let ip = IpAddr::from([192, 0, 2, 1]);
        for _ in 0..3 {
            assert!(limiter.check(ip).await.is_ok());
        }
        assert!(matches!(
            limiter.check(ip).await,
            Err(AccountError::RateLimited { .. })
        ));
        assert!(limiter.check(IpAddr::from([192, 0, 2, 2])).await.is_ok());
    }
}
