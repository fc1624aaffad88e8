//! Secrets stay secret (issue 16): the real binary runs a full flow at `trace` level — clients
//! (created, token, secret regenerated), issuers, issuance (Data Integrity, EdDSA and ES256 JWTs,
//! a batch), key rotation, a KEK rewrap, verification, revocation, and the account flows
//! (register, confirm by the mailed link, sign in, change the password, reset it by the mailed
//! link, list and end sessions, sign out) — and no secret the flow produced appears in the
//! server's or the CLI's output (every log line), in any HTTP response body other than the one
//! that hands it out, or in the database (the SQLite files' bytes; on PostgreSQL every row of
//! every table as text).
//!
//! Secrets are collected as the flow produces them ([`SECRET_PRODUCING_STEPS`] lists the steps);
//! private keys are decrypted from the database at the end with the KEKs, and looked for in every
//! encoding a key is commonly written in (raw, hex, base64 / base64url, base58btc and multibase
//! multikey, i.e. also a JWK's `d`).

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use base64::Engine;
use reqwest::{Client, RequestBuilder, StatusCode, redirect::Policy};
use sea_orm::{ConnectionTrait, Database, EntityTrait, Statement};
use serde_json::{Value, json};

use crate::{
    accounts::{csrf_of, link_token, mail_body, wait_for_mail},
    support::{TestDb, random_kek},
};

/// Every step of the flow that produces a secret. The test fails unless each step registered at
/// least one secret, so this list is the hook for new ones: when the OAuth authorization-code
/// secret lands, add it here and call [`Secrets::produced`] where the flow obtains it (the response
/// that hands a secret out is its `origin`).
const SECRET_PRODUCING_STEPS: &[&str] = &[
    "KEK (process environment)",
    "second KEK (rewrap)",
    "client secret (oxbadge clients create)",
    "access token (client_secret_basic)",
    "client secret (POST /api/v1/clients)",
    "access token (client_secret_post)",
    "client secret (rotate-secret)",
    "access token (rotated secret)",
    "wrong client secret (presented, refused)",
    "staff password (POST /api/v1/users)",
    "registration password",
    "email verification token (mailed link)",
    "wrong password (sign-in refused)",
    "session cookie (sign-in)",
    "new password (JSON password change)",
    "password reset token (mailed link)",
    "password set by reset",
    "access token (after restart)",
    "registered client secret (POST /oauth/register)",
    "registration access token (POST /oauth/register)",
    "authorization code (consent redirect)",
    "PKCE code verifier (token request)",
    "user access token (authorization_code grant)",
    "refresh token (authorization_code grant)",
    "rotated refresh token (refresh_token grant)",
    "user access token (refresh_token grant)",
    "private keys (decrypted from the database at the end)",
];

const ALL_SCOPES: &str = "issuers:read issuers:write keys:manage credentials:issue credentials:read credentials:status credentials:verify admin";

/// One secret: what produced it, the forms it could be written in, and the labels of the
/// outputs that hand it out by design (where finding it is not a leak).
struct Secret {
    step: &'static str,
    forms: Vec<Vec<u8>>,
    origins: Vec<String>,
}

#[derive(Default)]
struct Secrets(Vec<Secret>);

impl Secrets {
    /// A text secret (and, if different, its form-urlencoded and JSON-escaped forms).
    fn produced(&mut self, step: &'static str, value: &str, origins: &[&str]) {
        assert!(
            value.len() >= 12,
            "{step}: a secret this short would match by chance"
        );
        let mut forms = vec![value.as_bytes().to_vec()];
        let encoded: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
        let json = serde_json::to_string(value).unwrap();
        for f in [encoded, json.trim_matches('"').to_owned()] {
            if !forms.contains(&f.clone().into_bytes()) {
                forms.push(f.into_bytes());
            }
        }
        self.push(step, forms, origins);
    }

    /// Key material: raw, hex, base64 and base64url (padded or not), base58btc, and multibase
    /// multikey with `multicodec` (Ed25519 / P-256 private key codes).
    fn key_bytes(&mut self, step: &'static str, bytes: &[u8], multicodec: Option<[u8; 2]>) {
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        let mut forms = vec![
            bytes.to_vec(),
            hex::encode(bytes).into_bytes(),
            hex::encode_upper(bytes).into_bytes(),
            STANDARD.encode(bytes).into_bytes(),
            STANDARD_NO_PAD.encode(bytes).into_bytes(),
            URL_SAFE.encode(bytes).into_bytes(),
            URL_SAFE_NO_PAD.encode(bytes).into_bytes(),
            bs58::encode(bytes).into_string().into_bytes(),
        ];
        if let Some(code) = multicodec {
            let mut prefixed = code.to_vec();
            prefixed.extend_from_slice(bytes);
            forms.push(format!("z{}", bs58::encode(&prefixed).into_string()).into_bytes());
        }
        forms.dedup();
        self.push(step, forms, &[]);
    }

