//! Database health for operators: `db check` (integrity, foreign keys, amcheck on PostgreSQL,
//! migration state and checksums, optionally every stored proof) and `db status` (size, row
//! counts, last migration). Read-only apart from creating the checksum table when it is missing.

use std::{collections::HashMap, sync::Arc};

use migration::{
    Migrator, MigratorTrait,
    checksums::{self, ChecksumError, ChecksumState},
};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, PaginatorTrait, QueryOrder,
    Statement,
};
use serde::Serialize;

use super::{credential, signing_key};

/// The database engine behind a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// SQLite (the embedded default).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Engine {
    /// The engine a database URL names (anything that is not `sqlite:` is PostgreSQL, the only
    /// other engine [`super::connect`] accepts).
    pub fn of(url: &str) -> Self {
        if url.starts_with("sqlite:") {
            Engine::Sqlite
        } else {
            Engine::Postgres
        }
    }

    fn of_backend(backend: DbBackend) -> Self {
        match backend {
            DbBackend::Sqlite => Engine::Sqlite,
            _ => Engine::Postgres,
        }
    }
}

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Passed.
    Ok,
    /// Worth a look, not damage (e.g. pending migrations, which the next start applies).
    Warn,
    /// Failed: the database is damaged or does not match this build.
    Failed,
    /// Could not run here (e.g. amcheck is not installed).
    Skipped,
}

impl Outcome {
    /// Whether this outcome fails the check.
    pub fn is_failure(self) -> bool {
        self == Outcome::Failed
    }
}

/// One line of a check report.
#[derive(Debug, Clone, Serialize)]
pub struct CheckItem {
    /// What was checked.
    pub name: String,
    /// How it came out.
    pub outcome: Outcome,
    /// What was found.
    pub detail: String,
}

/// The result of [`check`].
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The engine checked.
    pub engine: Engine,
    /// Each check, in the order run.
    pub items: Vec<CheckItem>,
}

impl CheckReport {
    /// Whether every check passed (warnings and skips do not fail).
    pub fn passed(&self) -> bool {
        !self.items.iter().any(|i| i.outcome.is_failure())
    }

    fn push(&mut self, name: &str, outcome: Outcome, detail: impl Into<String>) {
        self.items.push(CheckItem {
            name: name.to_owned(),
            outcome,
            detail: detail.into(),
        });
    }
}

/// A table and its row count.
#[derive(Debug, Clone, Serialize)]
pub struct TableRows {
    /// Table name.
    pub table: String,
    /// Rows it holds.
    pub rows: u64,
}

/// The result of [`status`].
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// The engine.
    pub engine: Engine,
    /// The SQLite file or the PostgreSQL database name (never a password).
    pub location: String,
    /// Size of the database (SQLite: the main file plus its WAL).
    pub size_bytes: u64,
    /// Row counts of every table.
    pub tables: Vec<TableRows>,
    /// The last applied migration and when (Unix seconds).
    pub last_migration: Option<(String, i64)>,
    /// Applied migrations.
    pub applied_migrations: usize,
    /// Migrations this build would apply at the next start.
    pub pending_migrations: Vec<String>,
}

async fn strings(db: &impl ConnectionTrait, sql: &str) -> Result<Vec<String>, DbErr> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(Statement::from_string(backend, sql.to_owned()))
        .await?;
    rows.iter()
        .map(|r| {
            r.try_get_by_index::<String>(0)
                .or_else(|_| r.try_get_by_index::<i64>(0).map(|n| n.to_string()))
        })
        .collect()
}

async fn scalar_i64(db: &impl ConnectionTrait, sql: &str) -> Result<i64, DbErr> {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(Statement::from_string(backend, sql.to_owned()))
        .await?
        .ok_or_else(|| DbErr::Custom(format!("no row from `{sql}`")))?;
    row.try_get_by_index::<i64>(0)
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Rows in `table` (a name from the catalog or one of our own tables).
pub async fn count_rows(db: &impl ConnectionTrait, table: &str) -> Result<u64, DbErr> {
    let n = scalar_i64(db, &format!("SELECT COUNT(*) FROM {}", quote_ident(table))).await?;
    Ok(u64::try_from(n).unwrap_or_default())
}

/// Every table of the database (SQLite's own and PostgreSQL's catalogs excluded), sorted.
pub async fn tables(db: &impl ConnectionTrait) -> Result<Vec<String>, DbErr> {
    let sql = match db.get_database_backend() {
        DbBackend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        }
        _ => {
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name"
        }
    };
    strings(db, sql).await
}

