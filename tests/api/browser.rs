//! The headless browser the page and OAuth tests share: a chromedriver process and one Chromium
//! session driven over WebDriver (W3C) with reqwest; screenshots go to the test artifacts
//! (`CARGO_TARGET_TMPDIR/browser-screenshots`); axe-core checks accessibility.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use base64::Engine;
use serde_json::{Value, json};

/// A chromedriver process and one Chromium session driven over WebDriver (W3C) with reqwest.
pub struct Browser {
    pub http: reqwest::Client,
    pub base: String,
    pub session: String,
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
pub fn axe_source() -> String {
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
    pub async fn start(name: &str) -> Option<Self> {
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

    pub async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
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

    pub async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    pub async fn element(&self, css: &str) -> String {
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

    pub async fn fill(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    pub async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    pub async fn url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn text(&self) -> String {
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
    pub async fn wait_for_text(&self, needle: &str) -> String {
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
    pub async fn wait_for_url(&self, needle: &str) -> String {
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
    /// A screenshot of the whole page (the window is made as tall as the document, up to 4,000
    /// pixels, for the capture and then put back), kept under the screenshots directory.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let height = self
            .cmd(
                reqwest::Method::POST,
                "/execute/sync",
                Some(json!({"script": "return Math.max(document.documentElement.scrollHeight, document.body ? document.body.scrollHeight : 0) + (window.outerHeight - window.innerHeight);", "args": []})),
            )
            .await
            .as_u64()
            .unwrap_or(900)
            .clamp(900, 4000);
        self.cmd(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": 1024, "height": height})),
        )
        .await;
        let b64 = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        self.cmd(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": 1024, "height": 900})),
        )
        .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        println!("screenshot: {}", path.display());
        path
    }

    /// Runs axe-core on the current page; returns the serious and critical violations.
    pub async fn axe(&self, axe: &str) -> Vec<Value> {
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

impl Browser {
    /// Ends the WebDriver session (Chromium exits).
    pub async fn quit(&self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
    }

    /// Runs `test` with this browser and always ends the session afterwards, even on a panic.
    pub async fn run<F: std::future::Future<Output = ()>>(&self, test: F) {
        use futures_util::FutureExt;
        let outcome = std::panic::AssertUnwindSafe(test).catch_unwind().await;
        self.quit().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

pub async fn assert_accessible(browser: &Browser, axe: &str, page: &str) {
    let bad = browser.axe(axe).await;
    assert!(
        bad.is_empty(),
        "{page}: serious/critical accessibility violations: {}",
        serde_json::to_string_pretty(&bad).unwrap()
    );
}
