//! Operations: `oxbadge db backup/restore/check/status` run as the real binary, migration
//! checksums (an edited migration stops start-up with exit code 2), every `down` migration, and
//! the upgrade of a database made by the first released migration set (`fixtures/upgrade/`).

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    process::Output,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use migration::{
    MigratorTrait,
    checksums::{self, ChecksumError, ChecksumState},
};
use oxbadge::db::maintenance;
use sea_orm::{ConnectionTrait, EntityTrait};
use serde_json::{Value, json};

use crate::{
    issuance::{issue, issuer_with_achievement},
    support::{TestApp, TestDb, test_settings},
};

/// The `oxbadge` binary the CLI tests run: `OXBADGE_TEST_BIN` when set (a release build, or a
/// private copy when several worktrees share one target directory), else the one cargo built with
/// this test binary.
pub fn oxbadge_bin() -> String {
    std::env::var("OXBADGE_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_oxbadge").to_owned())
}

/// Runs `oxbadge --database-url URL --data-dir DIR ARGS…` to completion (off the reactor).
pub async fn cli(url: &str, data_dir: &Path, args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(oxbadge_bin());
    cmd.arg("--database-url")
        .arg(url)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("OXBADGE_LOG", "warn")
        .env_remove("OXBADGE_CONFIG")
        .env_remove("DATABASE_URL");
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The JSON a successful `--json` command printed.
fn json_out(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", text(&out.stdout));
    })
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres")
}

