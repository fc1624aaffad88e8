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
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
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
                    // Statement journals (every multi-row write inside a transaction keeps one)
                    // and temporary b-trees stay in memory instead of temporary files.
                    .pragma("temp_store", "memory")
                    // The checkpoint loop ([`checkpoint_wal`], every second) copies the WAL
                    // back into the database off the commit path; SQLite's own checkpoint, which
                    // the committing writer pays for, only runs as a backstop past this size.
                    .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES.to_string())
            });
        }
        "postgres" | "postgresql" => {}
        _ => return Err(DbSetupError::UnsupportedScheme { scheme }),
    }
    Ok(Database::connect(opts).await?)
}

/// WAL pages (4 KiB each) after which a committing SQLite writer checkpoints by itself; the
/// checkpoint loop normally keeps the WAL well below it.
pub const WAL_AUTOCHECKPOINT_PAGES: u32 = 4000;

/// How often the SQLite checkpoint loop runs.
pub const CHECKPOINT_PERIOD: Duration = Duration::from_secs(1);

/// A passive WAL checkpoint on SQLite (a no-op elsewhere): copies committed WAL frames into the
/// database file without waiting for, or blocking, readers and the writer, so that the writer's
/// commits do not pay for it. Returns the WAL's size and how much of it is checkpointed, in pages.
pub async fn checkpoint_wal(db: &DatabaseConnection) -> Result<Option<(i64, i64)>, DbErr> {
    if db.get_database_backend() != DbBackend::Sqlite {
        return Ok(None);
    }
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA wal_checkpoint(PASSIVE)",
        ))
        .await?;
    Ok(row.and_then(|r| {
        let log: i64 = r.try_get_by_index(1).ok()?;
        let done: i64 = r.try_get_by_index(2).ok()?;
        Some((log, done))
    }))
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

/// Whether a second pool opened on `url` reaches the same database (everything but an in-memory
/// SQLite database).
pub fn is_shared_database(url: &str) -> bool {
    !url.starts_with("sqlite:") || sqlite_file(url).is_some()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_is_built_with_a_stable_query_planner_and_checkpoints_passively() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        assert!(is_shared_database(&url));
        assert!(!is_shared_database("sqlite::memory:"));
        let db = connect(&url, 1).await.unwrap();
        // `.cargo/config.toml` sets LIBSQLITE3_FLAGS: without QPSG every `LIMIT ?` statement
        // (every sea-orm `.one()`) is re-prepared on each execution.
        let options = db
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                "PRAGMA compile_options",
            ))
            .await
            .unwrap();
        let options: Vec<String> = options
            .iter()
            .map(|r| r.try_get_by_index(0).unwrap())
            .collect();
        assert!(
            options.iter().any(|o| o == "ENABLE_QPSG"),
            "compile options: {options:?}"
        );
        db.execute_unprepared("CREATE TABLE t (x INTEGER)")
            .await
            .unwrap();
        db.execute_unprepared("INSERT INTO t VALUES (1)")
            .await
            .unwrap();
        let (log, done) = checkpoint_wal(&db).await.unwrap().unwrap();
        assert_eq!(log, done, "an idle database checkpoints all of its WAL");
        assert!(log > 0);
    }
}
