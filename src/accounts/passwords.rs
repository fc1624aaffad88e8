//! Passwords: the rules a new password must meet, and Argon2id hashing (OWASP parameters
//! m = 19 MiB, t = 2, p = 1, PHC strings) off the async reactor, behind a semaphore so a flood of
//! sign-ins queues instead of starving the service of CPU.
//!
//! The list of common passwords is the first 10,000 entries (most common first) of the list Django
//! ships as `django/contrib/auth/common-passwords.txt.gz` (BSD-3-Clause; compiled by Royce Williams
//! from public breach corpora).

use std::{collections::HashSet, sync::Arc, sync::LazyLock};

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier, Version,
    password_hash::SaltString,
};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use super::errors::AccountError;

/// Shortest acceptable password, in characters.
pub const MIN_LENGTH: usize = 12;
/// Longest accepted password, in bytes (hashing cost does not depend on it, but bodies should be small).
pub const MAX_BYTES: usize = 1024;

static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common_passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
});

/// A password that met the rules; only this type can be hashed for storage.
pub struct NewPassword(SecretString);

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(<redacted>)")
    }
}

impl NewPassword {
    /// Checks the rules: at least 12 characters, not among the 10,000 most common passwords
    /// (compared case-insensitively), at most 1 KiB. No composition rules.
    pub fn parse(raw: &str) -> Result<Self, AccountError> {
        if raw.chars().count() < MIN_LENGTH {
            return Err(AccountError::WeakPassword(
                "the password must be at least 12 characters long",
            ));
        }
        if raw.len() > MAX_BYTES {
            return Err(AccountError::WeakPassword(
                "the password must be at most 1024 bytes long",
            ));
        }
        if COMMON.contains(raw.trim().to_lowercase().as_str()) {
            return Err(AccountError::WeakPassword(
                "this password is among the most common passwords; choose another",
            ));
        }
        Ok(Self(SecretString::from(raw.to_owned())))
    }

    /// The password text.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

fn argon2() -> Result<Argon2<'static>, AccountError> {
    let params =
        Params::new(19 * 1024, 2, 1, None).map_err(|e| AccountError::Hashing(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_blocking(password: &str) -> Result<String, AccountError> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| AccountError::Hashing(e.to_string()))?;
    argon2()?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hashing(e.to_string()))
}

fn verify_blocking(password: &str, phc: &str) -> bool {
    // The comparison inside `verify_password` is constant-time.
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Hashes and verifies passwords on the blocking pool, at most `concurrency` at a time, each slot
/// using at most `cpu_percent` of a core over time: after a hash that took `t`, the slot rests
/// `t × (100 / cpu_percent − 1)` before it takes the next one (the answer is not delayed; the next
/// caller waits). So a flood of sign-ins costs the rest of the service a bounded share of the CPU,
/// and the flood's attempts queue instead.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    cpu_percent: u8,
    /// A hash of a random password: unknown accounts are checked against it so that they take
    /// as long as known ones.
    dummy: Arc<String>,
}

impl PasswordHasher {
    /// A hasher allowing `concurrency` (at least 1) hashes at once.
    pub async fn new(concurrency: usize) -> Result<Self, AccountError> {
        let random = hex::encode(rand::random::<[u8; 32]>());
        let dummy = tokio::task::spawn_blocking(move || hash_blocking(&random))
            .await
            .map_err(|e| AccountError::Hashing(e.to_string()))??;
        Ok(Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            cpu_percent: 100,
            dummy: Arc::new(dummy),
        })
    }

    /// Caps each slot's CPU share at `percent` (clamped to 1–100; 100 = no rest).
    pub fn with_cpu_percent(mut self, percent: u8) -> Self {
        self.cpu_percent = percent.clamp(1, 100);
        self
    }

    /// How long a slot rests after a hash that took `took`.
    fn rest_after(&self, took: std::time::Duration) -> std::time::Duration {
        took.mul_f64(100.0 / f64::from(self.cpu_percent) - 1.0)
    }

    /// Runs `work` on the blocking pool under a slot, then keeps the slot for its rest in the
    /// background.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AccountError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| AccountError::Hashing(e.to_string()))?;
        let started = std::time::Instant::now();
        let out = tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| AccountError::Hashing(e.to_string()));
        let rest = self.rest_after(started.elapsed());
        if rest.is_zero() {
            drop(permit);
        } else {
            tokio::spawn(async move {
                tokio::time::sleep(rest).await;
                drop(permit);
            });
        }
        out
    }

    /// The default concurrency: half the cores (at least one), so sign-ins never take every core.
    pub fn default_concurrency() -> usize {
        std::thread::available_parallelism()
            .map(|n| (n.get() / 2).max(1))
            .unwrap_or(1)
    }

    /// A PHC string for `password`.
    pub async fn hash(&self, password: &NewPassword) -> Result<String, AccountError> {
        let text = SecretString::from(password.expose().to_owned());
        self.run(move || hash_blocking(text.expose_secret()))
            .await?
    }

    /// Whether `password` matches `phc`; with `None` it checks against the dummy hash (always
    /// false) so that an unknown account costs the same time as a known one.
    pub async fn verify(&self, password: &str, phc: Option<&str>) -> Result<bool, AccountError> {
        let known = phc.is_some();
        let phc = phc
            .map(str::to_owned)
            .unwrap_or_else(|| self.dummy.as_str().to_owned());
        let text = SecretString::from(password.to_owned());
        let ok = self
            .run(move || verify_blocking(text.expose_secret(), &phc))
            .await?;
        Ok(ok && known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slot_rests_in_proportion_to_its_cpu_share() {
        let hasher = PasswordHasher::new(1).await.unwrap();
        let ms = std::time::Duration::from_millis;
        let close = |d: std::time::Duration, secs: f64| (d.as_secs_f64() - secs).abs() < 1e-6;
        assert!(hasher.rest_after(ms(30)).is_zero());
        let quarter = hasher.clone().with_cpu_percent(25);
        assert!(close(quarter.rest_after(ms(30)), 0.090));
        assert!(close(hasher.with_cpu_percent(0).rest_after(ms(1)), 0.099));
    }

    #[test]
    fn rules_length_and_common_list() {
        assert!(NewPassword::parse("short").is_err());
        assert!(NewPassword::parse("elevenchars").is_err());
        // On the list (and 12 characters long).
        assert!(NewPassword::parse("q1w2e3r4t5y6").is_err());
        assert!(NewPassword::parse("QWERTY123456").is_err());
        assert!(NewPassword::parse("correct horse battery").is_ok());
        assert_eq!(COMMON.len(), 10_000);
        assert!(COMMON.contains("123456"));
    }

    #[tokio::test]
    async fn hash_is_argon2id_with_owasp_parameters_and_verifies() {
        let hasher = PasswordHasher::new(1).await.unwrap();
        let pw = NewPassword::parse("a long enough passphrase").unwrap();
        let phc = hasher.hash(&pw).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(
            hasher
                .verify("a long enough passphrase", Some(&phc))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("a long enough passphrasE", Some(&phc))
                .await
                .unwrap()
        );
        assert!(!hasher.verify("anything", None).await.unwrap());
        assert!(!hasher.verify("x", Some("not a phc string")).await.unwrap());
    }
}
