//! The pages: every page renders with `lang`, a label for every field and a strict CSP; `next`
//! never leaves the site; and a real headless Chromium (driven over WebDriver by chromedriver)
//! registers, confirms, signs in and lands on the account page, with screenshots saved and an
//! axe-core accessibility check on each page (no serious or critical violations).

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use base64::Engine;
use serde_json::{Value, json};

use crate::{
    accounts::{
        PASSWORD, browser_client, create_user, link_token, mail_body, open_page, outbox, post_form,
        set_cookie, sign_in, wait_for_mail,
    },
    support::TestApp,
};

/// Every `<input …>` tag of a page.
fn input_tags(html: &str) -> Vec<&str> {
    let mut tags = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<input") {
        let end = rest[start..].find('>').unwrap() + start;
        tags.push(&rest[start..=end]);
        rest = &rest[end..];
    }
    tags
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let marker = format!(" {name}=\"");
    let start = tag.find(&marker)? + marker.len();
    let end = tag[start..].find('"')? + start;
    Some(&tag[start..end])
}

fn check_page(html: &str, csp: &str, what: &str) {
    assert!(html.starts_with("<!doctype html>"), "{what}");
    assert!(html.contains("<html lang=\"en\">"), "{what}: lang");
    assert!(!html.contains("<script"), "{what}: no script");
    assert!(!html.contains(" style=\""), "{what}: no inline style");
    assert!(!html.contains("<style"), "{what}: no style element");
    for tag in input_tags(html) {
        if attr(tag, "type") == Some("hidden") {
            continue;
        }
        let id = attr(tag, "id").unwrap_or_else(|| panic!("{what}: input without id: {tag}"));
        assert!(
            html.contains(&format!("<label for=\"{id}\">")),
            "{what}: no label for #{id}"
        );
    }
    assert!(csp.contains("default-src 'none'"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert!(
        !csp.contains("script-src"),
        "{what}: no script allowed: {csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(csp.contains("form-action 'self'"), "{what}: {csp}");
}

#[tokio::test]
async fn every_page_renders_accessibly_under_a_strict_csp() {
    let app = TestApp::spawn().await;
    create_user(&app, "pia@example.com", "Pia", false).await;
    let http = browser_client();
    let session = sign_in(&app, &http, "pia@example.com", PASSWORD).await;
    let pages: [(&str, Option<&str>, u16); 7] = [
        ("/account/sign-in", None, 200),
        ("/account/register", None, 200),
        ("/account/forgot-password", None, 200),
        ("/account/verify-email?token=unknown", None, 400),
        ("/account/reset-password?token=unknown", None, 400),
        ("/account", Some(&session), 200),
        ("/account/no-such-page", None, 404),
    ];
    for (path, cookie, status) in pages {
        let mut req = http.get(app.url(path));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{path}");
        let headers = resp.headers().clone();
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        assert_eq!(headers["cache-control"], "no-store", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        let csp = headers["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = resp.text().await.unwrap();
        check_page(&body, &csp, path);
        // The stylesheet the page links is served, immutable.
        let css = body
            .split("href=\"")
            .find_map(|s| {
                s.starts_with("/static/")
                    .then(|| s.split('"').next().unwrap())
            })
            .unwrap();
        let resp = http.get(app.url(css)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("immutable")
        );
    }
    let resp = http
        .get(app.url("/static/0000/style.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    // The account page shows the sessions with an end button per other session.
    let body = http
        .get(app.url("/account"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("This session"));
}

#[tokio::test]
async fn next_returns_only_to_local_paths() {
    let app = TestApp::spawn().await;
    create_user(&app, "ned@example.com", "Ned", false).await;
    let http = browser_client();
    for (next, expected) in [
        (
            "/oauth/authorize?client_id=a&state=b",
            "/oauth/authorize?client_id=a&state=b",
        ),
        ("//evil.example/x", "/account"),
        ("https://evil.example/", "/account"),
        ("/\\evil.example", "/account"),
        ("javascript:alert(1)", "/account"),
    ] {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("next", next);
        let (cookie, csrf, page) = open_page(
            &http,
            &app.url(&format!("/account/sign-in?{}", q.finish())),
            None,
        )
        .await;
        assert!(!page.contains("evil.example"), "{next} is not echoed");
        let resp = post_form(
            &http,
            &app.url("/account/sign-in"),
            &cookie,
            &[
                ("csrf", &csrf),
                ("email", "ned@example.com"),
                ("password", PASSWORD),
                ("next", next),
            ],
        )
        .await;
        assert_eq!(resp.status(), 303, "{next}");
        assert_eq!(resp.headers()["location"], expected, "{next}");
        assert!(set_cookie(&resp).is_some());
    }
    // A signed-out visit to the account page goes to sign-in and comes back.
    let resp = http.get(app.url("/account")).send().await.unwrap();
    assert_eq!(
        resp.headers()["location"],
        "/account/sign-in?next=%2Faccount"
    );
}

// ---- the headless browser ----

/// A chromedriver process and one Chromium session driven over WebDriver (W3C) with reqwest.
struct Browser {
    http: reqwest::Client,
    base: String,
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
    shots: PathBuf,
}

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// axe-core's script: `OXBADGE_AXE_JS`, the shared cache, or installed there with npm.
fn axe_source() -> String {
    let configured = std::env::var("OXBADGE_AXE_JS").ok().map(PathBuf::from);
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let prefix = PathBuf::from(home).join(".cache/oxbadge/axe");
    let cached = prefix.join("node_modules/axe-core/axe.min.js");
    let path = match configured {
        Some(p) if p.is_file() => p,
        _ => {
            if !cached.is_file() {
                let out = Command::new("npm")
                    .args(["install", "--silent", "--prefix"])
                    .arg(&prefix)
                    .arg("axe-core")
                    .output()
                    .expect("npm is needed to install axe-core");
                assert!(
                    cached.is_file(),
                    "npm install axe-core failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            cached
        }
    };
    std::fs::read_to_string(path).unwrap()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium; `None` (with a loud message) only when the
    /// browser is not installed and this is not CI.
    async fn start(name: &str) -> Option<Self> {
        let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"]);
        let driver = find_program(&["chromedriver"]);
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("chromium and chromedriver must be installed in CI (.ci/run installs them)");
            }
            eprintln!(
                "\n!!!!! SKIPPING the headless-browser test `{name}`: chromium/chromedriver not found \
                 (apt-get install chromium chromium-driver) !!!!!\n"
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        for _ in 0..200 {
            if http.get(format!("{base}/status")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1024,900".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let resp: Value = http
            .post(format!("{base}/session"))
            .json(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": chromium, "args": args},
            }}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("WebDriver session: {resp}"))
            .to_owned();
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Some(Self {
            http,
            base,
            session,
            driver: child,
            _profile: profile,
            shots,
        })
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp: Value = req.send().await.unwrap().json().await.unwrap();
        if resp["value"].get("error").is_some() {
            panic!("WebDriver {path}: {resp}");
        }
        resp["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .unwrap_or_else(|| panic!("element {css}: {v}"))
            .to_owned()
    }

    async fn fill(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn text(&self) -> String {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": "return document.body.innerText;", "args": []})),
        )
        .await
        .as_str()
        .unwrap()
        .to_owned()
    }

    /// Waits (bounded) until the page text contains `needle`; returns the text.
    async fn wait_for_text(&self, needle: &str) -> String {
        let mut text = String::new();
        for _ in 0..100 {
            text = self.text().await;
            if text.contains(needle) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "page at {} never showed {needle:?}: {text}",
            self.url().await
        );
    }

    /// Waits (bounded) until the URL contains `needle`; returns it.
    async fn wait_for_url(&self, needle: &str) -> String {
        let mut url = String::new();
        for _ in 0..100 {
            url = self.url().await;
            if url.contains(needle) {
                return url;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("never reached a URL containing {needle:?}; at {url}");
    }

    /// Saves a PNG screenshot and returns its path.
    async fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        println!("screenshot: {}", path.display());
        path
    }

    /// Runs axe-core on the current page; returns the serious and critical violations.
    async fn axe(&self, axe: &str) -> Vec<Value> {
        // WebDriver scripts are not subject to the page's CSP, so the page itself needs none.
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": format!("{axe}\n;window.axe = axe; return true;"), "args": []})),
        )
        .await;
        let result = self
            .cmd(
                reqwest::Method::POST,
                "/execute/async",
                Some(json!({"script": "const done = arguments[arguments.length - 1];\
                    axe.run(document, {resultTypes: ['violations']})\
                      .then(r => done(JSON.stringify({passes: r.passes.length, violations: r.violations})))\
                      .catch(e => done(JSON.stringify({passes: 0, violations: [{impact: 'critical', id: 'axe-error', help: String(e)}]})));",
                    "args": []})),
            )
            .await;
        let report: Value = serde_json::from_str(result.as_str().unwrap()).unwrap();
        // A run that checked nothing proves nothing.
        assert!(
            report["passes"].as_u64().unwrap_or(0) > 5,
            "axe checked nothing: {report}"
        );
        report["violations"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

async fn assert_accessible(browser: &Browser, axe: &str, page: &str) {
    let bad = browser.axe(axe).await;
    assert!(
        bad.is_empty(),
        "{page}: serious/critical accessibility violations: {}",
        serde_json::to_string_pretty(&bad).unwrap()
    );
}

#[tokio::test]
async fn headless_chromium_registers_confirms_signs_in_and_lands_signed_in() {
    use futures_util::FutureExt;
    let Some(browser) = Browser::start("headless_chromium_registers_confirms_signs_in").await
    else {
        return;
    };
    let axe = axe_source();
    let app = TestApp::spawn().await;
    let outcome = std::panic::AssertUnwindSafe(browse(&browser, &axe, &app))
        .catch_unwind()
        .await;
    // Always end the WebDriver session, so Chromium exits even when the test failed.
    let _ = browser
        .http
        .delete(format!("{}/session/{}", browser.base, browser.session))
        .send()
        .await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn browse(browser: &Browser, axe: &str, app: &TestApp) {
    // Register.
    browser.goto(&app.url("/account/register")).await;
    browser.screenshot("01-register").await;
    assert_accessible(browser, axe, "register").await;
    browser.fill("#display_name", "Mary Somerville").await;
    browser.fill("#email", "mary@example.com").await;
    browser.fill("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_text("Check your inbox").await;
    browser.screenshot("02-registered").await;
    assert_accessible(browser, axe, "check your inbox").await;

    // Follow the link from the mail.
    let mail = wait_for_mail(&outbox(app), "mary@example.com").await;
    let token = link_token(&mail_body(&mail), "/account/verify-email");
    browser
        .goto(&app.url(&format!("/account/verify-email?token={token}")))
        .await;
    browser.screenshot("03-verify-email").await;
    assert_accessible(browser, axe, "verify email").await;
    browser.click("button[type=submit]").await;
    browser.wait_for_url("/account/sign-in?done=verified").await;
    browser
        .wait_for_text("Your email address is confirmed")
        .await;

    // Sign in, with a wrong password first.
    browser.fill("#email", "mary@example.com").await;
    browser.fill("#password", "not my password").await;
    browser.click("button[type=submit]").await;
    browser.wait_for_text("not correct").await;
    browser.screenshot("04-sign-in-error").await;
    assert_accessible(browser, axe, "sign-in error").await;
    browser.fill("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;

    // Landed signed in on the account page.
    let text = browser.wait_for_text("Signed in as Mary Somerville").await;
    let url = browser.url().await;
    assert!(url.ends_with("/account"), "{url}");
    assert!(text.contains("This session"), "{text}");
    browser.screenshot("05-account").await;
    assert_accessible(browser, axe, "account").await;

    // Sign out from the page.
    browser
        .click("form[action='/account/sign-out'] button")
        .await;
    browser.wait_for_text("You have signed out").await;
    browser.screenshot("06-signed-out").await;
    assert_accessible(browser, axe, "signed out").await;
    browser.goto(&app.url("/account")).await;
    browser.wait_for_url("/account/sign-in?next=").await;
}