/// Runs every check: SQLite `integrity_check` and `foreign_key_check`, or PostgreSQL amcheck
/// (`bt_index_check` on every B-tree index, when the extension can be used) and unvalidated
/// constraints; then the migration state and checksums.
pub async fn check(db: &DatabaseConnection) -> Result<CheckReport, DbErr> {
    let engine = Engine::of_backend(db.get_database_backend());
    let mut report = CheckReport {
        engine,
        items: Vec::new(),
    };
    match engine {
        Engine::Sqlite => {
            let rows = strings(db, "PRAGMA integrity_check").await?;
            if rows == ["ok"] {
                report.push("integrity_check", Outcome::Ok, "ok");
            } else {
                report.push("integrity_check", Outcome::Failed, rows.join("; "));
            }
            let backend = db.get_database_backend();
            let violations = db
                .query_all_raw(Statement::from_string(
                    backend,
                    "PRAGMA foreign_key_check".to_owned(),
                ))
                .await?;
            if violations.is_empty() {
                report.push("foreign_key_check", Outcome::Ok, "no violations");
            } else {
                let tables: Vec<String> = violations
                    .iter()
                    .filter_map(|r| r.try_get_by_index::<String>(0).ok())
                    .take(5)
                    .collect();
                report.push(
                    "foreign_key_check",
                    Outcome::Failed,
                    format!(
                        "{} row(s) reference missing rows (in {})",
                        violations.len(),
                        tables.join(", ")
                    ),
                );
            }
        }
        Engine::Postgres => {
            amcheck(db, &mut report).await?;
            let unvalidated = strings(
                db,
                "SELECT conname::text FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace \
                 WHERE n.nspname = current_schema() AND NOT c.convalidated",
            )
            .await?;
            if unvalidated.is_empty() {
                report.push(
                    "constraints",
                    Outcome::Ok,
                    "every constraint is validated (PostgreSQL enforces foreign keys)",
                );
            } else {
                report.push(
                    "constraints",
                    Outcome::Failed,
                    format!("not validated: {}", unvalidated.join(", ")),
                );
            }
        }
    }
    migration_state(db, &mut report).await?;
    Ok(report)
}

