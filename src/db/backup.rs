//! Online backup and offline restore of the SQLite database, and the lock that keeps a restore from
//! replacing a database a running process holds. PostgreSQL is backed up with its own tools
//! ([`POSTGRES_BACKUP_PROCEDURE`]).

use std::{
    fs::File,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use serde::Serialize;

use super::maintenance::{self, Engine};

/// How to back up and restore PostgreSQL (the `db backup` / `db restore` commands print it).
pub const POSTGRES_BACKUP_PROCEDURE: &str = "\
PostgreSQL is backed up with its own tools, which take a consistent snapshot while oxbadge runs:
  backup:   pg_dump --format=custom --file=oxbadge.dump \"$DATABASE_URL\"
  restore:  stop every oxbadge instance, then
            createdb oxbadge_restored   (or drop and re-create the old database)
            pg_restore --no-owner --dbname=postgres://USER@HOST/oxbadge_restored oxbadge.dump
            oxbadge --database-url postgres://USER@HOST/oxbadge_restored db check
            point DATABASE_URL at it and start the instances again.
The KEK (OXBADGE_KEK / OXBADGE_KEK_FILE) is not in the dump: keep it, separately, with the backup.";

/// Backup and restore failures. The CLI prints them; none is an HTTP error.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The command works on SQLite only; PostgreSQL has its own tools.
    #[error(
        "the database is PostgreSQL, which oxbadge does not copy itself:\n{POSTGRES_BACKUP_PROCEDURE}"
    )]
    Postgres,
    /// The URL is not a SQLite file (e.g. `:memory:`).
    #[error("the database URL does not name a SQLite file")]
    NotAFile,
    /// The backup target exists already; a backup never overwrites a file.
    #[error("{0} exists already; choose a new file (a backup never overwrites one)")]
    TargetExists(PathBuf),
    /// The file to restore does not exist.
    #[error("{0} does not exist")]
    SourceMissing(PathBuf),
    /// The restore source and target are the same file.
    #[error("the backup and the database are the same file ({0})")]
    SameFile(PathBuf),
    /// A running oxbadge (or another command) holds the database.
    #[error(
        "{0} is in use by a running oxbadge process (its lock file is held): stop every server and \
         command using it, then restore"
    )]
    InUse(PathBuf),
    /// The file is not an intact oxbadge database.
    #[error("{path} is not an intact oxbadge database: {reason}")]
    BadBackup { path: PathBuf, reason: String },
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A database operation failed.
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BackupError + 'a {
    move |source| BackupError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// A finished backup.
#[derive(Debug, Serialize)]
pub struct BackupReport {
    /// Where it was written.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Credentials it holds.
    pub credentials: u64,
    /// How long the copy took.
    pub millis: u128,
}

/// A finished restore.
#[derive(Debug, Serialize)]
pub struct RestoreReport {
    /// The database file that now holds the restored data.
    pub path: PathBuf,
    /// Where the database that was replaced was moved (with its `-wal`), if there was one.
    pub previous: Option<PathBuf>,
    /// Credentials the restored database holds.
    pub credentials: u64,
}

/// The lock file beside a SQLite database. Every process that opens the database through
/// [`crate::AppState::open`] (the server, `seed`, `issue`) holds it shared; a restore takes it
/// exclusively, so it cannot replace the file under a running process. The operating system
/// releases it when the process ends, however it ends.
#[derive(Debug)]
pub struct DatabaseLock {
    _file: File,
}

/// The lock file path of a SQLite database file.
pub fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl DatabaseLock {
    fn open(database: &Path) -> Result<(File, PathBuf), BackupError> {
        let path = lock_path(database);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            super::create_private_dir(dir).map_err(io("cannot create", dir))?;
        }
        let mut options = std::fs::OpenOptions::new();
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io("cannot open the lock file", &path))?;
        Ok((file, path))
    }

    /// Takes the lock shared (many holders). Fails with [`BackupError::InUse`] while a restore
    /// holds it.
    pub fn shared(database: &Path) -> Result<Self, BackupError> {
        let (file, path) = Self::open(database)?;
        match file.try_lock_shared() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(BackupError::InUse(path)),
            Err(std::fs::TryLockError::Error(e)) => Err(io("cannot lock", &path)(e)),
        }
    }

    /// Takes the lock exclusively, failing at once when anyone holds it.
    pub fn exclusive(database: &Path) -> Result<Self, BackupError> {
        let (file, _) = Self::open(database)?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(BackupError::InUse(database.to_path_buf()))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(io("cannot lock", database)(e)),
        }
    }
}