    fn push(&mut self, step: &'static str, forms: Vec<Vec<u8>>, origins: &[&str]) {
        assert!(
            SECRET_PRODUCING_STEPS.contains(&step),
            "unlisted step {step}"
        );
        self.0.push(Secret {
            step,
            forms,
            origins: origins.iter().map(|o| (*o).to_owned()).collect(),
        });
    }
}

/// Everything the flow could leak into, by label.
#[derive(Default)]
struct Haystacks {
    /// (label, bytes): process output (logs), response bodies, CLI output, database.
    items: Vec<(String, Vec<u8>)>,
}

impl Haystacks {
    fn add(&mut self, label: impl Into<String>, bytes: Vec<u8>) {
        self.items.push((label.into(), bytes));
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The real `oxbadge serve` at `trace`, every byte of its output kept.
struct Server {
    child: Child,
    base: String,
    output: Arc<Mutex<Vec<u8>>>,
}

fn oxbadge_bin() -> String {
    std::env::var("OXBADGE_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_oxbadge").to_owned())
}

fn env_for(cmd: &mut Command, db: &TestDb, keks: &str, active: &str) {
    cmd.env("OXBADGE_DATA_DIR", db.data_dir.path())
        .env("DATABASE_URL", &db.url)
        .env("OXBADGE_KEK", keks)
        .env("OXBADGE_ACTIVE_KEK", active)
        .env("OXBADGE_LOG", "trace")
        .env("OXBADGE_LOG_FORMAT", "json")
        .env_remove("OXBADGE_SMTP_URL")
        .env_remove("RUST_LOG");
}

impl Server {
    /// Starts `serve` on `listen` (`127.0.0.1:0`: any port).
    fn start(db: &TestDb, keks: &str, active: &str, listen: &str) -> Server {
        let mut cmd = Command::new(oxbadge_bin());
        cmd.arg("serve").env("OXBADGE_LISTEN", listen);
        env_for(&mut cmd, db, keks, active);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the oxbadge binary starts");
        let output = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let (output, tx) = (output.clone(), tx.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut line = Vec::new();
                while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                    output.lock().unwrap().extend_from_slice(&line);
                    let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
                    line.clear();
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        let base = loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| {
                    panic!(
                        "the server did not start:\n{}",
                        String::from_utf8_lossy(&output.lock().unwrap())
                    )
                });
            if let Some(addr) = line
                .strip_prefix("oxbadge listening on ")
                .and_then(|rest| rest.split_whitespace().next())
            {
                break format!("http://{addr}");
            }
        };
        Server {
            child,
            base,
            output,
        }
    }

    /// Stops the server and returns all it wrote.
    fn stop(mut self) -> Vec<u8> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Let the reader threads drain the pipes.
        std::thread::sleep(Duration::from_millis(200));
        std::mem::take(&mut *self.output.lock().unwrap())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs an `oxbadge` command at trace level; returns (stdout, stderr).
fn cli(db: &TestDb, keks: &str, active: &str, args: &[&str]) -> (Vec<u8>, Vec<u8>) {
    let mut cmd = Command::new(oxbadge_bin());
    cmd.args(args);
    env_for(&mut cmd, db, keks, active);
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "oxbadge {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.stdout, out.stderr)
}

/// The HTTP side of the flow: every response body is kept under a label.
struct Flow {
    http: Client,
    base: String,
    bodies: Vec<(String, Vec<u8>)>,
}

impl Flow {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends `req`; returns status, the `Set-Cookie` pair (if any), the body and its label.
    async fn send(&mut self, label: &str, req: RequestBuilder) -> Reply {
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let cookie = resp
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_owned());
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp.bytes().await.unwrap().to_vec();
        let label = format!("response #{} ({label})", self.bodies.len());
        self.bodies.push((label.clone(), body.clone()));
        Reply {
            status,
            cookie,
            location,
            body,
            label,
        }
    }

    async fn get(&mut self, path: &str, cookie: Option<&str>) -> Reply {
        let mut req = self.http.get(self.url(path));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        self.send(&format!("GET {path}"), req).await
    }

    async fn form(&mut self, path: &str, cookie: &str, form: &[(&str, &str)]) -> Reply {
        let req = self
            .http
            .post(self.url(path))
            .header("cookie", cookie)
            .form(form);
        self.send(&format!("POST {path}"), req).await
    }