/// A SQLite URL for a file in `dir`.
fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// Asks the app's verifier about one stored credential (a JSON document or a compact JWS).
pub async fn verify_stored(app: &TestApp, format: &str, document: &str) -> Value {
    let content_type = if format == "jwt" {
        "text/plain"
    } else {
        "application/json"
    };
    let resp = app
        .http
        .post(app.url("/api/v1/verify"))
        .header("content-type", content_type)
        .body(document.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// Lets a test app verify as often as it likes.
pub fn unlimited_verify(s: &mut oxbadge::Settings) {
    s.verify_rate_limit_per_minute = 10_000_000;
    s.verify_rate_limit_burst = 10_000_000;
}

/// Runs a program to completion off the reactor.
async fn run_tool(program: &str, args: Vec<String>) -> Output {
    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn tool_available(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn backup_under_load_restores_to_a_database_whose_every_credential_verifies() {
    let app = TestApp::spawn().await;
    let token = app
        .token("issuers:write credentials:issue credentials:read credentials:status")
        .await;
    let (_, achievement) = issuer_with_achievement(&app, &token).await;
    let backups = tempfile::tempdir().unwrap();
    let backup_file = backups.path().join("oxbadge-backup.db");
    let backup_arg = backup_file.to_str().unwrap().to_owned();
    let postgres = is_postgres(&app.db().url);
    if postgres {
        // PostgreSQL is backed up with pg_dump: the command says how and makes no file.
        let out = cli(
            &app.db().url,
            app.db().data_dir.path(),
            &["db", "backup", "--to", &backup_arg],
        )
        .await;
        assert_eq!(out.status.code(), Some(1));
        let err = text(&out.stderr);
        assert!(err.contains("pg_dump --format=custom"), "{err}");
        assert!(err.contains("pg_restore"), "{err}");
        assert!(!backup_file.exists());
        if !tool_available("pg_dump") || !tool_available("pg_restore") {
            eprintln!(
                "pg_dump/pg_restore not installed: the documented procedure is not exercised"
            );
            return;
        }
    }

    // Issuance over HTTP keeps running while the backup is taken.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut loaders = Vec::new();
    for worker in 0..4 {
        let (http, url, token, achievement) = (
            app.http.clone(),
            app.url("/api/v1/credentials"),
            token.clone(),
            achievement.clone(),
        );
        let (acked, stop) = (acked.clone(), stop.clone());
        loaders.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let resp = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"achievementId": achievement,
                        "recipient": {"id": format!("did:example:w{worker}-{n}")}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 201);
                let body: Value = resp.json().await.unwrap();
                acked
                    .lock()
                    .unwrap()
                    .push(body["id"].as_str().unwrap().to_owned());
            }
        }));
    }
    while acked.lock().unwrap().len() < 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before: HashSet<String> = acked.lock().unwrap().iter().cloned().collect();
    let began = std::time::Instant::now();
    let out = if postgres {
        // The documented procedure (README, `db backup` on PostgreSQL).
        run_tool(
            "pg_dump",
            vec![
                "--format=custom".into(),
                format!("--file={backup_arg}"),
                app.db().url.clone(),
            ],
        )
        .await
    } else {
        cli(
            &app.db().url,
            app.db().data_dir.path(),
            &["db", "backup", "--to", &backup_arg, "--json"],
        )
        .await
    };
    let millis = began.elapsed().as_millis();
    let during = acked.lock().unwrap().len() - before.len();
    stop.store(true, Ordering::Relaxed);
    for l in loaders {
        l.await.unwrap();
    }
    assert!(
        out.status.success(),
        "backup: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let total = acked.lock().unwrap().len();
    assert!(during > 0, "issuance went on while the backup ran");

    let restored = TestDb::create().await;
    let restored_url = if postgres {
        restored.url.clone()
    } else {
        sqlite_url(&restored.data_dir.path().join("restored.db"))
    };
    if postgres {
        let out = run_tool(
            "pg_restore",
            vec![
                "--no-owner".into(),
                format!("--dbname={restored_url}"),
                backup_arg.clone(),
            ],
        )
        .await;
        assert!(out.status.success(), "pg_restore: {}", text(&out.stderr));
        // `db restore` on PostgreSQL explains instead of acting.
        let out = cli(
            &restored_url,
            restored.data_dir.path(),
            &["db", "restore", "--from", &backup_arg],
        )
        .await;
        assert_eq!(out.status.code(), Some(1));
        assert!(text(&out.stderr).contains("pg_restore --no-owner"));
    } else {
        let report = json_out(&out);
        let in_backup = report["credentials"].as_u64().unwrap();
        assert!(in_backup >= before.len() as u64 && in_backup <= total as u64);
        // A backup never overwrites a file.
        let again = cli(
            &app.db().url,
            app.db().data_dir.path(),
            &["db", "backup", "--to", &backup_arg],
        )
        .await;
        assert_eq!(again.status.code(), Some(1));
        assert!(text(&again.stderr).contains("exists already"));
        // Restoring over the database the server holds is refused, and changes nothing.
        let refused = cli(
            &app.db().url,
            app.db().data_dir.path(),
            &["db", "restore", "--from", &backup_arg],
        )
        .await;
        assert_eq!(refused.status.code(), Some(1));
        assert!(
            text(&refused.stderr).contains("in use by a running oxbadge"),
            "{}",
            text(&refused.stderr)
        );
        let out = cli(
            &restored_url,
            restored.data_dir.path(),
            &["db", "restore", "--from", &backup_arg, "--json"],
        )
        .await;
        assert_eq!(json_out(&out)["credentials"].as_u64(), Some(in_backup));
    }

    // The restored database passes `db check --proofs`.
    let out = cli(
        &restored_url,
        restored.data_dir.path(),
        &["db", "check", "--proofs", "--json"],
    )
    .await;
    let check = json_out(&out);
    let proofs = check["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "credential proofs")
        .unwrap();
    assert_eq!(proofs["outcome"], "ok", "{check}");

    // Serve it under the original public URL with the original KEK (the verifier then resolves the
    // issuer's keys and status lists from the restored database only, the original is stopped).
    let public_url = app.state.public_url().clone();
    let kek = app.state.settings().kek.clone();
    app.stop().await;
    let mut settings = test_settings(&restored);
    settings.database_url = Some(restored_url);
    settings.public_url = Some(public_url);
    settings.kek = kek;
    unlimited_verify(&mut settings);
    let restored_app = TestApp::spawn_on(restored, settings).await;
    let rows = oxbadge::db::credential::Entity::find()
        .all(restored_app.state.db())
        .await
        .unwrap();
    let stored: HashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    for id in &before {
        assert!(
            stored.contains(id.as_str()),
            "credential {id} was acknowledged before the backup started"
        );
    }
    assert!(rows.len() <= total);
    for row in &rows {
        let report = verify_stored(&restored_app, &row.format, &row.document).await;
        assert_eq!(report["outcome"], "verified", "{}: {report:#}", row.id);
    }
    eprintln!(
        "backup ({}): {} ms under load; {} credentials acknowledged before it began, {during} while it ran; \
         {} in the restored database, every one verified",
        if postgres { "pg_dump" } else { "db backup" },
        millis,
        before.len(),
        rows.len()
    );
}

#[tokio::test]
async fn db_status_and_check_describe_the_database_and_find_damage() {
    let app = TestApp::spawn().await;
    let token = app
        .token("issuers:write credentials:issue credentials:read credentials:status")
        .await;
    let (_, achievement) = issuer_with_achievement(&app, &token).await;
    for n in 0..3 {
        issue(
            &app,
            &token,
            json!({"achievementId": achievement, "recipient": {"id": format!("did:example:{n}")}}),
        )
        .await;
    }
    let (url, dir) = (app.db().url.clone(), app.db().data_dir.path().to_path_buf());
    let status = json_out(&cli(&url, &dir, &["db", "status", "--json"]).await);
    let rows: HashMap<&str, u64> = status["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["table"].as_str().unwrap(), t["rows"].as_u64().unwrap()))
        .collect();
    assert_eq!(rows.get("credentials"), Some(&3), "{status}");
    assert_eq!(rows.get("issuers"), Some(&1), "{status}");
    assert_eq!(
        rows.get(checksums::TABLE),
        Some(&(migration::SOURCES.len() as u64))
    );
    assert_eq!(
        status["last_migration"][0],
        migration::SOURCES.last().unwrap().name
    );
    assert_eq!(
        status["applied_migrations"].as_u64(),
        Some(migration::SOURCES.len() as u64)
    );
    assert_eq!(status["pending_migrations"], json!([]));
    assert!(status["size_bytes"].as_u64().unwrap() > 0);
    let human = cli(&url, &dir, &["db", "status"]).await;
    assert!(human.status.success());
    assert!(!text(&human.stdout).contains("password"));

    let check = json_out(&cli(&url, &dir, &["db", "check", "--proofs", "--json"]).await);
    eprintln!("db check: {check}");
    for item in check["items"].as_array().unwrap() {
        let allowed: &[&str] = if item["name"] == "amcheck" {
            &["ok", "skipped"]
        } else {
            &["ok"]
        };
        assert!(
            allowed.contains(&item["outcome"].as_str().unwrap()),
            "{item}"
        );
    }
    let names: Vec<&str> = check["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    if is_postgres(&url) {
        assert!(names.contains(&"amcheck") && names.contains(&"constraints"));
    } else {
        assert!(names.contains(&"integrity_check") && names.contains(&"foreign_key_check"));
        // An orphan row written with foreign keys off is found.
        let conn = oxbadge::db::connect(&url, 1).await.unwrap();
        conn.execute_unprepared("PRAGMA foreign_keys = OFF")
            .await
            .unwrap();
        conn.execute_unprepared(
            "INSERT INTO status_entries (list_id, idx, credential_id, value, updated_at) \
             VALUES ('no-such-list', 7, 'no-such-credential', 0, '2026-01-01T00:00:00Z')",
        )
        .await
        .unwrap();
        conn.close().await.unwrap();
        let out = cli(&url, &dir, &["db", "check"]).await;
        assert_eq!(out.status.code(), Some(1));
        let report = text(&out.stdout);
        assert!(
            report.contains("FAIL  foreign_key_check"),
            "{report}\n{}",
            text(&out.stderr)
        );
    }
    // Checking a database that does not exist does not create one.
    if !is_postgres(&url) {
        let missing = dir.join("missing.db");
        let out = cli(&sqlite_url(&missing), &dir, &["db", "check"]).await;
        assert_eq!(out.status.code(), Some(1));
        assert!(!missing.exists());
    }
}

#[tokio::test]
async fn an_edited_migration_is_refused_at_start_up_with_exit_code_2() {
    let app = TestApp::spawn().await;
    let db = app.into_db().await;
    let conn = oxbadge::db::connect(&db.url, 1).await.unwrap();
    let applied = checksums::verify(&conn).await.unwrap();
    assert_eq!(applied.len(), migration::SOURCES.len());
    assert!(applied.iter().all(|m| m.state == ChecksumState::Verified));
    // Applied before checksums existed: recorded on first sight, also by two instances at once.
    conn.execute_unprepared(&format!("DELETE FROM {}", checksums::TABLE))
        .await
        .unwrap();
    let unrecorded = checksums::verify(&conn).await.unwrap();
    assert!(
        unrecorded
            .iter()
            .all(|m| m.state == ChecksumState::Unrecorded)
    );
    let other = oxbadge::db::connect(&db.url, 1).await.unwrap();
    let (a, b) = tokio::join!(checksums::record(&conn), checksums::record(&other));
    a.unwrap();
    b.unwrap();
    other.close().await.unwrap();
    let applied = checksums::verify(&conn).await.unwrap();
    assert!(applied.iter().all(|m| m.state == ChecksumState::Verified));

    // This build compiled from an edited source: refused.
    let victim = migration::SOURCES[1].name;
    let mut edited = migration::SOURCES.to_vec();
    edited[1].source = "// an edited migration\n";
    match checksums::verify_against(&conn, &edited).await {
        Err(ChecksumError::Edited { name, .. }) => assert_eq!(name, victim),
        other => panic!("expected Edited, got {other:?}"),
    }
    // A source whose line endings changed is the same migration.
    let crlf: &'static str = Box::leak(
        migration::SOURCES[1]
            .source
            .replace('\n', "\r\n")
            .into_boxed_str(),
    );
    edited[1].source = crlf;
    checksums::verify_against(&conn, &edited).await.unwrap();
    // A database migrated by a newer build (a migration this build does not know): refused.
    match checksums::verify_against(&conn, &migration::SOURCES[..2]).await {
        Err(ChecksumError::Unknown { name }) => assert_eq!(name, migration::SOURCES[2].name),
        other => panic!("expected Unknown, got {other:?}"),
    }

    // The database says the applied migration had another text: every entry point refuses.
    checksums::overwrite_recorded_checksum(&conn, victim, &"0".repeat(64))
        .await
        .unwrap();
    conn.close().await.unwrap();
    for migrate_on_start in [true, false] {
        let mut settings = test_settings(&db);
        settings.migrate_on_start = migrate_on_start;
        match oxbadge::App::build(settings).await {
            Err(err) => {
                assert!(err.is_schema_mismatch(), "{err}");
                assert!(err.to_string().contains(victim), "{err}");
            }
            Ok(_) => panic!("started on an edited migration"),
        }
    }
    let dir = db.data_dir.path();
    for args in [
        &["serve", "--listen", "127.0.0.1:0"][..],
        &["serve", "--listen", "127.0.0.1:0", "--no-migrate"][..],
        &["migrate", "up"][..],
        &["migrate", "down"][..],
    ] {
        let out = cli(&db.url, dir, args).await;
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let err = text(&out.stderr);
        assert!(
            err.contains(victim) && err.contains("was edited after it was applied"),
            "{err}"
        );
    }
    let out = cli(&db.url, dir, &["db", "check"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("FAIL  migration checksums"));
    // Nothing was rolled back by the refused `migrate down`.
    let conn = oxbadge::db::connect(&db.url, 1).await.unwrap();
    assert_eq!(
        migration::Migrator::get_applied_migrations(&conn)
            .await
            .unwrap()
            .len(),
        migration::SOURCES.len()
    );
    conn.close().await.unwrap();
}

/// Every table and column with its type (SQLite: the stored CREATE statements), to compare a
/// schema before and after a down/up round trip.
async fn schema_fingerprint(conn: &sea_orm::DatabaseConnection) -> Vec<String> {
    let backend = conn.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Sqlite => {
            "SELECT name || ': ' || COALESCE(sql, '') FROM sqlite_master \
             WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
        }
        _ => {
            "SELECT (table_name || '.' || column_name || ': ' || data_type || ' ' || is_nullable)::text \
             FROM information_schema.columns WHERE table_schema = current_schema() \
             UNION ALL SELECT (indexname || ': ' || indexdef)::text FROM pg_indexes \
             WHERE schemaname = current_schema() ORDER BY 1"
        }
    };
    conn.query_all_raw(sea_orm::Statement::from_string(backend, sql.to_owned()))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get_by_index::<String>(0).unwrap())
        .collect()
}

