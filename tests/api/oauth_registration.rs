//! OAuth 2.0 dynamic client registration (RFC 7591) and client configuration (RFC 7592): the
//! answers' shape, what is stored (hashes only), the registration access token, the optional
//! initial access token, every refusal with its RFC 7591 error, the per-address limit, and the
//! purge of registered clients that never obtained a token (the app's clock is advanced).

use oxbadge::{
    db::{audit_event, oauth_client},
    oauth::{ScopeSet, tokens},
};
use reqwest::{Response, StatusCode};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::support::TestApp;

pub const OB: &str = "https://purl.imsglobal.org/spec/ob/v3p0/scope/";

/// Good metadata of a web wallet at wallet.example.org.
pub fn wallet() -> Value {
    json!({
        "client_name": "Example Wallet",
        "client_uri": "https://wallet.example.org/",
        "logo_uri": "https://wallet.example.org/logo.png",
        "tos_uri": "https://wallet.example.org/terms",
        "policy_uri": "https://wallet.example.org/privacy",
        "software_id": "example-wallet",
        "software_version": "2.1.0",
        "redirect_uris": ["https://wallet.example.org/oauth/callback"],
        "scope": format!("{OB}credential.readonly {OB}credential.upsert {OB}profile.readonly offline_access"),
        "grant_types": ["authorization_code", "refresh_token"],
        "contacts": ["ops@wallet.example.org"],
    })
}

