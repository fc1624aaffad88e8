//! Issue 12, state under crashes and races: a batch's idempotency survives a SIGKILL in its commit
//! window (real binary, restarted on the same database), key revocation racing rotation ends
//! revoked with one active key, two instances on one database never fill a status list past the
//! ratio, and a batch whose every item failed answers 422 with its per-item results.

use std::{
    collections::{HashMap, HashSet},
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use reqwest::{Client, StatusCode};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, EntityTrait};
use serde_json::{Value, json};

use crate::{
    issuance::issuer_with_achievement,
    keys::create_issuer,
    support::{TestApp, TestDb, assert_problem, random_kek},
};

/// The real `oxbadge serve` as a child process on a test database.
struct Server {
    child: Child,
    base: String,
    lines: mpsc::Receiver<String>,
}

impl Server {
    /// Starts the binary on `db` with `kek`, plus extra environment; waits until it listens.
    fn start(db: &TestDb, kek: &str, extra_env: &[(&str, &str)]) -> (Server, Vec<String>) {
        // OXBADGE_TEST_BIN: a copy of this build's binary, for machines where several branches
        // share one target directory (and so one target/debug/oxbadge).
        let bin = std::env::var("OXBADGE_TEST_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_oxbadge").to_owned());
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .env("OXBADGE_LISTEN", "127.0.0.1:0")
            .env("OXBADGE_DATA_DIR", db.data_dir.path())
            .env("DATABASE_URL", &db.url)
            .env("OXBADGE_KEK", kek)
            .env("OXBADGE_LOG", "warn")
            .env("OXBADGE_LOG_FORMAT", "pretty")
            .env("OXBADGE_AUTH_RATE_LIMIT_PER_MINUTE", "100000")
            .env("OXBADGE_AUTH_RATE_LIMIT_BURST", "10000")
            .env_remove("OXBADGE_TEST_ONLY_BATCH_PAUSE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the oxbadge binary starts");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx2.send(line);
            }
        });
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let base = loop {
            let line = lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| {
                    panic!("the server did not start; output:\n{}", seen.join("\n"))
                });
            if let Some(addr) = line
                .strip_prefix("oxbadge listening on ")
                .and_then(|rest| rest.split_whitespace().next())
            {
                break format!("http://{addr}");
            }
            seen.push(line);
        };
        (Server { child, base, lines }, seen)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Waits for an output line containing `needle`.
    fn wait_for(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let line = self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| {
                    panic!("no `{needle}` in the server output:\n{}", seen.join("\n"))
                });
            if line.contains(needle) {
                return;
            }
            seen.push(line);
        }
    }

    /// SIGKILL: no shutdown, no flush, no rollback but the database's own.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The admin client the first start printed.
fn bootstrap_admin(lines: &[String]) -> (String, String) {
    let field = |name: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no `{name}` in {lines:?}"))
    };
    (field("client_id:"), field("client_secret:"))
}

