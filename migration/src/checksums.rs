//! Checksums of applied migrations. Each migration's source text (embedded at compile time, see
//! [`crate::SOURCES`]) is hashed with SHA-256 and recorded in `oxbadge_migration_checksums` when it
//! is applied. Before migrating, and at every start-up, the recorded checksums are compared with the
//! sources of this build: a migration edited after it was applied somewhere is refused, because the
//! database's schema no longer matches what the code says it is.
//!
//! Databases created before checksums existed have applied migrations without a record; their
//! current checksum is recorded on first sight (trust on first use) and checked from then on.

use sea_orm_migration::{
    prelude::*,
    sea_orm::{ConnectionTrait, DatabaseConnection, FromQueryResult},
};
use sha2::{Digest, Sha256};

use crate::Migrator;

/// The name of our checksum table (beside sea-orm's `seaql_migrations`).
pub const TABLE: &str = "oxbadge_migration_checksums";

/// One migration's name and source text, as compiled into this build.
#[derive(Debug, Clone, Copy)]
pub struct MigrationSource {
    /// The migration's name (its module and file name).
    pub name: &'static str,
    /// The text of its source file.
    pub source: &'static str,
}

impl MigrationSource {
    /// Hex SHA-256 of the source text, line endings normalized to `\n` (a checkout with CRLF line
    /// endings is not an edit).
    pub fn checksum(&self) -> String {
        checksum_of(self.source)
    }
}

/// Hex SHA-256 of a migration's source text, line endings normalized to `\n`.
pub fn checksum_of(source: &str) -> String {
    let normalized = source.replace("\r\n", "\n");
    hex::encode(Sha256::digest(normalized.as_bytes()))
}

/// Why the migrations of a database cannot be trusted (or could not be checked).
#[derive(Debug, thiserror::Error)]
pub enum ChecksumError {
    /// An applied migration's source differs from the one that was applied.
    #[error(
        "migration `{name}` was edited after it was applied to this database (applied sha256 {recorded}, \
         this build has {current}). Applied migrations are never edited: restore the original file and \
         put the change in a new migration"
    )]
    Edited {
        /// The migration.
        name: String,
        /// The checksum recorded when it was applied.
        recorded: String,
        /// The checksum of this build's source.
        current: String,
    },
    /// The database has a migration applied that this build does not know (a newer build ran on it).
    #[error(
        "migration `{name}` is applied to this database but unknown to this build: the database was \
         migrated by a newer oxbadge; run that version (or restore a backup made before it)"
    )]
    Unknown {
        /// The migration.
        name: String,
    },
    /// The database could not be read or written.
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

/// The state of one applied migration's checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChecksumState {
    /// The recorded checksum matches this build.
    Verified,
    /// No checksum was recorded yet (applied before checksums existed); it is recorded by the next
    /// [`record`].
    Unrecorded,
}

/// One applied migration and its checksum state.
#[derive(Debug, Clone)]
pub struct AppliedMigration {
    /// The migration's name.
    pub name: String,
    /// When it was applied (Unix seconds).
    pub applied_at: i64,
    /// The checksum of this build's source.
    pub checksum: String,
    /// Whether a matching checksum was recorded.
    pub state: ChecksumState,
}

#[derive(DeriveIden)]
enum OxbadgeMigrationChecksums {
    Table,
    Version,
    Sha256,
    RecordedAt,
}

#[derive(Debug, FromQueryResult)]
struct RecordedRow {
    version: String,
    sha256: String,
}

async fn ensure_table(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    let create = Table::create()
        .table(OxbadgeMigrationChecksums::Table)
        .if_not_exists()
        .col(
            ColumnDef::new(OxbadgeMigrationChecksums::Version)
                .string()
                .not_null()
                .primary_key(),
        )
        .col(
            ColumnDef::new(OxbadgeMigrationChecksums::Sha256)
                .string()
                .not_null(),
        )
        .col(
            ColumnDef::new(OxbadgeMigrationChecksums::RecordedAt)
                .big_integer()
                .not_null(),
        )
        .to_owned();
    db.execute(&create).await?;
    Ok(())
}

async fn recorded(db: &impl ConnectionTrait) -> Result<Vec<RecordedRow>, DbErr> {
    let select = Query::select()
        .columns([
            OxbadgeMigrationChecksums::Version,
            OxbadgeMigrationChecksums::Sha256,
        ])
        .from(OxbadgeMigrationChecksums::Table)
        .to_owned();
    let backend = db.get_database_backend();
    let rows = db.query_all(&select).await?;
    rows.iter()
        .map(|row| RecordedRow::from_query_result(row, ""))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| DbErr::Custom(format!("{TABLE} ({backend:?}): {e}")))
}