    async fn json(
        &mut self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Value,
    ) -> Reply {
        let req = self
            .http
            .request(method.clone(), self.url(path))
            .bearer_auth(token)
            .json(&body);
        self.send(&format!("{method} {path}"), req).await
    }

    /// A page and its CSRF token, with the cookie to use from then on.
    async fn page(&mut self, path: &str, cookie: Option<&str>) -> (String, String, Reply) {
        let reply = self.get(path, cookie).await;
        assert_eq!(reply.status, 200, "GET {path}");
        let cookie = reply
            .cookie
            .clone()
            .or_else(|| cookie.map(str::to_owned))
            .expect("a cookie");
        let csrf = csrf_of(&reply.text());
        (cookie, csrf, reply)
    }

    async fn token_basic(&mut self, id: &str, secret: &str) -> Reply {
        self.token_form(
            "POST /oauth/token (basic)",
            id,
            secret,
            &[("grant_type", "client_credentials")],
        )
        .await
    }

    /// `POST /oauth/token` with HTTP Basic client authentication and `form`.
    async fn token_form(
        &mut self,
        label: &'static str,
        id: &str,
        secret: &str,
        form: &[(&str, &str)],
    ) -> Reply {
        let req = self
            .http
            .post(self.url("/oauth/token"))
            .basic_auth(id, Some(secret))
            .form(form);
        self.send(label, req).await
    }

    async fn token_post(&mut self, id: &str, secret: &str, scope: &str) -> Reply {
        let req = self.http.post(self.url("/oauth/token")).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("scope", scope),
        ]);
        self.send("POST /oauth/token (post)", req).await
    }
}

struct Reply {
    status: StatusCode,
    cookie: Option<String>,
    /// The `Location` header (a redirect's target; an authorization code travels in it).
    location: Option<String>,
    body: Vec<u8>,
    label: String,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("{}: not JSON: {}", self.label, self.text()))
    }

    fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{}: {}",
            self.label,
            self.text()
        );
        self
    }
}

/// The session cookie's value in a `name=value` pair.
fn cookie_value(pair: &str) -> &str {
    pair.split_once('=').map_or(pair, |(_, v)| v)
}

/// The database as bytes: the SQLite files, or every PostgreSQL row as text.
async fn database_bytes(db: &TestDb) -> Vec<(String, Vec<u8>)> {
    if db.url.starts_with("sqlite:") {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(db.data_dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("oxbadge.db") {
                files.push((
                    format!("database file {name}"),
                    std::fs::read(&path).unwrap(),
                ));
            }
        }
        assert!(!files.is_empty(), "no SQLite file found");
        files
    } else {
        let conn = Database::connect(&db.url).await.unwrap();
        let backend = conn.get_database_backend();
        let tables = conn
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT table_name::text AS t FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
            ))
            .await
            .unwrap();
        let mut dump = Vec::new();
        for row in tables {
            let table: String = row.try_get("", "t").unwrap();
            let rows = conn
                .query_all_raw(Statement::from_string(
                    backend,
                    format!(
                        "SELECT coalesce(string_agg(x::text, E'\\n'), '') AS d FROM \"{table}\" x"
                    ),
                ))
                .await
                .unwrap();
            for r in rows {
                let text: String = r.try_get("", "d").unwrap();
                dump.push((format!("PostgreSQL table {table}"), text.into_bytes()));
            }
        }
        conn.close().await.unwrap();
        dump
    }
}

