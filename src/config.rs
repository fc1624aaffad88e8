//! Typed service settings: defaults, an optional TOML file, then `OXBADGE_*` environment variables,
//! then command-line flags (each later source wins). Every key is documented in README.md.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use figment::{
    Figment,
    providers::{Env, Format, Toml},
};
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

/// Errors while loading or checking settings. They stop start-up (exit code 2); they never reach HTTP.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A source could not be read or a value has the wrong type.
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    /// A value is well-typed but not acceptable.
    #[error("configuration key `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Pretty, coloured lines on a terminal; JSON lines otherwise.
    #[default]
    Auto,
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// All settings of the service. Field docs name the environment variable and the default.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// `OXBADGE_LISTEN`: socket address to bind. Default `127.0.0.1:8080`; port 0 picks a free port.
    pub listen: SocketAddr,
    /// `OXBADGE_DATA_DIR`: directory for the SQLite database and the development KEK. Default `./data`.
    pub data_dir: PathBuf,
    /// `DATABASE_URL` (or `OXBADGE_DATABASE_URL`): `sqlite://…` or `postgres://…`.
    /// Default: SQLite at `<data_dir>/oxbadge.db`.
    pub database_url: Option<String>,
    /// `OXBADGE_DB_MAX_CONNECTIONS`: connection pool size. Default 16.
    pub db_max_connections: u32,
    /// `OXBADGE_PUBLIC_URL`: the externally visible base URL used in identifiers (did:web, status list
    /// URLs). Default: `http(s)://<bound address>`.
    pub public_url: Option<Url>,
    /// `OXBADGE_LOG_FORMAT`: `auto`, `pretty` or `json`. Default `auto`.
    pub log_format: LogFormat,
    /// `OXBADGE_LOG`: tracing filter directives (RUST_LOG syntax). Default `info`.
    pub log: String,
    /// `OXBADGE_TLS_CERT`: PEM certificate chain; serve HTTPS with `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// `OXBADGE_TLS_KEY`: PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// `OXBADGE_DEV_TLS`: serve HTTPS with a generated self-signed certificate for localhost.
    /// Default false.
    pub dev_tls: bool,
    /// `OXBADGE_KEK`: key-encryption keys as `id:BASE64` (32 bytes), comma-separated. Secret.
    pub kek: Option<SecretString>,
    /// `OXBADGE_KEK_FILE`: file with one `id:BASE64` KEK per line (mode 0600).
    pub kek_file: Option<PathBuf>,
    /// `OXBADGE_ACTIVE_KEK`: id of the KEK that encrypts new keys. Default: the first KEK listed.
    pub active_kek: Option<String>,
    /// `OXBADGE_MAX_BODY_BYTES`: largest accepted request body. Default 1 MiB.
    pub max_body_bytes: usize,
    /// `OXBADGE_MIGRATE_ON_START`: apply pending migrations when `serve` starts. Default true.
    pub migrate_on_start: bool,
    /// `OXBADGE_ACCESS_TOKEN_TTL_SECS`: lifetime of issued access tokens. Default 3600.
    pub access_token_ttl_secs: u64,
    /// `OXBADGE_AUTH_RATE_LIMIT_PER_MINUTE`: token-endpoint requests allowed per client IP per minute.
    /// Default 60.
    pub auth_rate_limit_per_minute: u32,
    /// `OXBADGE_AUTH_RATE_LIMIT_BURST`: burst allowance on top of the steady rate. Default 20.
    pub auth_rate_limit_burst: u32,
    /// `OXBADGE_SHUTDOWN_TIMEOUT_SECS`: how long in-flight requests may finish on shutdown. Default 30.
    pub shutdown_timeout_secs: u64,
    /// `OXBADGE_KEY_MAX_AGE_DAYS`: an issuer's active signing key older than this is rotated
    /// automatically (checked at start-up and periodically). 0 disables. Default 365.
    pub key_max_age_days: u32,
    /// `OXBADGE_KEY_ROTATION_CHECK_SECS`: how often the key-age check runs. Default 3600.
    pub key_rotation_check_secs: u64,
    /// `OXBADGE_CREDENTIAL_PROFILE`: `vc2` (VC 2.0, `validFrom`) or `vc1.1` (VC 1.1, `issuanceDate`,
    /// for validators whose JSON Schema requires it). Default `vc2`.
    pub credential_profile: crate::ob::CredentialProfile,
    /// `OXBADGE_STATUS_SHAPE`: `credentialStatus` of issued credentials: `1edtech`
    /// (1EdTechRevocationList, the shape the OB 3.0 JSON Schema accepts), `bitstring` (revocation
    /// entry) or `bitstring-both` (revocation and suspension entries). Default `1edtech`.
    pub status_shape: crate::ob::StatusShape,
    /// `OXBADGE_STATUS_LIST_TTL_SECS`: validity window of a signed status list and the `max-age`
    /// clients may cache it (its `ttl` is this in milliseconds). Default 300.
    pub status_list_ttl_secs: u64,
    /// `OXBADGE_STATUS_LIST_FILL_RATIO`: share of a list's 131,072 entries handed out before a new
    /// list is opened (lower keeps index guessing harder). Default 0.5.
    pub status_list_fill_ratio: f64,
    /// `OXBADGE_VERIFY_REQUIRE_SCOPE`: put `POST /api/v1/verify` and the VC API verify endpoints
    /// behind the `credentials:verify` scope. Default false (verifiers are third parties).
    pub verify_require_scope: bool,
    /// `OXBADGE_VERIFY_RATE_LIMIT_PER_MINUTE`: verifications per client IP per minute. Default 6000.
    pub verify_rate_limit_per_minute: u32,
    /// `OXBADGE_VERIFY_RATE_LIMIT_BURST`: verifications a client IP may make at once. Default 600.
    pub verify_rate_limit_burst: u32,
    /// `OXBADGE_VERIFY_FETCH_ALLOW_HTTP`: let the verifier fetch plain `http://` keys and status
    /// lists. Default false (https only).
    pub verify_fetch_allow_http: bool,
    /// `OXBADGE_VERIFY_FETCH_ALLOW_PRIVATE`: let the verifier fetch from private, loopback and
    /// link-local addresses. Default false.
    pub verify_fetch_allow_private: bool,
    /// `OXBADGE_VERIFY_FETCH_TIMEOUT_SECS`: timeout of one outbound fetch. Default 10.
    pub verify_fetch_timeout_secs: u64,
    /// `OXBADGE_VERIFY_FETCH_MAX_BYTES`: largest document the verifier downloads. Default 1 MiB.
    pub verify_fetch_max_bytes: usize,
    /// `OXBADGE_CACHE_REVALIDATE_MS`: longest time this instance serves a status list, or an
    /// achievement with its issuer and active key, from memory without re-checking the database.
    /// Changes made through this instance, and on PostgreSQL changes announced by other instances
    /// (LISTEN/NOTIFY), take effect at once; this bounds what nothing announced (another process on
    /// the same SQLite file, a lost notification connection). Default 1000.
    pub cache_revalidate_ms: u64,
    /// `OXBADGE_VERIFY_REFETCH_INTERVAL_SECS`: when a cached DID, controller or JWKS document lacks
    /// the key a credential names, the verifier fetches it once more (a rotation may have added
    /// the key); this is the shortest time between two such re-fetches of one document (within it
    /// the verdict is `indeterminate`). 0 removes the limit. Default 30.
    pub verify_refetch_interval_secs: u64,
    /// `OXBADGE_HEADER_READ_TIMEOUT_SECS`: time a client has to send a request's head (request line
    /// and headers), counted from the connection's start or from the first byte of a later request.
    /// Slower clients (slowloris) are disconnected. Default 10.
    pub header_read_timeout_secs: u64,
    /// `OXBADGE_BODY_READ_TIMEOUT_SECS`: time a client has to send a request body once its head is
    /// in; slower bodies are answered 408 and the connection is closed. Default 30.
    pub body_read_timeout_secs: u64,
    /// `OXBADGE_IDLE_TIMEOUT_SECS`: how long a kept-alive connection may wait for its next request.
    /// Default 60.
    pub idle_timeout_secs: u64,
    /// `OXBADGE_MAX_CONNECTIONS`: client connections served at once; more wait in the listen
    /// backlog. 0 (the default) picks what fits under the open-file limit (raised to its hard limit
    /// at start-up) next to the database pool, at most 65,536.
    pub max_connections: usize,
    /// `OXBADGE_AUTH_CLIENT_FAILURES_PER_MINUTE`: failed authentications of one client id (from any
    /// address) allowed per minute once its burst is spent; beyond, its authentication answers 429
    /// with the real wait. Default 10.
    pub auth_client_failures_per_minute: u32,
    /// `OXBADGE_AUTH_CLIENT_FAILURE_BURST`: failed authentications of one client id allowed at once.
    /// Default 10.
    pub auth_client_failure_burst: u32,
    /// `OXBADGE_VERIFY_WORKERS`: verification jobs (canonicalization and signature checks) that
    /// run at once; the rest wait. Bounds the cores verify load can take from issuance and status
    /// lists. Default 1.
    pub verify_workers: usize,
    /// `OXBADGE_RDFC_MAX_CALLS`: calls of RDFC-1.0 Hash N-Degree Quads one canonicalization may
    /// make (signing and verifying); a document needing more is refused (422 on issuance,
    /// `indeterminate` on verification). Default 4000.
    pub rdfc_max_calls: u64,
    /// `OXBADGE_RDFC_MAX_PERMUTATIONS`: permutations of indistinguishable blank nodes one
    /// canonicalization may examine. Default 4000.
    pub rdfc_max_permutations: u64,
    /// `OXBADGE_RDFC_MAX_DEPTH`: recursion depth of Hash N-Degree Quads. Default 32.
    pub rdfc_max_depth: u32,
    /// `OXBADGE_SMTP_URL`: SMTP server for outgoing mail, e.g. `smtp://user:pass@host:587?tls=required`
    /// (STARTTLS) or `smtps://user:pass@host:465` (implicit TLS). Secret. Default: none, mail is
    /// written to `<data_dir>/outbox/*.eml` (with a warning at start-up).
    pub smtp_url: Option<SecretString>,
    /// `OXBADGE_MAIL_FROM`: sender of outgoing mail. Default `oxbadge <no-reply@localhost>`.
    pub mail_from: String,
    /// `OXBADGE_REGISTRATION_OPEN`: allow self-service sign-up (`/account/register`,
    /// `POST /api/v1/account/register`). Default true.
    pub registration_open: bool,
    /// `OXBADGE_PASSWORD_HASH_CONCURRENCY`: Argon2id hashes computed at once (each takes 19 MiB
    /// and one core for tens of milliseconds). 0 = half the cores, at least one. Default 0.
    pub password_hash_concurrency: usize,
    /// `OXBADGE_PASSWORD_HASH_CPU_PERCENT`: the share of one core each hashing slot may use over
    /// time (1–100): after a hash that took `t`, its slot rests `t × (100 / percent − 1)` before
    /// the next one, so a flood of sign-ins leaves the API its cores. Default 25.
    pub password_hash_cpu_percent: u8,
    /// `OXBADGE_SIGN_IN_ATTEMPTS_PER_MINUTE`: sign-in attempts per client address per minute,
    /// across accounts. Default 30.
    pub sign_in_attempts_per_minute: u32,
    /// `OXBADGE_USER_TOKEN_TTL_SECS`: lifetime of user-bound access tokens (authorization-code and
    /// refresh grants). Default 3600.
    pub user_token_ttl_secs: u64,
    /// `OXBADGE_REFRESH_TOKEN_IDLE_SECS`: a refresh token unused this long expires (each rotation
    /// starts a new period). Default 604800 (7 days).
    pub refresh_token_idle_secs: u64,
    /// `OXBADGE_REFRESH_TOKEN_ABSOLUTE_SECS`: a refresh-token family ends this long after its
    /// authorization code was exchanged, however often it is refreshed. Default 7776000 (90 days).
    pub refresh_token_absolute_secs: u64,
    /// `OXBADGE_REGISTRATION_TOKEN`: when set, OAuth dynamic client registration
    /// (`POST /oauth/register`) requires `Authorization: Bearer <this value>` (an RFC 7591 initial
    /// access token). Secret. Default: none, registration is open as OB 3.0 requires.
    pub registration_token: Option<SecretString>,
    /// `OXBADGE_TOS_URL`: terms of service, published as `info.termsOfService` of the OB 3.0
    /// Service Description Document (`GET /ims/ob/v3p0/discovery`). Default `<public URL>/docs`.
    pub tos_url: Option<Url>,
    /// `OXBADGE_PRIVACY_URL`: privacy policy, published as `info.x-imssf-privacyPolicyUrl`.
    /// Default `<public URL>/docs`.
    pub privacy_url: Option<Url>,
    /// `OXBADGE_IMAGE_URL`: the service's logo, published as `info.x-imssf-image`. Default none.
    pub image_url: Option<Url>,
    /// `OXBADGE_HOST_CLIENT_NAME`: our `client_name` when we register at other OB 3.0 hosts
    /// (connecting hosts, `/account/hosts`). Default `oxbadge`.
    pub host_client_name: String,
    /// `OXBADGE_HOST_CLIENT_URI`: our `client_uri` there (OB 3.0 hosts require https). Default
    /// the public URL.
    pub host_client_uri: Option<Url>,
    /// `OXBADGE_HOST_LOGO_URI`: our `logo_uri` there. Default `OXBADGE_IMAGE_URL`, else
    /// `<client URI>/static/logo.png`.
    pub host_logo_uri: Option<Url>,
    /// `OXBADGE_HOST_CALLS_PER_MINUTE`: host connections and imports each earner or issuer may
    /// start per minute (each calls another host; all of them at once from a full budget).
    /// Default 20.
    pub host_calls_per_minute: u32,
    /// `OXBADGE_REDIS_URL`: Redis holding the rate-limit counters (token endpoint per address and
    /// per client id, sign-in / registration / password reset per address, verification per
    /// address), e.g. `redis://127.0.0.1:6379`, so every instance using it shares one limit.
    /// Secret (it may hold a password). Default: none, each instance counts in memory. While Redis
    /// is unreachable, each instance counts in memory (with a warning) and retries every second.
    pub redis_url: Option<SecretString>,
    /// `OXBADGE_REDIS_KEY_PREFIX`: put before every Redis key, so deployments can share a Redis.
    /// Default `oxbadge:rl:`.
    pub redis_key_prefix: String,
    /// `OXBADGE_REDIS_TIMEOUT_MS`: longest wait for a Redis reply before the instance answers
    /// from its in-memory counters. Default 50.
    pub redis_timeout_ms: u64,
    /// `OXBADGE_OTLP_ENDPOINT`: OpenTelemetry collector (OTLP/HTTP protobuf) base URL to export
    /// trace spans to, e.g. `http://127.0.0.1:4318` (spans go to `/v1/traces`). Needs a binary
    /// built with `--features otlp`; otherwise a warning says it is ignored. Default: none.
    pub otlp_endpoint: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            database_url: None,
            db_max_connections: 16,
            public_url: None,
            log_format: LogFormat::Auto,
            log: "info".to_owned(),
            tls_cert: None,
            tls_key: None,
            dev_tls: false,
            kek: None,
            kek_file: None,
            active_kek: None,
            max_body_bytes: 1024 * 1024,
            migrate_on_start: true,
            access_token_ttl_secs: 3600,
            auth_rate_limit_per_minute: 60,
            auth_rate_limit_burst: 20,
            shutdown_timeout_secs: 30,
            key_max_age_days: 365,
            key_rotation_check_secs: 3600,
            credential_profile: crate::ob::CredentialProfile::Vc2,
            status_shape: crate::ob::StatusShape::OneEdTech,
            status_list_ttl_secs: 300,
            status_list_fill_ratio: 0.5,
            verify_require_scope: false,
            verify_rate_limit_per_minute: 6000,
            verify_rate_limit_burst: 600,
            verify_fetch_allow_http: false,
            verify_fetch_allow_private: false,
            verify_fetch_timeout_secs: 10,
            verify_fetch_max_bytes: 1024 * 1024,
            cache_revalidate_ms: 1000,
            verify_refetch_interval_secs: 30,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 30,
            idle_timeout_secs: 60,
            max_connections: 0,
            auth_client_failures_per_minute: 10,
            auth_client_failure_burst: 10,
            verify_workers: 1,
            rdfc_max_calls: crate::jsonld::CanonicalizationLimits::DEFAULT_MAX_CALLS,
            rdfc_max_permutations: crate::jsonld::CanonicalizationLimits::DEFAULT_MAX_PERMUTATIONS,
            rdfc_max_depth: crate::jsonld::CanonicalizationLimits::DEFAULT_MAX_DEPTH,
            smtp_url: None,
            mail_from: "oxbadge <no-reply@localhost>".to_owned(),
            registration_open: true,
            password_hash_concurrency: 0,
            password_hash_cpu_percent: 25,
            sign_in_attempts_per_minute: 30,
            user_token_ttl_secs: 3600,
            refresh_token_idle_secs: 7 * 24 * 3600,
            refresh_token_absolute_secs: 90 * 24 * 3600,
            registration_token: None,
            tos_url: None,
            privacy_url: None,
            image_url: None,
            host_client_name: "oxbadge".to_owned(),
            host_client_uri: None,
            host_logo_uri: None,
            host_calls_per_minute: 20,
            redis_url: None,
            redis_key_prefix: "oxbadge:rl:".to_owned(),
            redis_timeout_ms: 50,
            otlp_endpoint: None,
        }
    }
}

