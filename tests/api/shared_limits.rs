//! Rate limits shared through Redis (`OXBADGE_REDIS_URL`): two instances on one database and one
//! Redis (the machine's, on 127.0.0.1:6379, as on CI) count one limit together, so the second
//! instance refuses (429 with `Retry-After`) once the first used the budget. With Redis away, each
//! instance still limits on its own and nothing answers 5xx; when Redis is back, they share again.
//! Every test uses its own key prefix, so runs never see each other's counters.

use std::time::{Duration, Instant};

use oxbadge::Settings;
use reqwest::Client;
use serde_json::json;
use tokio::{
    io::copy_bidirectional,
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

use crate::{
    accounts::{browser_client, open_page, post_form},
    support::{TestApp, TestDb, test_settings},
};

/// The machine's Redis (CI starts it; see `.ci/run`).
fn redis_url() -> String {
    std::env::var("OXBADGE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn unique_prefix() -> String {
    format!("oxbadge-test:{}:", cuid2::create_id())
}

/// Two instances on one database with the same Redis settings (`adjust` applied to both).
async fn two_instances(adjust: impl Fn(&mut Settings)) -> (TestApp, TestApp) {
    let first = TestApp::spawn_with(&adjust).await;
    let mut settings = test_settings(first.db());
    adjust(&mut settings);
    settings.kek = first.state.settings().kek.clone();
    let second = TestApp::spawn_on_existing(TestDb::shared(first.db()), settings).await;
    (first, second)
}

fn shared(url: String, prefix: String) -> impl Fn(&mut Settings) {
    move |s: &mut Settings| {
        s.redis_url = Some(url.clone().into());
        s.redis_key_prefix = prefix.clone();
        // A busy CI machine must not turn a slow reply into a (correct, but here unwanted) local
        // answer; the outage tests use a dead port, which refuses at once.
        s.redis_timeout_ms = 2_000;
    }
}

/// One sign-in attempt through the page: status and `Retry-After`.
async fn sign_in_attempt(app: &TestApp, http: &Client, n: usize) -> (u16, Option<u64>) {
    let (cookie, csrf, _) = open_page(http, &app.url("/account/sign-in"), None).await;
    let resp = post_form(
        http,
        &app.url("/account/sign-in"),
        &cookie,
        &[
            ("csrf", &csrf),
            ("email", &format!("nobody{n}@example.com")),
            ("password", "not anybody's password"),
        ],
    )
    .await;
    (resp.status().as_u16(), retry_after(&resp))
}

fn retry_after(resp: &reqwest::Response) -> Option<u64> {
    resp.headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// One token request with a wrong secret for `client_id`: status and `Retry-After`.
async fn bad_token_request(app: &TestApp, client_id: &str) -> (u16, Option<u64>) {
    let resp = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(client_id, Some("not the secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), retry_after(&resp))
}

/// One verification of a body that is not a credential (the limit is taken before it is read).
async fn verify_attempt(app: &TestApp) -> (u16, Option<u64>) {
    let resp = app
        .http
        .post(app.url("/api/v1/verify"))
        .json(&json!({"not": "a credential"}))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), retry_after(&resp))
}

#[tokio::test]
async fn sign_in_attempts_through_two_instances_count_against_one_limit() {
    let prefix = unique_prefix();
    let (first, second) = two_instances(move |s| {
        shared(redis_url(), prefix.clone())(s);
        s.sign_in_attempts_per_minute = 6;
    })
    .await;
    let http = browser_client();
    // Six attempts, alternating: each instance alone would allow six.
    for n in 0..6 {
        let app = if n % 2 == 0 { &first } else { &second };
        let (status, _) = sign_in_attempt(app, &http, n).await;
        assert_eq!(status, 401, "attempt {n} is within the shared budget");
    }
    for (n, app) in [(6, &second), (7, &first)] {
        let (status, wait) = sign_in_attempt(app, &http, n).await;
        assert_eq!(status, 429, "attempt {n}: the budget is spent on both");
        let wait = wait.expect("a 429 says when to retry");
        assert!((1..=10).contains(&wait), "Retry-After {wait}");
    }
}

#[tokio::test]
async fn failed_client_authentications_through_two_instances_count_against_one_bucket() {
    let prefix = unique_prefix();
    let (first, second) = two_instances(move |s| {
        shared(redis_url(), prefix.clone())(s);
        s.auth_client_failure_burst = 4;
        s.auth_client_failures_per_minute = 1;
    })
    .await;
    let client_id = first.admin_id.clone();
    // The first instance uses the whole budget of failures.
    for _ in 0..4 {
        assert_eq!(bad_token_request(&first, &client_id).await.0, 401);
    }
    // The second refuses before looking at the secret, the right one included.
    let (status, wait) = bad_token_request(&second, &client_id).await;
    assert_eq!(status, 429);
    let wait = wait.expect("Retry-After");
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    let resp = second
        .http
        .post(second.url("/oauth/token"))
        .basic_auth(&client_id, Some(&second.admin_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429, "even the right secret waits");
    // Another client is not affected.
    let other = oxbadge::oauth::tokens::create_client(
        second.state.db(),
        "other",
        oxbadge::oauth::ScopeSet::all(),
    )
    .await
    .unwrap();
    assert_eq!(bad_token_request(&second, &other.client_id).await.0, 401);
}

#[tokio::test]
async fn token_requests_per_address_and_verifications_are_shared_too() {
    let prefix = unique_prefix();
    let (first, second) = two_instances(move |s| {
        shared(redis_url(), prefix.clone())(s);
        s.auth_rate_limit_per_minute = 1;
        s.auth_rate_limit_burst = 3;
        s.verify_rate_limit_per_minute = 1;
        s.verify_rate_limit_burst = 3;
    })
    .await;
    // Made-up client ids (each its own failure bucket): only the address bucket counts.
    assert_eq!(bad_token_request(&first, "nobody-1").await.0, 401);
    assert_eq!(bad_token_request(&second, "nobody-2").await.0, 401);
    assert_eq!(bad_token_request(&first, "nobody-3").await.0, 401);
    let (status, wait) = bad_token_request(&second, "nobody-4").await;
    assert_eq!(status, 429, "the address used its 3 on both instances");
    assert!(wait.is_some_and(|w| (1..=60).contains(&w)));

    assert_ne!(verify_attempt(&first).await.0, 429);
    assert_ne!(verify_attempt(&first).await.0, 429);
    assert_ne!(verify_attempt(&second).await.0, 429);
    let (status, wait) = verify_attempt(&second).await;
    assert_eq!(status, 429);
    assert!(wait.is_some_and(|w| (1..=60).contains(&w)));
}

#[tokio::test]
async fn with_redis_unreachable_each_instance_still_limits_and_nothing_fails() {
    // Port 1 on loopback: nothing listens, every connection is refused at once.
    let (first, second) = two_instances(|s| {
        shared("redis://127.0.0.1:1".into(), unique_prefix())(s);
        s.redis_timeout_ms = 50;
        s.sign_in_attempts_per_minute = 3;
        s.verify_rate_limit_per_minute = 1;
        s.verify_rate_limit_burst = 2;
    })
    .await;
    let http = browser_client();
    let started = Instant::now();
    for app in [&first, &second] {
        // Each instance counts on its own: three each, then 429 (never no limit, never a 5xx).
        for n in 0..3 {
            assert_eq!(sign_in_attempt(app, &http, n).await.0, 401);
        }
        let (status, wait) = sign_in_attempt(app, &http, 3).await;
        assert_eq!(status, 429);
        assert!(wait.is_some());
        for _ in 0..2 {
            let status = verify_attempt(app).await.0;
            assert!(status < 500 && status != 429, "{status}");
        }
        assert_eq!(verify_attempt(app).await.0, 429);
    }
    // No request waited for Redis: ten sign-ins and six verifications on a busy machine.
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// A TCP relay to the real Redis that a test can cut and restore (the outage is real: the
/// instance's connection is reset and new ones are refused).
struct Relay {
    port: u16,
    task: Option<JoinHandle<()>>,
}

impl Relay {
    async fn start(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = redis_url()
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let upstream = upstream.clone();
                conns.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                        let _ = copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Relay {
            port,
            task: Some(task),
        }
    }

    /// Cuts every connection and stops listening.
    async fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

#[tokio::test]
async fn after_an_outage_the_instances_share_the_limit_again() {
    let mut relay = Relay::start(0).await;
    let prefix = unique_prefix();
    // The first instance reaches Redis through the relay, the second directly.
    let first = TestApp::spawn_with(|s| {
        shared(format!("redis://127.0.0.1:{}", relay.port), prefix.clone())(s);
        s.redis_timeout_ms = 500;
        s.verify_rate_limit_per_minute = 1;
        s.verify_rate_limit_burst = 4;
    })
    .await;
    let mut settings = test_settings(first.db());
    shared(redis_url(), prefix.clone())(&mut settings);
    settings.verify_rate_limit_per_minute = 1;
    settings.verify_rate_limit_burst = 4;
    settings.kek = first.state.settings().kek.clone();
    let second = TestApp::spawn_on_existing(TestDb::shared(first.db()), settings).await;

    // Shared: 2 + 2, then both refuse.
    for app in [&first, &second, &first, &second] {
        assert_ne!(verify_attempt(app).await.0, 429);
    }
    assert_eq!(verify_attempt(&first).await.0, 429);
    assert_eq!(verify_attempt(&second).await.0, 429);

    // Redis away for the first: it answers from its own counters (a fresh local bucket of 4),
    // never a 5xx, and limits on its own.
    relay.cut().await;
    for _ in 0..4 {
        let status = verify_attempt(&first).await.0;
        assert!(status < 500 && status != 429, "{status}");
    }
    assert_eq!(verify_attempt(&first).await.0, 429);
    assert_eq!(verify_attempt(&second).await.0, 429, "still shared there");

    // Redis back: the first instance reconnects by itself (within about a second) and counts
    // in the shared bucket again, which the second still sees spent.
    let relay = Relay::start(relay.port).await;
    let mut client = redis_client().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let key = format!("{prefix}verify:127.0.0.1");
    loop {
        // Refill the shared bucket; the first instance's local one stays spent, so an admitted
        // request proves the answer came from Redis.
        let _: () = redis::cmd("DEL")
            .arg(&key)
            .query_async(&mut client)
            .await
            .unwrap();
        let status = verify_attempt(&first).await.0;
        assert!(status < 500, "{status}");
        if status != 429 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first instance never used Redis again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // It took one from the shared bucket of 4: the second instance has 3 left, then 429.
    for _ in 0..3 {
        assert_ne!(verify_attempt(&second).await.0, 429);
    }
    assert_eq!(verify_attempt(&second).await.0, 429);
    assert_eq!(verify_attempt(&first).await.0, 429);
    drop(relay);
}

async fn redis_client() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}