#[tokio::test]
async fn every_down_migration_runs_and_up_brings_the_schema_back() {
    let db = TestDb::create().await;
    let conn = oxbadge::db::connect(&db.url, 1).await.unwrap();
    oxbadge::db::migrate_up(&conn).await.unwrap();
    let full = maintenance::tables(&conn).await.unwrap();
    let full_schema = schema_fingerprint(&conn).await;
    let bookkeeping = ["oxbadge_migration_checksums", "seaql_migrations"];
    // One step at a time: each `down` changes the schema and forgets its checksum.
    let mut previous = full_schema.clone();
    for step in (0..migration::SOURCES.len()).rev() {
        checksums::down(&conn, Some(1)).await.unwrap();
        let now = schema_fingerprint(&conn).await;
        assert_ne!(now, previous, "down of {}", migration::SOURCES[step].name);
        previous = now;
        assert_eq!(
            maintenance::count_rows(&conn, checksums::TABLE)
                .await
                .unwrap(),
            step as u64
        );
    }
    let left = maintenance::tables(&conn).await.unwrap();
    assert_eq!(left, bookkeeping, "everything but the bookkeeping is gone");
    oxbadge::db::migrate_up(&conn).await.unwrap();
    assert_eq!(maintenance::tables(&conn).await.unwrap(), full);
    assert_eq!(schema_fingerprint(&conn).await, full_schema);
    // And all the way down and up in one go, then the service starts on it.
    checksums::down(&conn, None).await.unwrap();
    assert_eq!(maintenance::tables(&conn).await.unwrap(), bookkeeping);
    conn.close().await.unwrap();
    let app = TestApp::spawn_on(TestDb::shared(&db), test_settings(&db)).await;
    let token = app.token("issuers:write credentials:issue").await;
    let (_, achievement) = issuer_with_achievement(&app, &token).await;
    issue(
        &app,
        &token,
        json!({"achievementId": achievement, "recipient": {"id": "did:example:after-down-up"}}),
    )
    .await;
    app.stop().await;
    drop(db);
}

