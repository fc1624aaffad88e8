//! The authorization-code flow end to end: a real headless Chromium signs in and consents for a
//! confidential client (redirect to a tiny HTTP listener on loopback) and for a public native
//! client (`none`, loopback redirect); the code is exchanged, the token calls the API, the refresh
//! token rotates, and withdrawing the consent on the account page ends the tokens (401). Python
//! `authlib` (an independent OAuth client) drives the same flow. The shared helpers here (clients
//! inserted through sea-orm, PKCE, the HTTP consent dance) serve `oauth_attacks` too.

use std::time::Duration;

use base64::Engine;
use oxbadge::db::oauth_client;
use rand::RngCore;
use reqwest::{Client, StatusCode};
use sea_orm::{ActiveModelTrait, Set};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::mpsc,
};

use crate::{
    accounts::{PASSWORD, browser_client, create_user, csrf_of, post_form, sign_in},
    browser::{Browser, assert_accessible, axe_source},
    keys::create_issuer,
    support::TestApp,
};

/// The OB 3.0 profile scope (every confirmed user may grant it).
pub const PROFILE: &str = "https://purl.imsglobal.org/spec/ob/v3p0/scope/profile.readonly";
pub const CREDENTIALS: &str = "https://purl.imsglobal.org/spec/ob/v3p0/scope/credential.readonly";

/// A client of the authorization server as a test sees it.
#[derive(Clone, Debug)]
pub struct Wallet {
    pub client_id: String,
    /// `None` for a public client.
    pub secret: Option<String>,
    pub redirect_uri: String,
}

/// Inserts a client row through sea-orm (as registration would): `method` is its
/// `token_endpoint_auth_method`; a public client (`none`) gets no secret.
pub async fn insert_client(
    app: &TestApp,
    name: &str,
    redirect_uris: &[&str],
    scopes: &str,
    method: &str,
) -> Wallet {
    let client_id = oxbadge::db::new_id();
    let secret = (method != "none").then(|| format!("oxbcs_test_{}", oxbadge::db::new_id()));
    oauth_client::ActiveModel {
        id: Set(client_id.clone()),
        name: Set(name.to_owned()),
        secret_hash: Set(secret
            .as_deref()
            .map(oxbadge::oauth::tokens::hash_secret)
            .unwrap_or_default()),
        scopes: Set(scopes.to_owned()),
        kind: Set("app".to_owned()),
        created_at: Set(chrono::Utc::now()),
        disabled_at: Set(None),
        global: Set(false),
        redirect_uris: Set(redirect_uris.join(" ")),
        updated_at: Set(None),
        client_uri: Set(Some("https://wallet.example/".into())),
        logo_uri: Set(Some("http://wallet.example/logo.png".into())),
        tos_uri: Set(Some("https://wallet.example/terms".into())),
        policy_uri: Set(Some("https://wallet.example/privacy".into())),
        software_id: Set(None),
        software_version: Set(None),
        contacts: Set(None),
        grant_types: Set(Some("authorization_code refresh_token".into())),
        response_types: Set(Some("code".into())),
        token_endpoint_auth_method: Set(method.to_owned()),
        registration_token_hash: Set(None),
        registered_dynamically: Set(true),
        first_token_at: Set(None),
    }
    .insert(app.state.db())
    .await
    .unwrap();
    Wallet {
        client_id,
        secret,
        redirect_uri: redirect_uris[0].to_owned(),
    }
}

/// A fresh PKCE pair: (verifier, S256 challenge).
pub fn pkce() -> (String, String) {
    let mut bytes = [0u8; 48];
    rand::thread_rng().fill_bytes(&mut bytes);
    let verifier = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// The authorization URL (path and query) for `wallet` with the given parameters.
pub fn authorize_path(params: &[(&str, &str)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        q.append_pair(k, v);
    }
    format!("/oauth/authorize?{}", q.finish())
}

/// The standard parameters of a request by `wallet`.
pub fn standard_params<'a>(
    wallet: &'a Wallet,
    scope: &'a str,
    state: &'a str,
    challenge: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", &wallet.client_id),
        ("redirect_uri", &wallet.redirect_uri),
        ("scope", scope),
        ("state", state),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
}

