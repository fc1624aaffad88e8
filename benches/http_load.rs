//! HTTP load test: a real oxbadge on loopback with SQLite in a temporary directory, driven by
//! keep-alive clients. Bounded in time and count; prints a Markdown table.
//!
//! Two drivers:
//! - `wrk` (the default when `wrk` is on `PATH`; Debian package `wrk`): a separate process with one
//!   thread and `LOAD_CLIENTS` connections, scripted in Lua per scenario (a fresh recipient per
//!   issuance, 256 different credentials to verify, successes counted from the response bodies).
//!   The server keeps the bench process to itself, as in production.
//! - `reqwest`: keep-alive `reqwest` clients inside the bench process, sharing the runtime and the
//!   cores with the server (the only driver before 2026-11-23; heavier per request than `wrk`).
//!
//! Each row also gives the CPU the server process and the driver used, in cores (CPU seconds per
//! wall second, from `/proc/self/stat`; the `wrk` child's from the waited-for children's times).
//!
//! Run: `cargo bench --bench http_load` (environment: `LOAD_DRIVER` = `wrk` | `reqwest`;
//! `LOAD_SECS`, default 10; `LOAD_CLIENTS`, default 32; `LOAD_POSTGRES`, a PostgreSQL server URL
//! such as `postgres://postgres@127.0.0.1:5432` to run on a fresh database there instead of
//! SQLite; `OXBADGE_LOG`, when set, installs the
//! service's JSON log subscriber with that filter (e.g. `info` to include the per-request access
//! log; send stderr to a file); `LOAD_HOLD_SECS`, when set, keeps the server up that long
//! afterwards and prints a status-list URL, so another load generator can be pointed at it).
//!
//! The poison rows run together: issuance as in the first row while 64 in-process clients send
//! poison graphs (9-node blank-node cliques) to the public verifier.
//!
//! The sign-in flood rows (issue 13): the cached status-list read and issuance are measured
//! without, then during, a flood of wrong-password sign-ins by 64 in-process clients, each from
//! its own loopback address (127.0.0.2 …) so the per-address limit (default 30 a minute) applies
//! as it would to 64 attackers; every attempt costs one Argon2id verification (16 real accounts,
//! soon locked, which are still hashed, and unknown addresses, checked against the dummy hash).
//! The summary line gives the issuance rate during the flood as a share of the rate before it.
//! `LOAD_ONLY=signin-flood` runs only these rows (after one issuance that creates a status list).
//!
//! The OAuth rows (issue 14; `LOAD_ONLY=oauth`, wrk only): `client_credentials` tokens, then a
//! dynamically registered confidential client exchanging pre-minted authorization codes (one code
//! per request, PKCE S256, each a real `authorization_codes` row made for a signed-up user),
//! rotating pre-minted refresh tokens (each obtained by a real code exchange), and introspecting a
//! user-bound access token. Every request writes or reads the database as in production; the
//! summary line compares each rate with its target.

use std::{
    io::Write as _,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};

/// One scenario's result.
struct Row {
    name: String,
    requests: usize,
    errors: usize,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    server_cores: f64,
    driver_cores: f64,
}

impl Row {
    fn markdown(&self) -> String {
        format!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
            self.name,
            self.requests,
            self.errors,
            self.requests as f64 / self.seconds,
            self.p50_ms,
            self.p99_ms,
            self.server_cores,
            self.driver_cores,
        )
    }
}

/// CPU seconds so far: (this process, its waited-for children), from `/proc/self/stat`.
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // utime, stime, cutime, cstime are fields 14–17, i.e. 11–14 after the command name.
    let tick = 100.0; // USER_HZ on Linux
    let get = |i: usize| f.get(i).copied().unwrap_or(0.0) / tick;
    (get(11) + get(12), get(13) + get(14))
}

/// Runs `clients` loops of `call` inside this process for `secs` seconds.
async fn drive<F, Fut>(name: &str, clients: usize, secs: u64, call: F) -> Row
where
    F: Fn(reqwest::Client, usize) -> Fut + Send + Sync + 'static + Clone,
    Fut: std::future::Future<Output = bool> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let cpu = cpu_seconds();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let stop = stop.clone();
        let call = call.clone();
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .unwrap();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut err, mut lat) = (0usize, 0usize, Vec::new());
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                if call(http.clone(), c * 1_000_000 + i).await {
                    ok += 1;
                } else {
                    err += 1;
                }
                lat.push(t.elapsed());
                i += 1;
            }
            (ok, err, lat)
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut requests, mut errors, mut latencies) = (0, 0, Vec::new());
    for t in tasks {
        let (ok, err, lat) = t.await.unwrap();
        requests += ok;
        errors += err;
        latencies.extend(lat);
    }
    let seconds = started.elapsed().as_secs_f64();
    let used = cpu_seconds().0 - cpu.0;
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Row {
        name: name.into(),
        requests,
        errors,
        seconds,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        // Server and clients share the process: all of it is reported as the server's.
        server_cores: used / seconds,
        driver_cores: 0.0,
    }
}

/// The Lua shared by every `wrk` scenario: counts failures per thread (a scenario's `check`
/// decides what a success is) and prints one machine-readable summary line.
const WRK_COMMON: &str = r#"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) failures = 0; n = 0 end
function response(status, headers, body)
  if not check(status, body) then failures = failures + 1 end
