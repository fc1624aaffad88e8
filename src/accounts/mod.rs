//! The people side: users, passwords, sessions, CSRF tokens, sign-in lockout, single-use links,
//! mail, and issuer memberships and roles. Both edges (`http/account.rs`, `http/users.rs` and the pages in `web/`) call these
//! functions, so a page and an API call can never disagree.

pub mod csrf;
pub mod errors;
pub mod links;
pub mod mail;
pub mod memberships;
pub mod passwords;
pub mod records;
pub mod secret_token;
pub mod self_service;
pub mod session_cookie;
pub mod sessions;
pub mod sign_in;
pub mod sign_in_throttle;
pub mod users;

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

pub use errors::AccountError;
pub use sessions::SessionUser;

use crate::clock::Clock;
use mail::{MailError, Mailer, OutgoingMail};
use passwords::PasswordHasher;
use sign_in_throttle::AddressLimiter;

/// Everything the people side needs besides the database: the hasher, the mailer, the clock,
/// the sign-in limiter and a few settings. Cheap to clone.
#[derive(Clone)]
pub struct Accounts(Arc<Inner>);

struct Inner {
    hasher: PasswordHasher,
    mailer: Mailer,
    clock: Clock,
    limiter: AddressLimiter,
    registration_open: bool,
    public_url: Url,
    secure_cookies: bool,
}

/// Settings the people side is built from.
pub struct AccountsConfig<'a> {
    pub smtp_url: Option<&'a str>,
    pub mail_from: &'a str,
    pub data_dir: &'a std::path::Path,
    pub registration_open: bool,
    pub password_hash_concurrency: usize,
    /// Share of a core each hashing slot may use over time, in percent (see [`PasswordHasher`]).
    pub password_hash_cpu_percent: u8,
    pub sign_in_attempts_per_minute_per_ip: u32,
    /// Where the per-address limit counts (shared through Redis when configured).
    pub rate_limits: crate::rate_limit::RateLimitStore,
    pub public_url: Url,
    pub secure_cookies: bool,
}

/// Failures building [`Accounts`] at start-up.
#[derive(Debug, thiserror::Error)]
pub enum AccountsSetupError {
    /// The mail settings are invalid.
    #[error(transparent)]
    Mail(#[from] MailError),
    /// The password hasher could not be prepared.
    #[error(transparent)]
    Hasher(#[from] AccountError),
}

impl Accounts {
    /// Builds the people side.
    pub async fn new(config: AccountsConfig<'_>, clock: Clock) -> Result<Self, AccountsSetupError> {
        let concurrency = match config.password_hash_concurrency {
            0 => PasswordHasher::default_concurrency(),
            n => n,
        };
        Ok(Self(Arc::new(Inner {
            hasher: PasswordHasher::new(concurrency)
                .await?
                .with_cpu_percent(config.password_hash_cpu_percent),
            mailer: Mailer::new(config.smtp_url, config.mail_from, config.data_dir)?,
            clock,
            limiter: AddressLimiter::shared(
                config.sign_in_attempts_per_minute_per_ip,
                config.rate_limits,
            ),
            registration_open: config.registration_open,
            public_url: config.public_url,
            secure_cookies: config.secure_cookies,
        })))
    }

    /// The password hasher.
    pub fn hasher(&self) -> &PasswordHasher {
        &self.0.hasher
    }

    /// The mailer.
    pub fn mailer(&self) -> &Mailer {
        &self.0.mailer
    }

    /// The clock every expiry is measured with.
    pub fn clock(&self) -> &Clock {
        &self.0.clock
    }

    /// The per-address sign-in limiter.
    pub fn address_limiter(&self) -> &AddressLimiter {
        &self.0.limiter
    }

    /// Whether self-service registration is on.
    pub fn registration_open(&self) -> bool {
        self.0.registration_open
    }

    /// Whether session cookies carry `Secure` (the service terminates TLS or its public URL is https).
    pub fn secure_cookies(&self) -> bool {
        self.0.secure_cookies
    }

    fn page_link(&self, path: &str, token: &SecretString) -> String {
        let mut url = self.0.public_url.clone();
        url.set_path(path);
        url.query_pairs_mut()
            .clear()
            .append_pair("token", token.expose_secret());
        url.to_string()
    }

    /// The mail with an email-verification link.
    pub fn verification_mail(&self, to: &str, token: &SecretString) -> OutgoingMail {
        let link = self.page_link("/account/verify-email", token);
        OutgoingMail {
            to: to.to_owned(),
            subject: "Confirm your email address".into(),
            text: format!(
                "Hello,\n\nconfirm the email address of your oxbadge account by opening this link \
                 (it works once, for 24 hours):\n\n{link}\n\nIf you did not create an account, \
                 ignore this message.\n"
            ),
        }
    }

    /// The mail with a password-reset link.
    pub fn reset_mail(&self, to: &str, token: &SecretString) -> OutgoingMail {
        let link = self.page_link("/account/reset-password", token);
        OutgoingMail {
            to: to.to_owned(),
            subject: "Reset your password".into(),
            text: format!(
                "Hello,\n\nset a new password for your oxbadge account by opening this link \
                 (it works once, for 1 hour):\n\n{link}\n\nIf you did not ask for this, ignore \
                 this message: your password stays as it is.\n"
            ),
        }
    }

    /// The notice sent when someone registers an address that already has an account.
    pub fn already_registered_mail(&self, to: &str) -> OutgoingMail {
        let mut url = self.0.public_url.clone();
        url.set_path("/account/forgot-password");
        OutgoingMail {
            to: to.to_owned(),
            subject: "You already have an account".into(),
            text: format!(
                "Hello,\n\nsomeone (perhaps you) tried to register a new oxbadge account with this \
                 address, which already has one. Sign in, or reset your password here:\n\n{url}\n"
            ),
        }
    }
}
