//! People over real HTTP: registration with the confirmation mail at a real SMTP sink (Python
//! `aiosmtpd` on loopback), sign-in with cookie flags and rotation, CSRF refusals, sign-out,
//! lockout with back-off (same answer as a wrong password), single-use and expiring reset
//! links (the app's clock is advanced, nothing sleeps), session lifetimes, the JSON endpoints.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use base64::Engine;
use oxbadge::accounts::{
    passwords::NewPassword,
    records::session,
    users::{self, DisplayName, Email, NewUser},
};
use reqwest::{Client, StatusCode, redirect::Policy};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::Value;

use crate::support::{TestApp, assert_problem};

pub const PASSWORD: &str = "correct horse battery staple";

/// A client that does not follow redirects (so 303s and their cookies can be checked).
pub fn browser_client() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(30))
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
}

/// The `name=value` part of the first `Set-Cookie` header, and the whole header.
pub fn set_cookie(resp: &reqwest::Response) -> Option<(String, String)> {
    let raw = resp.headers().get("set-cookie")?.to_str().ok()?.to_owned();
    let pair = raw.split(';').next()?.trim().to_owned();
    Some((pair, raw))
}

/// The value of `name="csrf"` in a page.
pub fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("the page has a CSRF field") + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

/// A page fetched with a cookie: (cookie to use from now on, csrf, body).
pub async fn open_page(http: &Client, url: &str, cookie: Option<&str>) -> (String, String, String) {
    let mut req = http.get(url);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200, "GET {url}");
    let new_cookie = set_cookie(&resp).map(|(pair, _)| pair);
    let body = resp.text().await.unwrap();
    let cookie = new_cookie
        .or_else(|| cookie.map(str::to_owned))
        .expect("a cookie");
    let csrf = csrf_of(&body);
    (cookie, csrf, body)
}

/// Posts a form with a cookie.
pub async fn post_form(
    http: &Client,
    url: &str,
    cookie: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    http.post(url)
        .header("cookie", cookie)
        .form(form)
        .send()
        .await
        .unwrap()
}

/// Creates a confirmed user directly through the domain (as `oxbadge users create` does).
pub async fn create_user(app: &TestApp, email: &str, name: &str, admin: bool) -> String {
    users::create_user(
        app.state.db(),
        app.state.accounts(),
        NewUser {
            email: Email::parse(email).unwrap(),
            display_name: DisplayName::parse(name).unwrap(),
            password: NewPassword::parse(PASSWORD).unwrap(),
            is_admin: admin,
            email_verified: true,
        },
        "test",
    )
    .await
    .unwrap()
    .id
}

/// Signs in through the page; returns the session cookie pair.
pub async fn sign_in(app: &TestApp, http: &Client, email: &str, password: &str) -> String {
    let (cookie, csrf, _) = open_page(http, &app.url("/account/sign-in"), None).await;
    let resp = post_form(
        http,
        &app.url("/account/sign-in"),
        &cookie,
        &[("csrf", &csrf), ("email", email), ("password", password)],
    )
    .await;
    assert_eq!(resp.status(), 303, "sign-in of {email}");
    set_cookie(&resp).expect("a new session cookie").0
}

/// Decodes the text body of an RFC 5322 message (7bit, quoted-printable or base64).
pub fn mail_body(raw: &str) -> String {
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
    let head = head.to_ascii_lowercase();
    if head.contains("content-transfer-encoding: base64") {
        let compact: String = body.split_whitespace().collect();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .unwrap(),
        )
        .unwrap()
    } else if head.contains("content-transfer-encoding: quoted-printable") {
        let joined = body.replace("=\n", "");
        let b = joined.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'='
                && i + 2 < b.len()
                && let Some(byte) = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(byte);
                i += 3;
                continue;
            }
            out.push(b[i]);
            i += 1;
        }
        String::from_utf8(out).unwrap()
    } else {
        body.to_owned()
    }
}

