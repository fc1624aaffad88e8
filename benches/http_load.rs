//! HTTP load test: a real oxbadge on loopback with SQLite in a temporary directory, driven by
//! keep-alive clients in the same process. Bounded in time and count; prints a Markdown table.
//!
//! Run: `cargo bench --bench http_load` (environment: `LOAD_SECS`, default 10; `LOAD_CLIENTS`,
//! default 32; `OXBADGE_LOG`, when set, installs the service's JSON log subscriber with that filter
//! (e.g. `info` to include the per-request access log; send stderr to a file); `LOAD_HOLD_SECS`,
//! when set, keeps the server up that long afterwards and prints a status-list URL, so an external
//! load generator such as `wrk` can be pointed at it).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};

struct Outcome {
    name: String,
    requests: usize,
    errors: usize,
    seconds: f64,
    latencies: Vec<Duration>,
}

impl Outcome {
    fn row(&mut self) -> String {
        self.latencies.sort_unstable();
        let pct = |p: f64| {
            self.latencies
                .get(
                    ((self.latencies.len() as f64 * p) as usize)
                        .min(self.latencies.len().saturating_sub(1)),
                )
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        format!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} |",
            self.name,
            self.requests,
            self.errors,
            self.requests as f64 / self.seconds,
            pct(0.50),
            pct(0.99)
        )
    }
}

/// Runs `clients` loops of `call` for `secs` seconds.
async fn drive<F, Fut>(name: &str, clients: usize, secs: u64, call: F) -> Outcome
where
    F: Fn(reqwest::Client, usize) -> Fut + Send + Sync + 'static + Clone,
    Fut: std::future::Future<Output = bool> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
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
    let mut out = Outcome {
        name: name.into(),
        requests: 0,
        errors: 0,
        seconds: 0.0,
        latencies: Vec::new(),
    };
    for t in tasks {
        let (ok, err, lat) = t.await.unwrap();
        out.requests += ok;
        out.errors += err;
        out.latencies.extend(lat);
    }
    out.seconds = started.elapsed().as_secs_f64();
    out
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
    if let Ok(filter) = std::env::var("OXBADGE_LOG") {
        oxbadge::telemetry::init(oxbadge::config::LogFormat::Json, &filter);
    }
    let hold_secs: u64 = std::env::var("LOAD_HOLD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let dir = tempfile::tempdir().unwrap();
    let settings = oxbadge::Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
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

    // Sustained single issuance (Data Integrity, email recipients, durable before 201).
    let (b, t, a) = (base.clone(), token.clone(), achievement_id.clone());
    let mut issue = drive("POST /api/v1/credentials (eddsa-rdfc-2022)", clients, secs, move |http, i| {
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
    .await;
    rows.push(issue.row());

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
    let su = status_url.clone();
    let mut reads = drive(
        "GET /status/{list} (cached)",
        clients,
        secs,
        move |http, _| {
            let su = su.clone();
            async move { http.get(&su).send().await.is_ok_and(|r| r.status() == 200) }
        },
    )
    .await;
    rows.push(reads.row());

    // Verification of our own credentials: keys and status from the database, no network.
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        batch["results"]
            .as_array()
            .map(|r| {
                r.iter()
                    .skip(5_000)
                    .take(256)
                    .map(|x| serde_json::to_vec(&x["credential"]).unwrap())
                    .collect()
            })
            .unwrap_or_default(),
    );
    const VERIFIED: &[u8] = b"\"outcome\":\"verified\"";
    let b = base.clone();
    let mut verify = drive(
        "POST /api/v1/verify (own credential, status from DB)",
        clients,
        secs,
        move |http, i| {
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
                    Ok(r) if r.status() == 200 => r
                        .bytes()
                        .await
                        .is_ok_and(|b| b.windows(VERIFIED.len()).any(|w| w == VERIFIED)),
                    _ => false,
                }
            }
        },
    )
    .await;
    rows.push(verify.row());

    // Single revocations (durable, list version bumped, cache invalidated).
    let ids: Arc<Vec<String>> = Arc::new(
        batch["results"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|x| x["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
    );
    let (b, t) = (base.clone(), token.clone());
    let mut revoke = drive(
        "POST /api/v1/credentials/{id}/status (revoke)",
        clients,
        secs.min(5),
        move |http, i| {
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
        },
    )
    .await;
    rows.push(revoke.row());

    println!("\n{clients} keep-alive clients, {secs} s per scenario, SQLite, loopback\n");
    println!("| scenario | requests | errors | req/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    println!(
        "\nbatch of 10,000 (eddsa-rdfc-2022, email recipients): {issued} issued in {batch_secs:.2} s"
    );
    if hold_secs > 0 {
        println!("\nserving {status_url} for {hold_secs} s");
        tokio::time::sleep(Duration::from_secs(hold_secs)).await;
    }
}