async fn amcheck(db: &DatabaseConnection, report: &mut CheckReport) -> Result<(), DbErr> {
    if let Err(err) = db
        .execute_unprepared("CREATE EXTENSION IF NOT EXISTS amcheck")
        .await
    {
        report.push(
            "amcheck",
            Outcome::Skipped,
            format!("the amcheck extension is not available to this user: {err}"),
        );
        return Ok(());
    }
    let indexes = strings(
        db,
        "SELECT c.relname::text FROM pg_index i \
         JOIN pg_class c ON c.oid = i.indexrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_am am ON am.oid = c.relam \
         WHERE n.nspname = current_schema() AND am.amname = 'btree' ORDER BY 1",
    )
    .await?;
    let mut broken = Vec::new();
    for index in &indexes {
        let sql = format!(
            "SELECT bt_index_check(index => {}::regclass, heapallindexed => true)",
            quote_literal(&quote_ident(index))
        );
        if let Err(err) = db.execute_unprepared(&sql).await {
            broken.push(format!("{index}: {err}"));
        }
    }
    if broken.is_empty() {
        report.push(
            "amcheck",
            Outcome::Ok,
            format!(
                "bt_index_check (heapallindexed) passed on {} index(es)",
                indexes.len()
            ),
        );
    } else {
        report.push("amcheck", Outcome::Failed, broken.join("; "));
    }
    Ok(())
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

async fn migration_state(db: &DatabaseConnection, report: &mut CheckReport) -> Result<(), DbErr> {
    match checksums::verify(db).await {
        Ok(applied) => {
            let unrecorded = applied
                .iter()
                .filter(|m| m.state == ChecksumState::Unrecorded)
                .count();
            let (outcome, detail) = if unrecorded == 0 {
                (
                    Outcome::Ok,
                    format!("{} applied migration(s) match this build", applied.len()),
                )
            } else {
                (
                    Outcome::Warn,
                    format!(
                        "{unrecorded} of {} applied migration(s) have no recorded checksum yet \
                         (recorded at the next start)",
                        applied.len()
                    ),
                )
            };
            report.push("migration checksums", outcome, detail);
        }
        Err(ChecksumError::Db(err)) => return Err(err),
        Err(err) => report.push("migration checksums", Outcome::Failed, err.to_string()),
    }
    let pending: Vec<String> = Migrator::get_pending_migrations(db)
        .await?
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    if pending.is_empty() {
        report.push("pending migrations", Outcome::Ok, "none");
    } else {
        report.push(
            "pending migrations",
            Outcome::Warn,
            format!(
                "{} pending, applied at the next start or by `oxbadge migrate up`: {}",
                pending.len(),
                pending.join(", ")
            ),
        );
    }
    Ok(())
}

/// Verifies the proof of every stored credential against the public key recorded for it (Data
/// Integrity `eddsa-rdfc-2022`, VC-JWT EdDSA or ES256); adds one item to `report` and returns
/// (verified, failed).
pub async fn check_proofs(
    db: &DatabaseConnection,
    report: &mut CheckReport,
) -> Result<(u64, u64), DbErr> {
    use crate::{keys::publish::PublicKey, verify::resolve::PublicKey as VerifyKey};
    let keys: HashMap<String, signing_key::Model> = signing_key::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|k| (k.id.clone(), k))
        .collect();
    let suite = crate::di::EddsaRdfc2022::new(Arc::new(crate::jsonld::ContextLoader::new()));
    let (mut verified, mut failed) = (0u64, 0u64);
    let mut failures = Vec::new();
    let mut pages = credential::Entity::find()
        .order_by_asc(credential::Column::Id)
        .paginate(db, 500);
    while let Some(rows) = pages.fetch_and_next().await? {
        for row in rows {
            let outcome = (|| -> Result<(), String> {
                let key = keys
                    .get(&row.key_id)
                    .ok_or_else(|| format!("signing key {} is missing", row.key_id))?;
                let public =
                    PublicKey::from_multibase(&key.public_key).map_err(|e| e.to_string())?;
                if row.format == "jwt" {
                    let jwt = crate::verify::jwt::decode(&row.document)?;
                    let alg = jwt.algorithm()?;
                    let key = match public {
                        PublicKey::Ed25519(k) => VerifyKey::Ed25519(k),
                        PublicKey::P256(k) => VerifyKey::P256(k),
                    };
                    jwt.verify_signature(alg, &key)
                } else {
                    let PublicKey::Ed25519(key) = public else {
                        return Err("a Data Integrity credential needs an Ed25519 key".into());
                    };
                    let document: serde_json::Value =
                        serde_json::from_str(&row.document).map_err(|e| e.to_string())?;
                    suite.verify(&document, &key).map_err(|e| e.to_string())
                }
            })();
            match outcome {
                Ok(()) => verified += 1,
                Err(reason) => {
                    failed += 1;
                    if failures.len() < 5 {
                        failures.push(format!("{}: {reason}", row.id));
                    }
                }
            }
        }
    }
    if failed == 0 {
        report.push(
            "credential proofs",
            Outcome::Ok,
            format!("{verified} credential(s) verify against their recorded keys"),
        );
    } else {
        report.push(
            "credential proofs",
            Outcome::Failed,
            format!(
                "{failed} of {} credential(s) do not verify: {}",
                verified + failed,
                failures.join("; ")
            ),
        );
    }
    Ok((verified, failed))
}

/// Size, row counts and migration state.
pub async fn status(db: &DatabaseConnection, url: &str) -> Result<StatusReport, DbErr> {
    let engine = Engine::of_backend(db.get_database_backend());
    let (location, size_bytes) = match engine {
        Engine::Sqlite => {
            let path = super::sqlite_path(url);
            let size = scalar_i64(
                db,
                "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
            )
            .await?;
            let wal = path
                .as_ref()
                .map(|p| {
                    let mut name = p.as_os_str().to_owned();
                    name.push("-wal");
                    std::fs::metadata(std::path::PathBuf::from(name))
                        .map(|m| m.len())
                        .unwrap_or_default()
                })
                .unwrap_or_default();
            (
                path.map(|p| p.display().to_string())
                    .unwrap_or_else(|| ":memory:".into()),
                u64::try_from(size).unwrap_or_default() + wal,
            )
        }
        Engine::Postgres => {
            let name = strings(db, "SELECT current_database()::text")
                .await?
                .into_iter()
                .next()
                .unwrap_or_default();
            let size = scalar_i64(db, "SELECT pg_database_size(current_database())").await?;
            (name, u64::try_from(size).unwrap_or_default())
        }
    };
    let mut tables_out = Vec::new();
    for table in tables(db).await? {
        let rows = count_rows(db, &table).await?;
        tables_out.push(TableRows { table, rows });
    }
    let applied = Migrator::get_migration_models(db).await?;
    let last_migration = applied
        .iter()
        .max_by(|a, b| a.version.cmp(&b.version))
        .map(|m| (m.version.clone(), m.applied_at));
    let pending_migrations = Migrator::get_pending_migrations(db)
        .await?
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    Ok(StatusReport {
        engine,
        location,
        size_bytes,
        tables: tables_out,
        last_migration,
        applied_migrations: applied.len(),
        pending_migrations,
    })
}