/// The query parameters of a URL.
pub fn query_of(location: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The hidden fields of the consent form (name → value).
pub fn hidden_fields(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<input type=\"hidden\" name=\"") {
        let tail = &rest[start + "<input type=\"hidden\" name=\"".len()..];
        let name_end = tail.find('"').unwrap();
        let name = tail[..name_end].to_owned();
        let value_start = tail.find("value=\"").unwrap() + "value=\"".len();
        let value_end = tail[value_start..].find('"').unwrap() + value_start;
        let value = tail[value_start..value_end]
            .replace("&amp;", "&")
            .replace("&quot;", "\"")
            .replace("&#x27;", "'")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
        out.push((name, value));
        rest = &tail[value_end..];
    }
    out
}

/// A signed-in person's HTTP session.
pub struct Person {
    pub user_id: String,
    pub cookie: String,
    pub http: Client,
}

/// Creates a confirmed user and signs them in over HTTP.
pub async fn person(app: &TestApp, email: &str) -> Person {
    let user_id = create_user(app, email, email, false).await;
    let http = browser_client();
    let cookie = sign_in(app, &http, email, PASSWORD).await;
    Person {
        user_id,
        cookie,
        http,
    }
}

/// GETs an authorization URL as `person` (no redirects followed).
pub async fn authorize(app: &TestApp, person: &Person, path: &str) -> reqwest::Response {
    person
        .http
        .get(app.url(path))
        .header("cookie", &person.cookie)
        .send()
        .await
        .unwrap()
}

/// Runs the authorization request as `person`, approving the consent page when it is shown;
/// returns the final `Location` (the client's redirect URI with `code` or `error`).
pub async fn authorize_and_approve(app: &TestApp, person: &Person, path: &str) -> String {
    let resp = authorize(app, person, path).await;
    match resp.status().as_u16() {
        302 => resp.headers()["location"].to_str().unwrap().to_owned(),
        200 => {
            let page = resp.text().await.unwrap();
            let csrf = csrf_of(&page);
            let mut form: Vec<(String, String)> = hidden_fields(&page);
            form.retain(|(k, _)| k != "csrf");
            form.push(("csrf".into(), csrf));
            form.push(("decision".into(), "approve".into()));
            let pairs: Vec<(&str, &str)> =
                form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let resp = post_form(
                &person.http,
                &app.url("/oauth/consent"),
                &person.cookie,
                &pairs,
            )
            .await;
            assert_eq!(resp.status(), 303, "consent approval");
            resp.headers()["location"].to_str().unwrap().to_owned()
        }
        other => panic!("authorize answered {other}: {}", resp.text().await.unwrap()),
    }
}

/// Gets a code for `wallet` as `person` with `scope`; returns (code, verifier).
pub async fn code_for(
    app: &TestApp,
    person: &Person,
    wallet: &Wallet,
    scope: &str,
) -> (String, String) {
    let (verifier, challenge) = pkce();
    let path = authorize_path(&standard_params(wallet, scope, "st-1", &challenge));
    let location = authorize_and_approve(app, person, &path).await;
    assert!(location.starts_with(&wallet.redirect_uri), "{location}");
    let q = query_of(&location);
    assert_eq!(
        q.get("state").map(String::as_str),
        Some("st-1"),
        "{location}"
    );
    let code = q
        .get("code")
        .unwrap_or_else(|| panic!("no code in {location}"))
        .clone();
    (code, verifier)
}

