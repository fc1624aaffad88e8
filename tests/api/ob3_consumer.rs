//! The OB 3.0 REST API, consumer side, as the 1EdTech certification runs it: two real oxbadge
//! servers on loopback, a provider P (at `localhost`, so its cookies stay apart from C's) and a
//! consumer C (at `127.0.0.1`, allowed to call http and private addresses), each with its own
//! database. Headless Chromium plays the person: signed in at C, they connect P by its base URL;
//! C reads P's discovery document, registers at its `x-imssf-registrationUrl`, and sends the
//! browser to P's authorization endpoint, where the person signs in and consents; P sends the
//! browser back to C's callback, which exchanges the code. C's consumer code then reads pages of
//! credentials (Link, X-Total-Count), reads and replaces the profile, upserts a credential of a
//! third did:key issuer (201, 200 newer, equality rule for an older copy), imports (verifiable
//! credentials become C's uploads, the others are reported), refreshes (on expiry too) and re-reads;
//! disconnecting revokes the tokens at P, after which every call there is 401 with an
//! Imsx_StatusInfo. Tokens are sealed in C's database; private addresses are refused unless
//! configured; a host's failure is a 502/504 problem, never a 500.

use std::net::TcpListener;

use ed25519_dalek::SigningKey;
use oxbadge::{
    db::{host_connection, oauth_client},
    ob3::{
        consumer::{
            connection::{self, Owner},
            import, push,
            registration::SOFTWARE_ID,
            tokens::{self, SecretColumn},
        },
        uploads::{self, Upload, UploadFormat},
    },
};
use reqwest::Client;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::{
    accounts::{PASSWORD, sign_in},
    browser::{Browser, assert_accessible, axe_source},
    ob3_provider::{assert_imsx, create_user, did_key, sign, third_party_credential},
    support::{TestApp, assert_problem},
};

const ALL_OB3: [&str; 4] = [
    "https://purl.imsglobal.org/spec/ob/v3p0/scope/credential.readonly",
    "https://purl.imsglobal.org/spec/ob/v3p0/scope/credential.upsert",
    "https://purl.imsglobal.org/spec/ob/v3p0/scope/profile.readonly",
    "https://purl.imsglobal.org/spec/ob/v3p0/scope/profile.update",
];

/// P: a provider at `http://localhost:<port>`.
async fn provider() -> TestApp {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    TestApp::spawn_with(|s| {
        s.listen = format!("127.0.0.1:{port}").parse().unwrap();
        s.public_url = Some(format!("http://localhost:{port}").parse().unwrap());
    })
    .await
}

/// C: a consumer allowed to reach loopback over http, registering with https pages.
async fn consumer() -> TestApp {
    TestApp::spawn_with(|s| {
        s.verify_fetch_allow_http = true;
        s.verify_fetch_allow_private = true;
        s.host_client_name = "Consumer Backpack".into();
        s.host_client_uri = Some("https://consumer.example/".parse().unwrap());
        s.host_logo_uri = Some("https://consumer.example/logo.png".parse().unwrap());
        s.tos_url = Some("https://consumer.example/terms".parse().unwrap());
        s.privacy_url = Some("https://consumer.example/privacy".parse().unwrap());
    })
    .await
}

fn base_of(app: &TestApp) -> String {
    app.state
        .public_url()
        .as_str()
        .trim_end_matches('/')
        .to_owned()
}

async fn only_connection(c: &TestApp, user_id: &str) -> host_connection::Model {
    let rows = connection::list(c.state.db(), &Owner::User(user_id.to_owned()))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows.into_iter().next().unwrap()
}

fn open(c: &TestApp, row: &host_connection::Model, column: SecretColumn, text: &str) -> String {
    tokens::open(c.state.keys().ring(), &row.id, column, text)
        .unwrap()
        .expose_secret()
        .to_owned()
}

#[tokio::test]
async fn ob3_consumer_certification_flow_between_two_servers() {
    let Some(browser) = Browser::start("ob3_consumer_certification_flow_between_two_servers").await
    else {
        return;
    };
    let p = provider().await;
    let c = consumer().await;
    browser.run(certification_flow(&browser, &p, &c)).await;
}