/// The token of the link to `path` in a mail body.
pub fn link_token(body: &str, path: &str) -> String {
    let start = body
        .find(path)
        .unwrap_or_else(|| panic!("no {path} link in {body}"));
    let rest = &body[start..];
    let t = rest.find("token=").unwrap() + "token=".len();
    rest[t..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// Waits (polling, bounded) for a mail file in `dir` whose text contains `needle`.
pub async fn wait_for_mail(dir: &Path, needle: &str) -> String {
    for _ in 0..200 {
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut paths: Vec<PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            for p in paths {
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                if name.starts_with('.') || p.is_dir() {
                    continue;
                }
                if let Ok(text) = std::fs::read_to_string(&p)
                    && text.contains(needle)
                {
                    return text;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no mail containing {needle:?} arrived in {}", dir.display());
}

/// The outbox directory of an app without SMTP.
pub fn outbox(app: &TestApp) -> PathBuf {
    app.db().data_dir.path().join("outbox")
}

/// A real SMTP server on loopback (Python aiosmtpd, `Mailbox` handler: a maildir).
pub struct SmtpSink {
    pub port: u16,
    pub maildir: tempfile::TempDir,
    child: Child,
}

fn ensure_aiosmtpd() {
    static READY: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let importable = || {
        Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let ready = READY.get_or_init(|| {
        if importable() {
            return Ok(());
        }
        let install = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "aiosmtpd",
            ])
            .output()
            .map_err(|e| format!("python3 is needed for the SMTP sink: {e}"))?;
        if importable() {
            Ok(())
        } else {
            Err(format!(
                "aiosmtpd is not installed and `python3 -m pip install aiosmtpd` failed: {}",
                String::from_utf8_lossy(&install.stderr)
            ))
        }
    });
    if let Err(why) = ready {
        panic!("{why}");
    }
}

impl SmtpSink {
    /// Starts the sink and waits until it accepts connections.
    pub async fn start() -> Self {
        ensure_aiosmtpd();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let maildir = tempfile::tempdir().unwrap();
        let mut child = Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
                maildir.path().join("mail").to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m aiosmtpd starts");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Self {
                    port,
                    maildir,
                    child,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the SMTP sink did not start on port {port}");
    }

    /// Where delivered messages land (maildir `new/`).
    pub fn inbox(&self) -> PathBuf {
        self.maildir.path().join("mail").join("new")
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn session_count(app: &TestApp, user_id: &str) -> u64 {
    session::Entity::find()
        .filter(session::Column::UserId.eq(user_id))
        .count(app.state.db())
        .await
        .unwrap()
}

async fn audit_actions(app: &TestApp) -> Vec<(String, String)> {
    oxbadge::db::audit_event::Entity::find()
        .all(app.state.db())
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.details))
        .collect()
}

#[tokio::test]
async fn register_verify_by_smtp_sign_in_csrf_and_sign_out() {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with(|s| {
        s.smtp_url = Some(secrecy::SecretString::from(format!(
            "smtp://127.0.0.1:{}",
            sink.port
        )));
    })
    .await;
    let http = browser_client();

    // Register through the page.
    let (anon, csrf, _) = open_page(&http, &app.url("/account/register"), None).await;
    let resp = post_form(
        &http,
        &app.url("/account/register"),
        &anon,
        &[
            ("csrf", &csrf),
            ("display_name", "Ada Lovelace"),
            ("email", " Ada@Example.com "),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("Check your inbox"));

    // The confirmation mail arrives at the SMTP sink.
    let mail = wait_for_mail(&sink.inbox(), "ada@example.com").await;
    assert!(
        mail.contains("Subject: Confirm your email address"),
        "{mail}"
    );
    let body = mail_body(&mail);
    let token = link_token(&body, "/account/verify-email");
    assert_eq!(token.len(), 43);

    // Before confirming, the right password does not sign in.
    let (c, csrf_c, _) = open_page(&http, &app.url("/account/sign-in"), None).await;
    let resp = post_form(
        &http,
        &app.url("/account/sign-in"),
        &c,
        &[
            ("csrf", &csrf_c),
            ("email", "ada@example.com"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(resp.status(), 403);

    // The link shows a confirmation form; posting it confirms, once.
    let (cookie, csrf, page) = open_page(
        &http,
        &app.url(&format!("/account/verify-email?token={token}")),
        Some(&anon),
    )
    .await;
    assert!(page.contains("Confirm my email address"));
    let resp = post_form(
        &http,
        &app.url("/account/verify-email"),
        &cookie,
        &[("csrf", &csrf), ("token", &token)],
    )
    .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(
        resp.headers()["location"].to_str().unwrap(),
        "/account/sign-in?done=verified"
    );
    let again = post_form(
        &http,
        &app.url("/account/verify-email"),
        &cookie,
        &[("csrf", &csrf), ("token", &token)],
    )
    .await;
    assert_eq!(again.status(), 400, "a verification link works once");

    // CSRF: a form post without the token, with a wrong one, or cross-site is refused before
    // anything happens.
    let (anon, csrf, _) = open_page(&http, &app.url("/account/sign-in"), None).await;
    let creds = [("email", "ada@example.com"), ("password", PASSWORD)];
    let resp = post_form(&http, &app.url("/account/sign-in"), &anon, &creds).await;
    assert_eq!(resp.status(), 403, "no CSRF token");
    assert!(set_cookie(&resp).is_none());
    let resp = post_form(
        &http,
        &app.url("/account/sign-in"),
        &anon,
        &[("csrf", "forged"), creds[0], creds[1]],
    )
    .await;
    assert_eq!(resp.status(), 403, "wrong CSRF token");
    let resp = http
        .post(app.url("/account/sign-in"))
        .header("cookie", &anon)
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf", csrf.as_str()), creds[0], creds[1]])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "cross-site post");
    // A token from another browser's cookie does not fit this one.
    let (_, other_csrf, _) = open_page(&http, &app.url("/account/sign-in"), None).await;
    let resp = post_form(
        &http,
        &app.url("/account/sign-in"),
        &anon,
        &[("csrf", &other_csrf), creds[0], creds[1]],
    )
    .await;
    assert_eq!(resp.status(), 403, "another session's token");

    // Sign in: 303 to the account page with a NEW cookie (rotation) and the right flags.
    let resp = post_form(
        &http,
        &app.url("/account/sign-in"),
        &anon,
        &[("csrf", &csrf), creds[0], creds[1]],
    )
    .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"].to_str().unwrap(), "/account");
    let (session_cookie, raw) = set_cookie(&resp).unwrap();
    assert_ne!(session_cookie, anon, "the session id is rotated at sign-in");
    assert!(session_cookie.starts_with("oxbadge_session="));
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(raw.contains(flag), "{raw} lacks {flag}");
    }
    assert!(
        !raw.contains("Secure"),
        "no Secure flag on plain HTTP: {raw}"
    );
    // The cookie value is not what the database stores.
    let value = session_cookie.split_once('=').unwrap().1.to_owned();
    let stored = session::Entity::find().all(app.state.db()).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0].secret_hash, value);
    assert_ne!(stored[0].id, value);

    // Signed in: the account page and the JSON "me".
    let (_, account_csrf, page) =
        open_page(&http, &app.url("/account"), Some(&session_cookie)).await;
    assert!(page.contains("Ada Lovelace"));
    assert!(page.contains("ada@example.com"));
    let me: Value = http
        .get(app.url("/api/v1/account"))
        .header("cookie", &session_cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "ada@example.com");
    assert_eq!(me["emailVerified"], true);
    let user_id = me["id"].as_str().unwrap().to_owned();
    // The pre-sign-in cookie is not signed in.
    let resp = http
        .get(app.url("/account"))
        .header("cookie", &anon)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);

    // Sign-out without the CSRF token is refused and changes nothing.
    let resp = post_form(&http, &app.url("/account/sign-out"), &session_cookie, &[]).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(session_count(&app, &user_id).await, 1);

    // Sign out: the session is gone, the cookie no longer works.
    let resp = post_form(
        &http,
        &app.url("/account/sign-out"),
        &session_cookie,
        &[("csrf", &account_csrf)],
    )
    .await;
    assert_eq!(resp.status(), 303);
    assert_ne!(set_cookie(&resp).unwrap().0, session_cookie);
    assert_eq!(session_count(&app, &user_id).await, 0);
    let resp = http
        .get(app.url("/account"))
        .header("cookie", &session_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert!(
        resp.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/account/sign-in?next=")
    );
    let resp = http
        .get(app.url("/api/v1/account"))
        .header("cookie", &session_cookie)
        .send()
        .await
        .unwrap();
    assert_problem(resp, 401, "not_signed_in").await;

    // The audit trail has the story, and no secret in it.
    let events = audit_actions(&app).await;
    for action in [
        "user.registered",
        "user.email_verified",
        "user.signed_in",
        "user.signed_out",
    ] {
        assert!(events.iter().any(|(a, _)| a == action), "{action} missing");
    }
    for (_, details) in &events {
        assert!(
            !details.contains(PASSWORD) && !details.contains(&token) && !details.contains(&value)
        );
    }
}

#[tokio::test]
async fn registering_a_taken_address_answers_the_same_and_mails_a_notice() {
    let app = TestApp::spawn().await;
    create_user(&app, "grace@example.com", "Grace", false).await;
    let http = browser_client();
    let register = |email: &'static str| {
        let http = http.clone();
        let url = app.url("/api/v1/account/register");
        async move {
            let resp = http
                .post(url)
                .json(&serde_json::json!({
                    "email": email, "displayName": "Someone", "password": PASSWORD
                }))
                .send()
                .await
                .unwrap();
            (resp.status(), resp.text().await.unwrap())
        }
    };
    let taken = register("grace@example.com").await;
    let fresh = register("new@example.com").await;
    assert_eq!(taken.0, StatusCode::ACCEPTED);
    assert_eq!(taken, fresh, "no account enumeration through registration");
    wait_for_mail(&outbox(&app), "Subject: You already have an account").await;
    wait_for_mail(&outbox(&app), "Subject: Confirm your email address").await;

    // Rules: weak password, bad address.
    let resp = http
        .post(app.url("/api/v1/account/register"))
        .json(&serde_json::json!({"email": "x@example.com", "displayName": "X", "password": "password1234"}))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 422, "weak_password").await;
    let resp = http
        .post(app.url("/api/v1/account/register"))
        .json(&serde_json::json!({"email": "not-an-address", "displayName": "X", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 422, "invalid_email").await;

    // Turned off by configuration.
    let closed = TestApp::spawn_with(|s| s.registration_open = false).await;
    let resp = http
        .post(closed.url("/api/v1/account/register"))
        .json(&serde_json::json!({"email": "y@example.com", "displayName": "Y", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 403, "registration_closed").await;
    let resp = http
        .get(closed.url("/account/register"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

/// The response to a sign-in attempt through the page, from a fixed browser cookie.
async fn attempt(
    app: &TestApp,
    http: &Client,
    cookie: &str,
    csrf: &str,
    email: &str,
    password: &str,
) -> (u16, String) {
    let resp = post_form(
        http,
        &app.url("/account/sign-in"),
        cookie,
        &[("csrf", csrf), ("email", email), ("password", password)],
    )
    .await;
    let status = resp.status().as_u16();
    let cookie = set_cookie(&resp);
    let body = resp.text().await.unwrap();
    assert!(status != 303 || cookie.is_some());
    (status, body)
}

#[tokio::test]
async fn five_failures_lock_the_account_with_the_same_answer_and_back_off_doubles() {
    let app = TestApp::spawn().await;
    let user_id = create_user(&app, "lin@example.com", "Lin", false).await;
    let http = browser_client();
    let (cookie, csrf, _) = open_page(&http, &app.url("/account/sign-in"), None).await;
    let email = "lin@example.com";

    let wrong = attempt(&app, &http, &cookie, &csrf, email, "not the password").await;
    assert_eq!(wrong.0, 401);
    assert!(
        wrong
            .1
            .contains("The email address or password is not correct"),
        "{}",
        wrong.1
    );
    for _ in 0..4 {
        assert_eq!(
            attempt(&app, &http, &cookie, &csrf, email, "not the password").await,
            wrong
        );
    }
    // Locked now: the right password gets exactly the wrong-password answer.
    let locked = attempt(&app, &http, &cookie, &csrf, email, PASSWORD).await;
    assert_eq!(
        locked, wrong,
        "a locked account answers like a wrong password"
    );
    // An unknown account answers the same too (the form echoes the address, nothing else differs).
    let unknown = attempt(
        &app,
        &http,
        &cookie,
        &csrf,
        "nobody@example.com",
        "whatever it is",
    )
    .await;
    assert_eq!(unknown.0, wrong.0);
    assert_eq!(unknown.1.replace("nobody@example.com", email), wrong.1);

    // One minute later the lock is over.
    app.state.clock().advance(chrono::Duration::seconds(61));
    let ok = attempt(&app, &http, &cookie, &csrf, email, PASSWORD).await;
    assert_eq!(ok.0, 303, "signed in after the first lock");

    // The count was reset by the success: five more failures lock again for 1 min; a sixth
    // failure after that doubles the lock to 2 min.
    for _ in 0..5 {
        attempt(&app, &http, &cookie, &csrf, email, "not the password").await;
    }
    app.state.clock().advance(chrono::Duration::seconds(61));
    attempt(&app, &http, &cookie, &csrf, email, "still not it").await;
    app.state.clock().advance(chrono::Duration::seconds(90));
    assert_eq!(
        attempt(&app, &http, &cookie, &csrf, email, PASSWORD).await,
        wrong,
        "locked for 2 min"
    );
    app.state.clock().advance(chrono::Duration::seconds(31));
    assert_eq!(
        attempt(&app, &http, &cookie, &csrf, email, PASSWORD)
            .await
            .0,
        303
    );

    let events = audit_actions(&app).await;
    assert!(events.iter().filter(|(a, _)| a == "user.locked").count() >= 2);
    assert!(
        events
            .iter()
            .any(|(a, d)| a == "user.sign_in_failed" && d.contains("locked"))
    );
    for (_, d) in &events {
        assert!(!d.contains(PASSWORD) && !d.contains("not the password"));
    }
    let _ = user_id;
}

#[tokio::test]
async fn sign_in_attempts_per_address_are_limited_across_accounts() {
    let app = TestApp::spawn_with(|s| s.sign_in_attempts_per_minute = 3).await;
    let http = browser_client();
    let (cookie, csrf, _) = open_page(&http, &app.url("/account/sign-in"), None).await;
    for i in 0..3 {
        let (status, _) = attempt(
            &app,
            &http,
            &cookie,
            &csrf,
            &format!("u{i}@example.com"),
            "whatever it is",
        )
        .await;
        assert_eq!(status, 401);
    }
    let (status, body) = attempt(
        &app,
        &http,
        &cookie,
        &csrf,
        "u9@example.com",
        "whatever it is",
    )
    .await;
    assert_eq!(status, 429);
    assert!(body.contains("Too many sign-in attempts"));
}

#[tokio::test]
async fn reset_link_is_single_use_ends_sessions_and_expires_after_an_hour() {
    let app = TestApp::spawn().await;
    let user_id = create_user(&app, "kim@example.com", "Kim", false).await;
    let http = browser_client();
    let old_session = sign_in(&app, &http, "kim@example.com", PASSWORD).await;
    assert_eq!(session_count(&app, &user_id).await, 1);

    let ask = async || {
        let (cookie, csrf, _) = open_page(&http, &app.url("/account/forgot-password"), None).await;
        let resp = post_form(
            &http,
            &app.url("/account/forgot-password"),
            &cookie,
            &[("csrf", &csrf), ("email", "KIM@example.com")],
        )
        .await;
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap()
    };
    let answer = ask().await;
    // The same answer for an address without an account.
    let (cookie, csrf, _) = open_page(&http, &app.url("/account/forgot-password"), None).await;
    let unknown = post_form(
        &http,
        &app.url("/account/forgot-password"),
        &cookie,
        &[("csrf", &csrf), ("email", "nobody@example.com")],
    )
    .await
    .text()
    .await
    .unwrap();
    assert_eq!(answer, unknown);

    let mail = wait_for_mail(&outbox(&app), "Subject: Reset your password").await;
    let token = link_token(&mail_body(&mail), "/account/reset-password");
    let (cookie, csrf, page) = open_page(
        &http,
        &app.url(&format!("/account/reset-password?token={token}")),
        None,
    )
    .await;
    assert!(page.contains("New password"));
    // A weak new password is refused and the link stays usable.
    let resp = post_form(
        &http,
        &app.url("/account/reset-password"),
        &cookie,
        &[("csrf", &csrf), ("token", &token), ("password", "short")],
    )
    .await;
    assert_eq!(resp.status(), 422);
    let new_password = "a brand new passphrase here";
    let resp = post_form(
        &http,
        &app.url("/account/reset-password"),
        &cookie,
        &[
            ("csrf", &csrf),
            ("token", &token),
            ("password", new_password),
        ],
    )
    .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(
        resp.headers()["location"].to_str().unwrap(),
        "/account/sign-in?done=reset"
    );
    // Single use.
    let resp = post_form(
        &http,
        &app.url("/account/reset-password"),
        &cookie,
        &[
            ("csrf", &csrf),
            ("token", &token),
            ("password", "yet another passphrase"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 400);
    // Every session ended; the new password works, the old one does not.
    assert_eq!(session_count(&app, &user_id).await, 0);
    let resp = http
        .get(app.url("/api/v1/account"))
        .header("cookie", &old_session)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    sign_in(&app, &http, "kim@example.com", new_password).await;
    let (c, t, _) = open_page(&http, &app.url("/account/sign-in"), None).await;
    assert_eq!(
        attempt(&app, &http, &c, &t, "kim@example.com", PASSWORD)
            .await
            .0,
        401
    );

    // A second link: still good after 59 minutes, expired after 61.
    std::fs::remove_dir_all(outbox(&app)).unwrap();
    ask().await;
    let mail = wait_for_mail(&outbox(&app), "Subject: Reset your password").await;
    let token = link_token(&mail_body(&mail), "/account/reset-password");
    app.state.clock().advance(chrono::Duration::minutes(59));
    let (cookie, csrf, _) = open_page(
        &http,
        &app.url(&format!("/account/reset-password?token={token}")),
        None,
    )
    .await;
    app.state.clock().advance(chrono::Duration::minutes(2));
    let resp = post_form(
        &http,
        &app.url("/account/reset-password"),
        &cookie,
        &[
            ("csrf", &csrf),
            ("token", &token),
            ("password", "the expired attempt"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 400, "expired after 1 h");
    let resp = http
        .get(app.url(&format!("/account/reset-password?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    let events = audit_actions(&app).await;
    assert!(events.iter().any(|(a, _)| a == "user.password_reset"));
    for (_, d) in &events {
        assert!(!d.contains(&token) && !d.contains(new_password));
    }
}

#[tokio::test]
async fn sessions_end_after_12_hours_idle_and_7_days_absolute() {
    let app = TestApp::spawn().await;
    create_user(&app, "ida@example.com", "Ida", false).await;
    let http = browser_client();
    let me = async |cookie: &str| {
        http.get(app.url("/api/v1/account"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap()
            .status()
    };
    let idle = sign_in(&app, &http, "ida@example.com", PASSWORD).await;
    let busy = sign_in(&app, &http, "ida@example.com", PASSWORD).await;
    // Busy keeps being used every 11 h; idle is not used for 12 h.
    app.state.clock().advance(chrono::Duration::hours(11));
    assert_eq!(me(&busy).await, 200);
    app.state
        .clock()
        .advance(chrono::Duration::hours(1) + chrono::Duration::minutes(1));
    assert_eq!(me(&idle).await, 401, "ended after 12 h idle");
    let mut elapsed = chrono::Duration::hours(12) + chrono::Duration::minutes(1);
    while elapsed + chrono::Duration::hours(11) < chrono::Duration::days(7) {
        assert_eq!(me(&busy).await, 200, "alive at {elapsed}");
        app.state.clock().advance(chrono::Duration::hours(11));
        elapsed += chrono::Duration::hours(11);
    }
    assert_eq!(me(&busy).await, 200, "alive at {elapsed}");
    // Less than 12 h idle, but past the 7-day absolute end.
    app.state
        .clock()
        .advance(chrono::Duration::days(7) - elapsed + chrono::Duration::minutes(1));
    assert_eq!(me(&busy).await, 401, "ended after 7 days");
}

#[tokio::test]
async fn tls_cookie_is_secure_and_host_prefixed() {
    let app = TestApp::spawn_with(|s| s.dev_tls = true).await;
    create_user(&app, "tia@example.com", "Tia", false).await;
    let http = Client::builder()
        .redirect(Policy::none())
        .danger_accept_invalid_certs(true)
        .resolve("localhost", app.addr)
        .build()
        .unwrap();
    let (cookie, csrf, _) = open_page(&http, &app.url("/account/sign-in"), None).await;
    assert!(cookie.starts_with("__Host-oxbadge_session="));
    let resp = post_form(
        &http,
        &app.url("/account/sign-in"),
        &cookie,
        &[
            ("csrf", &csrf),
            ("email", "tia@example.com"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(resp.status(), 303);
    let (_, raw) = set_cookie(&resp).unwrap();
    for flag in [
        "__Host-oxbadge_session=",
        "HttpOnly",
        "SameSite=Lax",
        "Path=/",
        "Secure",
    ] {
        assert!(raw.contains(flag), "{raw} lacks {flag}");
    }
}

#[tokio::test]
async fn json_account_endpoints_need_the_session_and_the_csrf_header() {
    let app = TestApp::spawn().await;
    let admin = app.token("admin").await;
    let http = browser_client();

    // Admin creates staff.
    let resp = http
        .post(app.url("/api/v1/users"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"email": "Staff@Example.com", "displayName": "Staff", "password": PASSWORD, "isAdmin": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    assert_eq!(created["email"], "staff@example.com");
    assert_eq!(created["isAdmin"], true);
    assert!(created.get("passwordHash").is_none());
    let resp = http
        .post(app.url("/api/v1/users"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"email": "staff@example.com", "displayName": "Again", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 409, "email_taken").await;
    let resp = http
        .post(app.url("/api/v1/users"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"email": "weak@example.com", "displayName": "Weak", "password": "q1w2e3r4t5y6"}))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 422, "weak_password").await;
    // Without a password: a reset link is mailed so the person sets their own.
    let resp = http
        .post(app.url("/api/v1/users"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"email": "linkonly@example.com", "displayName": "Link"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    wait_for_mail(&outbox(&app), "linkonly@example.com").await;
    let list: Value = http
        .get(app.url("/api/v1/users"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 2);

    // No session → 401.
    let resp = http.get(app.url("/api/v1/account")).send().await.unwrap();
    assert_problem(resp, 401, "not_signed_in").await;

    let first = sign_in(&app, &http, "staff@example.com", PASSWORD).await;
    let second = sign_in(&app, &http, "staff@example.com", PASSWORD).await;
    let me: Value = http
        .get(app.url("/api/v1/account"))
        .header("cookie", &first)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["isAdmin"], true);
    let csrf = me["csrfToken"].as_str().unwrap().to_owned();
    let sessions: Value = http
        .get(app.url("/api/v1/account/sessions"))
        .header("cookie", &first)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sessions.as_array().unwrap().len(), 2);
    let other_id = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Writes without the CSRF header are refused and change nothing.
    let change =
        serde_json::json!({"currentPassword": PASSWORD, "newPassword": "another fine passphrase"});
    let resp = http
        .post(app.url("/api/v1/account/password"))
        .header("cookie", &first)
        .json(&change)
        .send()
        .await
        .unwrap();
    assert_problem(resp, 403, "csrf_token_invalid").await;
    let resp = http
        .delete(app.url(&format!("/api/v1/account/sessions/{other_id}")))
        .header("cookie", &first)
        .header("x-csrf-token", "forged")
        .send()
        .await
        .unwrap();
    assert_problem(resp, 403, "csrf_token_invalid").await;
    let resp = http
        .get(app.url("/api/v1/account"))
        .header("cookie", &second)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // End the other session.
    let resp = http
        .delete(app.url(&format!("/api/v1/account/sessions/{other_id}")))
        .header("cookie", &first)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = http
        .get(app.url("/api/v1/account"))
        .header("cookie", &second)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = http
        .delete(app.url(&format!("/api/v1/account/sessions/{other_id}")))
        .header("cookie", &first)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_problem(resp, 404, "not_found").await;

    // Password change: wrong current password → 401; right → 204, and it takes effect.
    let resp = http
        .post(app.url("/api/v1/account/password"))
        .header("cookie", &first)
        .header("x-csrf-token", &csrf)
        .json(&serde_json::json!({"currentPassword": "not it at all", "newPassword": "another fine passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = http
        .post(app.url("/api/v1/account/password"))
        .header("cookie", &first)
        .header("x-csrf-token", &csrf)
        .json(&change)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    sign_in(&app, &http, "staff@example.com", "another fine passphrase").await;
    assert!(
        audit_actions(&app)
            .await
            .iter()
            .any(|(a, _)| a == "user.password_changed")
    );
}

fn cli(app: &TestApp, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_oxbadge"))
        .arg("--database-url")
        .arg(&app.db().url)
        .arg("--data-dir")
        .arg(app.db().data_dir.path())
        .args(args)
        .env("OXBADGE_LOG", "error")
        .env("OXBADGE_KEK", crate::support::random_kek("cli-kek"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "oxbadge {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[tokio::test]
async fn cli_creates_lists_disables_enables_and_resets_users() {
    let app = TestApp::spawn().await;
    let out = cli(
        &app,
        &[
            "users",
            "create",
            "--email",
            "Op@Example.com",
            "--name",
            "Operator",
            "--admin",
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        printed.contains("op@example.com") && printed.contains("(admin)"),
        "{printed}"
    );
    assert!(!printed.contains(PASSWORD));
    let listed = String::from_utf8(cli(&app, &["users", "list", "--json"], None).stdout).unwrap();
    let row: Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    assert_eq!(row["email"], "op@example.com");
    assert_eq!(row["isAdmin"], true);
    assert_eq!(row["emailVerified"], true);

    // The password from stdin signs in over HTTP.
    let http = browser_client();
    let session = sign_in(&app, &http, "op@example.com", PASSWORD).await;

    // Disabled: the session ends and sign-in answers like a wrong password.
    cli(
        &app,
        &["users", "disable", "--email", "op@example.com"],
        None,
    );
    let resp = http
        .get(app.url("/api/v1/account"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let (c, t, _) = open_page(&http, &app.url("/account/sign-in"), None).await;
    let disabled = attempt(&app, &http, &c, &t, "op@example.com", PASSWORD).await;
    let wrong = attempt(&app, &http, &c, &t, "op@example.com", "a wrong password").await;
    assert_eq!(disabled, wrong);
    cli(
        &app,
        &["users", "enable", "--email", "op@example.com"],
        None,
    );
    sign_in(&app, &http, "op@example.com", PASSWORD).await;

    // A reset link goes to the outbox (no SMTP configured) and works.
    cli(
        &app,
        &["users", "reset-password", "--email", "op@example.com"],
        None,
    );
    let mail = wait_for_mail(&outbox(&app), "Subject: Reset your password").await;
    let token = link_token(&mail_body(&mail), "/account/reset-password");
    let (cookie, csrf, _) = open_page(
        &http,
        &app.url(&format!("/account/reset-password?token={token}")),
        None,
    )
    .await;
    let resp = post_form(
        &http,
        &app.url("/account/reset-password"),
        &cookie,
        &[
            ("csrf", &csrf),
            ("token", &token),
            ("password", "set from the cli link"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 303);
    sign_in(&app, &http, "op@example.com", "set from the cli link").await;
    // A password on the command line is refused: there is no such flag.
    let refused = Command::new(env!("CARGO_BIN_EXE_oxbadge"))
        .args([
            "users",
            "create",
            "--email",
            "x@example.com",
            "--name",
            "X",
            "--password",
            "pw",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
}