/// A token request authenticated as `wallet` (Basic for confidential clients, client_id for
/// public ones).
pub async fn token_request(
    app: &TestApp,
    wallet: &Wallet,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut fields: Vec<(&str, &str)> = form.to_vec();
    let mut req = app.http.post(app.url("/oauth/token"));
    match &wallet.secret {
        Some(secret) => req = req.basic_auth(&wallet.client_id, Some(secret)),
        None => fields.push(("client_id", &wallet.client_id)),
    }
    req.form(&fields).send().await.unwrap()
}

/// Exchanges a code; returns the response.
pub async fn exchange(
    app: &TestApp,
    wallet: &Wallet,
    code: &str,
    verifier: &str,
) -> reqwest::Response {
    token_request(
        app,
        wallet,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &wallet.redirect_uri),
            ("code_verifier", verifier),
        ],
    )
    .await
}

/// Refreshes; returns the response.
pub async fn refresh(
    app: &TestApp,
    wallet: &Wallet,
    token: &str,
    scope: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    token_request(app, wallet, &form).await
}

/// Asserts an OAuth error answer; returns its body.
pub async fn assert_oauth_error(resp: reqwest::Response, status: u16, error: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    body
}

/// Asserts a successful token answer; returns its body.
pub async fn assert_tokens(resp: reqwest::Response) -> Value {
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer", "{body}");
    assert!(body["access_token"].as_str().unwrap().starts_with("oxbat_"));
    body
}