async fn certification_flow(browser: &Browser, p: &TestApp, c: &TestApp) {
    let axe = axe_source();
    let p_base = base_of(p);
    assert!(p_base.starts_with("http://localhost:"), "{p_base}");
    let p_user = create_user(p, "lee@provider.example", true).await;
    let c_user = create_user(c, "lee@consumer.example", true).await;

    // The person signs in at C and connects P by its base URL.
    browser
        .goto(&c.url("/account/sign-in?next=%2Faccount%2Fhosts"))
        .await;
    browser.fill("#email", "lee@consumer.example").await;
    browser.fill("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_text("Connect a badge host").await;
    assert_accessible(browser, &axe, "hosts").await;
    browser.screenshot("ob3-consumer-01-hosts").await;
    browser.fill("#base_url", &p_base).await;
    browser.click("#access-full").await;
    browser
        .click("form[action='/account/hosts/connect'] button[type=submit]")
        .await;
    let text = browser.wait_for_text("Continue to").await;
    assert!(text.contains("oxbadge"), "P's info.title names it: {text}");
    assert_accessible(browser, &axe, "host continue").await;
    browser.screenshot("ob3-consumer-02-continue").await;

    // C registered at P's x-imssf-registrationUrl with the metadata OB 3.0 requires.
    let pending = only_connection(c, &c_user).await;
    assert_eq!(pending.status, "pending");
    assert_eq!(pending.registration_url, format!("{p_base}/oauth/register"));
    let client = oauth_client::Entity::find_by_id(pending.client_id.as_str())
        .one(p.state.db())
        .await
        .unwrap()
        .expect("C is registered at P");
    assert_eq!(client.name, "Consumer Backpack");
    assert_eq!(
        client.client_uri.as_deref(),
        Some("https://consumer.example/")
    );
    assert_eq!(client.software_id.as_deref(), Some(SOFTWARE_ID));
    assert_eq!(
        client.software_version.as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        client.redirect_uris,
        format!("{}/account/hosts/callback", base_of(c))
    );
    assert!(pending.state_hash.is_some() && pending.pkce_verifier_sealed.is_some());

    // At P: sign in (a verified user there), consent, back at C's callback.
    browser.click("#continue").await;
    browser.wait_for_url("/account/sign-in?next=").await;
    assert!(browser.url().await.starts_with(&p_base));
    browser.fill("#email", "lee@provider.example").await;
    browser.fill("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    let consent = browser.wait_for_text("wants to use your account").await;
    assert!(consent.contains("Consumer Backpack"), "{consent}");
    browser.click("button[value=approve]").await;
    browser.wait_for_text("The host is connected.").await;
    browser.screenshot("ob3-consumer-03-connected").await;
    assert!(browser.url().await.starts_with(&base_of(c)));

    // The tokens are stored sealed: nothing in C's row is a token P issued.
    let row = only_connection(c, &c_user).await;
    assert_eq!(row.status, "connected");
    for scope in ALL_OB3 {
        assert!(row.has_scope(scope), "{scope} granted: {}", row.scopes);
    }
    assert!(row.state_hash.is_none() && row.pkce_verifier_sealed.is_none());
    let access = open(
        c,
        &row,
        SecretColumn::AccessToken,
        row.access_token_sealed.as_deref().unwrap(),
    );
    let refresh = open(
        c,
        &row,
        SecretColumn::RefreshToken,
        row.refresh_token_sealed.as_deref().unwrap(),
    );
    let secret = open(
        c,
        &row,
        SecretColumn::ClientSecret,
        row.client_secret_sealed.as_deref().unwrap(),
    );
    let stored = format!("{row:?}");
    for plaintext in [&access, &refresh, &secret] {
        assert!(plaintext.len() > 16);
        assert!(
            !stored.contains(plaintext.as_str()),
            "a plaintext secret in {stored}"
        );
    }
    // A sealed token copied to another row does not open there.
    assert!(
        tokens::open(
            c.state.keys().ring(),
            "another-row",
            SecretColumn::AccessToken,
            row.access_token_sealed.as_deref().unwrap()
        )
        .is_err()
    );
    // upsertCredential of a credential by a third did:key issuer: 201, 200 newer, older kept.
    let third = SigningKey::from_bytes(&[43u8; 32]);
    let issuer = did_key(&third).0;
    let v1 = sign(
        &third_party_credential(&issuer, "2024-01-01T00:00:00Z", "Welding"),
        &third,
    );
    let v2 = sign(
        &third_party_credential(&issuer, "2024-06-01T00:00:00Z", "Welding II"),
        &third,
    );
    let v0 = sign(
        &third_party_credential(&issuer, "2023-01-01T00:00:00Z", "Welding 0"),
        &third,
    );
    let (row, first) = push::upsert_credential(&c.state, row, &push::Pushed::Json(v1.clone()))
        .await
        .unwrap();
    assert_eq!(first.status, 201, "{}", first.body);
    let (row, newer) = push::upsert_credential(&c.state, row, &push::Pushed::Json(v2.clone()))
        .await
        .unwrap();
    assert_eq!(newer.status, 200);
    assert!(newer.body.contains("Welding II"));
    let (row, older) = push::upsert_credential(&c.state, row, &push::Pushed::Json(v0))
        .await
        .unwrap();
    assert_eq!(older.status, 200);
    assert!(
        older.body.contains("Welding II"),
        "the newer copy stays: {}",
        older.body
    );

    // putProfile, then getProfile reads it back.
    let (row, put) = push::put_profile(
        &c.state,
        row,
        &json!({
            "@context": ["https://www.w3.org/ns/credentials/v2", "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"],
            "id": format!("{p_base}/profiles/lee"),
            "type": ["Profile"],
            "name": "Lee at P",
        }),
    )
    .await
    .unwrap();
    assert_eq!(put["name"], "Lee at P", "{put}");
    let (row, profile) = import::get_profile(&c.state, row).await.unwrap();
    assert_eq!(profile["name"], "Lee at P");

    // A credential that does not verify, stored at P behind its verifier's back.
    let mut forged = sign(
        &json!({
            "@context": ["https://www.w3.org/ns/credentials/v2", "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"],
            "id": "urn:uuid:7e1c7a56-1f7e-4b8e-9a3c-5d7e1f2a3b4c",
            "type": ["VerifiableCredential", "OpenBadgeCredential"],
            "name": "Forged",
            "issuer": {"id": issuer, "type": ["Profile"], "name": "Third Party Academy"},
            "validFrom": "2024-02-01T00:00:00Z",
            "credentialSubject": {"id": "did:example:learner", "type": ["AchievementSubject"], "achievement": {
                "id": "https://third.example/achievements/forgery", "type": ["Achievement"],
                "name": "Forgery", "description": "Changed after signing.",
                "criteria": {"narrative": "None."}}}
        }),
        &third,
    );
    forged["name"] = json!("Forged (changed after signing)");
    let bytes = serde_json::to_vec(&forged).unwrap();
    uploads::upsert(
        p.state.db(),
        &p_user,
        &Upload::parse(UploadFormat::Json, &bytes).unwrap(),
    )
    .await
    .unwrap();

    // getCredentials with limit/offset: X-Total-Count and Link relations, followed.
    let (row, page1) =
        import::fetch_page(&c.state, row.clone(), &import::first_page_url(&row, 1, 0))
            .await
            .unwrap();
    assert_eq!(page1.total, Some(2));
    assert_eq!(page1.credentials.len() + page1.compact_jws.len(), 1);
    let next = page1
        .link("next")
        .expect("a next link on page 1")
        .to_owned();
    assert!(
        next.contains("offset=1") && next.starts_with(&p_base),
        "{next}"
    );
    assert!(page1.link("last").is_some() && page1.link("prev").is_none());
    let (row, page2) = import::fetch_page(&c.state, row, &next).await.unwrap();
    assert_eq!(page2.total, Some(2));
    assert_eq!(page2.credentials.len(), 1);
    assert!(page2.link("next").is_none() && page2.link("prev").is_some());
    drop(row);

    // Import through the page: the verifiable credential becomes C's upload, the forged one is
    // reported with the reason, and the profile is read.
    browser.goto(&c.url("/account/hosts")).await;
    browser
        .click("form[action='/account/hosts/import'] button[type=submit]")
        .await;
    let report = browser
        .wait_for_text("Imported 1 badge(s); 1 could not be imported.")
        .await;
    assert!(report.contains("the host holds 2 badge(s)"), "{report}");
    assert!(report.contains("Profile: Lee at P"), "{report}");
    assert!(
        report.contains("urn:uuid:7e1c7a56-1f7e-4b8e-9a3c-5d7e1f2a3b4c")
            && report.contains("did not verify"),
        "{report}"
    );
    assert_accessible(browser, &axe, "import report").await;
    browser.screenshot("ob3-consumer-04-import-report").await;
    let kept = oxbadge::db::ob3_upload::Entity::find()
        .all(c.state.db())
        .await
        .unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0].user_id, c_user);
    assert_eq!(kept[0].issuer_id, issuer);
    assert!(kept[0].body.contains("Welding II"));

    // The same import through the JSON API reports pages and totals.
    let (http, cookie, csrf) = session(c, "lee@consumer.example").await;
    let row = only_connection(c, &c_user).await;
    let resp = http
        .post(c.url(&format!("/api/v1/account/hosts/{}/import", row.id)))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["pages"], 1, "{body}");
    assert_eq!(body["total"], 2, "{body}");
    // The same copy again: same issuer.id, id and validFrom, so it replaces itself.
    assert_eq!(body["imported"][0]["outcome"], "replaced", "{body}");
    let reason = body["rejected"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("the signature does not verify"), "{reason}");
    assert_eq!(body["rejected"].as_array().unwrap().len(), 1, "{body}");
    let listed: Value = http
        .get(c.url("/api/v1/account/hosts"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["status"], "connected", "{listed}");
    assert!(!listed.to_string().contains(&access), "no secrets listed");

    // Refresh, then the reads again.
    let row = connection::refresh(&c.state, row).await.unwrap();
    let access2 = open(
        c,
        &row,
        SecretColumn::AccessToken,
        row.access_token_sealed.as_deref().unwrap(),
    );
    assert_ne!(access2, access);
    let (row, page) =
        import::fetch_page(&c.state, row.clone(), &import::first_page_url(&row, 10, 0))
            .await
            .unwrap();
    assert_eq!(page.total, Some(2));
    let (row, profile) = import::get_profile(&c.state, row).await.unwrap();
    assert_eq!(profile["name"], "Lee at P");
    // An expired access token is refreshed before the call.
    let mut active: host_connection::ActiveModel = row.into();
    active.token_expires_at = Set(Some(chrono::Utc::now() - chrono::Duration::minutes(1)));
    let row = active.update(c.state.db()).await.unwrap();
    let (row, _) = import::get_profile(&c.state, row).await.unwrap();
    let access3 = open(
        c,
        &row,
        SecretColumn::AccessToken,
        row.access_token_sealed.as_deref().unwrap(),
    );
    let refresh3 = open(
        c,
        &row,
        SecretColumn::RefreshToken,
        row.refresh_token_sealed.as_deref().unwrap(),
    );
    assert_ne!(access3, access2);
    assert!(row.token_expires_at.unwrap() > chrono::Utc::now());

    // P ends the access token early (RFC 7009 by our client): C's next call gets a 401,
    // refreshes once and succeeds with a new token.
    let resp = p
        .http
        .post(p.url("/oauth/revoke"))
        .basic_auth(&row.client_id, Some(&secret))
        .form(&[
            ("token", access3.as_str()),
            ("token_type_hint", "access_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = p
        .http
        .get(p.url("/ims/ob/v3p0/profile"))
        .bearer_auth(&access3)
        .send()
        .await
        .unwrap();
    assert_imsx(resp, 401, "unauthorizedrequest").await;
    let (row, profile) = import::get_profile(&c.state, row).await.unwrap();
    assert_eq!(profile["name"], "Lee at P");
    let access4 = open(
        c,
        &row,
        SecretColumn::AccessToken,
        row.access_token_sealed.as_deref().unwrap(),
    );
    let refresh4 = open(
        c,
        &row,
        SecretColumn::RefreshToken,
        row.refresh_token_sealed.as_deref().unwrap(),
    );
    assert_ne!(access4, access3);
    assert_ne!(refresh4, refresh3, "the refresh token rotated");
    drop(row);

    // Disconnect on the page: the tokens are revoked at P; every call there is 401 Imsx.
    browser.goto(&c.url("/account/hosts")).await;
    browser
        .click("form[action='/account/hosts/disconnect'] button[type=submit]")
        .await;
    browser.wait_for_text("The host is disconnected").await;
    browser.screenshot("ob3-consumer-05-disconnected").await;
    let row = only_connection(c, &c_user).await;
    assert_eq!(row.status, "disconnected");
    assert!(row.access_token_sealed.is_none() && row.refresh_token_sealed.is_none());
    let calls = [
        p.http
            .get(p.url("/ims/ob/v3p0/credentials?limit=1&offset=0")),
        p.http.get(p.url("/ims/ob/v3p0/profile")),
        p.http
            .put(p.url("/ims/ob/v3p0/profile"))
            .json(&json!({"id": "x", "type": ["Profile"], "name": "x"})),
        p.http.post(p.url("/ims/ob/v3p0/credentials")).json(&v1),
    ];
    for call in calls {
        let resp = call.bearer_auth(&access4).send().await.unwrap();
        assert_imsx(resp, 401, "unauthorizedrequest").await;
    }
    let resp = p
        .http
        .post(p.url("/oauth/token"))
        .basic_auth(&row.client_id, Some(&secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh4),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        400,
        "a revoked refresh token is invalid_grant"
    );
    // C's consumer code knows the connection is gone.
    let err = import::get_profile(&c.state, row).await.unwrap_err();
    assert!(
        matches!(err, oxbadge::ob3::consumer::ConsumerError::NotConnected(_)),
        "{err}"
    );
}

/// A signed-in HTTP session at `app`: (client, cookie, CSRF token).
async fn session(app: &TestApp, email: &str) -> (Client, String, String) {
    let http = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie = sign_in(app, &http, email, PASSWORD).await;
    let me: Value = http
        .get(app.url("/api/v1/account"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let csrf = me["csrfToken"].as_str().unwrap().to_owned();
    (http, cookie, csrf)
}

async fn connect(
    app: &TestApp,
    session: &(Client, String, String),
    base: &str,
) -> reqwest::Response {
    session
        .0
        .post(app.url("/api/v1/account/hosts"))
        .header("cookie", &session.1)
        .header("x-csrf-token", &session.2)
        .json(&json!({"baseUrl": base, "access": "read"}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn ob3_consumer_refuses_private_addresses_unless_configured() {
    let strict = TestApp::spawn().await;
    create_user(&strict, "strict@consumer.example", true).await;
    let s = session(&strict, "strict@consumer.example").await;
    for base in [
        "https://127.0.0.1:9",
        "https://10.0.0.1",
        "https://169.254.169.254",
        "https://localhost:9",
        "http://badges.example",
    ] {
        let body = assert_problem(connect(&strict, &s, base).await, 422, "host_refused").await;
        assert!(body["detail"].is_string(), "{body}");
    }
    assert_problem(
        connect(&strict, &s, "not a url").await,
        422,
        "invalid_host_url",
    )
    .await;
    assert_problem(
        connect(&strict, &s, "ftp://badges.example").await,
        422,
        "invalid_host_url",
    )
    .await;
    // Nothing was stored for refused hosts.
    assert!(
        host_connection::Entity::find()
            .all(strict.state.db())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn ob3_consumer_reports_host_failures_as_502_and_504() {
    let c = consumer().await;
    create_user(&c, "lee@consumer.example", true).await;
    let s = session(&c, "lee@consumer.example").await;
    // Nothing listens there: 504 host_unreachable.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let body = assert_problem(
        connect(&c, &s, &format!("http://127.0.0.1:{port}")).await,
        504,
        "host_unreachable",
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("127.0.0.1"),
        "{body}"
    );
    // A server that is no OB 3.0 host (its discovery path is 404): 502 host_error with detail.
    let other = TestApp::spawn_with(|s| s.public_url = None).await;
    let not_a_host = format!("{}/nothing-here", other.base);
    let body = assert_problem(connect(&c, &s, &not_a_host).await, 502, "host_error").await;
    assert!(body["detail"].as_str().unwrap().contains("404"), "{body}");
    // Unknown connection: 404 problem; a callback with an unknown state: a 400 page.
    let resp =
        s.0.post(c.url("/api/v1/account/hosts/nope/import"))
            .header("cookie", &s.1)
            .header("x-csrf-token", &s.2)
            .send()
            .await
            .unwrap();
    assert_problem(resp, 404, "not_found").await;
    let resp =
        s.0.get(c.url("/account/hosts/callback?state=unknown&code=x"))
            .header("cookie", &s.1)
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("connect again"));
}

/// Makes `user_id` a member of `issuer_id` with `role`.
async fn add_member(app: &TestApp, issuer_id: &str, user_id: &str, role: &str) {
    let admin = app.token("issuers:write issuers:read").await;
    let resp = app
        .http
        .put(app.url(&format!("/api/v1/issuers/{issuer_id}/members")))
        .bearer_auth(&admin)
        .json(&json!({"userId": user_id, "role": role}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
}

#[tokio::test]
async fn ob3_consumer_issuer_pushes_a_credential_and_its_profile_to_a_recipients_host() {
    use crate::{
        issuance::{issue, issuer_with_achievement},
        oauth_code_flow::{Person, authorize_and_approve},
    };
    let p = TestApp::spawn_with(|s| {
        s.verify_fetch_allow_http = true;
        s.verify_fetch_allow_private = true;
    })
    .await;
    let c = consumer().await;
    let admin = c
        .token("issuers:write issuers:read credentials:issue")
        .await;
    let (issuer, achievement) = issuer_with_achievement(&c, &admin).await;
    let issuer_id = issuer["id"].as_str().unwrap().to_owned();
    let staff = create_user(&c, "staff@consumer.example", true).await;
    let viewer = create_user(&c, "viewer@consumer.example", true).await;
    add_member(&c, &issuer_id, &staff, "issuer").await;
    add_member(&c, &issuer_id, &viewer, "viewer").await;
    let issued = issue(
        &c,
        &admin,
        json!({"achievementId": achievement, "recipient": {"email": "lee@provider.example"}}),
    )
    .await;
    let credential_id = issued["id"].as_str().unwrap().to_owned();

    // A viewer may not connect hosts for the issuer.
    let v = session(&c, "viewer@consumer.example").await;
    let resp =
        v.0.post(c.url(&format!("/api/v1/issuers/{issuer_id}/hosts")))
            .header("cookie", &v.1)
            .header("x-csrf-token", &v.2)
            .json(&json!({"baseUrl": p.base}))
            .send()
            .await
            .unwrap();
    assert_problem(resp, 403, "insufficient_role").await;

    // Issuer staff start the connection; the recipient authorizes at their host.
    let s = session(&c, "staff@consumer.example").await;
    let resp =
        s.0.post(c.url(&format!("/api/v1/issuers/{issuer_id}/hosts")))
            .header("cookie", &s.1)
            .header("x-csrf-token", &s.2)
            .json(&json!({"baseUrl": p.base}))
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), 201);
    let started: Value = resp.json().await.unwrap();
    let connection_id = started["connectionId"].as_str().unwrap().to_owned();
    let authorization = url::Url::parse(started["authorizationUrl"].as_str().unwrap()).unwrap();
    let scope: String = authorization
        .query_pairs()
        .find(|(k, _)| k == "scope")
        .unwrap()
        .1
        .into_owned();
    assert!(scope.contains("credential.upsert") && scope.contains("profile.update"));
    assert!(
        !scope.contains("credential.readonly"),
        "write access only: {scope}"
    );
    let recipient_id = create_user(&p, "lee@provider.example", true).await;
    let recipient = Person {
        http: crate::accounts::browser_client(),
        cookie: String::new(),
        user_id: recipient_id,
    };
    let recipient = Person {
        cookie: sign_in(&p, &recipient.http, "lee@provider.example", PASSWORD).await,
        ..recipient
    };
    let path = format!(
        "{}?{}",
        authorization.path(),
        authorization.query().unwrap()
    );
    let back = authorize_and_approve(&p, &recipient, &path).await;
    assert!(
        back.starts_with(&c.url("/account/hosts/callback?")),
        "{back}"
    );
    let resp = s.0.get(&back).header("cookie", &s.1).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    let listed: Value =
        s.0.get(c.url(&format!("/api/v1/issuers/{issuer_id}/hosts")))
            .header("cookie", &s.1)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(listed[0]["status"], "connected", "{listed}");
    assert_eq!(listed[0]["ownerKind"], "issuer", "{listed}");

    // Push the credential (201, then 200) and the issuer's Profile.
    let push = || {
        s.0.post(c.url(&format!(
            "/api/v1/issuers/{issuer_id}/hosts/{connection_id}/credentials"
        )))
        .header("cookie", &s.1)
        .header("x-csrf-token", &s.2)
        .json(&json!({"credentialId": credential_id}))
        .send()
    };
    let resp = push().await.unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["hostStatus"], 201, "{body}");
    let body: Value = push().await.unwrap().json().await.unwrap();
    assert_eq!(body["hostStatus"], 200, "{body}");
    let resp =
        s.0.put(c.url(&format!(
            "/api/v1/issuers/{issuer_id}/hosts/{connection_id}/profile"
        )))
        .header("cookie", &s.1)
        .header("x-csrf-token", &s.2)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["hostBody"]["name"], "Example University", "{body}");

    // Disconnect; pushing afterwards is 409 host_not_connected.
    let resp =
        s.0.delete(c.url(&format!(
            "/api/v1/issuers/{issuer_id}/hosts/{connection_id}"
        )))
        .header("cookie", &s.1)
        .header("x-csrf-token", &s.2)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_problem(push().await.unwrap(), 409, "host_not_connected").await;
}

/// Each earner may start only `host_calls_per_minute` connections or imports (each calls another
/// host); beyond that a 429 problem with `Retry-After`, and other earners are unaffected.
#[tokio::test]
async fn ob3_consumer_limits_calls_to_other_hosts_per_owner() {
    let c = TestApp::spawn_with(|s| {
        s.verify_fetch_allow_http = true;
        s.verify_fetch_allow_private = true;
        s.host_calls_per_minute = 2;
    })
    .await;
    create_user(&c, "eager@consumer.example", true).await;
    create_user(&c, "calm@consumer.example", true).await;
    let eager = session(&c, "eager@consumer.example").await;
    let calm = session(&c, "calm@consumer.example").await;
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nowhere = format!("http://127.0.0.1:{port}");
    for _ in 0..2 {
        assert_problem(connect(&c, &eager, &nowhere).await, 504, "host_unreachable").await;
    }
    let resp = connect(&c, &eager, &nowhere).await;
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_problem(resp, 429, "rate_limited").await;
    assert_problem(connect(&c, &calm, &nowhere).await, 504, "host_unreachable").await;
}

/// `oxbadge hosts` against a running consumer's database: `connect` registers at the provider and
/// prints an authorization URL (PKCE S256, a state); once the person approves it at the provider
/// and lands on the consumer's callback, `list` shows the connection connected, `import` brings in
/// the provider's credential and prints the report, `import` on another person's connection is
/// refused with a message, and `disconnect` revokes the tokens at the provider.
#[tokio::test]
async fn ob3_consumer_cli_connects_imports_and_disconnects() {
    use crate::oauth_code_flow::{authorize_and_approve, person, query_of};
    let p = provider().await;
    let c = consumer().await;
    let kek = c
        .state
        .settings()
        .kek
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_owned();
    let hosts = |args: Vec<String>| {
        let mut cmd = std::process::Command::new(crate::ops::oxbadge_bin());
        cmd.arg("--database-url")
            .arg(&c.db().url)
            .arg("--data-dir")
            .arg(c.db().data_dir.path())
            .arg("hosts")
            .args(args)
            .env("OXBADGE_LOG", "warn")
            .env("OXBADGE_KEK", &kek)
            .env("OXBADGE_VERIFY_FETCH_ALLOW_HTTP", "true")
            .env("OXBADGE_VERIFY_FETCH_ALLOW_PRIVATE", "true")
            .env("OXBADGE_PUBLIC_URL", base_of(&c))
            .env("OXBADGE_HOST_CLIENT_URI", "https://consumer.example/")
            .env("OXBADGE_TOS_URL", "https://consumer.example/terms")
            .env("OXBADGE_PRIVACY_URL", "https://consumer.example/privacy")
            .env_remove("OXBADGE_CONFIG")
            .env_remove("DATABASE_URL");
        async move {
            let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
                .await
                .unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let args = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();

    // The earner at C, and the same person's account at P holding one verifiable credential.
    let at_c = person(&c, "cli@consumer.example").await;
    let at_p = person(&p, "cli@provider.example").await;
    let third = SigningKey::from_bytes(&[9u8; 32]);
    let (third_did, _) = did_key(&third);
    let vc = sign(
        &third_party_credential(&third_did, "2026-01-01T00:00:00Z", "CLI badge"),
        &third,
    );
    uploads::upsert(
        p.state.db(),
        &at_p.user_id,
        &Upload::parse(UploadFormat::Json, &serde_json::to_vec(&vc).unwrap()).unwrap(),
    )
    .await
    .unwrap();

    let p_base = base_of(&p);
    let (ok, url, err) = hosts(args(&[
        "connect",
        "--email",
        "cli@consumer.example",
        "--base-url",
        &p_base,
    ]))
    .await;
    assert!(ok, "{err}");
    let url = url.trim().to_owned();
    assert!(
        url.starts_with(&format!("{p_base}/oauth/authorize?")),
        "{url}"
    );
    let q = query_of(&url);
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(
        q.contains_key("state") && q.contains_key("code_challenge"),
        "{url}"
    );
    assert!(err.contains("open this URL"), "{err}");
    let (ok, listed, err) = hosts(args(&["list", "--email", "cli@consumer.example"])).await;
    assert!(ok, "{err}");
    let pending: Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    assert_eq!(pending["status"], "pending", "{listed}");
    let id = pending["id"].as_str().unwrap().to_owned();

    // The person approves at P and lands on C's callback, signed in at C.
    let path = url.strip_prefix(&p_base).unwrap();
    let back = authorize_and_approve(&p, &at_p, path).await;
    assert!(
        back.starts_with(&format!("{}/account/hosts/callback?", base_of(&c))),
        "{back}"
    );
    let resp = at_c
        .http
        .get(&back)
        .header("cookie", &at_c.cookie)
        .send()
        .await
        .unwrap();
    assert!(
        resp.status().is_success() || resp.status().is_redirection(),
        "{}",
        resp.status()
    );
    let (ok, listed, err) = hosts(args(&["list", "--email", "cli@consumer.example"])).await;
    assert!(ok, "{err}");
    let connected: Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    assert_eq!(
        (connected["id"].as_str(), connected["status"].as_str()),
        (Some(id.as_str()), Some("connected")),
        "{listed}"
    );

    let (ok, report, err) = hosts(args(&[
        "import",
        "--email",
        "cli@consumer.example",
        "--connection",
        &id,
    ]))
    .await;
    assert!(ok, "{err}");
    let report: Value = serde_json::from_str(report.trim()).unwrap();
    assert_eq!(report["total"], 1, "{report}");
    assert_eq!(report["imported"].as_array().unwrap().len(), 1, "{report}");
    assert!(
        report["rejected"].as_array().unwrap().is_empty(),
        "{report}"
    );

    // Someone else cannot use the connection.
    person(&c, "other@consumer.example").await;
    let (ok, _, err) = hosts(args(&[
        "import",
        "--email",
        "other@consumer.example",
        "--connection",
        &id,
    ]))
    .await;
    assert!(!ok);
    assert!(err.contains("not found"), "{err}");

    let (ok, _, err) = hosts(args(&[
        "disconnect",
        "--email",
        "cli@consumer.example",
        "--connection",
        &id,
    ]))
    .await;
    assert!(ok, "{err}");
    assert!(err.contains("disconnected"), "{err}");
    let (ok, _, err) = hosts(args(&[
        "import",
        "--email",
        "cli@consumer.example",
        "--connection",
        &id,
    ]))
    .await;
    assert!(!ok, "an import through a disconnected connection must fail");
    assert!(!err.is_empty());
}