/// Every private key in the database, decrypted with `keks` (Ed25519 seeds and P-256 scalars).
async fn private_keys(db: &TestDb, keks: &str, active: &str) -> Vec<(Vec<u8>, [u8; 2])> {
    use oxbadge::keys::{envelope, store::KeyStore};
    let ring = envelope::KekRing::new(envelope::parse_kek_list(keks).unwrap(), active).unwrap();
    let store = KeyStore::new(ring);
    let conn = Database::connect(&db.url).await.unwrap();
    let rows = oxbadge::db::signing_key::Entity::find()
        .all(&conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    rows.iter()
        .map(|row| match store.decrypt(row) {
            Ok(key) => (key.to_bytes().to_vec(), [0x80, 0x26]),
            Err(_) => (
                store.decrypt_p256(row).unwrap().to_bytes().to_vec(),
                [0x86, 0x26],
            ),
        })
        .collect()
}

#[tokio::test]
async fn no_secret_reaches_a_log_an_error_body_or_the_database() {
    let db = TestDb::create().await;
    let mut secrets = Secrets::default();
    let mut hay = Haystacks::default();
    let kek1 = random_kek("k1");
    secrets.produced("KEK (process environment)", &kek1, &[]);
    let kek1_bytes = base64::engine::general_purpose::STANDARD
        .decode(kek1.split_once(':').unwrap().1)
        .unwrap();
    secrets.key_bytes("KEK (process environment)", &kek1_bytes, None);

    // An admin client from the CLI (the one place its secret is printed).
    let (out, err) = cli(
        &db,
        &kek1,
        "k1",
        &[
            "clients",
            "create",
            "--name",
            "secrets-admin",
            "--scopes",
            ALL_SCOPES,
            "--json",
        ],
    );
    let created: Value = serde_json::from_slice(&out).unwrap();
    let admin_id = created["client_id"].as_str().unwrap().to_owned();
    let admin_secret = created["client_secret"].as_str().unwrap().to_owned();
    hay.add("oxbadge clients create: stdout", out);
    hay.add("oxbadge clients create: stderr", err);
    secrets.produced(
        "client secret (oxbadge clients create)",
        &admin_secret,
        &["oxbadge clients create: stdout"],
    );

    let server = Server::start(&db, &kek1, "k1", "127.0.0.1:0");
    let mut flow = Flow {
        http: Client::builder()
            .redirect(Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
        base: server.base.clone(),
        bodies: Vec::new(),
    };
    let reply = flow.token_basic(&admin_id, &admin_secret).await.expect(200);
    let admin = reply.json()["access_token"].as_str().unwrap().to_owned();
    secrets.produced(
        "access token (client_secret_basic)",
        &admin,
        &[&reply.label],
    );

    // Clients: create, token (client_secret_post), regenerate the secret, token again.
    let reply = flow
        .json(
            reqwest::Method::POST,
            "/api/v1/clients",
            &admin,
            json!({"name": "school back end", "scopes": ["issuers:read", "credentials:issue"]}),
        )
        .await
        .expect(201);
    let client_id = reply.json()["clientId"].as_str().unwrap().to_owned();
    let first_secret = reply.json()["clientSecret"].as_str().unwrap().to_owned();
    secrets.produced(
        "client secret (POST /api/v1/clients)",
        &first_secret,
        &[&reply.label],
    );
    let reply = flow
        .token_post(&client_id, &first_secret, "issuers:read")
        .await
        .expect(200);
    let client_token = reply.json()["access_token"].as_str().unwrap().to_owned();
    secrets.produced(
        "access token (client_secret_post)",
        &client_token,
        &[&reply.label],
    );
    let reply = flow
        .json(
            reqwest::Method::POST,
            &format!("/api/v1/clients/{client_id}/rotate-secret"),
            &admin,
            json!({}),
        )
        .await
        .expect(200);
    let second_secret = reply.json()["clientSecret"].as_str().unwrap().to_owned();
    secrets.produced(
        "client secret (rotate-secret)",
        &second_secret,
        &[&reply.label],
    );
    // The old secret and its token stop at once; both are refused without echoing them.
    flow.token_post(&client_id, &first_secret, "issuers:read")
        .await
        .expect(401);
    flow.json(
        reqwest::Method::GET,
        "/api/v1/issuers",
        &client_token,
        json!({}),
    )
    .await
    .expect(401);
    let wrong = format!("oxbcs_{}", hex::encode(rand::random::<[u8; 24]>()));
    secrets.produced("wrong client secret (presented, refused)", &wrong, &[]);
    flow.token_basic(&client_id, &wrong).await.expect(401);
    let reply = flow
        .token_post(&client_id, &second_secret, "issuers:read")
        .await
        .expect(200);
    let rotated_token = reply.json()["access_token"].as_str().unwrap().to_owned();
    secrets.produced(
        "access token (rotated secret)",
        &rotated_token,
        &[&reply.label],
    );
    flow.json(
        reqwest::Method::GET,
        "/api/v1/issuers",
        &rotated_token,
        json!({}),
    )
    .await
    .expect(200);

    // Issuers, issuance (every proof format), a batch, key rotation, revocation, verification.
    let post = reqwest::Method::POST;
    let issuer = flow
        .json(
            post.clone(),
            "/api/v1/issuers",
            &admin,
            json!({"name": "Secret Keeping School", "url": "https://school.example"}),
        )
        .await
        .expect(201)
        .json();
    let issuer_id = issuer["id"].as_str().unwrap().to_owned();
    let achievement = flow
        .json(
            post.clone(),
            &format!("/api/v1/issuers/{issuer_id}/achievements"),
            &admin,
            json!({"name": "Discretion", "description": "Keeps secrets.", "criteria": {"narrative": "Tell nobody."}}),
        )
        .await
        .expect(201)
        .json();
    let achievement_id = achievement["id"].as_str().unwrap().to_owned();
    let di = flow
        .json(
            post.clone(),
            "/api/v1/credentials",
            &admin,
            json!({"achievementId": achievement_id, "recipient": {"email": "ada@example.com"}}),
        )
        .await
        .expect(201)
        .json();
    let eddsa_jwt = flow
        .json(post.clone(), "/api/v1/credentials", &admin, json!({"achievementId": achievement_id, "recipient": {"email": "grace@example.com"}, "proofFormat": "jwt"}))
        .await
        .expect(201)
        .json();
    flow.json(post.clone(), "/api/v1/credentials", &admin, json!({"achievementId": achievement_id, "recipient": {"id": "did:example:learner-42"}, "proofFormat": "jwt", "jwtAlgorithm": "ES256"}))
        .await
        .expect(201);
    flow.send(
        "POST /api/v1/credentials/batch",
        flow.http
            .post(flow.url("/api/v1/credentials/batch"))
            .bearer_auth(&admin)
            .header("idempotency-key", "secrets-batch-1")
            .json(&json!({"achievementId": achievement_id, "recipients": [{"email": "b1@example.com"}, {"email": "b2@example.com"}]})),
    )
    .await;
    flow.json(
        post.clone(),
        &format!("/api/v1/issuers/{issuer_id}/keys/rotate"),
        &admin,
        json!({}),
    )
    .await
    .expect(200);
    let revoked_id = eddsa_jwt["id"].as_str().unwrap().to_owned();
    flow.json(
        post.clone(),
        &format!("/api/v1/credentials/{revoked_id}/status"),
        &admin,
        json!({"purpose": "revocation", "status": true, "reason": "issued in error"}),
    )
    .await
    .expect(200);
    let report = flow
        .send(
            "POST /api/v1/verify (Data Integrity)",
            flow.http
                .post(flow.url("/api/v1/verify"))
                .json(&di["credential"]),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(report["outcome"], "verified", "{report}");
    let report = flow
        .send(
            "POST /api/v1/verify (JWT)",
            flow.http
                .post(flow.url("/api/v1/verify"))
                .header("content-type", "text/plain")
                .body(eddsa_jwt["jwt"].as_str().unwrap().to_owned()),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(report["outcome"], "revoked", "{report}");

    // People: staff created by an admin, self-service registration confirmed by the mailed link.
    let staff_password = format!(
        "staff passphrase {}",
        hex::encode(rand::random::<[u8; 8]>())
    );
    secrets.produced("staff password (POST /api/v1/users)", &staff_password, &[]);
    flow.json(
        post.clone(),
        "/api/v1/users",
        &admin,
        json!({"email": "staff@example.com", "displayName": "Staff", "password": staff_password}),
    )
    .await
    .expect(201);
    let password = format!(
        "first passphrase {}",
        hex::encode(rand::random::<[u8; 8]>())
    );
    secrets.produced("registration password", &password, &[]);
    let (anon, csrf, _) = flow.page("/account/register", None).await;
    flow.form(
        "/account/register",
        &anon,
        &[
            ("csrf", &csrf),
            ("display_name", "Ada"),
            ("email", "ada@example.com"),
            ("password", &password),
        ],
    )
    .await
    .expect(200);
    let outbox = db.data_dir.path().join("outbox");
    let mail = wait_for_mail(&outbox, "Subject: Confirm your email address").await;
    let verify_token = link_token(&mail_body(&mail), "/account/verify-email");
    let (cookie, csrf, page) = flow
        .page(
            &format!("/account/verify-email?token={verify_token}"),
            Some(&anon),
        )
        .await;
    // The confirmation page carries the token in its form (it was in the link).
    secrets.produced(
        "email verification token (mailed link)",
        &verify_token,
        &[&page.label],
    );
    flow.form(
        "/account/verify-email",
        &cookie,
        &[("csrf", &csrf), ("token", &verify_token)],
    )
    .await
    .expect(303);

    // Sign-in: a wrong password first, then the right one.
    let wrong_password = format!(
        "not my passphrase {}",
        hex::encode(rand::random::<[u8; 8]>())
    );
    secrets.produced("wrong password (sign-in refused)", &wrong_password, &[]);
    let (anon, csrf, _) = flow.page("/account/sign-in", None).await;
    flow.form(
        "/account/sign-in",
        &anon,
        &[
            ("csrf", &csrf),
            ("email", "ada@example.com"),
            ("password", &wrong_password),
        ],
    )
    .await
    .expect(401);
    let reply = flow
        .form(
            "/account/sign-in",
            &anon,
            &[
                ("csrf", &csrf),
                ("email", "ada@example.com"),
                ("password", &password),
            ],
        )
        .await
        .expect(303);
    let session = reply.cookie.clone().unwrap();
    secrets.produced("session cookie (sign-in)", cookie_value(&session), &[]);

    // JSON account endpoints: who am I, change the password, sessions.
    let me = flow
        .send(
            "GET /api/v1/account",
            flow.http
                .get(flow.url("/api/v1/account"))
                .header("cookie", &session),
        )
        .await
        .expect(200)
        .json();
    let json_csrf = me["csrfToken"].as_str().unwrap().to_owned();
    let new_password = format!(
        "second passphrase {}",
        hex::encode(rand::random::<[u8; 8]>())
    );
    secrets.produced("new password (JSON password change)", &new_password, &[]);
    flow.send(
        "POST /api/v1/account/password (wrong current)",
        flow.http
            .post(flow.url("/api/v1/account/password"))
            .header("cookie", &session)
            .header("x-csrf-token", &json_csrf)
            .json(&json!({"currentPassword": wrong_password, "newPassword": new_password})),
    )
    .await;
    flow.send(
        "POST /api/v1/account/password",
        flow.http
            .post(flow.url("/api/v1/account/password"))
            .header("cookie", &session)
            .header("x-csrf-token", &json_csrf)
            .json(&json!({"currentPassword": password, "newPassword": new_password})),
    )
    .await
    .expect(204);
    let (anon, csrf, _) = flow.page("/account/sign-in", None).await;
    let reply = flow
        .form(
            "/account/sign-in",
            &anon,
            &[
                ("csrf", &csrf),
                ("email", "ada@example.com"),
                ("password", &new_password),
            ],
        )
        .await
        .expect(303);
    let second_session = reply.cookie.clone().unwrap();
    secrets.produced(
        "session cookie (sign-in)",
        cookie_value(&second_session),
        &[],
    );
    let (anon, csrf, _) = flow.page("/account/sign-in", None).await;
    let reply = flow
        .form(
            "/account/sign-in",
            &anon,
            &[
                ("csrf", &csrf),
                ("email", "ada@example.com"),
                ("password", &new_password),
            ],
        )
        .await
        .expect(303);
    let third_session = reply.cookie.clone().unwrap();
    secrets.produced(
        "session cookie (sign-in)",
        cookie_value(&third_session),
        &[],
    );
    let me = flow
        .send(
            "GET /api/v1/account",
            flow.http
                .get(flow.url("/api/v1/account"))
                .header("cookie", &second_session),
        )
        .await
        .expect(200)
        .json();
    let sessions = flow
        .send(
            "GET /api/v1/account/sessions",
            flow.http
                .get(flow.url("/api/v1/account/sessions"))
                .header("cookie", &second_session),
        )
        .await
        .expect(200)
        .json();
    let other = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .unwrap();
    flow.send(
        "DELETE /api/v1/account/sessions/{id}",
        flow.http
            .delete(flow.url(&format!("/api/v1/account/sessions/{other}")))
            .header("cookie", &second_session)
            .header("x-csrf-token", me["csrfToken"].as_str().unwrap()),
    )
    .await
    .expect(204);

    // Password reset by the mailed link.
    let (anon, csrf, _) = flow.page("/account/forgot-password", None).await;
    flow.form(
        "/account/forgot-password",
        &anon,
        &[("csrf", &csrf), ("email", "ada@example.com")],
    )
    .await
    .expect(200);
    let mail = wait_for_mail(&outbox, "Subject: Reset your password").await;
    let reset_token = link_token(&mail_body(&mail), "/account/reset-password");
    let (cookie, csrf, page) = flow
        .page(
            &format!("/account/reset-password?token={reset_token}"),
            None,
        )
        .await;
    let weak = flow
        .form(
            "/account/reset-password",
            &cookie,
            &[
                ("csrf", &csrf),
                ("token", &reset_token),
                ("password", "short"),
            ],
        )
        .await
        .expect(422);
    // The reset page, and its answer to a weak password, carry the token in their form.
    secrets.produced(
        "password reset token (mailed link)",
        &reset_token,
        &[&page.label, &weak.label],
    );
    let reset_password = format!(
        "third passphrase {}",
        hex::encode(rand::random::<[u8; 8]>())
    );
    secrets.produced("password set by reset", &reset_password, &[]);
    flow.form(
        "/account/reset-password",
        &cookie,
        &[
            ("csrf", &csrf),
            ("token", &reset_token),
            ("password", &reset_password),
        ],
    )
    .await
    .expect(303);
    let (anon, csrf, _) = flow.page("/account/sign-in", None).await;
    let reply = flow
        .form(
            "/account/sign-in",
            &anon,
            &[
                ("csrf", &csrf),
                ("email", "ada@example.com"),
                ("password", &reset_password),
            ],
        )
        .await
        .expect(303);
    let last_session = reply.cookie.clone().unwrap();
    secrets.produced("session cookie (sign-in)", cookie_value(&last_session), &[]);

    // The OAuth authorization-code flow: a wallet registers, the person consents, the wallet
    // exchanges the code, refreshes, and revokes.
    let ob = "https://purl.imsglobal.org/spec/ob/v3p0/scope/";
    let reply = flow
        .send(
            "POST /oauth/register",
            flow.http.post(flow.url("/oauth/register")).json(&json!({
                "client_name": "Secret Wallet",
                "client_uri": "https://wallet.example.org/",
                "logo_uri": "https://wallet.example.org/logo.png",
                "tos_uri": "https://wallet.example.org/terms",
                "policy_uri": "https://wallet.example.org/privacy",
                "software_id": "secret-wallet",
                "software_version": "1.0",
                "redirect_uris": ["https://wallet.example.org/cb"],
                "scope": format!("{ob}profile.readonly offline_access"),
            })),
        )
        .await
        .expect(201);
    let wallet = reply.json();
    let wallet_id = wallet["client_id"].as_str().unwrap().to_owned();
    let wallet_secret = wallet["client_secret"].as_str().unwrap().to_owned();
    secrets.produced(
        "registered client secret (POST /oauth/register)",
        &wallet_secret,
        &[&reply.label],
    );
    secrets.produced(
        "registration access token (POST /oauth/register)",
        wallet["registration_access_token"].as_str().unwrap(),
        &[&reply.label],
    );
    let verifier = format!("secret-flow-verifier-{}", cuid2::create_id());
    secrets.produced("PKCE code verifier (token request)", &verifier, &[]);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(<sha2::Sha256 as sha2::Digest>::digest(verifier.as_bytes()));
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("response_type", "code"),
        ("client_id", wallet_id.as_str()),
        ("redirect_uri", "https://wallet.example.org/cb"),
        ("scope", &format!("{ob}profile.readonly offline_access")),
        ("state", "secret-state"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ] {
        query.append_pair(k, v);
    }
    let authorize = format!("/oauth/authorize?{}", query.finish());
    let consent = flow.get(&authorize, Some(&last_session)).await.expect(200);
    let page = consent.text();
    let mut fields = crate::oauth_code_flow::hidden_fields(&page);
    fields.push(("decision".into(), "approve".into()));
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let approved = flow
        .form("/oauth/consent", &last_session, &pairs)
        .await
        .expect(303);
    let location = approved.location.clone().expect("a redirect with the code");
    let code = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    secrets.produced("authorization code (consent redirect)", &code, &[]);
    let reply = flow
        .token_form(
            "POST /oauth/token (authorization_code)",
            &wallet_id,
            &wallet_secret,
            &[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", "https://wallet.example.org/cb"),
                ("code_verifier", verifier.as_str()),
            ],
        )
        .await
        .expect(200);
    let tokens = reply.json();
    secrets.produced(
        "user access token (authorization_code grant)",
        tokens["access_token"].as_str().unwrap(),
        &[&reply.label],
    );
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    secrets.produced(
        "refresh token (authorization_code grant)",
        &refresh_token,
        &[&reply.label],
    );
    flow.json(
        reqwest::Method::GET,
        "/ims/ob/v3p0/profile",
        tokens["access_token"].as_str().unwrap(),
        json!(null),
    )
    .await
    .expect(200);
    let refresh_form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
    ];
    let reply = flow
        .token_form(
            "POST /oauth/token (refresh_token)",
            &wallet_id,
            &wallet_secret,
            &refresh_form,
        )
        .await
        .expect(200);
    let rotated = reply.json();
    secrets.produced(
        "rotated refresh token (refresh_token grant)",
        rotated["refresh_token"].as_str().unwrap(),
        &[&reply.label],
    );
    secrets.produced(
        "user access token (refresh_token grant)",
        rotated["access_token"].as_str().unwrap(),
        &[&reply.label],
    );
    // A replayed refresh token is refused (and ends the family): its error body names no secret.
    flow.token_form(
        "POST /oauth/token (replayed refresh token)",
        &wallet_id,
        &wallet_secret,
        &refresh_form,
    )
    .await
    .expect(400);
    flow.send(
        "POST /oauth/revoke",
        flow.http
            .post(flow.url("/oauth/revoke"))
            .basic_auth(&wallet_id, Some(&wallet_secret))
            .form(&[("token", rotated["refresh_token"].as_str().unwrap())]),
    )
    .await
    .expect(200);

    let (_, csrf, _) = flow.page("/account", Some(&last_session)).await;
    flow.form("/account/sign-out", &last_session, &[("csrf", &csrf)])
        .await
        .expect(303);
    hay.add("server output (first run)", server.stop());

    // KEK rewrap: a second KEK becomes active; every key is re-encrypted under it.
    let kek2 = random_kek("k2");
    secrets.produced("second KEK (rewrap)", &kek2, &[]);
    let kek2_bytes = base64::engine::general_purpose::STANDARD
        .decode(kek2.split_once(':').unwrap().1)
        .unwrap();
    secrets.key_bytes("second KEK (rewrap)", &kek2_bytes, None);
    let keks = format!("{kek2},{kek1}");
    let (out, err) = cli(&db, &keks, "k2", &["keys", "rewrap"]);
    assert!(
        String::from_utf8_lossy(&out).contains("re-wrapped"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    hay.add("oxbadge keys rewrap: stdout", out);
    hay.add("oxbadge keys rewrap: stderr", err);

    // After the rewrap: the keys still sign and verify; a new rotation is sealed under k2.
    // The same address again: the issuers' DIDs and list URLs name it.
    let listen = flow.base.trim_start_matches("http://").to_owned();
    let server = Server::start(&db, &keks, "k2", &listen);
    flow.base = server.base.clone();
    // A fresh client: the old one's pooled connections went to the stopped server.
    flow.http = Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let reply = flow.token_basic(&admin_id, &admin_secret).await.expect(200);
    let admin = reply.json()["access_token"].as_str().unwrap().to_owned();
    secrets.produced("access token (after restart)", &admin, &[&reply.label]);
    let report = flow
        .send(
            "POST /api/v1/verify (after rewrap)",
            flow.http
                .post(flow.url("/api/v1/verify"))
                .json(&di["credential"]),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(report["outcome"], "verified", "{report}");
    flow.json(
        post.clone(),
        &format!("/api/v1/issuers/{issuer_id}/keys/rotate"),
        &admin,
        json!({}),
    )
    .await
    .expect(200);
    flow.json(
        post.clone(),
        "/api/v1/credentials",
        &admin,
        json!({"achievementId": achievement_id, "recipient": {"email": "late@example.com"}}),
    )
    .await
    .expect(201);
    hay.add("server output (after the rewrap)", server.stop());

    // The private keys, as the flow left them (Ed25519 and P-256, retired ones included).
    let keys = private_keys(&db, &keks, "k2").await;
    assert!(keys.len() >= 4, "{} keys", keys.len());
    for (bytes, codec) in &keys {
        secrets.key_bytes(
            "private keys (decrypted from the database at the end)",
            bytes,
            Some(*codec),
        );
    }

    // Every step produced its secrets (the hook above stays honest).
    for step in SECRET_PRODUCING_STEPS {
        assert!(
            secrets.0.iter().any(|s| s.step == *step),
            "no secret from step {step}"
        );
    }
    for (label, body) in flow.bodies.drain(..) {
        hay.add(label, body);
    }
    for (label, bytes) in database_bytes(&db).await {
        hay.add(label, bytes);
    }
    let server_output: Vec<u8> = hay
        .items
        .iter()
        .filter(|(l, _)| l.starts_with("server output"))
        .flat_map(|(_, b)| b.iter().copied())
        .collect();
    let logged = server_output.len();
    let below_info = String::from_utf8_lossy(&server_output)
        .lines()
        .filter(|l| l.contains("\"level\":\"DEBUG\"") || l.contains("\"level\":\"TRACE\""))
        .count();
    let mut leaks = Vec::new();
    for secret in &secrets.0 {
        for (label, bytes) in &hay.items {
            if secret.origins.iter().any(|o| o == label) {
                continue;
            }
            for form in &secret.forms {
                if let Some(at) = find(bytes, form) {
                    let from = at.saturating_sub(80);
                    let to = (at + form.len() + 80).min(bytes.len());
                    let context = String::from_utf8_lossy(&bytes[from..to])
                        .replace(&*String::from_utf8_lossy(form), "<SECRET>");
                    leaks.push(format!("{} in {label}: …{context}…", secret.step));
                    break;
                }
            }
        }
    }
    eprintln!(
        "secrets: {} secrets ({} forms) from {} steps, looked for in {} outputs ({} bytes of server output at trace, {} debug/trace lines)",
        secrets.0.len(),
        secrets.0.iter().map(|s| s.forms.len()).sum::<usize>(),
        SECRET_PRODUCING_STEPS.len(),
        hay.items.len(),
        logged,
        below_info
    );
    assert!(
        leaks.is_empty(),
        "{} leaks:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}