async fn admin_token(http: &Client, server: &Server, admin: &(String, String)) -> String {
    let resp = http
        .post(server.url("/oauth/token"))
        .basic_auth(&admin.0, Some(&admin.1))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "issuers:write credentials:issue credentials:read"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn count(db: &DatabaseConnection, table: &str) -> i64 {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM {table}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

/// One crash round: the batch is SIGKILLed at `point` of its commit window, the server restarts
/// on the same database, and the retry with the same key gets the first result, issued once.
async fn crash_round(point: &str) {
    const N: usize = 40;
    let db = TestDb::create().await;
    let kek = random_kek("crash-kek");
    let pause = format!("{point}:60000");
    let (server, first_lines) =
        Server::start(&db, &kek, &[("OXBADGE_TEST_ONLY_BATCH_PAUSE", &pause)]);
    let admin = bootstrap_admin(&first_lines);
    let http = Client::builder()
        .timeout(Duration::from_secs(90))
        .build()
        .unwrap();
    let token = admin_token(&http, &server, &admin).await;
    let issuer = {
        let resp = http
            .post(server.url("/api/v1/issuers"))
            .bearer_auth(&token)
            .json(&json!({"name": "Crash University", "url": "https://crash.example.edu"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        resp.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let achievement = {
        let resp = http
            .post(server.url(&format!("/api/v1/issuers/{issuer}/achievements")))
            .bearer_auth(&token)
            .json(&json!({"name": "Resilience", "description": "Survives crashes.", "criteria": {"narrative": "Be killed and come back."}}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        resp.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let recipients: Vec<Value> = (0..N)
        .map(|i| json!({"email": format!("crash{i}@example.edu")}))
        .collect();
    let body = json!({"achievementId": achievement, "recipients": recipients});
    let send = |base: String, token: String| {
        let (http, body) = (http.clone(), body.clone());
        async move {
            http.post(format!("{base}/api/v1/credentials/batch"))
                .bearer_auth(token)
                .header("Idempotency-Key", "crash-key")
                .json(&body)
                .send()
                .await
        }
    };
    let in_flight = tokio::spawn(send(server.base.clone(), token.clone()));
    server.wait_for("pausing (test hook)", Duration::from_secs(60));
    server.kill();
    assert!(
        in_flight.await.unwrap().is_err(),
        "the killed server never answered"
    );

    let conn = Database::connect(&db.url).await.unwrap();
    let committed = count(&conn, "credentials").await;
    match point {
        "before-commit" => assert_eq!(committed, 0, "nothing committed before the commit"),
        _ => assert_eq!(committed, N as i64, "the batch committed before the kill"),
    }

    let restarted_at = Instant::now();
    let (server, _) = Server::start(&db, &kek, &[]);
    let token = admin_token(&http, &server, &admin).await;
    // A key whose worker died is taken over once its lease (a few seconds) runs out.
    let (status, first) = loop {
        let resp = send(server.base.clone(), token.clone()).await.unwrap();
        let status = resp.status();
        if status == StatusCode::CONFLICT {
            assert_eq!(
                point, "before-commit",
                "an answered key is replayed at once"
            );
            assert_problem(resp, 409, "idempotency_in_progress").await;
            assert!(
                restarted_at.elapsed() < Duration::from_secs(15),
                "the dead worker's key was not taken over"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        break (status, resp.json::<Value>().await.unwrap());
    };
    let waited = restarted_at.elapsed();
    eprintln!("{point}: retry answered {status} {waited:?} after the restart");
    match point {
        "before-commit" => assert_eq!(status, StatusCode::CREATED, "{first}"),
        _ => assert_eq!(
            status,
            StatusCode::OK,
            "the stored answer is replayed: {first}"
        ),
    }
    assert_eq!(first["issued"], N, "{first}");
    assert_eq!(first["failed"], 0, "{first}");
    let ids: HashSet<String> = first["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), N);
    // Stored exactly once, and the answer names exactly the stored credentials.
    assert_eq!(count(&conn, "credentials").await, N as i64, "no duplicates");
    let stored: HashSet<String> = oxbadge::db::credential::Entity::find()
        .all(&conn)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(stored, ids);
    let again = send(server.base.clone(), token.clone()).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(count(&conn, "credentials").await, N as i64);
    conn.close().await.unwrap();
    server.kill();
}

// Multi-threaded: the test blocks a thread reading the server's output while the batch is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_killed_before_its_commit_is_taken_over_after_restart_and_issued_once() {
    crash_round("before-commit").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_killed_after_its_commit_replays_its_first_answer_after_restart() {
    crash_round("after-commit").await;
}

#[tokio::test]
async fn a_batch_whose_every_item_failed_answers_422_with_its_results() {
    let app = TestApp::spawn().await;
    let token = app.token("issuers:write credentials:issue").await;
    let (_, achievement) = issuer_with_achievement(&app, &token).await;
    let send = |body: Value, key: Option<&'static str>| {
        let mut req = app
            .http
            .post(app.url("/api/v1/credentials/batch"))
            .bearer_auth(&token)
            .json(&body);
        if let Some(key) = key {
            req = req.header("Idempotency-Key", key);
        }
        req.send()
    };
    let bad = json!({"achievementId": achievement, "recipients": [{"email": "broken"}, {"id": "not a uri"}, {}]});
    for key in [None, Some("all-failed")] {
        let resp = send(bad.clone(), key).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{key:?}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["issued"], 0, "{body}");
        assert_eq!(body["failed"], 3, "{body}");
        for (i, item) in body["results"].as_array().unwrap().iter().enumerate() {
            assert_eq!(item["index"], i);
            assert_eq!(item["error"]["status"], 422, "{item}");
            assert!(item.get("id").is_none(), "absent, not null: {item}");
        }
    }
    // Nothing was issued under the key, so it was not spent: a corrected request may use it.
    let good =
        json!({"achievementId": achievement, "recipients": [{"email": "fixed@example.edu"}]});
    let resp = send(good.clone(), Some("all-failed")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = send(good, Some("all-failed")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // One good item among bad ones is still a 201.
    let mixed = json!({"achievementId": achievement, "recipients": [{"email": "broken"}, {"email": "ok@example.edu"}]});
    let resp = send(mixed, None).await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn key_revocation_racing_rotation_always_ends_revoked_with_one_active_key() {
    let app = TestApp::spawn().await;
    let token = app.token("issuers:read issuers:write keys:manage").await;
    let issuer = create_issuer(&app, &token, json!({"name": "Racing University"})).await;
    let issuer = issuer["id"].as_str().unwrap().to_owned();
    let keys = |issuer: String| {
        let (http, url, token) = (
            app.http.clone(),
            app.url(&format!("/api/v1/issuers/{issuer}/keys")),
            token.clone(),
        );
        async move {
            let body: Value = http
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body
        }
    };
    let list = |body: &Value| -> Vec<Value> {
        body.as_array()
            .or_else(|| body["items"].as_array())
            .or_else(|| body["keys"].as_array())
            .cloned()
            .unwrap_or_else(|| panic!("key list {body}"))
    };
    for round in 0..100 {
        let before = list(&keys(issuer.clone()).await);
        let active = before
            .iter()
            .find(|k| k["state"] == "active" && k["algorithm"] == "Ed25519")
            .unwrap_or_else(|| panic!("round {round}: no active key in {before:?}"))["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let rotate = app
            .http
            .post(app.url(&format!("/api/v1/issuers/{issuer}/keys/rotate")))
            .bearer_auth(&token)
            .send();
        let revoke = app
            .http
            .post(app.url(&format!("/api/v1/issuers/{issuer}/keys/{active}/revoke")))
            .bearer_auth(&token)
            .json(&json!({"reason": "compromised"}))
            .send();
        let (rotated, revoked) = tokio::join!(rotate, revoke);
        let (rotated, revoked) = (rotated.unwrap(), revoked.unwrap());
        assert_eq!(rotated.status(), StatusCode::OK, "round {round}: rotate");
        let revoked_status = revoked.status();
        let revoked: Value = revoked.json().await.unwrap();
        assert_eq!(
            revoked_status,
            StatusCode::OK,
            "round {round}: revoke {revoked}"
        );
        assert_eq!(revoked["state"], "revoked", "round {round}: {revoked}");
        let after = list(&keys(issuer.clone()).await);
        let state_of: HashMap<&str, &str> = after
            .iter()
            .map(|k| (k["id"].as_str().unwrap(), k["state"].as_str().unwrap()))
            .collect();
        assert_eq!(state_of[active.as_str()], "revoked", "round {round}");
        let actives = after
            .iter()
            .filter(|k| k["state"] == "active" && k["algorithm"] == "Ed25519")
            .count();
        assert_eq!(actives, 1, "round {round}: {after:?}");
    }
}

#[tokio::test]
async fn two_instances_allocating_at_once_never_fill_a_list_past_the_ratio() {
    // 0.002 of 131,072 entries: 262 per list, so a few hundred credentials cross several lists.
    const RATIO: f64 = 0.002;
    let limit =
        oxbadge::status::allocator::fill_limit(oxbadge::status::allocator::LIST_SIZE, RATIO);
    let a = TestApp::spawn_with(|s| s.status_list_fill_ratio = RATIO).await;
    let mut settings = crate::support::test_settings(a.db());
    settings.kek = a.state.settings().kek.clone();
    settings.status_list_fill_ratio = RATIO;
    let b = TestApp::spawn_on(TestDb::shared(a.db()), settings).await;
    let token_a = a.token("issuers:write credentials:issue").await;
    let token_b = b
        .token_for(&a.admin_id, &a.admin_secret, "credentials:issue")
        .await;
    let (_, achievement) = issuer_with_achievement(&a, &token_a).await;
    let mut tasks = Vec::new();
    for round in 0..24 {
        for (app, token) in [(&a, &token_a), (&b, &token_b)] {
            let (http, url, token, achievement) = (
                app.http.clone(),
                app.url("/api/v1/credentials/batch"),
                token.clone(),
                achievement.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let recipients: Vec<Value> = (0..25)
                    .map(|i| json!({"id": format!("did:example:r{round}-{i}-{}", url.len())}))
                    .collect();
                let resp = http
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({"achievementId": achievement, "recipients": recipients, "proofFormat": "jwt"}))
                    .send()
                    .await
                    .unwrap();
                resp.status()
            }));
        }
    }
    for task in tasks {
        let status = task.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "a batch was not issued");
    }
    let lists = oxbadge::db::status_list::Entity::find()
        .all(a.state.db())
        .await
        .unwrap();
    let entries = oxbadge::db::status_entry::Entity::find()
        .all(a.state.db())
        .await
        .unwrap();
    let mut per_list: HashMap<&str, i32> = HashMap::new();
    for e in &entries {
        *per_list.entry(e.list_id.as_str()).or_default() += 1;
    }
    assert_eq!(entries.len(), 2 * 24 * 2 * 25, "one slot per purpose each");
    for list in &lists {
        let used = per_list.get(list.id.as_str()).copied().unwrap_or(0);
        assert_eq!(used, list.allocated, "list {} counter", list.id);
        assert!(
            used <= limit,
            "list {} holds {used} entries, over its limit {limit}",
            list.id
        );
    }
    assert!(lists.len() >= 8, "the load crossed several lists");
}