#[tokio::test]
async fn restore_replaces_a_stopped_database_and_keeps_the_replaced_one() {
    let app = TestApp::spawn().await;
    if is_postgres(&app.db().url) {
        return; // pg_restore, covered by the backup-under-load test
    }
    let token = app.token("issuers:write credentials:issue").await;
    let (_, achievement) = issuer_with_achievement(&app, &token).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        if n == 2 {
            let out = cli(
                &app.db().url,
                app.db().data_dir.path(),
                &[
                    "db",
                    "backup",
                    "--to",
                    app.db().data_dir.path().join("two.db").to_str().unwrap(),
                ],
            )
            .await;
            assert!(out.status.success(), "{}", text(&out.stderr));
        }
        let issued = issue(
            &app,
            &token,
            json!({"achievementId": achievement, "recipient": {"id": format!("did:example:{n}")}}),
        )
        .await;
        ids.push(issued["id"].as_str().unwrap().to_owned());
    }
    let settings = test_settings(app.db());
    let kek = app.state.settings().kek.clone();
    let db = app.into_db().await;
    let backup = db.data_dir.path().join("two.db");
    let out = cli(
        &db.url,
        db.data_dir.path(),
        &[
            "db",
            "restore",
            "--from",
            backup.to_str().unwrap(),
            "--json",
        ],
    )
    .await;
    let report = json_out(&out);
    assert_eq!(report["credentials"], 2);
    // The replaced database (with everything its WAL held) is kept beside it.
    let previous = PathBuf::from(report["previous"].as_str().unwrap());
    let conn = oxbadge::db::connect(&sqlite_url(&previous), 1)
        .await
        .unwrap();
    assert_eq!(
        maintenance::count_rows(&conn, "credentials").await.unwrap(),
        3
    );
    conn.close().await.unwrap();
    // The service starts on the restored database: the first two credentials, not the third.
    let mut settings = settings;
    settings.kek = kek;
    let app = TestApp::spawn_on(db, settings).await;
    let token = app.token("credentials:read").await;
    for (n, id) in ids.iter().enumerate() {
        let resp = app
            .http
            .get(app.url(&format!("/api/v1/credentials/{id}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            if n < 2 { 200 } else { 404 },
            "credential {n}"
        );
    }
}

#[tokio::test]
async fn backups_hold_no_plaintext_secret_token_or_kek() {
    let app = TestApp::spawn().await;
    let token = app
        .token("issuers:write credentials:issue credentials:read")
        .await;
    let (_, achievement) = issuer_with_achievement(&app, &token).await;
    issue(
        &app,
        &token,
        json!({"achievementId": achievement, "recipient": {"email": "secret-keeper@example.edu"}}),
    )
    .await;
    let kek = {
        use secrecy::ExposeSecret;
        let spec = app
            .state
            .settings()
            .kek
            .as_ref()
            .unwrap()
            .expose_secret()
            .to_owned();
        spec.split_once(':').unwrap().1.to_owned()
    };
    let backups = tempfile::tempdir().unwrap();
    let (bytes, what) = if is_postgres(&app.db().url) {
        if !tool_available("pg_dump") {
            eprintln!("pg_dump not installed: skipped");
            return;
        }
        let out = run_tool(
            "pg_dump",
            vec!["--format=plain".into(), app.db().url.clone()],
        )
        .await;
        assert!(out.status.success());
        (out.stdout, "a plain pg_dump")
    } else {
        let file = backups.path().join("b.db");
        let out = cli(
            &app.db().url,
            app.db().data_dir.path(),
            &["db", "backup", "--to", file.to_str().unwrap()],
        )
        .await;
        assert!(out.status.success(), "{}", text(&out.stderr));
        (std::fs::read(&file).unwrap(), "the SQLite backup")
    };
    assert!(bytes.len() > 10_000, "{what} holds the data");
    for (name, secret) in [
        ("client secret", app.admin_secret.as_str()),
        ("access token", token.as_str()),
        ("KEK", kek.as_str()),
    ] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{what} contains the {name} in plaintext"
        );
    }
}

