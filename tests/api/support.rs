//! Test harness: every test spawns its own oxbadge on port 0 with its own database.
//!
//! SQLite (default): a file in a fresh temporary directory.
//! PostgreSQL: when `OXBADGE_TEST_DATABASE_URL` is set (e.g. `postgres://postgres@127.0.0.1:5432`),
//! a fresh database `oxbadge_test_<id>` is created for the test and dropped afterwards.

use std::{net::SocketAddr, time::Duration};

use oxbadge::{App, Settings};
use reqwest::{Client, StatusCode};
use sea_orm::{ConnectionTrait, Database};
use secrecy::ExposeSecret;
use serde_json::Value;
use tokio::sync::oneshot;

/// A throwaway database for one test.
pub struct TestDb {
    pub url: String,
    pub data_dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

impl TestDb {
    /// Creates a fresh database (SQLite file or PostgreSQL database).
    pub async fn create() -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        match std::env::var("OXBADGE_TEST_DATABASE_URL") {
            Ok(base) if !base.is_empty() => {
                let base = base.trim_end_matches('/').to_owned();
                let name = format!("oxbadge_test_{}", cuid2::create_id());
                let admin = Database::connect(format!("{base}/postgres")).await.unwrap();
                admin
                    .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                    .await
                    .unwrap();
                admin.close().await.unwrap();
                TestDb {
                    url: format!("{base}/{name}"),
                    data_dir,
                    pg: Some((base, name)),
                }
            }
            _ => {
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    data_dir.path().join("oxbadge.db").display()
                );
                TestDb {
                    url,
                    data_dir,
                    pg: None,
                }
            }
        }
    }
}

impl TestDb {
    /// A second handle on the same database (for a second server instance); it never drops it.
    pub fn shared(other: &TestDb) -> TestDb {
        TestDb {
            url: other.url.clone(),
            data_dir: tempfile::tempdir().unwrap(),
            pg: None,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((base, name)) = self.pg.take() {
            // Drop runs outside async context: use a private runtime on a helper thread.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    if let Ok(admin) = Database::connect(format!("{base}/postgres")).await {
                        let _ = admin
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                            ))
                            .await;
                        let _ = admin.close().await;
                    }
                });
            })
            .join();
        }
    }
}

/// A fresh random KEK spec `id:BASE64`.
pub fn random_kek(id: &str) -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    format!(
        "{id}:{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// Settings for a test app on `db`: port 0, generous auth rate limit, its own random KEK.
pub fn test_settings(db: &TestDb) -> Settings {
    Settings {
        kek: Some(secrecy::SecretString::from(random_kek("test-kek-1"))),
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: db.data_dir.path().to_path_buf(),
        database_url: Some(db.url.clone()),
        db_max_connections: 8,
        auth_rate_limit_per_minute: 100_000,
        auth_rate_limit_burst: 10_000,
        // Sign-in tests hash back to back; the CPU cap (which only spaces hashes out) is unit-tested
        // in `accounts::passwords` and measured in the sign-in flood bench.
        password_hash_cpu_percent: 100,
        shutdown_timeout_secs: 5,
        log: "warn".into(),
        ..Settings::default()
    }
}

/// A running test server.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub http: Client,
    pub admin_id: String,
    pub admin_secret: String,
    pub state: oxbadge::AppState,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    // Keep the database alive (and drop it last).
    db: Option<TestDb>,
}

impl TestApp {
    /// Spawns an app with default test settings.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns an app after letting the test adjust its settings.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> Self {
        let db = TestDb::create().await;
        let mut settings = test_settings(&db);
        adjust(&mut settings);
        Self::spawn_on(db, settings).await
    }

    /// Spawns an app on an existing database.
    pub async fn spawn_on(db: TestDb, settings: Settings) -> Self {
        oxbadge::telemetry::init(settings.log_format, &settings.log);
        let tls = settings.tls_enabled();
        let mut app = App::build(settings).await.expect("app builds");
        let addr = app.local_addr();
        let state = app.state().clone();
        // A fresh database bootstraps an admin; on a restart, make a new admin client.
        let admin = match app.take_bootstrap_admin() {
            Some(admin) => admin,
            None => oxbadge::oauth::tokens::create_client(
                state.db(),
                "test admin",
                oxbadge::oauth::ScopeSet::all(),
            )
            .await
            .unwrap(),
        };
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        let scheme = if tls { "https" } else { "http" };
        let host = if tls { "localhost" } else { "127.0.0.1" };
        let http = Client::builder()
            .timeout(Duration::from_secs(30))
            .danger_accept_invalid_certs(tls)
            .resolve("localhost", addr)
            .build()
            .unwrap();
        TestApp {
            addr,
            base: format!("{scheme}://{host}:{}", addr.port()),
            http,
            admin_id: admin.client_id.clone(),
            admin_secret: admin.client_secret.expose_secret().to_owned(),
            state,
            shutdown: Some(tx),
            server: Some(server),
            db: Some(db),
        }
    }

    /// Restarts on a database that already has data (alias of `spawn_on`, for readability).
    pub async fn spawn_on_existing(db: TestDb, settings: Settings) -> Self {
        Self::spawn_on(db, settings).await
    }

    /// The test database.
    pub fn db(&self) -> &TestDb {
        self.db.as_ref().unwrap()
    }

    /// Stops the server and hands back its database (for restart tests).
    pub async fn into_db(mut self) -> TestDb {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
        self.db.take().unwrap()
    }

    /// Absolute URL for a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Requests a client-credentials token with the given scopes using the admin client.
    pub async fn token(&self, scopes: &str) -> String {
        self.token_for(&self.admin_id.clone(), &self.admin_secret.clone(), scopes)
            .await
    }

    /// A user-bound access token for `user_id` with `scopes`, minted through the admin client as
    /// the authorization server does after a code exchange (no refresh token).
    pub async fn user_token(&self, user_id: &str, scopes: &str) -> String {
        use secrecy::ExposeSecret;
        oxbadge::oauth::tokens::issue_user_token(
            self.state.db(),
            &self.admin_id,
            user_id,
            oxbadge::oauth::ScopeSet::parse(scopes).unwrap(),
            3600,
        )
        .await
        .unwrap()
        .access_token
        .expose_secret()
        .to_owned()
    }

    /// Requests a token for any client.
    pub async fn token_for(&self, id: &str, secret: &str, scopes: &str) -> String {
        let resp = self
            .http
            .post(self.url("/oauth/token"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials"), ("scope", scopes)])
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "token request for `{scopes}`"
        );
        let body: Value = resp.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// Asserts a response is an RFC 9457 problem document with the given status and code; returns it.
pub async fn assert_problem(resp: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        ct.starts_with("application/problem+json"),
        "content type {ct}"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(
        body["type"],
        format!("urn:oxbadge:problem:{code}"),
        "{body}"
    );
    assert!(body["title"].is_string(), "{body}");
    body
}