end
function done(summary, latency, requests)
  local f = 0
  for _, t in ipairs(threads) do f = f + t:get("failures") end
  local e = summary.errors
  io.write(string.format("OXBADGE requests=%d duration_us=%d failures=%d socket_errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, f, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"#;

/// A Lua long-string literal holding `s` (a level of `=` that `s` does not contain).
fn lua_string(s: &str) -> String {
    let mut level = String::new();
    while s.contains(&format!("]{level}]")) {
        level.push('=');
    }
    format!("[{level}[{s}]{level}]")
}

/// Runs `wrk` (one thread, `clients` connections) for `secs` seconds against `base` with the
/// scenario's Lua `script` (which defines `request` and `check`).
fn drive_wrk(name: &str, base: &str, clients: usize, secs: u64, script: &str) -> Row {
    let mut file = tempfile::Builder::new().suffix(".lua").tempfile().unwrap();
    file.write_all(script.as_bytes()).unwrap();
    file.write_all(WRK_COMMON.as_bytes()).unwrap();
    file.flush().unwrap();
    let cpu = cpu_seconds();
    let started = Instant::now();
    let out = std::process::Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{clients}"),
            &format!("-d{secs}s"),
            "--timeout",
            "10s",
        ])
        .arg("-s")
        .arg(file.path())
        .arg(base)
        .output()
        .expect("wrk runs");
    let seconds = started.elapsed().as_secs_f64();
    let (server, driver) = cpu_seconds();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("OXBADGE "))
        .unwrap_or_else(|| {
            panic!(
                "wrk printed no summary:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let field = |k: &str| -> f64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let total = field("requests") as usize;
    let errors = field("failures") as usize + field("socket_errors") as usize;
    let measured = field("duration_us") / 1e6;
    Row {
        name: name.into(),
        requests: total.saturating_sub(errors),
        errors,
        seconds: measured,
        p50_ms: field("p50_us") / 1000.0,
        p99_ms: field("p99_us") / 1000.0,
        server_cores: (server - cpu.0) / seconds,
        driver_cores: (driver - cpu.1) / seconds,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Driver {
    Wrk,
    Reqwest,
}

#[tokio::main]
async fn main() {
    let secs: u64 = std::env::var("LOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let clients: usize = std::env::var("LOAD_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let wrk_found = std::process::Command::new("wrk").arg("-v").output().is_ok();
    let driver = match std::env::var("LOAD_DRIVER").as_deref() {
        Ok("reqwest") => Driver::Reqwest,
        Ok("wrk") => {
            assert!(
                wrk_found,
                "LOAD_DRIVER=wrk but wrk is not on PATH (apt-get install wrk)"
            );
            Driver::Wrk
        }
        _ if wrk_found => Driver::Wrk,
        _ => Driver::Reqwest,
    };
    if let Ok(filter) = std::env::var("OXBADGE_LOG") {
        oxbadge::telemetry::init(oxbadge::config::LogFormat::Json, &filter);
    }
    let hold_secs: u64 = std::env::var("LOAD_HOLD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let dir = tempfile::tempdir().unwrap();
    // `LOAD_POSTGRES=postgres://user@host:port` runs the same scenarios on a fresh PostgreSQL
    // database (created here, dropped at the end) instead of SQLite.
    let postgres = std::env::var("LOAD_POSTGRES")
        .ok()
        .filter(|v| !v.is_empty())
        .map(|base| base.trim_end_matches('/').to_owned());
    let pg_database = postgres.as_ref().map(|_| {
        format!(
            "oxbadge_load_{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
        )
    });
    if let (Some(base), Some(name)) = (&postgres, &pg_database) {
        use sea_orm::ConnectionTrait;
        let admin = sea_orm::Database::connect(format!("{base}/postgres"))
            .await
            .unwrap();
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap();
        admin.close().await.unwrap();
    }
    let settings = oxbadge::Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        // SQLite keeps a generated KEK in the data directory; a shared database needs one given.
        kek: postgres.as_ref().map(|_| {
            use base64::Engine;
            let bytes: [u8; 32] = rand::random();
            secrecy::SecretString::from(format!(
                "load-kek:{}",
                base64::engine::general_purpose::STANDARD.encode(bytes)
            ))
        }),
        database_url: postgres
            .as_ref()
            .zip(pg_database.as_ref())
            .map(|(base, name)| format!("{base}/{name}")),
        log: "error".into(),
        auth_rate_limit_per_minute: 1_000_000,
        auth_rate_limit_burst: 1_000_000,
        db_max_connections: 16,
        // Credentials carry their bitstring entries, so the list URL is at hand.
        status_shape: oxbadge::ob::StatusShape::BitstringBoth,
        verify_rate_limit_per_minute: 1_000_000_000,
        verify_rate_limit_burst: 1_000_000_000,
        ..Default::default()
    };
    let mut app = oxbadge::App::build(settings).await.unwrap();
    let admin = app.take_bootstrap_admin().unwrap();
    let base = format!("http://{}", app.local_addr());
    let state = app.state().clone();
    tokio::spawn(app.run_until(std::future::pending()));
    let http = reqwest::Client::new();
    use secrecy::ExposeSecret;
    let token: Value = http
        .post(format!("{base}/oauth/token"))
        .basic_auth(&admin.client_id, Some(admin.client_secret.expose_secret()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    let issuer: Value = http
        .post(format!("{base}/api/v1/issuers"))
        .bearer_auth(&token)
        .json(&json!({"name": "Load University"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let achievement: Value = http
        .post(format!("{base}/api/v1/issuers/{}/achievements", issuer["id"].as_str().unwrap()))
        .bearer_auth(&token)
        .json(&json!({"name": "Throughput", "description": "Issued under load.", "criteria": {"narrative": "Exist."}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let achievement_id = achievement["id"].as_str().unwrap().to_owned();

    let mut rows = Vec::new();
    if std::env::var("LOAD_ONLY").as_deref() == Ok("oauth") {
        assert!(
            driver == Driver::Wrk,
            "the OAuth rows need wrk (pre-minted codes and refresh tokens are read by its Lua)"
        );
        let summary = oauth_rows(
            &state,
            &base,
            &token,
            (&admin.client_id, admin.client_secret.expose_secret()),
            clients,
            secs,
            &mut rows,
        )
        .await;
        print_rows(&rows, clients, secs, driver, postgres.is_some());
        println!("\n{summary}");
        drop_postgres(&postgres, &pg_database).await;
        return;
    }
    let only_flood = std::env::var("LOAD_ONLY").as_deref() == Ok("signin-flood");
    if only_flood {
        let first: Value = http
            .post(format!("{base}/api/v1/credentials"))
            .bearer_auth(&token)
            .json(&json!({"achievementId": achievement_id, "recipient": {"email": "first@example.edu"}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let status_url = first["credential"]["credentialStatus"][0]["statusListCredential"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let load = Load {
            driver,
            base: base.clone(),
            token: token.clone(),
            achievement_id: achievement_id.clone(),
            status_url,
            clients,
            secs,
        };
        let summary = sign_in_flood(&load, &mut rows).await;
        print_rows(&rows, clients, secs, driver, postgres.is_some());
        println!("\n{summary}");
        drop_postgres(&postgres, &pg_database).await;
        return;
    }

    // Sustained single issuance (Data Integrity, email recipients, durable before 201).
    const ISSUE: &str = "POST /api/v1/credentials (eddsa-rdfc-2022)";
    rows.push(match driver {
        Driver::Wrk => {
            let script = format!(
                r#"
local headers = {{["Authorization"] = "Bearer " .. {token}, ["Content-Type"] = "application/json"}}
function request()
  n = n + 1
  return wrk.format("POST", "/api/v1/credentials", headers,
    '{{"achievementId":"' .. {achievement} .. '","recipient":{{"email":"learner' .. n .. '@example.edu"}}}}')
end
function check(status, body) return status == 201 end
"#,
                token = lua_string(&token),
                achievement = lua_string(&achievement_id),
            );
            let base = base.clone();
            tokio::task::spawn_blocking(move || drive_wrk(ISSUE, &base, clients, secs, &script))
                .await
                .unwrap()
        }
        Driver::Reqwest => {
            let (b, t, a) = (base.clone(), token.clone(), achievement_id.clone());
            drive(ISSUE, clients, secs, move |http, i| {
                let (b, t, a) = (b.clone(), t.clone(), a.clone());
                async move {
                    http.post(format!("{b}/api/v1/credentials"))
                        .bearer_auth(&t)
                        .json(&json!({"achievementId": a, "recipient": {"email": format!("learner{i}@example.edu")}}))
                        .send()
                        .await
                        .is_ok_and(|r| r.status() == 201)
                }
            })
            .await
        }
    });

    // One batch of 10,000.
    let recipients: Vec<Value> = (0..10_000)
        .map(|i| json!({"email": format!("batch{i}@example.edu")}))
        .collect();
    let started = Instant::now();
    let batch: Value = http
        .post(format!("{base}/api/v1/credentials/batch"))
        .bearer_auth(&token)
        .json(&json!({"achievementId": achievement_id, "recipients": recipients}))
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let batch_secs = started.elapsed().as_secs_f64();
    let issued = batch["issued"].as_u64().unwrap_or(0);
    let status_url =
        batch["results"][0]["credential"]["credentialStatus"][0]["statusListCredential"]
            .as_str()
            .unwrap_or_default()
            .to_owned();

    // Cached status list reads.
    const READ: &str = "GET /status/{list} (cached)";
    rows.push(match driver {
        Driver::Wrk => {
            let path = status_url
                .strip_prefix(&base)
                .unwrap_or(&status_url)
                .to_owned();
            let script = format!(
                r#"
local req = wrk.format("GET", {path})
function request() return req end
function check(status, body) return status == 200 end
"#,
                path = lua_string(&path)
            );
            let base = base.clone();
            tokio::task::spawn_blocking(move || drive_wrk(READ, &base, clients, secs, &script))
                .await
                .unwrap()
        }
        Driver::Reqwest => {
            let su = status_url.clone();
            drive(READ, clients, secs, move |http, _| {
                let su = su.clone();
                async move { http.get(&su).send().await.is_ok_and(|r| r.status() == 200) }
            })
            .await
        }
    });

    // Verification of our own credentials: keys and status from the database, no network.
    const VERIFY: &str = "POST /api/v1/verify (own credential, status from DB)";
    let bodies: Vec<String> = batch["results"]
        .as_array()
        .map(|r| {
            r.iter()
                .skip(5_000)
                .take(256)
                .map(|x| x["credential"].to_string())
                .collect()
        })
        .unwrap_or_default();
    const VERIFIED: &str = "\"outcome\":\"verified\"";
    rows.push(match driver {
        Driver::Wrk => {
            let list: Vec<String> = bodies.iter().map(|b| lua_string(b)).collect();
            let script = format!(
                r#"
local bodies = {{ {list} }}
local headers = {{["Content-Type"] = "application/json"}}
local reqs = {{}}
for i, b in ipairs(bodies) do reqs[i] = wrk.format("POST", "/api/v1/verify", headers, b) end
function request()
  n = n + 1
  return reqs[(n % #reqs) + 1]
end
function check(status, body) return status == 200 and string.find(body, {verified}, 1, true) ~= nil end
"#,
                list = list.join(",\n"),
                verified = lua_string(VERIFIED),
            );
            let base = base.clone();
            tokio::task::spawn_blocking(move || drive_wrk(VERIFY, &base, clients, secs, &script))
                .await
                .unwrap()
        }
        Driver::Reqwest => {
            let bodies: Arc<Vec<Vec<u8>>> =
                Arc::new(bodies.into_iter().map(String::into_bytes).collect());
            let b = base.clone();
            drive(VERIFY, clients, secs, move |http, i| {
                let (b, bodies) = (b.clone(), bodies.clone());
                async move {
                    let body = bodies[i % bodies.len().max(1)].clone();
                    match http
                        .post(format!("{b}/api/v1/verify"))
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                    {
                        Ok(r) if r.status() == 200 => r.bytes().await.is_ok_and(|b| {
                            b.windows(VERIFIED.len()).any(|w| w == VERIFIED.as_bytes())
                        }),
                        _ => false,
                    }
                }
            })
            .await
        }
    });

    // Single revocations (durable, list version bumped, cache invalidated).
    const REVOKE: &str = "POST /api/v1/credentials/{id}/status (revoke)";
    let ids: Vec<String> = batch["results"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|x| x["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    rows.push(match driver {
        Driver::Wrk => {
            let list: Vec<String> = ids.iter().map(|b| lua_string(b)).collect();
            let script = format!(
                r#"
local ids = {{ {list} }}
local headers = {{["Authorization"] = "Bearer " .. {token}, ["Content-Type"] = "application/json"}}
local body = '{{"purpose":"revocation","status":true}}'
function request()
  n = n + 1
  return wrk.format("POST", "/api/v1/credentials/" .. ids[(n % #ids) + 1] .. "/status", headers, body)
end
function check(status, body) return status == 200 end
"#,
                list = list.join(","),
                token = lua_string(&token),
            );
            let base = base.clone();
            let secs = secs.min(5);
            tokio::task::spawn_blocking(move || drive_wrk(REVOKE, &base, clients, secs, &script))
                .await
                .unwrap()
        }
        Driver::Reqwest => {
            let ids = Arc::new(ids);
            let (b, t) = (base.clone(), token.clone());
            drive(REVOKE, clients, secs.min(5), move |http, i| {
                let (b, t, ids) = (b.clone(), t.clone(), ids.clone());
                async move {
                    let id = &ids[(i % 1_000_000 + (i / 1_000_000) * 300) % ids.len().max(1)];
                    http.post(format!("{b}/api/v1/credentials/{id}/status"))
                        .bearer_auth(&t)
                        .json(&json!({"purpose": "revocation", "status": true}))
                        .send()
                        .await
                        .is_ok_and(|r| r.status() == 200)
                }
            })
            .await
        }
    });

    // Poison graphs (issue 12): a burst of credentials whose 9 blank nodes form a clique (each
    // would cost minutes of RDFC-1.0 work unbounded) sent to the public verifier by 64 clients
    // in this process, while issuance runs as in the first scenario. The bound refuses each one
    // quickly (`indeterminate`, canonicalization_limit) and the bounded verify pool keeps the
    // burst off the cores issuance needs.
    const POISON: &str = "POST /api/v1/verify (9-clique poison burst, 64 clients)";
    const ISSUE_UNDER_POISON: &str = "POST /api/v1/credentials during the poison burst";
    let poison = Arc::new(poison_credential(9).to_string().into_bytes());
    let burst = {
        let b = base.clone();
        tokio::spawn(drive(POISON, 64, secs, move |http, _| {
            let (b, poison) = (b.clone(), poison.clone());
            async move {
                match http
                    .post(format!("{b}/api/v1/verify"))
                    .header("content-type", "application/json")
                    .body((*poison).clone())
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => r.bytes().await.is_ok_and(|b| {
                        const LIMIT: &[u8] = b"canonicalization_limit";
                        b.windows(LIMIT.len()).any(|w| w == LIMIT)
                    }),
                    _ => false,
                }
            }
        }))
    };
    let issuing = match driver {
        Driver::Wrk => {
            let script = format!(
                r#"
local headers = {{["Authorization"] = "Bearer " .. {token}, ["Content-Type"] = "application/json"}}
function request()
  n = n + 1
  return wrk.format("POST", "/api/v1/credentials", headers,
    '{{"achievementId":"' .. {achievement} .. '","recipient":{{"email":"poisoned' .. n .. '@example.edu"}}}}')
end
function check(status, body) return status == 201 end
"#,
                token = lua_string(&token),
                achievement = lua_string(&achievement_id),
            );
            let base = base.clone();
            tokio::task::spawn_blocking(move || {
                drive_wrk(ISSUE_UNDER_POISON, &base, clients, secs, &script)
            })
            .await
            .unwrap()
        }
        Driver::Reqwest => {
            let (b, t, a) = (base.clone(), token.clone(), achievement_id.clone());
            drive(ISSUE_UNDER_POISON, clients, secs, move |http, i| {
                let (b, t, a) = (b.clone(), t.clone(), a.clone());
                async move {
                    http.post(format!("{b}/api/v1/credentials"))
                        .bearer_auth(&t)
                        .json(&json!({"achievementId": a, "recipient": {"email": format!("poisoned{i}@example.edu")}}))
                        .send()
                        .await
                        .is_ok_and(|r| r.status() == 201)
                }
            })
            .await
        }
    };
    rows.push(issuing);
    rows.push(burst.await.unwrap());

    let load = Load {
        driver,
        base: base.clone(),
        token: token.clone(),
        achievement_id: achievement_id.clone(),
        status_url: status_url.clone(),
        clients,
        secs,
    };
    let flood_summary = sign_in_flood(&load, &mut rows).await;

    print_rows(&rows, clients, secs, driver, postgres.is_some());
    println!(
        "\nbatch of 10,000 (eddsa-rdfc-2022, email recipients): {issued} issued in {batch_secs:.2} s"
    );
    println!("\n{flood_summary}");
    if hold_secs > 0 {
        println!("\nserving {status_url} for {hold_secs} s");
        tokio::time::sleep(Duration::from_secs(hold_secs)).await;
    }
    drop_postgres(&postgres, &pg_database).await;
}

/// A VC 2.0 credential whose subject `knows` `n` blank nodes that all `knows` each other (a
/// clique: every blank node has the same first-degree hash), with a well-formed proof by an
/// offline did:key and a garbage signature, so verification reaches canonicalization.
fn poison_credential(n: usize) -> Value {
    let key = "did:key:z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2";
    let nodes: Vec<Value> = (0..n)
        .map(|i| {
            let others: Vec<Value> = (0..n)
                .filter(|&j| j != i)
                .map(|j| json!({"id": format!("_:n{j}")}))
                .collect();
            json!({"id": format!("_:n{i}"), "knows": others})
        })
        .collect();
    json!({
        "@context": [
            "https://www.w3.org/ns/credentials/v2",
            "https://www.w3.org/ns/credentials/examples/v2"
        ],
        "id": "urn:uuid:0d3c1a1e-5b1c-4c53-9f6f-7d4e3c2b1a00",
        "type": ["VerifiableCredential"],
        "issuer": key,
        "validFrom": "2026-01-01T00:00:00Z",
        "credentialSubject": {"id": "did:example:subject", "knows": nodes},
        "proof": {
            "type": "DataIntegrityProof",
            "cryptosuite": "eddsa-rdfc-2022",
            "created": "2026-01-01T00:00:00Z",
            "verificationMethod": format!("{key}#{}", key.trim_start_matches("did:key:")),
            "proofPurpose": "assertionMethod",
            "proofValue": format!("z{}", bs58::encode([7u8; 64]).into_string()),
        }
    })
}

/// Prints the table of `rows` with the run's conditions.
fn print_rows(rows: &[Row], clients: usize, secs: u64, driver: Driver, postgres: bool) {
    let driver_name = match driver {
        Driver::Wrk => "wrk (1 thread, separate process)",
        Driver::Reqwest => "reqwest clients in the server's process",
    };
    let engine = if postgres { "PostgreSQL" } else { "SQLite" };
    println!(
        "\n{clients} keep-alive connections, {secs} s per scenario (revocations at most 5 s), {engine}, loopback, driver: {driver_name}\n"
    );
    println!(
        "| scenario | requests | errors | req/s | p50 ms | p99 ms | server cores | driver cores |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{}", row.markdown());
    }
}

/// Drops the PostgreSQL database of the run, if there is one.
async fn drop_postgres(postgres: &Option<String>, pg_database: &Option<String>) {
    if let (Some(base), Some(name)) = (postgres, pg_database) {
        use sea_orm::ConnectionTrait;
        // The server still holds connections: end them, then drop the database.
        if let Ok(admin) = sea_orm::Database::connect(format!("{base}/postgres")).await {
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
            let _ = admin.close().await;
        }
    }
}

/// What the sign-in flood scenario measures against.
struct Load {
    driver: Driver,
    base: String,
    token: String,
    achievement_id: String,
    status_url: String,
    clients: usize,
    secs: u64,
}

/// Sustained single issuance for `load.secs` (recipients `<prefix><n>@example.edu`).
async fn measure_issuance(load: &Load, name: &'static str, prefix: &'static str) -> Row {
    match load.driver {
        Driver::Wrk => {
            let script = format!(
                r#"
local headers = {{["Authorization"] = "Bearer " .. {token}, ["Content-Type"] = "application/json"}}
function request()
  n = n + 1
  return wrk.format("POST", "/api/v1/credentials", headers,
    '{{"achievementId":"' .. {achievement} .. '","recipient":{{"email":"{prefix}' .. n .. '@example.edu"}}}}')
end
function check(status, body) return status == 201 end
"#,
                token = lua_string(&load.token),
                achievement = lua_string(&load.achievement_id),
            );
            let (base, clients, secs) = (load.base.clone(), load.clients, load.secs);
            tokio::task::spawn_blocking(move || drive_wrk(name, &base, clients, secs, &script))
                .await
                .unwrap()
        }
        Driver::Reqwest => {
            let (b, t, a) = (
                load.base.clone(),
                load.token.clone(),
                load.achievement_id.clone(),
            );
            drive(name, load.clients, load.secs, move |http, i| {
                let (b, t, a) = (b.clone(), t.clone(), a.clone());
                async move {
                    http.post(format!("{b}/api/v1/credentials"))
                        .bearer_auth(&t)
                        .json(&json!({"achievementId": a, "recipient": {"email": format!("{prefix}{i}@example.edu")}}))
                        .send()
                        .await
                        .is_ok_and(|r| r.status() == 201)
                }
            })
            .await
        }
    }
}

/// Cached status-list reads for `load.secs`.
async fn measure_status_reads(load: &Load, name: &'static str) -> Row {
    match load.driver {
        Driver::Wrk => {
            let path = load
                .status_url
                .strip_prefix(&load.base)
                .unwrap_or(&load.status_url)
                .to_owned();
            let script = format!(
                r#"
local req = wrk.format("GET", {path})
function request() return req end
function check(status, body) return status == 200 end
"#,
                path = lua_string(&path)
            );
            let (base, clients, secs) = (load.base.clone(), load.clients, load.secs);
            tokio::task::spawn_blocking(move || drive_wrk(name, &base, clients, secs, &script))
                .await
                .unwrap()
        }
        Driver::Reqwest => {
            let su = load.status_url.clone();
            drive(name, load.clients, load.secs, move |http, _| {
                let su = su.clone();
                async move { http.get(&su).send().await.is_ok_and(|r| r.status() == 200) }
            })
            .await
        }
    }
}

/// Sign-in flood clients, each from its own loopback address.
const FLOOD_CLIENTS: usize = 64;
/// Real accounts the flood guesses passwords for (the rest of the attempts name unknown addresses).
const FLOOD_ACCOUNTS: usize = 16;

/// What the flood clients saw.
#[derive(Default)]
struct FloodCounts {
    /// 401: a wrong password, answered after a full Argon2id verification.
    refused: usize,
    /// 429: the per-address limit (no hashing).
    limited: usize,
    /// Anything else (a failure).
    other: usize,
    latencies: Vec<Duration>,
}

/// The sign-in flood rows (see the module docs); returns the summary line.
async fn sign_in_flood(load: &Load, rows: &mut Vec<Row>) -> String {
    let base = load.base.clone();
    let http = reqwest::Client::new();
    for i in 0..FLOOD_ACCOUNTS {
        let resp = http
            .post(format!("{base}/api/v1/users"))
            .bearer_auth(&load.token)
            .json(&json!({"email": format!("flooded{i}@example.edu"), "displayName": format!("Flooded {i}"), "password": format!("the right password {i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            201,
            "{}",
            resp.text().await.unwrap_or_default()
        );
    }
    // One anonymous browser session and its CSRF token, shared by every flood client.
    let page = http
        .get(format!("{base}/account/sign-in"))
        .send()
        .await
        .unwrap();
    let cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.split(';')
                .next()
                .filter(|c| c.starts_with("oxbadge_session="))
        })
        .unwrap()
        .to_owned();
    let html = page.text().await.unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();

    let status_before = measure_status_reads(load, "GET /status/{list} (cached), no flood").await;
    let issue_before =
        measure_issuance(load, "POST /api/v1/credentials, no flood", "unflooded").await;

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let cpu = cpu_seconds();
    let mut tasks = Vec::new();
    for c in 0..FLOOD_CLIENTS {
        let (stop, base, cookie, csrf) = (stop.clone(), base.clone(), cookie.clone(), csrf.clone());
        let address = std::net::IpAddr::from([127, 0, 0, 2 + c as u8]);
        let http = reqwest::Client::builder()
            .local_address(address)
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(1)
            .build()
            .unwrap();
        tasks.push(tokio::spawn(async move {
            let mut counts = FloodCounts::default();
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let email = if i.is_multiple_of(2) {
                    format!("flooded{}@example.edu", (c + i) % FLOOD_ACCOUNTS)
                } else {
                    format!("nobody{c}-{i}@example.edu")
                };
                let t = Instant::now();
                let sent = http
                    .post(format!("{base}/account/sign-in"))
                    .header("cookie", &cookie)
                    .form(&[
                        ("csrf", csrf.as_str()),
                        ("email", email.as_str()),
                        ("password", "a wrong password, long enough"),
                        ("next", "/account"),
                    ])
                    .send()
                    .await;
                match sent {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let _ = r.bytes().await;
                        match status {
                            401 => counts.refused += 1,
                            429 => {
                                counts.limited += 1;
                                // A limited client waits a little so that its own CPU (this
                                // process is the server's too) does not count against the server.
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                            _ => counts.other += 1,
                        }
                    }
                    Err(_) => counts.other += 1,
                }
                counts.latencies.push(t.elapsed());
                i += 1;
            }
            counts
        }));
    }
    // Let the flood fill the hashing queue before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status_during =
        measure_status_reads(load, "GET /status/{list} (cached) during the sign-in flood").await;
    let issue_during = measure_issuance(
        load,
        "POST /api/v1/credentials during the sign-in flood",
        "flooded",
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut all = FloodCounts::default();
    for t in tasks {
        let c = t.await.unwrap();
        all.refused += c.refused;
        all.limited += c.limited;
        all.other += c.other;
        all.latencies.extend(c.latencies);
    }
    let seconds = started.elapsed().as_secs_f64();
    let used = cpu_seconds().0 - cpu.0;
    all.latencies.sort_unstable();
    let pct = |p: f64| {
        all.latencies
            .get(
                ((all.latencies.len() as f64 * p) as usize)
                    .min(all.latencies.len().saturating_sub(1)),
            )
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let flood = Row {
        name: format!(
            "POST /account/sign-in, wrong passwords ({FLOOD_CLIENTS} clients on {FLOOD_CLIENTS} addresses)"
        ),
        requests: all.refused + all.limited,
        errors: all.other,
        seconds,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        server_cores: used / seconds,
        driver_cores: 0.0,
    };
    let rate = |r: &Row| r.requests as f64 / r.seconds.max(f64::EPSILON);
    let share = 100.0 * rate(&issue_during) / rate(&issue_before).max(f64::EPSILON);
    let summary = format!(
        "sign-in flood: {:.1} sign-ins/s refused after Argon2id (401: {}, 429 per-address limit: {}, other: {}) over {seconds:.1} s; \
         cached status-list p99 {:.2} ms during the flood ({:.2} ms before; target < 10 ms); \
         issuance {:.0}/s during the flood vs {:.0}/s before = {share:.1} % (target > 80 %)",
        all.refused as f64 / seconds,
        all.refused,
        all.limited,
        all.other,
        status_during.p99_ms,
        status_before.p99_ms,
        rate(&issue_during),
        rate(&issue_before),
    );
    rows.extend([
        status_before,
        issue_before,
        status_during,
        issue_during,
        flood,
    ]);
    summary
}

/// The OAuth rows (see the module docs); returns the summary line.
async fn oauth_rows(
    state: &oxbadge::AppState,
    base: &str,
    admin_token: &str,
    (admin_id, admin_secret): (&str, &str),
    clients: usize,
    secs: u64,
    rows: &mut Vec<Row>,
) -> String {
    use base64::Engine;
    use sea_orm::EntityTrait;
    use secrecy::ExposeSecret;
    use sha2::Digest;
    let b64 = base64::engine::general_purpose::STANDARD;
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let http = reqwest::Client::new();
    let form = "application/x-www-form-urlencoded";
    let basic = |id: &str, secret: &str| format!("Basic {}", b64.encode(format!("{id}:{secret}")));

    // client_credentials: the bootstrap admin client, one scope.
    const CC: &str = "POST /oauth/token (client_credentials)";
    let script = format!(
        r#"
local headers = {{["Authorization"] = {auth}, ["Content-Type"] = {form}}}
local req = wrk.format("POST", "/oauth/token", headers, "grant_type=client_credentials&scope=issuers%3Aread")
function request() return req end
function check(status, body) return status == 200 end
"#,
        auth = lua_string(&basic(admin_id, admin_secret)),
        form = lua_string(form),
    );
    rows.push(wrk_row(CC, base, clients, secs, script).await);

    // A learner and a wallet registered like any other (RFC 7591).
    let resp = http
        .post(format!("{base}/api/v1/users"))
        .bearer_auth(admin_token)
        .json(&json!({"email": "oauth-learner@example.edu", "displayName": "OAuth Learner", "password": "the learner's long password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let user: Value = resp.json().await.unwrap();
    let user_id = user["id"].as_str().unwrap().to_owned();
    let redirect_uri = "https://wallet.example/callback";
    let resp = http
        .post(format!("{base}/oauth/register"))
        .json(&json!({
            "client_name": "Load Wallet",
            "client_uri": "https://wallet.example/",
            "logo_uri": "https://wallet.example/logo.png",
            "tos_uri": "https://wallet.example/terms",
            "policy_uri": "https://wallet.example/privacy",
            "software_id": "load-wallet",
            "software_version": "1.0",
            "redirect_uris": [redirect_uri],
            "scope": "offline_access https://purl.imsglobal.org/spec/ob/v3p0/scope/credential.readonly"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        201,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    let wallet: Value = resp.json().await.unwrap();
    let wallet_id = wallet["client_id"].as_str().unwrap().to_owned();
    let wallet_secret = wallet["client_secret"].as_str().unwrap().to_owned();
    let wallet_auth = basic(&wallet_id, &wallet_secret);
    let wallet_model = oxbadge::db::oauth_client::Entity::find_by_id(wallet_id.clone())
        .one(state.db())
        .await
        .unwrap()
        .unwrap();

    // Authorization codes as the consent step stores them (hash, PKCE challenge, redirect URI).
    let verifier = "load-test-pkce-verifier-0123456789abcdefghijklmnopqrstuvwxyz";
    let challenge = b64url.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let scopes = "offline_access https://purl.imsglobal.org/spec/ob/v3p0/scope/credential.readonly";
    let mint = |count: usize| {
        let (state, user_id, wallet_id, challenge) = (
            state.clone(),
            user_id.clone(),
            wallet_id.clone(),
            challenge.clone(),
        );
        async move {
            use sea_orm::Set;
            let now = chrono::Utc::now();
            let codes: Vec<String> = (0..count)
                .map(|_| {
                    format!(
                        "oxbac_{}",
                        base64::engine::general_purpose::URL_SAFE_NO_PAD
                            .encode(rand::random::<[u8; 32]>())
                    )
                })
                .collect();
            for chunk in codes.chunks(500) {
                let models =
                    chunk
                        .iter()
                        .map(|code| oxbadge::db::authorization_code::ActiveModel {
                            id: Set(cuid2::create_id()),
                            code_hash: Set(oxbadge::oauth::tokens::hash_secret(code)),
                            client_id: Set(wallet_id.clone()),
                            user_id: Set(user_id.clone()),
                            redirect_uri: Set(redirect_uri.to_owned()),
                            scopes: Set(scopes.to_owned()),
                            code_challenge: Set(challenge.clone()),
                            created_at: Set(now),
                            expires_at: Set(now + chrono::Duration::minutes(10)),
                            exchanged_at: Set(None),
                            revoked_at: Set(None),
                        });
                oxbadge::db::authorization_code::Entity::insert_many(models)
                    .exec(state.db())
                    .await
                    .unwrap();
            }
            codes
        }
    };
    // Enough for several times the target rate over the run, so none is presented twice.
    let budget = (secs as usize * 6_000).max(20_000);
    let lines = |items: &[String]| {
        let mut file = tempfile::Builder::new().suffix(".txt").tempfile().unwrap();
        for item in items {
            writeln!(file, "{item}").unwrap();
        }
        file.flush().unwrap();
        file
    };

    const CODE: &str = "POST /oauth/token (authorization_code + PKCE)";
    let codes = mint(budget).await;
    let code_file = lines(&codes);
    let script = format!(
        r#"
local headers = {{["Authorization"] = {auth}, ["Content-Type"] = {form}}}
local codes = {{}}
for line in io.lines({path}) do codes[#codes + 1] = line end
function request()
  n = n + 1
  return wrk.format("POST", "/oauth/token", headers,
    "grant_type=authorization_code&redirect_uri=https%3A%2F%2Fwallet.example%2Fcallback&code_verifier=" .. {verifier} .. "&code=" .. codes[n])
end
function check(status, body) return status == 200 and string.find(body, "refresh_token", 1, true) ~= nil end
"#,
        auth = lua_string(&wallet_auth),
        form = lua_string(form),
        path = lua_string(&code_file.path().display().to_string()),
        verifier = lua_string(verifier),
    );
    rows.push(wrk_row(CODE, base, clients, secs, script).await);

    // Refresh tokens, each from a real code exchange (in-process, 8 at a time).
    const REFRESH: &str = "POST /oauth/token (refresh_token, rotated)";
    let codes = mint(budget).await;
    let exchanged: Vec<(String, String)> = {
        use futures_util::StreamExt;
        futures_util::stream::iter(codes.iter().cloned())
            .map(|code| {
                let (state, wallet_model) = (state.clone(), wallet_model.clone());
                async move {
                    let done = oxbadge::oauth::grant_writer::exchange_code(
                        &state,
                        &wallet_model,
                        oxbadge::oauth::code_exchange::CodeRequest {
                            code: Some(&code),
                            redirect_uri: Some(redirect_uri),
                            code_verifier: Some(verifier),
                        },
                    )
                    .await
                    .unwrap_or_else(|e| panic!("exchange: {}", e.error.error));
                    (
                        done.access.access_token.expose_secret().to_owned(),
                        done.refresh_token.unwrap().expose_secret().to_owned(),
                    )
                }
            })
            .buffer_unordered(8)
            .collect()
            .await
    };
    let refresh_file = lines(&exchanged.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>());
    let script = format!(
        r#"
local headers = {{["Authorization"] = {auth}, ["Content-Type"] = {form}}}
local tokens = {{}}
for line in io.lines({path}) do tokens[#tokens + 1] = line end
function request()
  n = n + 1
  return wrk.format("POST", "/oauth/token", headers, "grant_type=refresh_token&refresh_token=" .. tokens[n])
end
function check(status, body) return status == 200 and string.find(body, "refresh_token", 1, true) ~= nil end
"#,
        auth = lua_string(&wallet_auth),
        form = lua_string(form),
        path = lua_string(&refresh_file.path().display().to_string()),
    );
    rows.push(wrk_row(REFRESH, base, clients, secs, script).await);

    // Introspection of a live user-bound access token by the wallet.
    const INTROSPECT: &str = "POST /oauth/introspect (user-bound access token)";
    let (live_access, _) = exchanged.last().unwrap();
    let script = format!(
        r#"
local headers = {{["Authorization"] = {auth}, ["Content-Type"] = {form}}}
local req = wrk.format("POST", "/oauth/introspect", headers, "token_type_hint=access_token&token=" .. {token})
function request() return req end
function check(status, body) return status == 200 and string.find(body, '"active":true', 1, true) ~= nil end
"#,
        auth = lua_string(&wallet_auth),
        form = lua_string(form),
        token = lua_string(live_access),
    );
    rows.push(wrk_row(INTROSPECT, base, clients, secs, script).await);

    let rate = |name: &str| {
        rows.iter()
            .find(|r| r.name == name)
            .map_or(0.0, |r| r.requests as f64 / r.seconds.max(f64::EPSILON))
    };
    let verdict = |name: &str, target: f64| {
        let got = rate(name);
        format!(
            "{name}: {got:.0}/s (target {target:.0}/s, {})",
            if got >= target { "met" } else { "NOT met" }
        )
    };
    format!(
        "oauth: {}; {}; {}; {}",
        verdict(CC, 5_000.0),
        verdict(CODE, 2_000.0),
        verdict(REFRESH, 2_000.0),
        verdict(INTROSPECT, 10_000.0)
    )
}

/// [`drive_wrk`] off the reactor.
async fn wrk_row(name: &'static str, base: &str, clients: usize, secs: u64, script: String) -> Row {
    let base = base.to_owned();
    tokio::task::spawn_blocking(move || drive_wrk(name, &base, clients, secs, &script))
        .await
        .unwrap()
}