/// Status of `GET /api/v1/issuers` with a bearer token.
pub async fn api_status(app: &TestApp, token: &str) -> u16 {
    app.http
        .get(app.url("/api/v1/issuers"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Status of `GET /ims/ob/v3p0/credentials` with a bearer token.
pub async fn ob3_status(app: &TestApp, token: &str) -> u16 {
    app.http
        .get(app.url("/ims/ob/v3p0/credentials"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// An issuer the user is a `viewer` of; returns the issuer id.
pub async fn viewer_of_new_issuer(app: &TestApp, user_id: &str) -> String {
    let admin = app.token("issuers:write issuers:read").await;
    let issuer = create_issuer(app, &admin, json!({"name": "Viewer School"})).await;
    let id = issuer["id"].as_str().unwrap().to_owned();
    let resp = app
        .http
        .put(app.url(&format!("/api/v1/issuers/{id}/members")))
        .bearer_auth(&admin)
        .json(&json!({"userId": user_id, "role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    id
}

/// A loopback HTTP listener standing in for a client's redirect target: answers every request
/// with a small page and reports each request target.
pub async fn redirect_listener() -> (String, mpsc::UnboundedReceiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                if let Some(target) = head.lines().next().and_then(|l| l.split(' ').nth(1)) {
                    let _ = tx.send(target.to_owned());
                }
                let body = "<!doctype html><html lang=\"en\"><head><title>Wallet</title></head>\
                            <body><main><h1>Back in the wallet</h1></main></body></html>";
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(resp.as_bytes()).await;
            });
        }
    });
    (base, rx)
}

/// Waits for the listener to see a request whose target starts with `prefix`.
async fn next_request(rx: &mut mpsc::UnboundedReceiver<String>, prefix: &str) -> String {
    loop {
        let target = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("the browser reached the redirect target")
            .unwrap();
        if target.starts_with(prefix) {
            return target;
        }
    }
}

/// The human steps in Chromium, then the wallet's steps over HTTP.
async fn browser_flow(browser: &Browser, app: &TestApp, public: bool, tag: &str) {
    let axe = axe_source();
    let email = format!("{tag}@example.com");
    let user_id = create_user(app, &email, "Ada Lovelace", false).await;
    let issuer = viewer_of_new_issuer(app, &user_id).await;
    let (base, mut requests) = redirect_listener().await;
    let redirect = format!("{base}/cb");
    // Registered as a wallet registers (RFC 7591), with the OB 3.0 scopes it will ask for.
    let scope = format!("offline_access {PROFILE} {CREDENTIALS}");
    let mut metadata = crate::oauth_registration::wallet();
    metadata["client_name"] = json!(if public {
        "Pocket Wallet"
    } else {
        "Badge Wallet"
    });
    metadata["redirect_uris"] = json!([redirect]);
    metadata["scope"] = json!(scope);
    if public {
        metadata["token_endpoint_auth_method"] = json!("none");
    }
    let registered = crate::oauth_registration::register(app, &metadata).await;
    assert_eq!(
        registered["client_secret"].is_string(),
        !public,
        "{registered}"
    );
    let wallet = Wallet {
        client_id: registered["client_id"].as_str().unwrap().to_owned(),
        secret: registered["client_secret"].as_str().map(str::to_owned),
        redirect_uri: redirect.clone(),
    };
    let (verifier, challenge) = pkce();
    let path = authorize_path(&standard_params(&wallet, &scope, "xyz-state", &challenge));

    // Signed out: the authorization request goes to sign-in and comes back.
    browser.goto(&app.url(&path)).await;
    browser.wait_for_url("/account/sign-in?next=").await;
    browser.fill("#email", &email).await;
    browser.fill("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    let text = browser.wait_for_text("wants to use your account").await;
    assert!(
        text.contains("Read the badges in your collection."),
        "{text}"
    );
    assert!(
        text.contains("Keep this access while you are not using"),
        "{text}"
    );
    assert!(text.contains("Read your profile."), "{text}");
    assert!(text.contains("Terms of service of"), "{text}");
    assert!(text.contains("sent back to 127.0.0.1"), "{text}");
    browser.screenshot(&format!("oauth-{tag}-01-consent")).await;
    assert_accessible(browser, &axe, "consent").await;
    browser.click("button[value=approve]").await;
    let target = next_request(&mut requests, "/cb?").await;
    let q = query_of(&format!("{base}{target}"));
    assert_eq!(q["state"], "xyz-state");
    assert_eq!(q["iss"], app.base);
    let code = q["code"].clone();
    browser.wait_for_text("Back in the wallet").await;

    // The wallet exchanges the code and calls the API for the person.
    let tokens = assert_tokens(exchange(app, &wallet, &code, &verifier).await).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert!(tokens["expires_in"].as_i64().unwrap() <= 3600);
    assert_eq!(
        oxbadge::oauth::ScopeSet::parse(tokens["scope"].as_str().unwrap()).unwrap(),
        oxbadge::oauth::ScopeSet::parse(&scope).unwrap()
    );
    // The OB 3.0 API for the person: their profile and their (empty) collection.
    let resp = app
        .http
        .get(app.url("/ims/ob/v3p0/profile"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let profile: Value = resp.json().await.unwrap();
    assert!(profile.to_string().contains("Ada Lovelace"), "{profile}");
    assert_eq!(ob3_status(app, &access).await, 200);
    // The person is a member of an issuer, but the wallet holds no service scope.
    assert_eq!(api_status(app, &access).await, 403, "issuer {issuer}");

    // Refresh: a new pair; the new access token works.
    let refreshed = assert_tokens(refresh(app, &wallet, &refresh_token, None).await).await;
    let access2 = refreshed["access_token"].as_str().unwrap().to_owned();
    let refresh2 = refreshed["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh2, refresh_token);
    assert_eq!(ob3_status(app, &access2).await, 200);

    // Remembered consent: the same request goes straight back with a new code.
    let (verifier2, challenge2) = pkce();
    let again = authorize_path(&standard_params(&wallet, &scope, "again", &challenge2));
    browser.goto(&app.url(&again)).await;
    let target = next_request(&mut requests, "/cb?").await;
    assert!(
        target.contains("code=") && target.contains("state=again"),
        "{target}"
    );

    // The wallet revokes its refresh token (RFC 7009): the family ends with its access tokens.
    let code2 = query_of(&format!("{base}{target}"))["code"].clone();
    let mut form = vec![
        ("token", refresh2.clone()),
        ("token_type_hint", "refresh_token".to_owned()),
    ];
    let mut revoke = app.http.post(app.url("/oauth/revoke"));
    match &wallet.secret {
        Some(secret) => revoke = revoke.basic_auth(&wallet.client_id, Some(secret)),
        None => form.push(("client_id", wallet.client_id.clone())),
    }
    let revoke = revoke.form(&form);
    assert_eq!(revoke.send().await.unwrap().status(), 200);
    assert_eq!(ob3_status(app, &access2).await, 401);
    assert_oauth_error(
        refresh(app, &wallet, &refresh2, None).await,
        400,
        "invalid_grant",
    )
    .await;
    // The remembered consent gave a second code; its tokens are what the account page withdraws.
    let tokens2 = assert_tokens(exchange(app, &wallet, &code2, &verifier2).await).await;
    let access3 = tokens2["access_token"].as_str().unwrap().to_owned();
    let refresh3 = tokens2["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(ob3_status(app, &access3).await, 200);

    // The person withdraws the access on the account page: every token of the client dies.
    browser.goto(&app.url("/account")).await;
    let text = browser.wait_for_text("Applications you allowed").await;
    assert!(
        text.contains(if public {
            "Pocket Wallet"
        } else {
            "Badge Wallet"
        }),
        "{text}"
    );
    browser
        .screenshot(&format!("oauth-{tag}-02-account-apps"))
        .await;
    assert_accessible(browser, &axe, "account with apps").await;
    browser
        .click("form[action='/account/apps/revoke'] button")
        .await;
    browser.wait_for_text("access has been withdrawn").await;
    assert_eq!(ob3_status(app, &access).await, 401);
    assert_eq!(ob3_status(app, &access3).await, 401);
    assert_oauth_error(
        refresh(app, &wallet, &refresh3, None).await,
        400,
        "invalid_grant",
    )
    .await;

    // The consent is forgotten: asking again shows the page again.
    let (_, challenge3) = pkce();
    let third = authorize_path(&standard_params(&wallet, &scope, "third", &challenge3));
    browser.goto(&app.url(&third)).await;
    browser.wait_for_text("wants to use your account").await;
}

#[tokio::test]
async fn browser_code_flow_for_a_confidential_client() {
    let Some(browser) = Browser::start("browser_code_flow_for_a_confidential_client").await else {
        return;
    };
    let app = TestApp::spawn().await;
    browser
        .run(browser_flow(&browser, &app, false, "confidential"))
        .await;
}

#[tokio::test]
async fn browser_code_flow_for_a_public_native_client() {
    let Some(browser) = Browser::start("browser_code_flow_for_a_public_native_client").await else {
        return;
    };
    let app = TestApp::spawn().await;
    browser
        .run(browser_flow(&browser, &app, true, "public"))
        .await;
}

#[tokio::test]
async fn consent_is_remembered_and_asked_again_when_scopes_grow() {
    let app = TestApp::spawn().await;
    let person = person(&app, "grow@example.com").await;
    let wallet = insert_client(
        &app,
        "Growing Wallet",
        &["https://wallet.example/cb"],
        &format!("{PROFILE} offline_access"),
        "client_secret_post",
    )
    .await;
    // First time: the page; approving remembers the consent.
    let (_, c1) = pkce();
    let resp = authorize(
        &app,
        &person,
        &authorize_path(&standard_params(&wallet, PROFILE, "a", &c1)),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("form-action 'self' https://wallet.example;"),
        "{csp}"
    );
    assert!(!csp.contains("wallet.example/"), "only the origin: {csp}");
    let page = resp.text().await.unwrap();
    // The logo is http, so it is not shown; the terms and policy links are.
    assert!(!page.contains("logo.png"));
    assert!(page.contains("href=\"https://wallet.example/terms\""));
    assert!(page.contains("href=\"https://wallet.example/privacy\""));
    code_for(&app, &person, &wallet, PROFILE).await;
    // Within the remembered scopes: straight back.
    let (_, c2) = pkce();
    let resp = authorize(
        &app,
        &person,
        &authorize_path(&standard_params(&wallet, PROFILE, "b", &c2)),
    )
    .await;
    assert_eq!(resp.status(), 302);
    assert!(query_of(resp.headers()["location"].to_str().unwrap()).contains_key("code"));
    // More scopes: the page again.
    let grown = format!("{PROFILE} offline_access");
    let (_, c3) = pkce();
    let resp = authorize(
        &app,
        &person,
        &authorize_path(&standard_params(&wallet, &grown, "c", &c3)),
    )
    .await;
    assert_eq!(resp.status(), 200);
    // Deny: access_denied with state and iss; nothing issued.
    let page = resp.text().await.unwrap();
    let mut form = hidden_fields(&page);
    form.push(("decision".into(), "deny".into()));
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let resp = post_form(
        &person.http,
        &app.url("/oauth/consent"),
        &person.cookie,
        &pairs,
    )
    .await;
    assert_eq!(resp.status(), 303);
    let q = query_of(resp.headers()["location"].to_str().unwrap());
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "c");
    assert_eq!(q["iss"], app.base);
    assert!(!q.contains_key("code"));
    // client_secret_post works for a client registered with it; Basic does not.
    let (code, verifier) = code_for(&app, &person, &wallet, PROFILE).await;
    let secret = wallet.secret.clone().unwrap();
    let resp = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&wallet.client_id, Some(&secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &wallet.redirect_uri),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap();
    assert_oauth_error(resp, 401, "invalid_client").await;
    let resp = app
        .http
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", &wallet.client_id),
            ("client_secret", &secret),
            ("code", &code),
            ("redirect_uri", &wallet.redirect_uri),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap();
    let body = assert_tokens(resp).await;
    assert!(
        body.get("refresh_token").is_none(),
        "no offline_access, no refresh token: {body}"
    );
    assert_eq!(body["expires_in"], 3600);
}

#[tokio::test]
async fn authlib_drives_the_code_flow_with_pkce_and_refresh() {
    let app = TestApp::spawn().await;
    let person = person(&app, "authlib@example.com").await;
    viewer_of_new_issuer(&app, &person.user_id).await;
    let wallet = insert_client(
        &app,
        "authlib wallet",
        &["https://wallet.example/callback"],
        &format!("issuers:read offline_access {PROFILE}"),
        "client_secret_basic",
    )
    .await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/api/authlib_code_flow.py"
    );
    let envs = [
        ("BASE", app.base.clone()),
        ("CLIENT_ID", wallet.client_id.clone()),
        ("CLIENT_SECRET", wallet.secret.clone().unwrap()),
        ("REDIRECT_URI", wallet.redirect_uri.clone()),
        ("SCOPE", format!("issuers:read offline_access {PROFILE}")),
        ("COOKIE", person.cookie.clone()),
    ];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(script)
            .envs(envs)
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "authlib script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap();
    let first = &result["token"];
    let second = &result["refreshed"];
    assert_eq!(first["token_type"], "Bearer");
    assert!(
        first["refresh_token"]
            .as_str()
            .unwrap()
            .starts_with("oxbrt_")
    );
    assert_ne!(first["refresh_token"], second["refresh_token"]);
    assert_eq!(result["api_status"], 200);
    assert_eq!(
        api_status(&app, second["access_token"].as_str().unwrap()).await,
        200
    );
    // The refresh token authlib gave up is dead, and presenting it again ends the family.
    assert_oauth_error(
        refresh(
            &app,
            &wallet,
            first["refresh_token"].as_str().unwrap(),
            None,
        )
        .await,
        400,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        api_status(&app, second["access_token"].as_str().unwrap()).await,
        401
    );
}