/// The SQLite file behind `url`, or the reason there is none.
pub fn sqlite_file(url: &str) -> Result<PathBuf, BackupError> {
    match Engine::of(url) {
        Engine::Postgres => Err(BackupError::Postgres),
        Engine::Sqlite => super::sqlite_path(url).ok_or(BackupError::NotAFile),
    }
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn sync_dir(path: &Path) {
    // Makes a rename durable; not every platform can open a directory, which is fine.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(handle) = File::open(dir)
    {
        let _ = handle.sync_all();
    }
}

fn sqlite_literal(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "''"))
}

/// Writes a consistent copy of the live SQLite database to `to` while the server keeps running
/// (`VACUUM INTO` reads one snapshot; writers go on in WAL mode). The copy is written beside `to`,
/// synced, checked with `PRAGMA integrity_check` and only then renamed into place, so `to` is
/// either a whole, checked backup or absent.
pub async fn backup_sqlite(
    db: &DatabaseConnection,
    to: &Path,
) -> Result<BackupReport, BackupError> {
    if to.exists() {
        return Err(BackupError::TargetExists(to.to_path_buf()));
    }
    let started = Instant::now();
    let partial = sibling(to, ".partial");
    if partial.exists() {
        std::fs::remove_file(&partial).map_err(io("cannot remove", &partial))?;
    }
    db.execute_unprepared(&format!("VACUUM INTO {}", sqlite_literal(&partial)))
        .await?;
    File::open(&partial)
        .and_then(|f| f.sync_all())
        .map_err(io("cannot sync", &partial))?;
    let credentials = match inspect_copy(&partial).await {
        Ok(n) => n,
        Err(reason) => {
            let _ = std::fs::remove_file(&partial);
            return Err(BackupError::BadBackup {
                path: partial,
                reason,
            });
        }
    };
    std::fs::rename(&partial, to).map_err(io("cannot rename the backup to", to))?;
    sync_dir(to);
    let bytes = std::fs::metadata(to).map(|m| m.len()).unwrap_or_default();
    Ok(BackupReport {
        path: to.to_path_buf(),
        bytes,
        credentials,
        millis: started.elapsed().as_millis(),
    })
}

/// Opens a copy on its own connection, checks its integrity, migration checksums and foreign
/// keys, and counts its credentials.
async fn inspect_copy(path: &Path) -> Result<u64, String> {
    let url = format!("sqlite://{}?mode=rw", path.display());
    let conn = super::connect(&url, 1).await.map_err(|e| e.to_string())?;
    let outcome = async {
        let report = maintenance::check(&conn).await.map_err(|e| e.to_string())?;
        if let Some(failed) = report.items.iter().find(|i| i.outcome.is_failure()) {
            return Err(format!("{}: {}", failed.name, failed.detail));
        }
        maintenance::count_rows(&conn, "credentials")
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    // The copy must not keep a WAL beside it: fold everything into the one file.
    let _ = conn
        .execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
        .await;
    let _ = conn.close().await;
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(sibling(path, suffix));
    }
    outcome
}

/// Replaces the SQLite database at `target` with the backup `from`. Refuses while any process
/// holds the database's lock (a running server), and refuses a backup that fails its integrity
/// or migration-checksum check (or was made by a newer oxbadge). The replaced database is kept
/// beside it as `<target>.before-restore-<unix time>` with its WAL.
pub async fn restore_sqlite(from: &Path, target: &Path) -> Result<RestoreReport, BackupError> {
    if !from.is_file() {
        return Err(BackupError::SourceMissing(from.to_path_buf()));
    }
    if target.exists() && std::fs::canonicalize(from).ok() == std::fs::canonicalize(target).ok() {
        return Err(BackupError::SameFile(target.to_path_buf()));
    }
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        super::create_private_dir(dir).map_err(io("cannot create", dir))?;
    }
    let _lock = DatabaseLock::exclusive(target)?;
    let staging = sibling(target, ".restoring");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(sibling(&staging, suffix));
    }
    std::fs::copy(from, &staging).map_err(io("cannot copy the backup to", &staging))?;
    File::open(&staging)
        .and_then(|f| f.sync_all())
        .map_err(io("cannot sync", &staging))?;
    let credentials = match inspect_copy(&staging).await {
        Ok(n) => n,
        Err(reason) => {
            let _ = std::fs::remove_file(&staging);
            return Err(BackupError::BadBackup {
                path: from.to_path_buf(),
                reason,
            });
        }
    };
    let previous = if target.exists() {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        let kept = sibling(target, &format!(".before-restore-{stamp}"));
        for suffix in ["", "-wal", "-shm"] {
            let file = sibling(target, suffix);
            if file.exists() {
                std::fs::rename(&file, sibling(&kept, suffix))
                    .map_err(io("cannot move the old database aside:", &file))?;
            }
        }
        Some(kept)
    } else {
        None
    };
    std::fs::rename(&staging, target)
        .map_err(io("cannot move the restored database to", target))?;
    sync_dir(target);
    Ok(RestoreReport {
        path: target.to_path_buf(),
        previous,
        credentials,
    })
}