/// Checks every applied migration against this build's sources.
pub async fn verify<C: ConnectionTrait>(db: &C) -> Result<Vec<AppliedMigration>, ChecksumError> {
    verify_against(db, crate::SOURCES).await
}

/// Checks every applied migration against `sources` (tests pass edited sources).
pub async fn verify_against<C: ConnectionTrait>(
    db: &C,
    sources: &[MigrationSource],
) -> Result<Vec<AppliedMigration>, ChecksumError> {
    ensure_table(db).await?;
    let applied = Migrator::get_migration_models(db).await?;
    let recorded = recorded(db).await?;
    let mut out = Vec::with_capacity(applied.len());
    for model in applied {
        let Some(source) = sources.iter().find(|s| s.name == model.version) else {
            return Err(ChecksumError::Unknown {
                name: model.version,
            });
        };
        let current = source.checksum();
        let state = match recorded.iter().find(|r| r.version == model.version) {
            Some(row) if row.sha256 == current => ChecksumState::Verified,
            Some(row) => {
                return Err(ChecksumError::Edited {
                    name: model.version,
                    recorded: row.sha256.clone(),
                    current,
                });
            }
            None => ChecksumState::Unrecorded,
        };
        out.push(AppliedMigration {
            name: model.version,
            applied_at: model.applied_at,
            checksum: current,
            state,
        });
    }
    Ok(out)
}

/// Records the checksum of every applied migration that has none, and forgets the checksums of
/// migrations that are no longer applied (rolled back). Call after [`verify`] succeeded.
pub async fn record<C: ConnectionTrait>(db: &C) -> Result<(), ChecksumError> {
    ensure_table(db).await?;
    let applied = Migrator::get_migration_models(db).await?;
    let recorded = recorded(db).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| <i64 as TryFrom<u64>>::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default();
    for model in &applied {
        if recorded.iter().any(|r| r.version == model.version) {
            continue;
        }
        let Some(source) = crate::SOURCES.iter().find(|s| s.name == model.version) else {
            return Err(ChecksumError::Unknown {
                name: model.version.clone(),
            });
        };
        let insert = Query::insert()
            .into_table(OxbadgeMigrationChecksums::Table)
            .columns([
                OxbadgeMigrationChecksums::Version,
                OxbadgeMigrationChecksums::Sha256,
                OxbadgeMigrationChecksums::RecordedAt,
            ])
            .values_panic([
                model.version.clone().into(),
                source.checksum().into(),
                now.into(),
            ])
            // Two instances starting at once on a database without records both record it.
            .on_conflict(
                OnConflict::column(OxbadgeMigrationChecksums::Version)
                    .do_nothing()
                    .to_owned(),
            )
            .to_owned();
        db.execute(&insert).await?;
    }
    for row in recorded {
        if !applied.iter().any(|m| m.version == row.version) {
            let delete = Query::delete()
                .from_table(OxbadgeMigrationChecksums::Table)
                .and_where(Expr::col(OxbadgeMigrationChecksums::Version).eq(row.version))
                .to_owned();
            db.execute(&delete).await?;
        }
    }
    Ok(())
}

/// Verifies the applied migrations, applies pending ones (all, or the next `steps`), and records
/// the checksums of what was applied.
pub async fn up(db: &DatabaseConnection, steps: Option<u32>) -> Result<(), ChecksumError> {
    verify(db).await?;
    record(db).await?;
    Migrator::up(db, steps).await?;
    record(db).await
}

/// Verifies the applied migrations, rolls back the last `steps` (all when `None`) and forgets
/// their checksums.
pub async fn down(db: &DatabaseConnection, steps: Option<u32>) -> Result<(), ChecksumError> {
    verify(db).await?;
    Migrator::down(db, steps).await?;
    record(db).await
}

/// Changes a recorded checksum (used by tests to simulate an edited migration).
pub async fn overwrite_recorded_checksum<C: ConnectionTrait>(
    db: &C,
    name: &str,
    sha256: &str,
) -> Result<(), DbErr> {
    let update = Query::update()
        .table(OxbadgeMigrationChecksums::Table)
        .value(OxbadgeMigrationChecksums::Sha256, sha256)
        .and_where(Expr::col(OxbadgeMigrationChecksums::Version).eq(name))
        .to_owned();
    let result = db.execute(&update).await?;
    if result.rows_affected() == 0 {
        return Err(DbErr::RecordNotFound(format!("{TABLE}: {name}")));
    }
    Ok(())
}
