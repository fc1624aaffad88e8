//! Crash safety: the real `oxbadge` binary under concurrent issuance, batch, revocation and
//! suspension load is killed with SIGKILL at random moments (20 times by default) and restarted on
//! the same database. Afterwards every credential whose 201 the client received is stored and
//! verifies, every acknowledged status change is in the status lists and the 1EdTech list, no
//! status index was handed out twice, acknowledged batches replay their answer, and the database
//! passes `oxbadge db check` (integrity_check / amcheck).
//!
//! `OXBADGE_CRASH_KILLS` (default 20) and `OXBADGE_CRASH_BIN` (default: the debug binary of this
//! test build) make it longer or run it against a release build; `tests/crash/run.sh` does both.

use std::{
    collections::{HashMap, HashSet},
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::Rng;
use reqwest::Client;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::{
    ops::{cli, oxbadge_bin},
    support::{TestDb, random_kek},
};

/// Everything the clients were told, and everything they tried without an answer.
#[derive(Default)]
struct Ledger {
    /// Acknowledged credentials (201): id → credential.
    issued: HashMap<String, Value>,
    /// Acknowledged batches: idempotency key → (request body, ids in the answer).
    batches: HashMap<String, (Value, Vec<String>)>,
    /// Batches sent without an answer (the server died).
    unanswered_batches: Vec<(String, Value)>,
    revoke_tried: HashSet<String>,
    revoked: HashSet<String>,
    suspend_tried: HashSet<String>,
    suspended: HashSet<String>,
    /// Requests sent that got no answer (the server died with them in flight), by kind.
    lost: HashMap<&'static str, u64>,
}

struct Run {
    bin: PathBuf,
    url: String,
    data_dir: PathBuf,
    kek: String,
    port: u16,
    log: PathBuf,
}

impl Run {
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the server and waits until it listens; returns it and the admin client printed on
    /// the first start.
    fn start(&self) -> (Child, Option<(String, String)>) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut child = Command::new(&self.bin)
            .arg("--database-url")
            .arg(&self.url)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--public-url", &self.base()])
            .env("OXBADGE_KEK", &self.kek)
            .env("OXBADGE_STATUS_SHAPE", "bitstring-both")
            .env("OXBADGE_AUTH_RATE_LIMIT_PER_MINUTE", "1000000")
            .env("OXBADGE_AUTH_RATE_LIMIT_BURST", "100000")
            .env("OXBADGE_VERIFY_RATE_LIMIT_PER_MINUTE", "10000000")
            .env("OXBADGE_VERIFY_RATE_LIMIT_BURST", "10000000")
            .env("OXBADGE_DB_MAX_CONNECTIONS", "8")
            .env("OXBADGE_LOG", "warn")
            .env("OXBADGE_LOG_FORMAT", "pretty")
            .env_remove("OXBADGE_CONFIG")
            .env_remove("DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (mut id, mut secret) = (None, None);
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(v) = line.strip_prefix("client_id:") {
                    id = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("client_secret:") {
                    secret = Some(v.trim().to_owned());
                } else if line.starts_with("oxbadge listening on") && !sent {
                    sent = true;
                    let _ = tx.send(id.take().zip(secret.take()));
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(admin) => (child, admin),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the server did not start; log:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn token(http: &Client, base: &str, admin: &(String, String)) -> Option<String> {
    let resp = http
        .post(format!("{base}/oauth/token"))
        .basic_auth(&admin.0, Some(&admin.1))
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "scope",
                "issuers:write credentials:issue credentials:read credentials:status",
            ),
        ])
        .send()
        .await
        .ok()?;
    let body: Value = resp.json().await.ok()?;
    body["access_token"].as_str().map(str::to_owned)
}

/// The server is down (connection refused): nothing was sent; wait a little instead of spinning.
async fn refused() {
    tokio::time::sleep(Duration::from_millis(5)).await;
}

/// A request was sent and no answer came: it may or may not have been applied.
fn lose(ledger: &Mutex<Ledger>, kind: &'static str) {
    *ledger.lock().unwrap().lost.entry(kind).or_insert(0) += 1;
}

/// One client kind, looping until `stop`.
async fn worker(
    kind: &'static str,
    http: Client,
    base: String,
    token: String,
    achievement: String,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let tag = format!("{kind}-{}-{n}", rand::random::<u32>());
        match kind {
            "single" => {
                let sent = http
                    .post(format!("{base}/api/v1/credentials"))
                    .bearer_auth(&token)
                    .json(&json!({"achievementId": achievement,
                        "recipient": {"id": format!("did:example:{tag}")}}))
                    .send()
                    .await;
                match sent {
                    Ok(resp) if resp.status() == 201 => match resp.json::<Value>().await {
                        Ok(body) => {
                            let id = body["id"].as_str().unwrap().to_owned();
                            ledger
                                .lock()
                                .unwrap()
                                .issued
                                .insert(id, body["credential"].clone());
                        }
                        Err(_) => lose(&ledger, kind),
                    },
                    Ok(resp) => panic!("single issuance: {}", resp.status()),
                    Err(e) if e.is_connect() => refused().await,
                    Err(_) => lose(&ledger, kind),
                }
            }
            "batch" => {
                let body = json!({"achievementId": achievement, "recipients": (0..5)
                    .map(|i| json!({"id": format!("did:example:{tag}-{i}")}))
                    .collect::<Vec<_>>()});
                let sent = http
                    .post(format!("{base}/api/v1/credentials/batch"))
                    .bearer_auth(&token)
                    .header("Idempotency-Key", &tag)
                    .json(&body)
                    .send()
                    .await;
                let answer = match sent {
                    Ok(resp) if resp.status() == 201 => resp.json::<Value>().await.ok(),
                    Ok(resp) => panic!("batch: {}", resp.status()),
                    Err(e) if e.is_connect() => {
                        refused().await;
                        continue;
                    }
                    Err(_) => None,
                };
                let mut ledger = ledger.lock().unwrap();
                match answer {
                    Some(result) => {
                        let mut ids = Vec::new();
                        for item in result["results"].as_array().unwrap() {
                            let id = item["id"].as_str().unwrap().to_owned();
                            ledger.issued.insert(id.clone(), item["credential"].clone());
                            ids.push(id);
                        }
                        ledger.batches.insert(tag, (body, ids));
                    }
                    None => {
                        *ledger.lost.entry(kind).or_insert(0) += 1;
                        ledger.unanswered_batches.push((tag, body));
                    }
                }
            }
            "revoke" | "suspend" => {
                let picked = {
                    let mut ledger = ledger.lock().unwrap();
                    let busy: HashSet<String> = ledger
                        .revoke_tried
                        .union(&ledger.suspend_tried)
                        .cloned()
                        .collect();
                    let free: Vec<String> = ledger
                        .issued
                        .keys()
                        .filter(|id| !busy.contains(*id))
                        .take(64)
                        .cloned()
                        .collect();
                    let pick = (!free.is_empty())
                        .then(|| free[rand::thread_rng().gen_range(0..free.len())].clone());
                    if let Some(id) = &pick {
                        if kind == "revoke" {
                            ledger.revoke_tried.insert(id.clone());
                        } else {
                            ledger.suspend_tried.insert(id.clone());
                        }
                    }
                    pick
                };
                let Some(id) = picked else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let purpose = if kind == "revoke" {
                    "revocation"
                } else {
                    "suspension"
                };
                let sent = http
                    .post(format!("{base}/api/v1/credentials/{id}/status"))
                    .bearer_auth(&token)
                    .json(&json!({"purpose": purpose, "status": true, "reason": "crash test"}))
                    .send()
                    .await;
                match sent {
                    Ok(resp) if resp.status().is_success() => {
                        let mut ledger = ledger.lock().unwrap();
                        if kind == "revoke" {
                            ledger.revoked.insert(id);
                        } else {
                            ledger.suspended.insert(id);
                        }
                    }
                    Ok(resp) => panic!("{kind}: {}", resp.status()),
                    Err(e) if e.is_connect() => refused().await,
                    Err(_) => lose(&ledger, kind),
                }
                // Status changes are a fraction of the issuance load.
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            _ => unreachable!(),
        }
    }
}

/// Whether bit `index` of a status list's `encodedList` is set (gunzip and test, independently
/// of the server's bitstring code).
fn bit(encoded: &str, index: usize) -> bool {
    use std::io::Read;
    let compressed = URL_SAFE_NO_PAD
        .decode(encoded.trim_start_matches('u'))
        .unwrap();
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(compressed.as_slice())
        .read_to_end(&mut bytes)
        .unwrap();
    bytes[index / 8] & (0x80 >> (index % 8)) != 0
}

/// The (list URL, index) of a credential's status entry for `purpose`.
fn entry_of(credential: &Value, purpose: &str) -> (String, usize) {
    let entries = match &credential["credentialStatus"] {
        Value::Array(a) => a.clone(),
        one => vec![one.clone()],
    };
    let entry = entries
        .iter()
        .find(|e| e["statusPurpose"] == purpose)
        .unwrap_or_else(|| panic!("no {purpose} entry in {credential}"));
    (
        entry["statusListCredential"].as_str().unwrap().to_owned(),
        entry["statusListIndex"].as_str().unwrap().parse().unwrap(),
    )
}

#[tokio::test]
async fn sigkill_under_load_loses_nothing_that_was_acknowledged() {
    let kills: usize = std::env::var("OXBADGE_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let bin = std::env::var("OXBADGE_CRASH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(oxbadge_bin()));
    let db = TestDb::create().await;
    let run = Run {
        bin,
        url: db.url.clone(),
        data_dir: db.data_dir.path().to_path_buf(),
        kek: random_kek("crash-kek"),
        port: free_port(),
        log: db.data_dir.path().join("server.log"),
    };
    let started = Instant::now();
    let (mut child, admin) = run.start();
    let admin = admin.expect("the first start prints the admin client");
    let base = run.base();
    let http = Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let setup_token = token(&http, &base, &admin).await.unwrap();
    let issuer: Value = http
        .post(format!("{base}/api/v1/issuers"))
        .bearer_auth(&setup_token)
        .json(&json!({"name": "Crash University"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let issuer_cuid = issuer["id"].as_str().unwrap().to_owned();
    let achievement: Value = http
        .post(format!("{base}/api/v1/issuers/{issuer_cuid}/achievements"))
        .bearer_auth(&setup_token)
        .json(
            &json!({"name": "Survivor", "description": "Outlived a SIGKILL.",
            "criteria": {"narrative": "Be issued while the server dies."}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let achievement = achievement["id"].as_str().unwrap().to_owned();

    let ledger: Arc<Mutex<Ledger>> = Arc::default();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_entropy();
    for life in 0..kills {
        if life > 0 {
            child = run.start().0;
        }
        // A fresh client per life: pooled connections to the dead process are gone.
        let http = Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let token = token(&http, &base, &admin)
            .await
            .expect("a token after restart");
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = ["single", "single", "batch", "revoke", "suspend"]
            .into_iter()
            .map(|kind| {
                tokio::spawn(worker(
                    kind,
                    http.clone(),
                    base.clone(),
                    token.clone(),
                    achievement.clone(),
                    ledger.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.gen_range(150..1200))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Let the clients notice, then stop them.
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.await.unwrap();
        }
    }

    // The last restart, then the audit.
    let (mut child, _) = run.start();
    let http = Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let token = token(&http, &base, &admin).await.unwrap();
    let ledger = Arc::try_unwrap(ledger).ok().unwrap().into_inner().unwrap();
    let conn = oxbadge::db::connect(&run.url, 2).await.unwrap();
    let rows = oxbadge::db::credential::Entity::find()
        .all(&conn)
        .await
        .unwrap();
    let stored: HashMap<&str, &oxbadge::db::credential::Model> =
        rows.iter().map(|r| (r.id.as_str(), r)).collect();

    // 1. Every acknowledged credential is stored, unchanged, and verifies with the right verdict.
    let mut verdicts: HashMap<String, u64> = HashMap::new();
    for (id, credential) in &ledger.issued {
        let row = stored
            .get(id.as_str())
            .unwrap_or_else(|| panic!("acknowledged credential {id} was lost"));
        let document: Value = serde_json::from_str(&row.document).unwrap();
        assert_eq!(&document, credential, "credential {id} changed");
        let report: Value = http
            .post(format!("{base}/api/v1/verify"))
            .json(&document)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let outcome = report["outcome"].as_str().unwrap().to_owned();
        let allowed: &[&str] = if ledger.revoked.contains(id) {
            &["revoked"]
        } else if ledger.suspended.contains(id) {
            &["suspended"]
        } else if ledger.revoke_tried.contains(id) {
            &["verified", "revoked"]
        } else if ledger.suspend_tried.contains(id) {
            &["verified", "suspended"]
        } else {
            &["verified"]
        };
        assert!(
            allowed.contains(&outcome.as_str()),
            "{id}: {outcome}, expected one of {allowed:?}: {report:#}"
        );
        *verdicts.entry(outcome).or_insert(0) += 1;
    }

    // 2. No status index was handed out twice, in the documents or in the status entries.
    let mut slots = HashSet::new();
    for row in &rows {
        let document: Value = serde_json::from_str(&row.document).unwrap();
        for purpose in ["revocation", "suspension"] {
            let slot = entry_of(&document, purpose);
            assert!(
                slots.insert(slot.clone()),
                "status slot {slot:?} assigned twice"
            );
        }
    }
    let entries = oxbadge::db::status_entry::Entity::find()
        .all(&conn)
        .await
        .unwrap();
    let mut per_credential: HashMap<&str, u32> = HashMap::new();
    for e in &entries {
        *per_credential.entry(e.credential_id.as_str()).or_insert(0) += 1;
    }
    assert!(
        per_credential.values().all(|&n| n == 2),
        "every credential holds exactly one revocation and one suspension index"
    );
    assert_eq!(per_credential.len(), rows.len());

    // 3. Acknowledged status changes are in the next status-list read and the 1EdTech list.
    let mut lists: HashMap<String, String> = HashMap::new();
    for (id, credential) in &ledger.issued {
        for (purpose, done, tried) in [
            ("revocation", &ledger.revoked, &ledger.revoke_tried),
            ("suspension", &ledger.suspended, &ledger.suspend_tried),
        ] {
            let (url, index) = entry_of(credential, purpose);
            if !lists.contains_key(&url) {
                let list: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
                let encoded = list["credentialSubject"]["encodedList"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                lists.insert(url.clone(), encoded);
            }
            let set = bit(&lists[&url], index);
            if done.contains(id) {
                assert!(set, "acknowledged {purpose} of {id} is not in {url}");
            } else if !tried.contains(id) {
                assert!(!set, "{id} has a {purpose} bit nobody asked for");
            }
        }
    }
    let revocations: Value = http
        .get(format!("{base}/revocations/{issuer_cuid}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed: HashSet<&str> = revocations["revokedCredential"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    for id in &ledger.revoked {
        let uri = ledger.issued[id]["id"].as_str().unwrap();
        assert!(
            listed.contains(uri),
            "acknowledged revocation of {id} is not in the 1EdTech list"
        );
    }
    let tried_uris: HashSet<&str> = ledger
        .revoke_tried
        .iter()
        .filter_map(|id| stored.get(id.as_str()))
        .map(|r| r.credential_uri.as_str())
        .collect();
    assert!(
        listed.iter().all(|u| tried_uris.contains(u)),
        "a revocation nobody asked for"
    );

    // 4. Acknowledged batches replay their answer; unanswered ones are not left half-done.
    for (key, (body, ids)) in ledger.batches.iter().take(20) {
        let resp = http
            .post(format!("{base}/api/v1/credentials/batch"))
            .bearer_auth(&token)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
        let result: Value = resp.json().await.unwrap();
        let replayed: Vec<&str> = result["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap())
            .collect();
        assert_eq!(&replayed, ids, "batch {key} replayed another answer");
    }
    // An unanswered batch committed either with its answer or not at all: a key still pending has
    // no credential behind it, and a retry with the same key (once the dead worker's lease has
    // run out) returns the committed answer or issues the batch exactly once.
    tokio::time::sleep(
        oxbadge::db::idempotency_key::LEASE.to_std().unwrap() + Duration::from_secs(1),
    )
    .await;
    let mut half_done = 0;
    let mut retried = 0;
    for (key, body) in ledger.unanswered_batches.iter().take(20) {
        let row = oxbadge::db::idempotency_key::Entity::find()
            .filter(oxbadge::db::idempotency_key::Column::Key.eq(key.as_str()))
            .one(&conn)
            .await
            .unwrap();
        let before = batch_credentials(&conn, key).await;
        if row.as_ref().is_some_and(|r| r.response.is_empty()) && before > 0 {
            half_done += 1;
            eprintln!("idempotency key {key} pending with {before} credential(s) committed");
        }
        let resp = http
            .post(format!("{base}/api/v1/credentials/batch"))
            .bearer_auth(&token)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_success(),
            "retry of unanswered batch {key}: {}",
            resp.status()
        );
        let result: Value = resp.json().await.unwrap();
        assert_eq!(result["results"].as_array().unwrap().len(), 5);
        assert_eq!(
            batch_credentials(&conn, key).await,
            5,
            "batch {key} issued more or less than once after its retry"
        );
        retried += 1;
    }
    assert_eq!(half_done, 0, "idempotency keys left half-done");
    eprintln!("crash test: {retried} unanswered batch(es) retried, each issued exactly once");
    conn.close().await.unwrap();

    // 5. The database is intact: integrity_check + foreign keys (SQLite) or amcheck (PostgreSQL).
    let out = cli(
        &run.url,
        Path::new(&run.data_dir),
        &["db", "check", "--json"],
    )
    .await;
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert!(
        out.status.success(),
        "db check: {report:#} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for item in report["items"].as_array().unwrap() {
        assert!(
            item["outcome"] == "ok" || (item["name"] == "amcheck" && item["outcome"] == "skipped"),
            "{item}"
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let lost: u64 = ledger.lost.values().sum();
    eprintln!(
        "crash test ({}): {kills} SIGKILLs in {:.1} s; acknowledged {} credentials ({} in {} batches), \
         {} revocations, {} suspensions; {} requests unanswered ({:?}); {} stored; verdicts {:?}; \
         {} status slots, all distinct; {} status lists read; {} pending idempotency keys; db check: {}",
        if run.url.starts_with("postgres") {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        started.elapsed().as_secs_f64(),
        ledger.issued.len(),
        ledger
            .batches
            .values()
            .map(|(_, ids)| ids.len())
            .sum::<usize>(),
        ledger.batches.len(),
        ledger.revoked.len(),
        ledger.suspended.len(),
        lost,
        ledger.lost,
        rows.len(),
        verdicts,
        slots.len(),
        lists.len(),
        half_done,
        report["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| format!(
                "{} {}",
                i["name"].as_str().unwrap(),
                i["outcome"].as_str().unwrap()
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(
        ledger.issued.len() > kills,
        "the load did issue credentials"
    );
    assert!(!ledger.revoked.is_empty() && !ledger.suspended.is_empty());
    drop(db);
}

/// Stored credentials issued to the recipients of the crash test's batch `key`.
async fn batch_credentials(conn: &sea_orm::DatabaseConnection, key: &str) -> u64 {
    oxbadge::db::credential::Entity::find()
        .filter(oxbadge::db::credential::Column::Document.contains(format!("did:example:{key}-")))
        .count(conn)
        .await
        .unwrap()
}