impl Settings {
    /// The bounds on RDFC-1.0 canonicalization work these settings ask for.
    pub fn canonicalization_limits(&self) -> crate::jsonld::CanonicalizationLimits {
        crate::jsonld::CanonicalizationLimits {
            max_calls: self.rdfc_max_calls,
            max_permutations: self.rdfc_max_permutations,
            max_depth: self.rdfc_max_depth,
        }
    }
}

/// Values given on the command line; `Some` overrides every other source.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub public_url: Option<Url>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub dev_tls: bool,
    pub no_migrate: bool,
}

/// Name of the optional settings file read from the working directory when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "oxbadge.toml";

impl Settings {
    /// Loads defaults ← TOML file ← environment ← overrides. A missing default file is fine; a missing
    /// file named explicitly is an error.
    pub fn load(config_file: Option<&Path>, overrides: Overrides) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        match config_file {
            Some(path) => {
                if !path.exists() {
                    return Err(ConfigError::Invalid {
                        key: "config",
                        reason: format!("file {} does not exist", path.display()),
                    });
                }
                figment = figment.merge(Toml::file_exact(path));
            }
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
                figment = figment.merge(Toml::file_exact(DEFAULT_CONFIG_FILE));
            }
            None => {}
        }
        figment = figment
            .merge(Env::prefixed("OXBADGE_").ignore(&["config"]))
            .merge(Env::raw().only(&["DATABASE_URL"]));
        let mut settings: Settings = figment.extract().map_err(Box::new)?;
        settings.apply(overrides);
        settings.check()?;
        Ok(settings)
    }

    /// Applies command-line values on top.
    pub fn apply(&mut self, o: Overrides) {
        if let Some(v) = o.listen {
            self.listen = v;
        }
        if let Some(v) = o.data_dir {
            self.data_dir = v;
        }
        if let Some(v) = o.database_url {
            self.database_url = Some(v);
        }
        if let Some(v) = o.public_url {
            self.public_url = Some(v);
        }
        if let Some(v) = o.tls_cert {
            self.tls_cert = Some(v);
        }
        if let Some(v) = o.tls_key {
            self.tls_key = Some(v);
        }
        if o.dev_tls {
            self.dev_tls = true;
        }
        if o.no_migrate {
            self.migrate_on_start = false;
        }
    }

    /// Rejects combinations that cannot work, before anything is started.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.verify_workers == 0 {
            return Err(ConfigError::Invalid {
                key: "verify_workers",
                reason: "must be at least 1".into(),
            });
        }
        if self.rdfc_max_calls == 0 || self.rdfc_max_permutations == 0 || self.rdfc_max_depth == 0 {
            return Err(ConfigError::Invalid {
                key: "rdfc_max_calls",
                reason:
                    "rdfc_max_calls, rdfc_max_permutations and rdfc_max_depth must be at least 1"
                        .into(),
            });
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::Invalid {
                key: "tls_cert",
                reason: "tls_cert and tls_key must be given together".into(),
            });
        }
        if self.dev_tls && self.tls_cert.is_some() {
            return Err(ConfigError::Invalid {
                key: "dev_tls",
                reason: "dev_tls cannot be combined with tls_cert/tls_key".into(),
            });
        }
        if let Some(url) = &self.public_url
            && !matches!(url.scheme(), "http" | "https")
        {
            return Err(ConfigError::Invalid {
                key: "public_url",
                reason: "must be an http or https URL".into(),
            });
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid {
                key: "max_body_bytes",
                reason: "must be at least 1024".into(),
            });
        }
        if self.auth_rate_limit_per_minute == 0 {
            return Err(ConfigError::Invalid {
                key: "auth_rate_limit_per_minute",
                reason: "must be at least 1".into(),
            });
        }
        if !(self.status_list_fill_ratio > 0.0 && self.status_list_fill_ratio <= 1.0) {
            return Err(ConfigError::Invalid {
                key: "status_list_fill_ratio",
                reason: "must be in (0, 1]".into(),
            });
        }
        if self.status_list_ttl_secs < 10 {
            return Err(ConfigError::Invalid {
                key: "status_list_ttl_secs",
                reason: "must be at least 10".into(),
            });
        }
        if self.key_rotation_check_secs == 0 {
            return Err(ConfigError::Invalid {
                key: "key_rotation_check_secs",
                reason: "must be at least 1".into(),
            });
        }
        if self.verify_rate_limit_per_minute == 0 {
            return Err(ConfigError::Invalid {
                key: "verify_rate_limit_per_minute",
                reason: "must be at least 1".into(),
            });
        }
        if self.verify_fetch_timeout_secs == 0 {
            return Err(ConfigError::Invalid {
                key: "verify_fetch_timeout_secs",
                reason: "must be at least 1".into(),
            });
        }
        for (key, value) in [
            ("header_read_timeout_secs", self.header_read_timeout_secs),
            ("body_read_timeout_secs", self.body_read_timeout_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
            (
                "auth_client_failures_per_minute",
                u64::from(self.auth_client_failures_per_minute),
            ),
            ("user_token_ttl_secs", self.user_token_ttl_secs),
            ("refresh_token_idle_secs", self.refresh_token_idle_secs),
            (
                "refresh_token_absolute_secs",
                self.refresh_token_absolute_secs,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "must be at least 1".into(),
                });
            }
        }
        if self.redis_timeout_ms == 0 {
            return Err(ConfigError::Invalid {
                key: "redis_timeout_ms",
                reason: "must be at least 1".into(),
            });
        }
        if self.db_max_connections == 0 {
            return Err(ConfigError::Invalid {
                key: "db_max_connections",
                reason: "must be at least 1".into(),
            });
        }
        Ok(())
    }

    /// Lifetimes of refresh tokens (idle and absolute), as configured.
    pub fn refresh_lifetimes(&self) -> crate::oauth::refresh_family::RefreshLifetimes {
        let secs = |s: u64| chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 4_000));
        crate::oauth::refresh_family::RefreshLifetimes {
            idle: secs(self.refresh_token_idle_secs),
            absolute: secs(self.refresh_token_absolute_secs),
        }
    }

    /// Whether the service terminates TLS itself.
    pub fn tls_enabled(&self) -> bool {
        self.dev_tls || self.tls_cert.is_some()
    }

    /// The database URL in effect: the configured one, or the SQLite file in the data directory.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("oxbadge.db").display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_documented_values() {
        let s = Settings::default();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.max_body_bytes, 1024 * 1024);
        assert_eq!(
            s.effective_database_url(),
            "sqlite://data/oxbadge.db?mode=rwc"
        );
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's test jail fixes the closure's error type
    fn environment_overrides_file_and_flags_override_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "custom.toml",
                "listen = \"127.0.0.1:9000\"\nmax_body_bytes = 2048\nlog = \"debug\"",
            )?;
            jail.set_env("OXBADGE_MAX_BODY_BYTES", "4096");
            jail.set_env("DATABASE_URL", "postgres://localhost/x");
            let s = Settings::load(Some(Path::new("custom.toml")), Overrides::default())
                .map_err(|e| e.to_string())?;
            assert_eq!(s.listen.to_string(), "127.0.0.1:9000");
            assert_eq!(s.max_body_bytes, 4096);
            assert_eq!(s.log, "debug");
            assert_eq!(s.database_url.as_deref(), Some("postgres://localhost/x"));
            let s = Settings::load(
                Some(Path::new("custom.toml")),
                Overrides {
                    listen: Some("127.0.0.1:1".parse().map_err(|_| "addr")?),
                    ..Default::default()
                },
            )
            .map_err(|e| e.to_string())?;
            assert_eq!(s.listen.to_string(), "127.0.0.1:1");
            Ok(())
        });
    }

    #[test]
    fn bad_combinations_are_rejected() {
        let s = Settings {
            tls_cert: Some("a".into()),
            ..Default::default()
        };
        assert!(s.check().is_err());
        let s = Settings {
            max_body_bytes: 10,
            ..Default::default()
        };
        assert!(s.check().is_err());
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let s = Settings {
            kek: Some(SecretString::from("k1:c2VjcmV0")),
            redis_url: Some(SecretString::from("redis://:hunter2@127.0.0.1:6379")),
            ..Default::default()
        };
        assert!(!format!("{s:?}").contains("c2VjcmV0"));
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