// ---- The upgrade fixture --------------------------------------------------------------------

/// Where the upgrade fixture lives.
fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/upgrade")
}

/// The public URL the fixture's credentials were issued under.
const FIXTURE_PUBLIC_URL: &str = "https://upgrade.oxbadge.test";
/// The migrations the first release shipped (what the fixture was made with).
const FIRST_RELEASE: [&str; 3] = [
    "m20261123_000001_oauth_clients_and_tokens",
    "m20261123_000002_issuers_keys_audit",
    "m20261123_000003_achievements_credentials_status",
];

fn fixture_settings(db: &TestDb, database: &Path) -> oxbadge::Settings {
    let kek = std::fs::read_to_string(fixture_dir().join("TEST-ONLY-kek.txt")).unwrap();
    let mut settings = test_settings(db);
    settings.kek = Some(secrecy::SecretString::from(kek.trim().to_owned()));
    settings.database_url = Some(sqlite_url(database));
    settings.public_url = Some(FIXTURE_PUBLIC_URL.parse().unwrap());
    settings.status_shape = oxbadge::ob::StatusShape::BitstringBoth;
    unlimited_verify(&mut settings);
    settings
}

/// Writes `fixtures/upgrade/oxbadge-first-release.db` and its manifest. Run it only at a commit
/// whose migrations are exactly the first release's (see fixtures/upgrade/README.md):
/// `OXBADGE_WRITE_UPGRADE_FIXTURE=1 cargo test --test api ops::write_upgrade_fixture -- --ignored`
#[tokio::test]
#[ignore = "writes the committed upgrade fixture; run by hand (fixtures/upgrade/README.md)"]
async fn write_upgrade_fixture() {
    if std::env::var("OXBADGE_WRITE_UPGRADE_FIXTURE").as_deref() != Ok("1") {
        eprintln!("set OXBADGE_WRITE_UPGRADE_FIXTURE=1 to rewrite the fixture");
        return;
    }
    let names: Vec<&str> = migration::SOURCES.iter().map(|s| s.name).collect();
    assert_eq!(
        names, FIRST_RELEASE,
        "the fixture is made with the first release's migrations only: check out the commit named in fixtures/upgrade/README.md"
    );
    let dir = fixture_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let kek_file = dir.join("TEST-ONLY-kek.txt");
    if !kek_file.exists() {
        std::fs::write(
            &kek_file,
            format!("{}\n", crate::support::random_kek("upgrade-test-kek")),
        )
        .unwrap();
    }
    let db = TestDb::create().await;
    let work = tempfile::tempdir().unwrap();
    let database = work.path().join("oxbadge.db");
    let app = TestApp::spawn_on(TestDb::shared(&db), fixture_settings(&db, &database)).await;
    let token = app
        .token("issuers:write issuers:read keys:manage credentials:issue credentials:read credentials:status")
        .await;
    let mut manifest = Vec::new();
    let (web, achievement) = issuer_with_achievement(&app, &token).await;
    let web_id = web["id"].as_str().unwrap().to_owned();
    let mut issue_one = async |body: Value, expect: &str, what: &str| -> String {
        let issued = issue(&app, &token, body).await;
        let id = issued["id"].as_str().unwrap().to_owned();
        manifest.push(json!({"id": id, "expect": expect, "what": what}));
        id
    };
    let recipient = |n: &str| json!({"email": format!("{n}@example.edu")});
    issue_one(
        json!({"achievementId": achievement, "recipient": recipient("ada")}),
        "verified",
        "Data Integrity, did:web",
    )
    .await;
    let revoked = issue_one(
        json!({"achievementId": achievement, "recipient": recipient("bob")}),
        "revoked",
        "Data Integrity, revoked",
    )
    .await;
    let suspended = issue_one(json!({"achievementId": achievement, "recipient": {"id": "did:example:carol"}, "proofFormat": "jwt"}), "suspended", "VC-JWT EdDSA, suspended").await;
    issue_one(json!({"achievementId": achievement, "recipient": {"id": "did:example:dan"}, "proofFormat": "jwt", "jwtAlgorithm": "ES256"}), "verified", "VC-JWT ES256").await;
    for (id, purpose) in [(&revoked, "revocation"), (&suspended, "suspension")] {
        let resp = app
            .http
            .post(app.url(&format!("/api/v1/credentials/{id}/status")))
            .bearer_auth(&token)
            .json(&json!({"purpose": purpose, "status": true, "reason": "upgrade fixture"}))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
    }
    let resp = app
        .http
        .post(app.url(&format!("/api/v1/issuers/{web_id}/keys/rotate")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    issue_one(
        json!({"achievementId": achievement, "recipient": recipient("eve")}),
        "verified",
        "Data Integrity, after a key rotation",
    )
    .await;
    let key_issuer = crate::keys::create_issuer(
        &app,
        &token,
        json!({"name": "Key Issuer", "idType": "did:key"}),
    )
    .await;
    let resp = app
        .http
        .post(app.url(&format!("/api/v1/issuers/{}/achievements", key_issuer["id"].as_str().unwrap())))
        .bearer_auth(&token)
        .json(&json!({"name": "Did Key Badge", "description": "Issued by a did:key issuer.", "criteria": {"narrative": "Exist."}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let key_achievement = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    issue_one(
        json!({"achievementId": key_achievement, "recipient": recipient("fay")}),
        "verified",
        "Data Integrity, did:key",
    )
    .await;
    let target = dir.join("oxbadge-first-release.db");
    let _ = std::fs::remove_file(&target);
    oxbadge::db::backup::backup_sqlite(app.state.db(), &target)
        .await
        .unwrap();
    app.stop().await;
    // The first release had no checksum table: leave the fixture exactly as it would have made it.
    let conn = oxbadge::db::connect(&sqlite_url(&target), 1).await.unwrap();
    conn.execute_unprepared(&format!("DROP TABLE {}", checksums::TABLE))
        .await
        .unwrap();
    conn.execute_unprepared("VACUUM").await.unwrap();
    conn.execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
        .await
        .unwrap();
    conn.close().await.unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("oxbadge-first-release.db{suffix}")));
    }
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_string_pretty(&json!({
            "publicUrl": FIXTURE_PUBLIC_URL,
            "migrations": FIRST_RELEASE,
            "credentials": manifest,
        }))
        .unwrap()
            + "\n",
    )
    .unwrap();
}

#[tokio::test]
async fn the_first_release_database_upgrades_and_keeps_verifying() {
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_dir().join("manifest.json")).unwrap(),
    )
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let database = work.path().join("oxbadge.db");
    std::fs::copy(fixture_dir().join("oxbadge-first-release.db"), &database).unwrap();
    let url = sqlite_url(&database);
    // The fixture is what the first release made: its three migrations, no checksums yet.
    let conn = oxbadge::db::connect(&url, 1).await.unwrap();
    let applied: Vec<String> = migration::Migrator::get_applied_migrations(&conn)
        .await
        .unwrap()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    assert_eq!(applied, FIRST_RELEASE);
    assert!(
        !maintenance::tables(&conn)
            .await
            .unwrap()
            .contains(&checksums::TABLE.to_owned())
    );
    conn.close().await.unwrap();

    let db = TestDb::create().await;
    let app = TestApp::spawn_on(TestDb::shared(&db), fixture_settings(&db, &database)).await;
    let conn = app.state.db();
    let after = checksums::verify(conn).await.unwrap();
    assert_eq!(
        after.len(),
        migration::SOURCES.len(),
        "upgraded to the latest"
    );
    assert!(after.iter().all(|m| m.state == ChecksumState::Verified));
    let credentials = manifest["credentials"].as_array().unwrap();
    let mut outcomes = HashMap::new();
    for entry in credentials {
        let id = entry["id"].as_str().unwrap();
        let row = oxbadge::db::credential::Entity::find_by_id(id.to_owned())
            .one(conn)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("credential {id} survived the upgrade"));
        let report = verify_stored(&app, &row.format, &row.document).await;
        assert_eq!(
            report["outcome"], entry["expect"],
            "{}: {report:#}",
            entry["what"]
        );
        *outcomes
            .entry(entry["expect"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    eprintln!("upgrade fixture: {outcomes:?}");
    // The service keeps working on the upgraded database.
    let token = app.token("credentials:read credentials:issue").await;
    let resp = app
        .http
        .get(app.url(&format!(
            "/api/v1/credentials/{}",
            credentials[0]["id"].as_str().unwrap()
        )))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let out = cli(&url, work.path(), &["db", "check", "--proofs", "--json"]).await;
    let check = json_out(&out);
    assert!(
        check["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["outcome"] == "ok"),
        "{check}"
    );
    app.stop().await;
}