pub async fn post_registration(app: &TestApp, body: &Value) -> Response {
    app.http
        .post(app.url("/oauth/register"))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Registers `body`; asserts 201 and returns the answer.
pub async fn register(app: &TestApp, body: &Value) -> Value {
    let resp = post_registration(app, body).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    resp.json().await.unwrap()
}

async fn oauth_error(resp: Response, status: u16, error: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    body
}

fn sha256_hex(s: &str) -> String {
    oxbadge::oauth::tokens::hash_secret(s)
}

async fn clients(app: &TestApp) -> u64 {
    oauth_client::Entity::find()
        .count(app.state.db())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_confidential_wallet_registers_and_only_hashes_are_stored() {
    let app = TestApp::spawn().await;
    let resp = post_registration(&app, &wallet()).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    let sent = wallet();
    for key in [
        "client_name",
        "client_uri",
        "logo_uri",
        "tos_uri",
        "policy_uri",
        "software_id",
        "software_version",
        "redirect_uris",
        "scope",
        "grant_types",
        "contacts",
    ] {
        assert_eq!(body[key], sent[key], "{key} echoed");
    }
    assert_eq!(body["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(body["response_types"], json!(["code"]));
    assert_eq!(body["client_secret_expires_at"], 0);
    let id = body["client_id"].as_str().unwrap();
    let secret = body["client_secret"].as_str().unwrap();
    let reg_token = body["registration_access_token"].as_str().unwrap();
    assert!(secret.len() >= 40 && reg_token.len() >= 40);
    assert_eq!(
        body["registration_client_uri"],
        app.url(&format!("/oauth/register/{id}"))
    );
    let issued = body["client_id_issued_at"].as_i64().unwrap();
    assert!((chrono::Utc::now().timestamp() - issued).abs() < 60);

    let row = oauth_client::Entity::find_by_id(id.to_owned())
        .one(app.state.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.kind, "registered");
    assert!(row.registered_dynamically);
    assert!(
        !row.global,
        "a registered client acts on no issuer of its own"
    );
    assert!(row.first_token_at.is_none());
    assert_eq!(row.secret_hash, sha256_hex(secret));
    assert_eq!(row.registration_token_hash, Some(sha256_hex(reg_token)));
    let stored = format!("{row:?}");
    assert!(!stored.contains(secret) && !stored.contains(reg_token));
    // No membership: the client reaches nothing without a user.
    let members = oxbadge::accounts::memberships::member_roles(
        app.state.db(),
        &oxbadge::accounts::memberships::Principal::Client(id.to_owned()),
    )
    .await
    .unwrap();
    assert!(members.is_empty());
    let audit = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("client.registered"))
        .filter(audit_event::Column::TargetId.eq(id))
        .one(app.state.db())
        .await
        .unwrap()
        .expect("registration audited");
    assert!(!audit.details.contains(secret) && !audit.details.contains(reg_token));

    // The secret is a real client secret: the introspection endpoint accepts it.
    let resp = app
        .http
        .post(app.url("/oauth/introspect"))
        .basic_auth(id, Some(secret))
        .form(&[("token", "nothing")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"active": false})
    );
}

#[tokio::test]
async fn a_public_native_client_registers_without_a_secret() {
    let app = TestApp::spawn().await;
    let mut body = wallet();
    body["token_endpoint_auth_method"] = json!("none");
    body["redirect_uris"] = json!([
        "org.example.wallet:/oauth/callback",
        "http://127.0.0.1:43210/callback",
        "http://localhost/callback",
        "http://[::1]:8123/cb"
    ]);
    body.as_object_mut().unwrap().remove("grant_types");
    let answer = register(&app, &body).await;
    assert!(
        answer.get("client_secret").is_none(),
        "no secret for a public client: {answer}"
    );
    assert_eq!(answer["token_endpoint_auth_method"], "none");
    assert_eq!(answer["grant_types"], json!(["authorization_code"]));
    assert_eq!(answer["redirect_uris"], body["redirect_uris"]);
    let row = oauth_client::Entity::find_by_id(answer["client_id"].as_str().unwrap().to_owned())
        .one(app.state.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.secret_hash, "",
        "a public client has no secret to match"
    );
    assert_eq!(row.token_endpoint_auth_method, "none");
}

fn configuration(app: &TestApp, answer: &Value) -> (String, String, String) {
    let _ = app;
    (
        answer["client_id"].as_str().unwrap().to_owned(),
        answer["registration_client_uri"]
            .as_str()
            .unwrap()
            .to_owned(),
        answer["registration_access_token"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

#[tokio::test]
async fn the_registration_access_token_reads_updates_and_deletes_the_client() {
    let app = TestApp::spawn().await;
    let answer = register(&app, &wallet()).await;
    let (id, uri, reg_token) = configuration(&app, &answer);
    let other = register(&app, &wallet()).await;
    let other_token = other["registration_access_token"].as_str().unwrap();

    // Read.
    let resp = app
        .http
        .get(&uri)
        .bearer_auth(&reg_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let read: Value = resp.json().await.unwrap();
    assert_eq!(read["client_id"], answer["client_id"]);
    assert_eq!(read["client_name"], answer["client_name"]);
    assert_eq!(read["redirect_uris"], answer["redirect_uris"]);
    assert_eq!(
        read["registration_access_token"],
        answer["registration_access_token"]
    );
    assert!(read.get("client_secret").is_none(), "only hashes are kept");

    // Refused without the token, with a wrong one, with another client's one, and on an unknown
    // client: the same 401.
    for (what, token, target) in [
        ("no token", None, uri.clone()),
        ("wrong token", Some("oxbrat_wrong"), uri.clone()),
        ("another client's token", Some(other_token), uri.clone()),
        (
            "unknown client",
            Some(reg_token.as_str()),
            app.url("/oauth/register/nosuchclient"),
        ),
        // The client secret is not the registration token.
        (
            "client secret",
            answer["client_secret"].as_str(),
            uri.clone(),
        ),
    ] {
        for method in [
            reqwest::Method::GET,
            reqwest::Method::PUT,
            reqwest::Method::DELETE,
        ] {
            let mut req = app.http.request(method.clone(), &target).json(&wallet());
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.unwrap();
            let challenge = resp
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            assert!(
                challenge.starts_with("Bearer"),
                "{what} {method}: {challenge}"
            );
            oauth_error(resp, 401, "invalid_token").await;
        }
    }

    // A token the client holds with a scope the update takes away.
    let user = crate::accounts::create_user(&app, "ria@example.org", "Ria", false).await;
    let grant = tokens::issue_user_token(
        app.state.db(),
        &id,
        &user,
        ScopeSet::parse(&format!("{OB}credential.upsert")).unwrap(),
        3600,
    )
    .await
    .unwrap();

    // Update: same rules, new name, narrower scope, another redirect URI.
    let mut changed = wallet();
    changed["client_id"] = json!(id);
    changed["client_name"] = json!("Example Wallet (renamed)");
    changed["scope"] = json!(format!("{OB}credential.readonly"));
    changed["redirect_uris"] = json!(["https://wallet.example.org/v2/callback"]);
    let resp = app
        .http
        .put(&uri)
        .bearer_auth(&reg_token)
        .json(&changed)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let updated: Value = resp.json().await.unwrap();
    assert_eq!(updated["client_id"], json!(id));
    assert_eq!(updated["client_name"], "Example Wallet (renamed)");
    assert_eq!(updated["scope"], changed["scope"]);
    assert_eq!(updated["redirect_uris"], changed["redirect_uris"]);
    let read: Value = app
        .http
        .get(&uri)
        .bearer_auth(&reg_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["client_name"], "Example Wallet (renamed)");
    let introspected = introspect_as_admin(&app, grant.access_token.expose_secret()).await;
    assert_eq!(
        introspected,
        json!({"active": false}),
        "narrowing the scope revoked the token"
    );

    // An update may not change the client id, and follows the registration rules.
    let mut renamed_id = changed.clone();
    renamed_id["client_id"] = json!("someone-else");
    let resp = app
        .http
        .put(&uri)
        .bearer_auth(&reg_token)
        .json(&renamed_id)
        .send()
        .await
        .unwrap();
    oauth_error(resp, 400, "invalid_client_metadata").await;
    let mut insecure = changed.clone();
    insecure["redirect_uris"] = json!(["http://wallet.example.org/cb"]);
    let resp = app
        .http
        .put(&uri)
        .bearer_auth(&reg_token)
        .json(&insecure)
        .send()
        .await
        .unwrap();
    oauth_error(resp, 400, "invalid_redirect_uri").await;

    // Delete: 204, and the client and its tokens are gone.
    let grant = tokens::issue_user_token(
        app.state.db(),
        &id,
        &user,
        ScopeSet::parse(&format!("{OB}credential.readonly")).unwrap(),
        3600,
    )
    .await
    .unwrap();
    assert_eq!(
        introspect_as_admin(&app, grant.access_token.expose_secret()).await["active"],
        true
    );
    let resp = app
        .http
        .delete(&uri)
        .bearer_auth(&reg_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        introspect_as_admin(&app, grant.access_token.expose_secret()).await,
        json!({"active": false})
    );
    assert!(
        oauth_client::Entity::find_by_id(id.clone())
            .one(app.state.db())
            .await
            .unwrap()
            .is_none()
    );
    let resp = app
        .http
        .get(&uri)
        .bearer_auth(&reg_token)
        .send()
        .await
        .unwrap();
    oauth_error(resp, 401, "invalid_token").await;
    for action in ["client.registration_updated", "client.registration_deleted"] {
        let n = audit_event::Entity::find()
            .filter(audit_event::Column::Action.eq(action))
            .filter(audit_event::Column::TargetId.eq(id.as_str()))
            .count(app.state.db())
            .await
            .unwrap();
        assert_eq!(n, 1, "{action} audited");
    }
    // The other client is untouched.
    let resp = app
        .http
        .get(other["registration_client_uri"].as_str().unwrap())
        .bearer_auth(other_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

/// Introspects `token` with the admin (confidential service) client.
pub async fn introspect_as_admin(app: &TestApp, token: &str) -> Value {
    let resp = app
        .http
        .post(app.url("/oauth/introspect"))
        .basic_auth(&app.admin_id, Some(&app.admin_secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn a_configured_initial_access_token_is_required() {
    let app = TestApp::spawn_with(|s| {
        s.registration_token = Some(secrecy::SecretString::from("initial-7c1f0e9a".to_owned()));
    })
    .await;
    for token in [
        None,
        Some("initial-7c1f0e9"),
        Some("initial-7c1f0e9a-and-more"),
    ] {
        let mut req = app.http.post(app.url("/oauth/register")).json(&wallet());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        assert!(
            resp.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        oauth_error(resp, 401, "invalid_token").await;
    }
    assert_eq!(clients(&app).await, 1, "nothing registered");
    let resp = app
        .http
        .post(app.url("/oauth/register"))
        .bearer_auth("initial-7c1f0e9a")
        .json(&wallet())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn bad_metadata_is_refused_with_the_rfc7591_error_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let with = |key: &str, value: Value| {
        let mut body = wallet();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = wallet();
        body.as_object_mut().unwrap().remove(key);
        body
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "http redirect on a public host",
            with("redirect_uris", json!(["http://wallet.example.org/cb"])),
            "invalid_redirect_uri",
        ),
        (
            "redirect on another host than client_uri",
            with("redirect_uris", json!(["https://evil.example.net/cb"])),
            "invalid_redirect_uri",
        ),
        (
            "one good and one foreign redirect",
            with(
                "redirect_uris",
                json!([
                    "https://wallet.example.org/cb",
                    "https://evil.example.net/cb"
                ]),
            ),
            "invalid_redirect_uri",
        ),
        (
            "fragment",
            with("redirect_uris", json!(["https://wallet.example.org/cb#x"])),
            "invalid_redirect_uri",
        ),
        (
            "userinfo",
            with(
                "redirect_uris",
                json!(["https://user:pw@wallet.example.org/cb"]),
            ),
            "invalid_redirect_uri",
        ),
        (
            "javascript scheme",
            with("redirect_uris", json!(["javascript:alert(1)"])),
            "invalid_redirect_uri",
        ),
        (
            "no redirect uri",
            with("redirect_uris", json!([])),
            "invalid_redirect_uri",
        ),
        (
            "client_uri over http",
            with("client_uri", json!("http://wallet.example.org/")),
            "invalid_client_metadata",
        ),
        (
            "logo on another host",
            with("logo_uri", json!("https://cdn.example.net/logo.png")),
            "invalid_client_metadata",
        ),
        (
            "policy on another host",
            with("policy_uri", json!("https://evil.example.net/privacy")),
            "invalid_client_metadata",
        ),
        (
            "unknown scope",
            with(
                "scope",
                json!(format!("{OB}credential.readonly superpowers")),
            ),
            "invalid_client_metadata",
        ),
        (
            "service scope",
            with("scope", json!("credentials:issue")),
            "invalid_client_metadata",
        ),
        (
            "admin scope",
            with("scope", json!(format!("{OB}profile.readonly admin"))),
            "invalid_client_metadata",
        ),
        (
            "client_credentials grant",
            with("grant_types", json!(["client_credentials"])),
            "invalid_client_metadata",
        ),
        (
            "token response type",
            with("response_types", json!(["token"])),
            "invalid_client_metadata",
        ),
        (
            "unknown auth method",
            with("token_endpoint_auth_method", json!("private_key_jwt")),
            "invalid_client_metadata",
        ),
        (
            "redirect_uris as a string",
            with("redirect_uris", json!("https://wallet.example.org/cb")),
            "invalid_client_metadata",
        ),
    ];
    let mut all = cases;
    for key in [
        "client_name",
        "client_uri",
        "logo_uri",
        "tos_uri",
        "policy_uri",
        "software_id",
        "software_version",
        "redirect_uris",
        "scope",
    ] {
        all.push((
            "missing required member",
            without(key),
            "invalid_client_metadata",
        ));
    }
    for (what, body, error) in all {
        let resp = post_registration(&app, &body).await;
        assert_eq!(resp.status().as_u16(), 400, "{what}");
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(answer["error"], error, "{what}: {answer}");
    }
    let resp = app
        .http
        .post(app.url("/oauth/register"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    oauth_error(resp, 400, "invalid_client_metadata").await;
    assert_eq!(clients(&app).await, 1, "only the admin client exists");
}

#[tokio::test]
async fn registration_is_rate_limited_per_address() {
    let app = TestApp::spawn_with(|s| {
        s.auth_rate_limit_per_minute = 1;
        s.auth_rate_limit_burst = 3;
    })
    .await;
    for _ in 0..3 {
        register(&app, &wallet()).await;
    }
    let resp = post_registration(&app, &wallet()).await;
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    oauth_error(resp, 429, "temporarily_unavailable").await;
    assert_eq!(clients(&app).await, 4);
}

#[tokio::test]
async fn registered_clients_that_never_obtain_a_token_are_purged_after_24_hours() {
    let app = TestApp::spawn().await;
    let unused = register(&app, &wallet()).await;
    let used = register(&app, &wallet()).await;
    let used_id = used["client_id"].as_str().unwrap();
    let user = crate::accounts::create_user(&app, "ode@example.org", "Ode", false).await;
    tokens::issue_user_token(
        app.state.db(),
        used_id,
        &user,
        ScopeSet::parse(&format!("{OB}credential.readonly")).unwrap(),
        3600,
    )
    .await
    .unwrap();
    let row = oauth_client::Entity::find_by_id(used_id.to_owned())
        .one(app.state.db())
        .await
        .unwrap()
        .unwrap();
    assert!(row.first_token_at.is_some(), "the first token is recorded");

    // 23 h later nothing is old enough.
    app.state.clock().advance(chrono::Duration::hours(23));
    assert_eq!(
        oxbadge::app::purge_unused_registrations(&app.state).await,
        0
    );
    // 25 h after registering, the unused one goes; the one that got a token stays.
    app.state.clock().advance(chrono::Duration::hours(2));
    assert_eq!(
        oxbadge::app::purge_unused_registrations(&app.state).await,
        1
    );
    let (unused_id, unused_uri, unused_token) = configuration(&app, &unused);
    assert!(
        oauth_client::Entity::find_by_id(unused_id.clone())
            .one(app.state.db())
            .await
            .unwrap()
            .is_none()
    );
    let resp = app
        .http
        .get(&unused_uri)
        .bearer_auth(&unused_token)
        .send()
        .await
        .unwrap();
    oauth_error(resp, 401, "invalid_token").await;
    let resp = app
        .http
        .get(used["registration_client_uri"].as_str().unwrap())
        .bearer_auth(used["registration_access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let purged = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("client.registration_purged"))
        .filter(audit_event::Column::TargetId.eq(unused_id.as_str()))
        .count(app.state.db())
        .await
        .unwrap();
    assert_eq!(purged, 1);
    // Service clients are never purged.
    assert!(
        oauth_client::Entity::find_by_id(app.admin_id.clone())
            .one(app.state.db())
            .await
            .unwrap()
            .is_some()
    );
}

/// The OAuth endpoints take small bodies: 64 KiB, well under the service-wide cap, refused before
/// anything is parsed or stored (metadata, token and revocation forms are a few hundred bytes in
/// real use). As every OAuth request error, the refusal is 400 `invalid_request` (RFC 6749 §5.2).
#[tokio::test]
async fn oversized_registration_and_token_bodies_are_refused_before_parsing() {
    let app = TestApp::spawn().await;
    let before = clients(&app).await;
    let mut body = wallet();
    body["client_name"] = json!("W".repeat(70 * 1024));
    let refused = oauth_error(post_registration(&app, &body).await, 400, "invalid_request").await;
    assert!(
        refused["error_description"]
            .as_str()
            .unwrap()
            .contains("65536"),
        "{refused}"
    );
    assert_eq!(clients(&app).await, before);
    let resp = app
        .http
        .post(app.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&scope={}",
            "a".repeat(70 * 1024)
        ))
        .send()
        .await
        .unwrap();
    oauth_error(resp, 400, "invalid_request").await;
    // Just under the cap is read, and refused for what it says, not for its size.
    body["client_name"] = json!("W".repeat(60 * 1024));
    oauth_error(
        post_registration(&app, &body).await,
        400,
        "invalid_client_metadata",
    )
    .await;
    assert_eq!(clients(&app).await, before);
}
