//! `oxbadge db …`: backup, restore, check and status of the database. None of them migrates.

use std::path::PathBuf;

use clap::Subcommand;
use oxbadge::{
    Settings,
    db::{
        self,
        backup::{self, BackupError},
        maintenance::{self, CheckReport, Engine, Outcome},
    },
};

/// Database operations.
#[derive(Subcommand)]
pub enum DbCommand {
    /// Write a consistent copy of the SQLite database to FILE while the server keeps running
    /// (VACUUM INTO, synced and integrity-checked before it gets its name). On PostgreSQL this
    /// prints the pg_dump procedure instead and exits 1.
    Backup {
        /// The backup file to create (never overwritten).
        #[arg(long)]
        to: PathBuf,
        /// Print the result as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Replace the SQLite database with a backup. Refuses while a server (or any oxbadge command)
    /// holds the database, and refuses a damaged backup or one made by a newer oxbadge. The
    /// replaced database is kept beside it as `<file>.before-restore-<time>`. On PostgreSQL this
    /// prints the pg_restore procedure instead and exits 1.
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        /// Print the result as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Check the database: SQLite integrity_check and foreign_key_check, PostgreSQL amcheck,
    /// migration state and checksums. Exits 1 when a check fails.
    Check {
        /// Also verify every stored credential's proof against its recorded signing key.
        #[arg(long)]
        proofs: bool,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Show the database size, the row count of every table and the migration state.
    Status {
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// Runs one `db` command.
pub async fn run(settings: &Settings, cmd: DbCommand) -> anyhow::Result<()> {
    let url = settings.effective_database_url();
    match cmd {
        DbCommand::Backup { to, json } => {
            let file = backup::sqlite_file(&url)?;
            if !file.is_file() {
                anyhow::bail!("there is no database at {}", file.display());
            }
            let conn = db::connect(&url, 1).await?;
            let result = backup::backup_sqlite(&conn, &to).await;
            conn.close().await?;
            let report = result?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "backed up {} credential(s) to {} ({} bytes, {} ms); integrity_check ok",
                    report.credentials,
                    report.path.display(),
                    report.bytes,
                    report.millis
                );
                println!(
                    "keep the KEK (OXBADGE_KEK / OXBADGE_KEK_FILE) with it: the backup holds the signing keys only encrypted"
                );
            }
        }
        DbCommand::Restore { from, json } => {
            let target = match backup::sqlite_file(&url) {
                Err(BackupError::Postgres) => {
                    anyhow::bail!(
                        "the database is PostgreSQL; restore it with pg_restore:\n{}",
                        backup::POSTGRES_BACKUP_PROCEDURE
                    )
                }
                other => other?,
            };
            let report = backup::restore_sqlite(&from, &target).await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "restored {} credential(s) into {}",
                    report.credentials,
                    report.path.display()
                );
                if let Some(previous) = &report.previous {
                    println!("the replaced database was kept as {}", previous.display());
                }
            }
        }
        DbCommand::Check { proofs, json } => {
            let conn = open_existing(&url).await?;
            let mut report = maintenance::check(&conn).await?;
            if proofs {
                maintenance::check_proofs(&conn, &mut report).await?;
            }
            conn.close().await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print_check(&report);
            }
            if !report.passed() {
                anyhow::bail!("the database check failed");
            }
        }
        DbCommand::Status { json } => {
            let conn = open_existing(&url).await?;
            let report = maintenance::status(&conn, &url).await?;
            conn.close().await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
                return Ok(());
            }
            println!(
                "engine      {}",
                match report.engine {
                    Engine::Sqlite => "sqlite",
                    Engine::Postgres => "postgresql",
                }
            );
            println!("database    {}", report.location);
            println!("size        {} bytes", report.size_bytes);
            match &report.last_migration {
                Some((name, at)) => {
                    let when = chrono::DateTime::from_timestamp(*at, 0)
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_default();
                    println!(
                        "migrations  {} applied, last {name} at {when}",
                        report.applied_migrations
                    );
                }
                None => println!("migrations  none applied"),
            }
            if !report.pending_migrations.is_empty() {
                println!("pending     {}", report.pending_migrations.join(", "));
            }
            println!("tables");
            for t in &report.tables {
                println!("  {:<32} {:>10}", t.table, t.rows);
            }
        }
    }
    Ok(())
}

/// Connects without creating a missing SQLite file (a check of nothing is an error, not an empty
/// database).
async fn open_existing(url: &str) -> anyhow::Result<sea_orm::DatabaseConnection> {
    if let Some(path) = db::sqlite_path(url)
        && !path.is_file()
    {
        anyhow::bail!("there is no database at {}", path.display());
    }
    Ok(db::connect(url, 1).await?)
}

fn print_check(report: &CheckReport) {
    for item in &report.items {
        let mark = match item.outcome {
            Outcome::Ok => "ok  ",
            Outcome::Warn => "WARN",
            Outcome::Failed => "FAIL",
            Outcome::Skipped => "skip",
        };
        println!("{mark}  {:<22} {}", item.name, item.detail);
    }
    println!(
        "{}",
        if report.passed() {
            "database check passed"
        } else {
            "database check FAILED"
        }
    );
}
