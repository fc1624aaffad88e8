//! Application assembly: `App::build(settings)` opens the database, migrates, binds the listener
//! (port 0 works, so every test runs its own app) and returns the bound address and a run future.

use std::{
    future::Future,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use poem::{
    Request,
    listener::{
        Acceptor, AcceptorExt, BoxAcceptor, IntoTlsConfigStream, Listener, RustlsCertificate,
        RustlsConfig, TcpListener,
    },
};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use secrecy::ExposeSecret;
use url::Url;

use crate::{
    config::Settings,
    connections::{self, ConnectionLimits},
    db::{self, DbSetupError, issuer, signing_key},
    di::EddsaRdfc2022,
    http, invalidation,
    issue::{ContextCache, IssuanceQueue},
    jsonld::ContextLoader,
    keys::{
        identity::IdType,
        ring::{KekConfigError, KekSource, load_kek_ring},
        store::{KeyAlgorithm, KeyError, KeyStore, RotationOutcome, state as key_state},
    },
    metrics::Metrics,
    oauth::{NewClient, OAuthError, ScopeSet, cache::TokenCache, throttle::FailureBuckets, tokens},
    rate_limit::{Limiter, Quota, RateLimitStore, RedisOptions, RedisSetupError},
    status::{
        allocator::InFlight,
        changes::StatusQueue,
        lists::{RevocationListCache, StatusListCache},
    },
    verify::{Verifier, fetch::FetchPolicy},
};

/// Failures that stop the service from starting. Each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Db(#[from] DbSetupError),
    /// The database schema is behind and automatic migration is off.
    #[error(
        "the database has {0} pending migration(s) and migrate_on_start is off: run `oxbadge migrate up`"
    )]
    PendingMigrations(usize),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The key-encryption keys are missing or invalid.
    #[error("key-encryption keys: {0}")]
    Keks(#[from] KekConfigError),
    /// Stored keys cannot be decrypted with the configured KEKs.
    #[error("signing keys: {0}")]
    Keys(#[from] KeyError),
    /// The public URL could not be derived.
    #[error("public URL: {0}")]
    PublicUrl(String),
    /// TLS material could not be read or generated.
    #[error("TLS: {0}")]
    Tls(String),
    /// The verifier's outbound HTTP client could not be built.
    #[error("outbound HTTP client: {0}")]
    Outbound(String),
    /// Credentials issued under this configuration could not be signed (a context is missing).
    #[error(
        "credential_profile `{profile}` with status_shape `{shape}` cannot sign credentials: {reason}"
    )]
    Unsignable {
        profile: String,
        shape: String,
        reason: String,
    },
    /// The people side (mail settings, password hasher) could not be set up.
    #[error("accounts: {0}")]
    Accounts(#[from] crate::accounts::AccountsSetupError),
    /// An applied migration was edited (or is unknown to this build), or its checksums could not
    /// be read. The CLI exits with code 2 for the first two.
    #[error("migrations: {0}")]
    Migrations(#[from] migration::ChecksumError),
    /// The SQLite database's lock is held by a restore in progress.
    #[error("database lock: {0}")]
    DatabaseLock(#[from] db::backup::BackupError),
    /// `redis_url` is not a Redis URL.
    #[error("rate limits: {0}")]
    Redis(#[from] RedisSetupError),
}

impl StartupError {
    /// Whether this start was refused because the database does not match this build (an edited
    /// or unknown applied migration), as opposed to a failure that a retry might fix.
    pub fn is_schema_mismatch(&self) -> bool {
        matches!(
            self,
            Self::Migrations(
                migration::ChecksumError::Edited { .. } | migration::ChecksumError::Unknown { .. }
            )
        )
    }
}

impl From<sea_orm::DbErr> for StartupError {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::Db(DbSetupError::Db(err))
    }
}

struct StateInner {
    db: DatabaseConnection,
    writer_db: DatabaseConnection,
    settings: Settings,
    metrics: Metrics,
    keys: KeyStore,
    signer: EddsaRdfc2022,
    status_cache: StatusListCache,
    revocation_cache: RevocationListCache,
    issuance_contexts: ContextCache,
    issuance_queue: IssuanceQueue,
    grant_queue: crate::oauth::grant_writer::GrantQueue,
    status_queue: StatusQueue,
    in_flight_slots: Arc<InFlight>,
    token_cache: TokenCache,
    client_cache: crate::oauth::cache::ClientCache,
    ceiling_cache: crate::oauth::cache::CeilingCache,
    public_url: Url,
    rate_limits: RateLimitStore,
    auth_limiter: Limiter,
    auth_failures: FailureBuckets,
    verify_limiter: Limiter,
    host_call_limiter: Limiter,
    verifier: Verifier,
    verify_pool: crate::compute::ComputePool,
    connections: Arc<crate::http::disconnect::Connections>,
    accounts: crate::accounts::Accounts,
    /// Held shared for the life of the state, so `db restore` cannot replace the SQLite file.
    _database_lock: Option<db::backup::DatabaseLock>,
}

/// The peer address of a request (the unspecified address when unknown).
fn client_ip(req: &Request) -> IpAddr {
    req.remote_addr()
        .as_socket_addr()
        .map(SocketAddr::ip)
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// Everything a request handler needs, passed in (no globals). Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<StateInner>);

impl AppState {
    /// The database pool.
    pub fn db(&self) -> &DatabaseConnection {
        &self.0.db
    }

    /// The group-commit writers' pool ([`WRITER_CONNECTIONS`] connections to the same database),
    /// so their transactions do not wait for a connection behind the request handlers' reads.
    pub fn writer_db(&self) -> &DatabaseConnection {
        &self.0.writer_db
    }

    /// Settings in effect.
    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    /// The issuer key store.
    pub fn keys(&self) -> &KeyStore {
        &self.0.keys
    }

    /// The Data Integrity (`eddsa-rdfc-2022`) signer and verifier over the pinned contexts.
    pub fn signer(&self) -> &EddsaRdfc2022 {
        &self.0.signer
    }

    /// The bounded pool verification's CPU work runs on (`verify_workers`).
    pub fn verify_pool(&self) -> &crate::compute::ComputePool {
        &self.0.verify_pool
    }

    /// The open client connections, to learn when a client hung up on its request.
    pub fn connections(&self) -> &Arc<crate::http::disconnect::Connections> {
        &self.0.connections
    }

    /// Signed status lists.
    pub fn status_cache(&self) -> &StatusListCache {
        &self.0.status_cache
    }

    /// Serialized 1EdTech revocation lists, rebuilt when the issuer's revocation lists change.
    pub fn revocation_cache(&self) -> &RevocationListCache {
        &self.0.revocation_cache
    }

    /// Issuance contexts (achievement, issuer, active key) by achievement.
    pub fn issuance_contexts(&self) -> &ContextCache {
        &self.0.issuance_contexts
    }

    /// The queue of single issuances in front of the group-commit writer.
    pub fn issuance_queue(&self) -> &IssuanceQueue {
        &self.0.issuance_queue
    }

    /// The queue in front of the token-grant writer ([`crate::oauth::grant_writer`]).
    pub fn grant_queue(&self) -> &crate::oauth::grant_writer::GrantQueue {
        &self.0.grant_queue
    }

    /// The queue of single status changes in front of the group-commit writer.
    pub fn status_queue(&self) -> &StatusQueue {
        &self.0.status_queue
    }

    /// Status indexes this process picked and has not committed yet.
    pub fn in_flight_slots(&self) -> &Arc<InFlight> {
        &self.0.in_flight_slots
    }

    /// Recently resolved bearer tokens.
    pub fn token_cache(&self) -> &TokenCache {
        &self.0.token_cache
    }

    /// Authenticated OAuth client rows (see [`crate::oauth::cache::ClientCache`]).
    pub fn client_cache(&self) -> &crate::oauth::cache::ClientCache {
        &self.0.client_cache
    }

    /// Users' scope ceilings (see [`crate::oauth::cache::CeilingCache`]).
    pub fn ceiling_cache(&self) -> &crate::oauth::cache::CeilingCache {
        &self.0.ceiling_cache
    }

    /// Metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// The externally visible base URL (no trailing slash in `as_str()` joins).
    pub fn public_url(&self) -> &Url {
        &self.0.public_url
    }

    /// Whether this instance terminates TLS.
    pub fn tls_enabled(&self) -> bool {
        self.0.settings.tls_enabled()
    }

    /// Calls to other OB 3.0 hosts (connections and imports) per owner.
    pub fn host_call_limiter(&self) -> &Limiter {
        &self.0.host_call_limiter
    }

    /// Where this instance's rate-limit counters live (Redis when `redis_url` is set): build
    /// further limits on it (`crate::rate_limit::Limiter::new`) so they are shared too.
    pub fn rate_limits(&self) -> &RateLimitStore {
        &self.0.rate_limits
    }

    /// Per-address rate limit on authentication endpoints; the 429 says the real wait.
    pub async fn check_auth_rate_limit(&self, req: &Request) -> Result<(), OAuthError> {
        match self.auth_rate_limit_wait(req).await {
            Some(wait) => Err(OAuthError::rate_limited_for(wait)),
            None => Ok(()),
        }
    }

    /// Takes one request from the address's authentication bucket: `None` when it had one,
    /// otherwise how long until it has one again. The token endpoint lets a correct client secret
    /// through an empty bucket (so a neighbour guessing cannot lock the right secret out) and
    /// answers anything else 429 with this wait.
    pub async fn auth_rate_limit_wait(&self, req: &Request) -> Option<Duration> {
        let ip = client_ip(req);
        let wait = self.0.auth_limiter.check(&ip.to_string()).await.err();
        if wait.is_some() {
            tracing::warn!(%ip, "authentication rate limit exceeded");
        }
        wait
    }

    /// Failed client authentications per client id.
    pub fn auth_failures(&self) -> &FailureBuckets {
        &self.0.auth_failures
    }

    /// Per-address rate limit on verification; `Err` carries the seconds to wait.
    pub async fn check_verify_rate_limit(&self, req: &Request) -> Result<(), u64> {
        let ip = client_ip(req);
        self.0
            .verify_limiter
            .check(&ip.to_string())
            .await
            .map_err(|wait| wait.as_secs().max(1))
    }

    /// The verifier (outbound client and caches).
    pub fn verifier(&self) -> &Verifier {
        &self.0.verifier
    }

    /// The people side: password hasher, mailer, sign-in limiter.
    pub fn accounts(&self) -> &crate::accounts::Accounts {
        &self.0.accounts
    }

    /// The clock expiries are measured with (tests advance it).
    pub fn clock(&self) -> &crate::clock::Clock {
        self.0.accounts.clock()
    }
}

/// Connections of the group-commit writers' own pool ([`AppState::writer_db`]).
pub const WRITER_CONNECTIONS: u32 = 2;

impl AppState {
    /// Opens the database (migrating unless told not to), checks the KEKs against the stored keys,
    /// bootstraps the first admin client on an empty database, and builds the state. `bound` is the
    /// listener address the default public URL derives from. The CLI uses this without a listener.
    pub async fn open(
        settings: Settings,
        bound: SocketAddr,
    ) -> Result<(Self, Option<NewClient>), StartupError> {
        let database_lock = db::sqlite_path(&settings.effective_database_url())
            .map(|path| db::backup::DatabaseLock::shared(&path))
            .transpose()?;
        let db = db::connect(
            &settings.effective_database_url(),
            settings.db_max_connections,
        )
        .await?;
        // The group-commit writers' own connections: their transactions never queue behind the
        // request handlers' reads for a pooled connection (an in-memory SQLite database has no
        // second connection to it, so it shares the one pool).
        let writer_db = if db::is_shared_database(&settings.effective_database_url()) {
            db::connect(&settings.effective_database_url(), WRITER_CONNECTIONS).await?
        } else {
            db.clone()
        };
        if settings.migrate_on_start {
            db::migrate_up(&db).await?;
        } else {
            use migration::MigratorTrait;
            migration::checksums::verify(&db).await?;
            let pending = migration::Migrator::get_pending_migrations(&db)
                .await?
                .len();
            if pending > 0 {
                return Err(StartupError::PendingMigrations(pending));
            }
        }

        let (ring, source) = load_kek_ring(&settings)?;
        match &source {
            KekSource::Configured => {}
            KekSource::DevelopmentFile(path) => tracing::warn!(
                path = %path.display(),
                "using the DEVELOPMENT key-encryption key file; configure OXBADGE_KEK or OXBADGE_KEK_FILE in production"
            ),
            KekSource::DevelopmentGenerated(path) => tracing::warn!(
                path = %path.display(),
                "!!! GENERATED a DEVELOPMENT key-encryption key: signing keys are only as safe as this file. \
                 Configure OXBADGE_KEK or OXBADGE_KEK_FILE in production !!!"
            ),
        }
        let keys = KeyStore::new(ring);
        keys.verify_keks(&db).await?;

        let bootstrap_admin = if tokens::count_clients(&db).await? == 0 {
            Some(tokens::create_client(&db, "admin (bootstrap)", ScopeSet::all()).await?)
        } else {
            None
        };

        let public_url = match settings.public_url.clone() {
            Some(url) => url,
            None => default_public_url(bound, settings.tls_enabled(), settings.dev_tls)?,
        };
        let revalidate = Duration::from_millis(settings.cache_revalidate_ms);
        let rate_limits = match &settings.redis_url {
            Some(url) => {
                RateLimitStore::redis(RedisOptions {
                    url: url.expose_secret(),
                    key_prefix: &settings.redis_key_prefix,
                    timeout: Duration::from_millis(settings.redis_timeout_ms),
                })
                .await?
            }
            None => RateLimitStore::local(),
        };
        let auth_limiter = Limiter::new(
            "auth",
            Quota::new(
                settings.auth_rate_limit_per_minute,
                settings.auth_rate_limit_burst,
            ),
            rate_limits.clone(),
        );
        let auth_failures = FailureBuckets::shared(
            settings.auth_client_failures_per_minute,
            settings.auth_client_failure_burst,
            rate_limits.clone(),
        );
        let verify_limiter = Limiter::new(
            "verify",
            Quota::new(
                settings.verify_rate_limit_per_minute,
                settings.verify_rate_limit_burst,
            ),
            rate_limits.clone(),
        );
        let host_call_limiter = Limiter::new(
            "host_calls",
            Quota::per_minute(settings.host_calls_per_minute),
            rate_limits.clone(),
        );
        let verifier = Verifier::new(FetchPolicy {
            allow_http: settings.verify_fetch_allow_http,
            allow_private: settings.verify_fetch_allow_private,
            timeout: Duration::from_secs(settings.verify_fetch_timeout_secs),
            max_bytes: settings.verify_fetch_max_bytes,
            refetch_interval: Duration::from_secs(settings.verify_refetch_interval_secs),
            ..FetchPolicy::default()
        })
        .map_err(|e| StartupError::Outbound(e.to_string()))?;
        let canonicalization_limits = settings.canonicalization_limits();
        let verify_workers = settings.verify_workers;
        let accounts = crate::accounts::Accounts::new(
            crate::accounts::AccountsConfig {
                smtp_url: settings.smtp_url.as_ref().map(|u| u.expose_secret()),
                mail_from: &settings.mail_from,
                data_dir: &settings.data_dir,
                registration_open: settings.registration_open,
                password_hash_concurrency: settings.password_hash_concurrency,
                password_hash_cpu_percent: settings.password_hash_cpu_percent,
                sign_in_attempts_per_minute_per_ip: settings.sign_in_attempts_per_minute,
                rate_limits: rate_limits.clone(),
                secure_cookies: settings.tls_enabled() || public_url.scheme() == "https",
                public_url: public_url.clone(),
            },
            crate::clock::Clock::system(),
        )
        .await?;
        let state = AppState(Arc::new(StateInner {
            db,
            writer_db,
            settings,
            metrics: Metrics::new(),
            keys,
            signer: EddsaRdfc2022::new(Arc::new(ContextLoader::new()))
                .with_limits(canonicalization_limits),
            verify_pool: crate::compute::ComputePool::new(verify_workers),
            connections: Arc::default(),
            status_cache: StatusListCache::new(revalidate),
            revocation_cache: RevocationListCache::default(),
            issuance_contexts: ContextCache::new(revalidate),
            issuance_queue: IssuanceQueue::default(),
            grant_queue: crate::oauth::grant_writer::GrantQueue::default(),
            status_queue: StatusQueue::default(),
            in_flight_slots: Arc::new(InFlight::default()),
            token_cache: TokenCache::default(),
            client_cache: crate::oauth::cache::ClientCache::default(),
            ceiling_cache: crate::oauth::cache::CeilingCache::default(),
            public_url,
            rate_limits,
            auth_limiter,
            auth_failures,
            verify_limiter,
            host_call_limiter,
            verifier,
            accounts,
            _database_lock: database_lock,
        }));
        Ok((state, bootstrap_admin))
    }
}

/// A built, bound, not yet running service.
pub struct App {
    acceptor: BoxAcceptor,
    local_addr: SocketAddr,
    max_connections: usize,
    state: AppState,
    bootstrap_admin: Option<NewClient>,
}

fn load_tls(settings: &Settings) -> Result<Option<RustlsConfig>, StartupError> {
    if settings.dev_tls {
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let certified = rcgen::generate_simple_self_signed(names)
            .map_err(|e| StartupError::Tls(format!("cannot generate a dev certificate: {e}")))?;
        let cert = RustlsCertificate::new()
            .cert(certified.cert.pem())
            .key(certified.key_pair.serialize_pem());
        return Ok(Some(RustlsConfig::new().fallback(cert)));
    }
    match (&settings.tls_cert, &settings.tls_key) {
        (Some(cert_path), Some(key_path)) => {
            let read = |p: &std::path::Path| {
                std::fs::read(p)
                    .map_err(|e| StartupError::Tls(format!("cannot read {}: {e}", p.display())))
            };
            let cert = RustlsCertificate::new()
                .cert(read(cert_path)?)
                .key(read(key_path)?);
            Ok(Some(RustlsConfig::new().fallback(cert)))
        }
        _ => Ok(None),
    }
}

/// A TCP acceptor whose first `accept` waits one scheduler turn before accepting.
///
/// poem's rustls acceptor loads its configuration from a stream inside the same `select!` that
/// accepts connections, and `select!` polls its branches in random order. When a client has
/// already connected by the time the server first polls (a busy machine, a client that connects
/// right after start-up), the accept branch could win before any configuration was loaded: poem
/// then refuses that connection ("no valid tls config") and the client sees a reset. Making the
/// very first accept pending once lets the (always ready) configuration win that first race.
struct ConfigFirst<A> {
    inner: A,
    started: bool,
}

impl<A> ConfigFirst<A> {
    fn new(inner: A) -> Self {
        Self {
            inner,
            started: false,
        }
    }
}

impl<A: Acceptor> Acceptor for ConfigFirst<A> {
    type Io = A::Io;

    fn local_addr(&self) -> Vec<poem::web::LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(
        &mut self,
    ) -> std::io::Result<(
        Self::Io,
        poem::web::LocalAddr,
        poem::web::RemoteAddr,
        poem::http::uri::Scheme,
    )> {
        if !self.started {
            self.started = true;
            tokio::task::yield_now().await;
        }
        self.inner.accept().await
    }
}

/// The base URL used when none is configured: the bound address (loopback for wildcard binds).
fn default_public_url(addr: SocketAddr, tls: bool, dev_tls: bool) -> Result<Url, StartupError> {
    let scheme = if tls { "https" } else { "http" };
    let host = if dev_tls {
        "localhost".to_owned()
    } else {
        match addr.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        }
    };
    let text = format!("{scheme}://{host}:{}", addr.port());
    Url::parse(&text).map_err(|e| StartupError::PublicUrl(format!("{text}: {e}")))
}

impl App {
    /// Opens and migrates the database, bootstraps the first admin client on an empty database,
    /// and binds the listener.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let open_files = connections::raise_open_file_limit();
        let max_connections = connections::effective_max_connections(
            settings.max_connections,
            open_files,
            settings.db_max_connections,
        );
        tracing::info!(
            open_file_limit = open_files,
            max_connections,
            "connection cap"
        );
        crate::issue::check_signable(
            &EddsaRdfc2022::new(ContextLoader::shared()),
            settings.credential_profile,
            settings.status_shape,
        )
        .map_err(|reason| StartupError::Unsignable {
            profile: match settings.credential_profile {
                crate::ob::CredentialProfile::Vc2 => "vc2",
                crate::ob::CredentialProfile::Vc11 => "vc1.1",
            }
            .to_owned(),
            shape: match settings.status_shape {
                crate::ob::StatusShape::OneEdTech => "1edtech",
                crate::ob::StatusShape::Bitstring => "bitstring",
                crate::ob::StatusShape::BitstringBoth => "bitstring-both",
            }
            .to_owned(),
            reason,
        })?;
        let tls = load_tls(&settings)?;
        let tcp = TcpListener::bind(settings.listen)
            .into_acceptor()
            .await
            .map_err(|source| StartupError::Bind {
                addr: settings.listen,
                source,
            })?;
        let acceptor = match tls {
            Some(config) => {
                // Checks the certificate and key now, at start-up.
                let configs = config
                    .into_stream()
                    .map_err(|e| StartupError::Tls(format!("invalid certificate or key: {e}")))?;
                ConfigFirst::new(tcp).rustls(configs).boxed()
            }
            None => tcp.boxed(),
        };
        let local_addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .unwrap_or(settings.listen);
        let (state, bootstrap_admin) = AppState::open(settings, local_addr).await?;
        let acceptor =
            crate::http::disconnect::WatchedAcceptor::new(acceptor, state.connections().clone())
                .boxed();
        rotate_aged_keys(&state).await;
        Ok(Self {
            acceptor,
            local_addr,
            max_connections,
            state,
            bootstrap_admin,
        })
    }

    /// The address the listener is bound to (the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The shared state (tests use it to reach the database).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The admin client created on first start, if this start created it. Taken once.
    pub fn take_bootstrap_admin(&mut self) -> Option<NewClient> {
        self.bootstrap_admin.take()
    }

    /// Serves until SIGINT or SIGTERM, then stops accepting, lets in-flight requests finish (up to
    /// `shutdown_timeout_secs`) and closes the database pool.
    pub async fn run(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes (tests use this).
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> std::io::Result<()> {
        let timeout = Duration::from_secs(self.state.settings().shutdown_timeout_secs);
        let state = self.state.clone();
        let endpoint = http::routes(self.state.clone());
        let rotation = tokio::spawn(rotation_loop(state.clone()));
        let mut background = vec![rotation];
        background.push(tokio::spawn(registration_cleanup_loop(state.clone())));
        if state.db().get_database_backend() == sea_orm::DbBackend::Sqlite {
            background.push(tokio::spawn(checkpoint_loop(state.clone())));
        }
        // Group-commit writers: single issuances, single status changes and token grants.
        if let Some(rx) = state.grant_queue().take_receiver() {
            background.push(tokio::spawn(crate::oauth::grant_writer::run(
                state.clone(),
                rx,
            )));
        }
        if let Some(rx) = state.issuance_queue().take_receiver() {
            background.push(tokio::spawn(crate::issue::queue::run(state.clone(), rx)));
        }
        if let Some(rx) = state.status_queue().take_receiver() {
            background.push(tokio::spawn(crate::status::changes::run(state.clone(), rx)));
        }
        // Subscribed before serving, so no announcement after the first request is missed.
        if let Some(listener) = invalidation::subscribe(&state).await {
            background.push(tokio::spawn(invalidation::listen(state.clone(), listener)));
        }
        let settings = state.settings();
        let limits = ConnectionLimits {
            header_read: Duration::from_secs(settings.header_read_timeout_secs),
            idle: Duration::from_secs(settings.idle_timeout_secs),
            max_connections: self.max_connections,
        };
        let result = connections::serve(self.acceptor, endpoint, limits, shutdown, timeout).await;
        for task in background {
            task.abort();
        }
        if let Err(err) = state.db().close_by_ref().await {
            tracing::warn!(error = %err, "closing the database pool");
        }
        tracing::info!("server stopped");
        result
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}

/// Rotates every active key (of any issuer and algorithm) older than `key_max_age_days`; returns
/// how many keys were rotated. Safe to run on every instance at once: a rotation that another
/// instance already did is a no-op.
pub async fn rotate_aged_keys(state: &AppState) -> usize {
    let days = state.settings().key_max_age_days;
    if days == 0 {
        return 0;
    }
    let cutoff = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
    // Only the aged keys are visited, so an idle check costs one read, not a write per issuer.
    let aged = match signing_key::Entity::find()
        .find_also_related(issuer::Entity)
        .filter(signing_key::Column::State.eq(key_state::ACTIVE))
        .filter(signing_key::Column::CreatedAt.lt(cutoff))
        .all(state.db())
        .await
    {
        Ok(rows) => rows,
        Err(err) => {
            tracing::warn!(error = %err, "key-age check could not list active keys");
            return 0;
        }
    };
    let mut rotated = 0;
    for (key, issuer) in aged {
        let Some(issuer) = issuer.filter(|i| i.id_type != IdType::DidKey.as_str()) else {
            continue;
        };
        let Ok(algorithm) = key.algorithm.parse::<KeyAlgorithm>() else {
            tracing::warn!(key = %key.id, algorithm = %key.algorithm, "active key of an unknown algorithm; not rotated");
            continue;
        };
        match state
            .keys()
            .rotate(state.db(), &issuer, algorithm, "system", Some(cutoff))
            .await
        {
            Ok(RotationOutcome::Rotated { old, new }) => {
                rotated += 1;
                invalidation::changed(state, invalidation::Change::Issuer(issuer.id.clone())).await;
                tracing::info!(issuer = %issuer.id, %algorithm, ?old, %new, "rotated a signing key past its maximum age");
            }
            Ok(RotationOutcome::Unchanged) => {}
            Err(err) => {
                tracing::warn!(issuer = %issuer.id, %algorithm, error = %err, "age-based rotation failed")
            }
        }
    }
    rotated
}

async fn rotation_loop(state: AppState) {
    let period = Duration::from_secs(state.settings().key_rotation_check_secs.max(1));
    let mut interval = tokio::time::interval(period);
    interval.tick().await;
    loop {
        interval.tick().await;
        rotate_aged_keys(&state).await;
        if let Err(err) = crate::oauth::purge_expired_grants(state.db(), state.clock().now()).await
        {
            tracing::warn!(error = %err, "purging expired authorization codes and refresh tokens");
        }
    }
}

/// How often unused dynamically registered clients are looked for.
const REGISTRATION_CLEANUP_PERIOD: Duration = Duration::from_secs(15 * 60);

/// Removes the dynamically registered OAuth clients that never obtained a token within
/// [`crate::oauth::registration::UNUSED_CLIENT_LIFETIME`] of registering (as the state's clock
/// sees it); returns how many. Safe on every instance at once.
pub async fn purge_unused_registrations(state: &AppState) -> usize {
    match crate::oauth::registration::purge_unused(state.db(), state.clock().now()).await {
        Ok(purged) => {
            for client_id in &purged {
                invalidation::changed(state, invalidation::Change::Client(client_id.clone())).await;
            }
            if !purged.is_empty() {
                tracing::info!(count = purged.len(), "removed unused registered clients");
            }
            purged.len()
        }
        Err(err) => {
            tracing::warn!(error = %err, "cleanup of unused registered clients failed");
            0
        }
    }
}

/// SQLite only: checkpoints the WAL every [`db::CHECKPOINT_PERIOD`], off the writers' commits.
async fn checkpoint_loop(state: AppState) {
    let mut interval = tokio::time::interval(crate::db::CHECKPOINT_PERIOD);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if let Err(err) = crate::db::checkpoint_wal(state.db()).await {
            tracing::warn!(error = %err, "WAL checkpoint failed; SQLite's own checkpoint takes over");
        }
    }
}

async fn registration_cleanup_loop(state: AppState) {
    let mut interval = tokio::time::interval(REGISTRATION_CLEANUP_PERIOD);
    loop {
        interval.tick().await;
        purge_unused_registrations(&state).await;
    }
}
