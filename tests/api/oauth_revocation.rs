//! OAuth 2.0 revocation (RFC 7009), introspection (RFC 7662) and authorization server metadata
//! (RFC 8414): a revoked token stops working on the API at once; unknown and other clients' tokens
//! are answered 200 and left alone; a refresh token's revocation ends its whole family;
//! introspection answers only confidential clients and describes client, user-bound and refresh
//! tokens; authlib (an independent client) discovers, registers, introspects and revokes.

use chrono::{Duration, Utc};
use oxbadge::{
    db::{access_token, audit_event, refresh_token},
    oauth::{ScopeSet, tokens},
};
use reqwest::StatusCode;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::{
    oauth_registration::{OB, introspect_as_admin, register, wallet},
    support::TestApp,
};

async fn revoke(app: &TestApp, id: &str, secret: &str, form: &[(&str, &str)]) -> StatusCode {
    app.http
        .post(app.url("/oauth/revoke"))
        .basic_auth(id, Some(secret))
        .form(form)
        .send()
        .await
        .unwrap()
        .status()
}

async fn issuers_status(app: &TestApp, token: &str) -> StatusCode {
    app.http
        .get(app.url("/api/v1/issuers"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

/// Stores a refresh token row (the code flow that issues real ones is another module's) and
/// returns the token value.
async fn refresh_row(
    app: &TestApp,
    client_id: &str,
    user_id: &str,
    grant_id: &str,
    consumed: bool,
) -> String {
    let token = format!("oxbrt_{}", cuid2::create_id());
    let now = Utc::now();
    refresh_token::ActiveModel {
        id: Set(cuid2::create_id()),
        token_hash: Set(tokens::hash_secret(&token)),
        grant_id: Set(grant_id.to_owned()),
        client_id: Set(client_id.to_owned()),
        user_id: Set(user_id.to_owned()),
        scopes: Set(format!("{OB}credential.readonly offline_access")),
        created_at: Set(now),
        expires_at: Set(now + Duration::days(7)),
        family_expires_at: Set(now + Duration::days(90)),
        consumed_at: Set(consumed.then_some(now)),
        replaced_by: Set(None),
        revoked_at: Set(None),
    }
    .insert(app.state.db())
    .await
    .unwrap();
    token
}

#[tokio::test]
async fn a_revoked_access_token_is_inactive_and_refused_by_the_api() {
    let app = TestApp::spawn().await;
    let token = app.token("issuers:read").await;
    // Used once, so the bearer cache holds it.
    assert_eq!(issuers_status(&app, &token).await, StatusCode::OK);
    let active = introspect_as_admin(&app, &token).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["token_type"], "Bearer");
    assert_eq!(active["client_id"], json!(app.admin_id));
    assert_eq!(active["sub"], json!(app.admin_id));
    assert_eq!(active["scope"], "issuers:read");
    assert_eq!(active["iss"], json!(app.base));
    let (exp, iat) = (
        active["exp"].as_i64().unwrap(),
        active["iat"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 3600);
    assert!((Utc::now().timestamp() - iat).abs() < 60);

    let resp = app
        .http
        .post(app.url("/oauth/revoke"))
        .basic_auth(&app.admin_id, Some(&app.admin_secret))
        .form(&[
            ("token", token.as_str()),
            ("token_type_hint", "access_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(
        introspect_as_admin(&app, &token).await,
        json!({"active": false})
    );
    assert_eq!(
        issuers_status(&app, &token).await,
        StatusCode::UNAUTHORIZED,
        "revocation reaches the bearer cache at once"
    );
    let row = access_token::Entity::find()
        .filter(access_token::Column::TokenHash.eq(tokens::hash_secret(&token)))
        .one(app.state.db())
        .await
        .unwrap()
        .unwrap();
    assert!(row.revoked_at.is_some());
    let audited = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("token.revoked"))
        .filter(audit_event::Column::TargetId.eq(row.id.as_str()))
        .count(app.state.db())
        .await
        .unwrap();
    assert_eq!(audited, 1);
    // Revoking again changes nothing and is still 200 (client_secret_post this time).
    let resp = app
        .http
        .post(app.url("/oauth/revoke"))
        .form(&[
            ("token", token.as_str()),
            ("client_id", app.admin_id.as_str()),
            ("client_secret", app.admin_secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn unknown_and_other_clients_tokens_are_answered_200_and_left_alone() {
    let app = TestApp::spawn().await;
    let other = tokens::create_client(
        app.state.db(),
        "other service",
        ScopeSet::parse("issuers:read").unwrap(),
    )
    .await
    .unwrap();
    let other_secret = other.client_secret.expose_secret().to_owned();
    let theirs = app
        .token_for(&other.client_id, &other_secret, "issuers:read")
        .await;
    for token in ["oxbat_unknown", "something else entirely", theirs.as_str()] {
        assert_eq!(
            revoke(&app, &app.admin_id, &app.admin_secret, &[("token", token)]).await,
            StatusCode::OK,
            "{token}"
        );
    }
    assert_eq!(issuers_status(&app, &theirs).await, StatusCode::OK);
    assert_eq!(introspect_as_admin(&app, &theirs).await["active"], true);

    // Requests that are not valid revocations.
    let resp = app
        .http
        .post(app.url("/oauth/revoke"))
        .basic_auth(&app.admin_id, Some(&app.admin_secret))
        .form(&[("token_type_hint", "access_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
    for (id, secret) in [(app.admin_id.as_str(), "wrong"), ("nobody", "x")] {
        let resp = app
            .http
            .post(app.url("/oauth/revoke"))
            .basic_auth(id, Some(secret))
            .form(&[("token", theirs.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(
            resp.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic")
        );
        assert_eq!(
            resp.json::<Value>().await.unwrap()["error"],
            "invalid_client"
        );
    }
    // A confidential client cannot pass itself off as public by leaving its secret out.
    let resp = app
        .http
        .post(app.url("/oauth/revoke"))
        .form(&[
            ("token", theirs.as_str()),
            ("client_id", other.client_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(issuers_status(&app, &theirs).await, StatusCode::OK);
}

#[tokio::test]
async fn introspection_answers_only_confidential_clients() {
    let app = TestApp::spawn().await;
    let token = app.token("issuers:read").await;
    let mut native = wallet();
    native["token_endpoint_auth_method"] = json!("none");
    native["redirect_uris"] = json!(["org.example.wallet:/cb"]);
    let public = register(&app, &native).await;
    let public_id = public["client_id"].as_str().unwrap();
    for form in [
        vec![("token", token.as_str())],
        vec![("token", token.as_str()), ("client_id", public_id)],
        vec![
            ("token", token.as_str()),
            ("client_id", app.admin_id.as_str()),
            ("client_secret", "wrong"),
        ],
    ] {
        let resp = app
            .http
            .post(app.url("/oauth/introspect"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{form:?}");
        assert_eq!(
            resp.json::<Value>().await.unwrap()["error"],
            "invalid_client"
        );
    }
    // A registered confidential client may introspect, by the method it registered
    // (client_secret_post here; a client registered for Basic is refused the form method).
    let mut metadata = wallet();
    metadata["token_endpoint_auth_method"] = json!("client_secret_post");
    let confidential = register(&app, &metadata).await;
    let resp = app
        .http
        .post(app.url("/oauth/introspect"))
        .form(&[
            ("token", token.as_str()),
            ("client_id", confidential["client_id"].as_str().unwrap()),
            (
                "client_secret",
                confidential["client_secret"].as_str().unwrap(),
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.json::<Value>().await.unwrap()["active"], true);
}

#[tokio::test]
async fn introspection_describes_user_bound_and_refresh_tokens() {
    let app = TestApp::spawn().await;
    let user = crate::accounts::create_user(&app, "uma@example.org", "Uma", false).await;
    let grant = tokens::issue_user_token(
        app.state.db(),
        &app.admin_id,
        &user,
        ScopeSet::parse("issuers:read").unwrap(),
        3600,
    )
    .await
    .unwrap();
    let user_token = grant.access_token.expose_secret().to_owned();
    assert_eq!(issuers_status(&app, &user_token).await, StatusCode::OK);
    let answer = introspect_as_admin(&app, &user_token).await;
    assert_eq!(answer["active"], true);
    assert_eq!(
        answer["sub"],
        json!(user),
        "a user-bound token's subject is the user"
    );
    assert_eq!(answer["client_id"], json!(app.admin_id));
    assert_eq!(answer["token_type"], "Bearer");

    let wallet_client = register(&app, &wallet()).await;
    let wallet_id = wallet_client["client_id"].as_str().unwrap();
    let live = refresh_row(&app, wallet_id, &user, "grant-1", false).await;
    let consumed = refresh_row(&app, wallet_id, &user, "grant-1", true).await;
    let answer = introspect_as_admin(&app, &live).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["token_type"], "refresh_token");
    assert_eq!(answer["sub"], json!(user));
    assert_eq!(answer["client_id"], json!(wallet_id));
    assert_eq!(
        answer["scope"],
        format!("{OB}credential.readonly offline_access")
    );
    let (exp, iat) = (
        answer["exp"].as_i64().unwrap(),
        answer["iat"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 7 * 24 * 3600, "the idle deadline comes first");
    assert_eq!(
        introspect_as_admin(&app, &consumed).await,
        json!({"active": false})
    );
    // The hint does not hide a token of the other kind.
    let resp = app
        .http
        .post(app.url("/oauth/introspect"))
        .basic_auth(&app.admin_id, Some(&app.admin_secret))
        .form(&[
            ("token", live.as_str()),
            ("token_type_hint", "access_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["active"], true);
    // Past its idle deadline (the app's clock moves 8 days) the refresh token is inactive.
    app.state.clock().advance(Duration::days(8));
    assert_eq!(
        introspect_as_admin(&app, &live).await,
        json!({"active": false})
    );
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_its_whole_family() {
    let app = TestApp::spawn().await;
    let user = crate::accounts::create_user(&app, "fay@example.org", "Fay", false).await;
    let wallet_client = register(&app, &wallet()).await;
    let id = wallet_client["client_id"].as_str().unwrap();
    let secret = wallet_client["client_secret"].as_str().unwrap();
    let scopes = ScopeSet::parse(&format!("{OB}credential.readonly")).unwrap();
    let family_access: Vec<String> = {
        let mut out = Vec::new();
        for _ in 0..2 {
            let g = tokens::store_grant_token(
                app.state.db(),
                id,
                Some(&user),
                Some("grant-a"),
                scopes,
                3600,
            )
            .await
            .unwrap();
            out.push(g.access_token.expose_secret().to_owned());
        }
        out
    };
    let old = refresh_row(&app, id, &user, "grant-a", true).await;
    let current = refresh_row(&app, id, &user, "grant-a", false).await;
    let other_family = refresh_row(&app, id, &user, "grant-b", false).await;
    let other_access = tokens::store_grant_token(
        app.state.db(),
        id,
        Some(&user),
        Some("grant-b"),
        scopes,
        3600,
    )
    .await
    .unwrap()
    .access_token
    .expose_secret()
    .to_owned();
    for t in &family_access {
        assert_eq!(introspect_as_admin(&app, t).await["active"], true);
    }

    // Another client cannot end the family.
    assert_eq!(
        revoke(
            &app,
            &app.admin_id,
            &app.admin_secret,
            &[("token", &current)]
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(introspect_as_admin(&app, &current).await["active"], true);

    // The owner revokes the current refresh token.
    assert_eq!(
        revoke(
            &app,
            id,
            secret,
            &[("token", &current), ("token_type_hint", "refresh_token")]
        )
        .await,
        StatusCode::OK
    );
    let rows = refresh_token::Entity::find()
        .filter(refresh_token::Column::GrantId.eq("grant-a"))
        .all(app.state.db())
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.revoked_at.is_some()), "{rows:?}");
    let access_rows = access_token::Entity::find()
        .filter(access_token::Column::GrantId.eq("grant-a"))
        .all(app.state.db())
        .await
        .unwrap();
    assert_eq!(access_rows.len(), 2);
    assert!(access_rows.iter().all(|r| r.revoked_at.is_some()));
    for t in family_access.iter().chain([&current, &old]) {
        assert_eq!(introspect_as_admin(&app, t).await, json!({"active": false}));
    }
    // The other family lives on.
    assert_eq!(
        introspect_as_admin(&app, &other_family).await["active"],
        true
    );
    assert_eq!(
        introspect_as_admin(&app, &other_access).await["active"],
        true
    );
    let audited = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("token.family_revoked"))
        .filter(audit_event::Column::TargetId.eq("grant-a"))
        .count(app.state.db())
        .await
        .unwrap();
    assert_eq!(audited, 1);
}

#[tokio::test]
async fn a_public_client_revokes_its_own_refresh_family_by_client_id() {
    let app = TestApp::spawn().await;
    let user = crate::accounts::create_user(&app, "pia@example.org", "Pia", false).await;
    let mut native = wallet();
    native["token_endpoint_auth_method"] = json!("none");
    native["redirect_uris"] = json!(["http://127.0.0.1:51234/cb"]);
    let public = register(&app, &native).await;
    let id = public["client_id"].as_str().unwrap();
    let refresh = refresh_row(&app, id, &user, "grant-n", false).await;
    let resp = app
        .http
        .post(app.url("/oauth/revoke"))
        .form(&[("token", refresh.as_str()), ("client_id", id)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        introspect_as_admin(&app, &refresh).await,
        json!({"active": false})
    );
}

#[tokio::test]
async fn metadata_lists_the_endpoints_and_revalidates_with_its_etag() {
    let app = TestApp::spawn().await;
    let resp = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'));
    let cache = resp.headers()["cache-control"].to_str().unwrap().to_owned();
    assert!(cache.contains("max-age"), "{cache}");
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["issuer"], json!(app.base));
    for (key, path) in [
        ("authorization_endpoint", "/oauth/authorize"),
        ("token_endpoint", "/oauth/token"),
        ("registration_endpoint", "/oauth/register"),
        ("revocation_endpoint", "/oauth/revoke"),
        ("introspection_endpoint", "/oauth/introspect"),
    ] {
        assert_eq!(doc[key], json!(app.url(path)), "{key}");
    }
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(doc["response_types_supported"], json!(["code"]));
    assert_eq!(
        doc["grant_types_supported"],
        json!(["authorization_code", "refresh_token", "client_credentials"])
    );
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post", "none"])
    );
    assert!(doc["revocation_endpoint_auth_methods_supported"].is_array());
    assert_eq!(
        doc["introspection_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    let scopes: Vec<&str> = doc["scopes_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for scope in [
        "https://purl.imsglobal.org/spec/ob/v3p0/scope/credential.readonly",
        "https://purl.imsglobal.org/spec/ob/v3p0/scope/credential.upsert",
        "https://purl.imsglobal.org/spec/ob/v3p0/scope/profile.readonly",
        "https://purl.imsglobal.org/spec/ob/v3p0/scope/profile.update",
        "offline_access",
        "credentials:issue",
    ] {
        assert!(scopes.contains(&scope), "{scope}");
    }
    assert!(doc["service_documentation"].is_string());

    for tag in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
    ] {
        let resp = app
            .http
            .get(app.url("/.well-known/oauth-authorization-server"))
            .header("if-none-match", tag)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(resp.headers()["etag"], etag.as_str());
    }
    let resp = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .header("if-none-match", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

fn authlib(args: &[&str]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/oauth_authlib.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 is needed for the authlib client (.ci/run installs authlib)");
    assert!(
        out.status.success(),
        "authlib {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn authlib_discovers_registers_introspects_and_revokes() {
    let app = TestApp::spawn().await;
    let base = app.base.clone();
    let registered = tokio::task::spawn_blocking(move || authlib(&["register", &base]))
        .await
        .unwrap();
    let id = registered["client_id"].as_str().unwrap().to_owned();
    let secret = registered["client_secret"].as_str().unwrap().to_owned();
    let user = crate::accounts::create_user(&app, "ali@example.org", "Ali", false).await;
    let token = tokens::issue_user_token(
        app.state.db(),
        &id,
        &user,
        ScopeSet::parse(&format!("{OB}credential.readonly")).unwrap(),
        3600,
    )
    .await
    .unwrap()
    .access_token
    .expose_secret()
    .to_owned();
    let base = app.base.clone();
    let checked = {
        let token = token.clone();
        tokio::task::spawn_blocking(move || authlib(&["check", &base, &id, &secret, &token]))
            .await
            .unwrap()
    };
    assert_eq!(checked["before"]["active"], true, "{checked}");
    assert_eq!(checked["before"]["sub"], json!(user));
    assert_eq!(checked["before"]["client_id"], registered["client_id"]);
    assert_eq!(checked["revoke_status"], 200);
    assert_eq!(checked["after"], json!({"active": false}));
    assert_eq!(
        introspect_as_admin(&app, &token).await,
        json!({"active": false})
    );
}
