//! Storage: the database connection (SQLite by default, PostgreSQL for scale-out), sea-orm entities,
//! and the queries that use them. Query functions take `&impl ConnectionTrait` so that they run inside
//! or outside a transaction alike.

pub mod access_token;
pub mod achievement;
pub mod audit_event;
pub mod authorization_code;
pub mod backup;
pub mod credential;
pub mod did_challenge;
pub mod host_connection;
pub mod idempotency_key;
pub mod issuer;
pub mod issuer_membership;
pub mod maintenance;
pub mod oauth_client;
pub mod oauth_consent;
pub mod ob3_holder;
pub mod ob3_holding;
pub mod ob3_upload;
pub mod refresh_token;
pub mod signing_key;
pub mod status_entry;
pub mod status_list;
pub mod user_did;

use std::{path::Path, time::Duration};

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

/// Failures to open or prepare the database. They stop start-up with a clear message.
#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    /// The URL names an engine we do not support.
    #[error("unsupported database URL scheme in `{scheme}`: use sqlite:// or postgres://")]
    UnsupportedScheme { scheme: String },
    /// The data directory for SQLite could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    /// Connecting or migrating failed.
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

/// Generates a new CUID2 primary key.
pub fn new_id() -> String {
    cuid2::create_id()
}

/// Opens a pool for `url`. For SQLite the file (and its directory) is created on first use, the
/// journal is WAL, foreign keys are enforced, and writers wait for the lock instead of failing.
pub async fn connect(url: &str, max_connections: u32) -> Result<DatabaseConnection, DbSetupError> {
    let scheme = url.split(':').next().unwrap_or_default().to_owned();
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    match scheme.as_str() {
        "sqlite" => {
            if let Some(dir) = sqlite_parent_dir(url) {
                create_private_dir(&dir).map_err(|source| DbSetupError::DataDir {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
            if let Some(file) = sqlite_file(url) {
                create_private_file(&file).map_err(|source| DbSetupError::DataDir {
                    path: file.display().to_string(),
                    source,
                })?;
            }
            opts.map_sqlx_sqlite_opts(|o| {
                o.create_if_missing(true)
                    .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    // FULL: every commit is on disk before it returns, so an acknowledged
                    // credential or status change survives a power loss or OS crash too (in
                    // WAL mode NORMAL only survives a crash of the process). Group commit pays
                    // one WAL fsync per group, not per request.
                    .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Full)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(30))
            });
        }
        "postgres" | "postgresql" => {}
        _ => return Err(DbSetupError::UnsupportedScheme { scheme }),
    }
    Ok(Database::connect(opts).await?)
}

/// Creates `dir` and its missing parents accessible to the service's user only (0700 on Unix). An
/// existing directory is left as it is.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates the SQLite database file, empty, readable and writable by the service's user only
/// (0600 on Unix), unless it exists. SQLite opens an empty file as a new database and gives its
/// `-wal` and `-shm` files the database file's mode.
fn create_private_file(file: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(file) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(err),
    }
}

/// The database file of a `sqlite:` URL (none for in-memory databases).
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    if path.is_empty()
        || path == ":memory:"
        || url.contains("mode=memory")
        || url.contains("mode=ro")
    {
        return None;
    }
    Some(Path::new(path).to_path_buf())
}

fn sqlite_parent_dir(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
}

/// Checks the applied migrations against this build's checksums (refusing edited ones), applies
/// all pending migrations and records their checksums.
pub async fn migrate_up(db: &DatabaseConnection) -> Result<(), migration::ChecksumError> {
    migration::checksums::up(db, None).await
}

/// The file of a `sqlite:` URL (`None` for an in-memory database or another engine).
pub fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Some(std::path::PathBuf::from(path))
}

/// Whether the database answers a trivial query (readiness probe).
pub async fn ping(db: &impl ConnectionTrait) -> bool {
    db.execute_unprepared("SELECT 1").await.is_ok()
}

/// Begins a transaction that will write. On SQLite it takes the write lock up front (`BEGIN
/// IMMEDIATE`), so two writers queue on the busy timeout instead of failing when a read lock cannot
/// be upgraded; on PostgreSQL it is an ordinary transaction.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        isolation_level: None,
        access_mode: None,
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
    })
    .await
}

/// Short random pause before retrying a transaction that lost a race (see [`is_retryable`]).
pub async fn retry_backoff() {
    tokio::time::sleep(Duration::from_millis(
        2 + u64::from(rand::random::<u8>() % 16),
    ))
    .await;
}

/// Whether an error is a unique-constraint violation (a lost race that may be retried).
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// Whether an error is transient and the transaction may simply be retried: a lost unique race, a
/// deadlock or serialization failure (PostgreSQL 40P01/40001), or a busy SQLite database.
pub fn is_retryable(err: &DbErr) -> bool {
    if is_unique_violation(err) || matches!(err, DbErr::RecordNotUpdated) {
        return true;
    }
    let text = err.to_string();
    text.contains("deadlock detected")
        || text.contains("could not serialize")
        || text.contains("database is locked")
        || text.contains("SQLITE_BUSY")
}
