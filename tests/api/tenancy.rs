//! Tenancy: issuer memberships and roles. Two issuers A and B; a client and a user-bound token that
//! are members of A only do what their role allows on A and get exactly the answer of a missing
//! resource for every issuer-scoped operation on B; viewers get 403 `insufficient_role` on writes;
//! global clients are unchanged; client management (update, rotate-secret, disable, delete); the
//! scope catalogue; the migration keeps existing clients global.

use migration::{Migrator, MigratorTrait};
use reqwest::Method;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::{
    issuance::{issue, issuer_with_achievement},
    keys::create_issuer,
    support::{TestApp, TestDb, assert_problem},
};

/// Every scope an issuer-scoped caller may need.
const WORK_SCOPES: &str =
    "issuers:read issuers:write keys:manage credentials:issue credentials:read credentials:status";

/// Sends a JSON request; returns status and body (Null when not JSON).
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app.http.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Creates a client through the API; returns (id, secret).
async fn create_client(app: &TestApp, admin: &str, body: Value) -> (String, String) {
    let (status, created) = call(app, Method::POST, "/api/v1/clients", admin, Some(body)).await;
    assert_eq!(status, 201, "{created}");
    (
        created["clientId"].as_str().unwrap().to_owned(),
        created["clientSecret"].as_str().unwrap().to_owned(),
    )
}

/// Creates a (non-admin) user through the admin API; returns its id.
async fn create_user(app: &TestApp, admin: &str, email: &str) -> String {
    let (status, created) = call(
        app,
        Method::POST,
        "/api/v1/users",
        admin,
        Some(json!({"email": email, "displayName": email, "password": "correct horse battery staple 9"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

/// The answer must be the one for a resource that does not exist: same status, code and detail.
fn assert_hidden(what: &str, got: &(u16, Value), missing: &(u16, Value)) {
    assert_eq!(got.0, missing.0, "{what}: {} vs {}", got.1, missing.1);
    assert_eq!(got.1["code"], missing.1["code"], "{what}: {}", got.1);
    assert_eq!(got.1["detail"], missing.1["detail"], "{what}: {}", got.1);
}

fn recipient() -> Value {
    json!({"email": format!("{}@example.org", cuid2::create_id())})
}

struct World {
    a: String,
    a_achievement: String,
    b: String,
    b_did: String,
    b_achievement: String,
    b_credential: String,
    b_credential_uri: String,
    b_key: String,
}

async fn two_issuers(app: &TestApp, admin: &str) -> World {
    let (a, a_achievement) = issuer_with_achievement(app, admin).await;
    let (b, b_achievement) = issuer_with_achievement(app, admin).await;
    let b_cred = issue(
        app,
        admin,
        json!({"achievementId": b_achievement, "recipient": recipient()}),
    )
    .await;
    let b_id = b["id"].as_str().unwrap().to_owned();
    let (_, keys) = call(
        app,
        Method::GET,
        &format!("/api/v1/issuers/{b_id}/keys"),
        admin,
        None,
    )
    .await;
    World {
        a: a["id"].as_str().unwrap().to_owned(),
        a_achievement,
        b_did: b["issuerId"].as_str().unwrap().to_owned(),
        b: b_id,
        b_achievement,
        b_credential: b_cred["id"].as_str().unwrap().to_owned(),
        b_credential_uri: b_cred["credential"]["id"].as_str().unwrap().to_owned(),
        b_key: keys[0]["id"].as_str().unwrap().to_owned(),
    }
}

fn achievement_body() -> Value {
    json!({
        "name": "Second",
        "description": "Another achievement.",
        "criteria": {"narrative": "Do it."},
        "achievementType": "Badge"
    })
}

/// What an `issuer`-role member may do on its issuer A.
async fn works_on_a(app: &TestApp, t: &str, w: &World, label: &str) {
    let a = &w.a;
    let (s, body) = call(app, Method::GET, &format!("/api/v1/issuers/{a}"), t, None).await;
    assert_eq!(s, 200, "{label} get A: {body}");
    let (s, _) = call(
        app,
        Method::GET,
        &format!("/api/v1/issuers/{a}/keys"),
        t,
        None,
    )
    .await;
    assert_eq!(s, 200, "{label} keys of A");
    let (s, _) = call(
        app,
        Method::GET,
        &format!("/api/v1/issuers/{a}/achievements"),
        t,
        None,
    )
    .await;
    assert_eq!(s, 200, "{label} achievements of A");
    let (s, body) = call(
        app,
        Method::POST,
        &format!("/api/v1/issuers/{a}/achievements"),
        t,
        Some(achievement_body()),
    )
    .await;
    assert_eq!(s, 201, "{label} create achievement on A: {body}");
    let new_achievement = body["id"].as_str().unwrap().to_owned();
    let (s, _) = call(
        app,
        Method::PUT,
        &format!("/api/v1/issuers/{a}/achievements/{new_achievement}"),
        t,
        Some(achievement_body()),
    )
    .await;
    assert_eq!(s, 200, "{label} update achievement on A");
    let issued = issue(
        app,
        t,
        json!({"achievementId": w.a_achievement, "recipient": recipient()}),
    )
    .await;
    let cred = issued["id"].as_str().unwrap().to_owned();
    let uri = issued["credential"]["id"].as_str().unwrap().to_owned();
    let (s, body) = call(
        app,
        Method::POST,
        "/api/v1/credentials/batch",
        t,
        Some(json!({"achievementId": w.a_achievement, "recipients": [recipient(), recipient()]})),
    )
    .await;
    assert_eq!(s, 201, "{label} batch on A: {body}");
    assert_eq!(body["issued"], 2);
    let (s, _) = call(
        app,
        Method::GET,
        &format!("/api/v1/credentials/{cred}"),
        t,
        None,
    )
    .await;
    assert_eq!(s, 200, "{label} read credential of A");
    let (s, _) = call(
        app,
        Method::GET,
        &format!("/api/v1/credentials/{cred}/baked.svg"),
        t,
        None,
    )
    .await;
    assert_eq!(s, 200, "{label} baked credential of A");
    let (s, body) = call(
        app,
        Method::POST,
        &format!("/api/v1/credentials/{cred}/status"),
        t,
        Some(json!({"purpose": "suspension", "status": true})),
    )
    .await;
    assert_eq!(s, 200, "{label} suspend on A: {body}");
    let (s, body) = call(
        app,
        Method::POST,
        "/api/v1/credentials/status",
        t,
        Some(json!({"credentialIds": [cred], "purpose": "suspension", "status": false})),
    )
    .await;
    assert_eq!(s, 200, "{label} bulk on A: {body}");
    let (s, body) = call(app, Method::POST, "/credentials/status", t, Some(json!({"credentialId": uri, "credentialStatus": [{"type": "BitstringStatusListEntry", "statusPurpose": "revocation", "status": true}]}))).await;
    assert_eq!(s, 200, "{label} VC API status on A: {body}");
    let (_, issuer_a) = call(app, Method::GET, &format!("/api/v1/issuers/{a}"), t, None).await;
    let vc = json!({"credential": {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "type": ["VerifiableCredential"],
        "issuer": issuer_a["issuerId"],
        "credentialSubject": {"id": "did:example:subject"}
    }});
    let (s, body) = call(app, Method::POST, "/credentials/issue", t, Some(vc)).await;
    assert_eq!(s, 201, "{label} VC API issue for A: {body}");
    // Lists show A's things only.
    let (_, list) = call(app, Method::GET, "/api/v1/issuers", t, None).await;
    assert_eq!(list["total"], 1, "{label}: {list}");
    assert_eq!(list["items"][0]["id"], json!(a));
    let (_, creds) = call(app, Method::GET, "/api/v1/credentials?limit=200", t, None).await;
    let items = creds["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(
        items.iter().all(|c| c["issuerId"] == json!(a)),
        "{label}: {creds}"
    );
    assert_eq!(creds["total"].as_u64().unwrap() as usize, items.len());
    let (_, none) = call(
        app,
        Method::GET,
        &format!("/api/v1/credentials?issuer={}", w.b),
        t,
        None,
    )
    .await;
    assert_eq!(none["total"], 0, "{label}: B's credentials are not listed");
    // The `issuer` role does not manage keys or members.
    let (s, body) = call(
        app,
        Method::POST,
        &format!("/api/v1/issuers/{a}/keys/rotate"),
        t,
        None,
    )
    .await;
    assert_eq!(s, 403, "{label} rotate on A: {body}");
    assert_eq!(body["code"], "insufficient_role");
    let (s, body) = call(
        app,
        Method::GET,
        &format!("/api/v1/issuers/{a}/members"),
        t,
        None,
    )
    .await;
    assert_eq!(
        (s, body["code"].clone()),
        (403, json!("insufficient_role")),
        "{label} members of A"
    );
    let (s, body) = call(
        app,
        Method::PATCH,
        &format!("/api/v1/issuers/{a}"),
        t,
        Some(json!({"name": "Renamed"})),
    )
    .await;
    assert_eq!(
        (s, body["code"].clone()),
        (403, json!("insufficient_role")),
        "{label} profile of A"
    );
}

/// Every issuer-scoped operation on B answers like a missing resource.
async fn hidden_b(app: &TestApp, t: &str, w: &World, label: &str) {
    let b = &w.b;
    let ghost = "nosuchissuer0000000000000";
    let cases: Vec<(Method, String, String, Option<Value>)> = vec![
        (
            Method::GET,
            format!("/api/v1/issuers/{b}"),
            format!("/api/v1/issuers/{ghost}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/api/v1/issuers/{b}"),
            format!("/api/v1/issuers/{ghost}"),
            Some(json!({"name": "Mine now"})),
        ),
        (
            Method::GET,
            format!("/api/v1/issuers/{b}/keys"),
            format!("/api/v1/issuers/{ghost}/keys"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/issuers/{b}/keys/rotate"),
            format!("/api/v1/issuers/{ghost}/keys/rotate"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/issuers/{b}/keys/{}/revoke", w.b_key),
            format!("/api/v1/issuers/{ghost}/keys/{}/revoke", w.b_key),
            Some(json!({"reason": "compromised"})),
        ),
        (
            Method::GET,
            format!("/api/v1/issuers/{b}/achievements"),
            format!("/api/v1/issuers/{ghost}/achievements"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/issuers/{b}/achievements"),
            format!("/api/v1/issuers/{ghost}/achievements"),
            Some(achievement_body()),
        ),
        (
            Method::GET,
            format!("/api/v1/issuers/{b}/achievements/{}", w.b_achievement),
            format!("/api/v1/issuers/{ghost}/achievements/{}", w.b_achievement),
            None,
        ),
        (
            Method::PUT,
            format!("/api/v1/issuers/{b}/achievements/{}", w.b_achievement),
            format!("/api/v1/issuers/{ghost}/achievements/{}", w.b_achievement),
            Some(achievement_body()),
        ),
        (
            Method::GET,
            format!("/api/v1/issuers/{b}/members"),
            format!("/api/v1/issuers/{ghost}/members"),
            None,
        ),
        (
            Method::PUT,
            format!("/api/v1/issuers/{b}/members"),
            format!("/api/v1/issuers/{ghost}/members"),
            Some(json!({"userId": "intruder", "role": "owner"})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/issuers/{b}/members/client/{}", app.admin_id),
            format!("/api/v1/issuers/{ghost}/members/client/{}", app.admin_id),
            None,
        ),
        (
            Method::POST,
            "/api/v1/credentials".into(),
            "/api/v1/credentials".into(),
            None,
        ),
        (
            Method::POST,
            "/api/v1/credentials/batch".into(),
            "/api/v1/credentials/batch".into(),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/credentials/{}", w.b_credential),
            "/api/v1/credentials/nosuchcredential".into(),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/credentials/{}/baked.png", w.b_credential),
            "/api/v1/credentials/nosuchcredential/baked.png".into(),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/credentials/{}/status", w.b_credential),
            "/api/v1/credentials/nosuchcredential/status".into(),
            Some(json!({"purpose": "revocation", "status": true})),
        ),
        (
            Method::POST,
            "/api/v1/credentials/status".into(),
            "/api/v1/credentials/status".into(),
            None,
        ),
        (
            Method::POST,
            "/credentials/status".into(),
            "/credentials/status".into(),
            None,
        ),
        (
            Method::POST,
            "/credentials/issue".into(),
            "/credentials/issue".into(),
            None,
        ),
    ];
    for (method, path, ghost_path, body) in cases {
        // Bodies that name B's resources, and the same bodies naming resources that do not exist.
        let (body_b, body_ghost) = match (method.as_str(), path.as_str()) {
            ("POST", "/api/v1/credentials") => (
                Some(json!({"achievementId": w.b_achievement, "recipient": recipient()})),
                Some(json!({"achievementId": "nosuchachievement", "recipient": recipient()})),
            ),
            ("POST", "/api/v1/credentials/batch") => (
                Some(json!({"achievementId": w.b_achievement, "recipients": [recipient()]})),
                Some(json!({"achievementId": "nosuchachievement", "recipients": [recipient()]})),
            ),
            ("POST", "/api/v1/credentials/status") => (
                Some(
                    json!({"credentialIds": [w.b_credential], "purpose": "revocation", "status": true}),
                ),
                Some(
                    json!({"credentialIds": ["nosuchcredential"], "purpose": "revocation", "status": true}),
                ),
            ),
            ("POST", "/credentials/status") => (
                Some(
                    json!({"credentialId": w.b_credential_uri, "credentialStatus": [{"type": "BitstringStatusListEntry", "statusPurpose": "revocation", "status": true}]}),
                ),
                Some(
                    json!({"credentialId": "urn:uuid:00000000-0000-4000-8000-000000000000", "credentialStatus": [{"type": "BitstringStatusListEntry", "statusPurpose": "revocation", "status": true}]}),
                ),
            ),
            ("POST", "/credentials/issue") => {
                let vc = |issuer: &str| {
                    json!({"credential": {
                        "@context": ["https://www.w3.org/ns/credentials/v2"],
                        "type": ["VerifiableCredential"],
                        "issuer": issuer,
                        "credentialSubject": {"id": "did:example:subject"}
                    }})
                };
                (Some(vc(&w.b_did)), Some(vc("did:web:nosuch.example")))
            }
            _ => (body.clone(), body),
        };
        let mut got = call(app, method.clone(), &path, t, body_b).await;
        // The VC API names the issuer it could not find: compare the rest of the answer.
        if let Some(detail) = got.1["detail"].as_str() {
            got.1["detail"] = json!(detail.replace(&w.b_did, "did:web:nosuch.example"));
        }
        let missing = call(app, method.clone(), &ghost_path, t, body_ghost).await;
        let what = format!("{label} {method} {path}");
        assert!(
            got.0 == 404 || path == "/credentials/issue",
            "{what}: {}",
            got.1
        );
        assert_hidden(&what, &got, &missing);
    }
    // Nothing changed on B.
    let admin = app.token("issuers:read credentials:read").await;
    let (_, issuer_b) = call(
        app,
        Method::GET,
        &format!("/api/v1/issuers/{b}"),
        &admin,
        None,
    )
    .await;
    assert_ne!(issuer_b["name"], "Mine now");
    let (_, cred) = call(
        app,
        Method::GET,
        &format!("/api/v1/credentials/{}", w.b_credential),
        &admin,
        None,
    )
    .await;
    assert_eq!(cred["revoked"], false);
}

#[tokio::test]
async fn members_of_a_act_on_a_and_get_404_for_everything_of_b() {
    let app = TestApp::spawn().await;
    let admin = app
        .token("issuers:write issuers:read credentials:issue keys:manage admin")
        .await;
    let w = two_issuers(&app, &admin).await;

    // A client that is a member of A only.
    let (id, secret) = create_client(
        &app,
        &admin,
        json!({"name": "school A back end", "scopes": WORK_SCOPES.split(' ').collect::<Vec<_>>(),
               "issuers": [{"issuerId": w.a, "role": "issuer"}]}),
    )
    .await;
    let client_token = app.token_for(&id, &secret, WORK_SCOPES).await;
    works_on_a(&app, &client_token, &w, "client").await;
    hidden_b(&app, &client_token, &w, "client").await;

    // A user-bound token for a user that is a member of A only.
    let user_of_a = create_user(&app, &admin, "user-of-a@example.org").await;
    let (s, body) = call(
        &app,
        Method::PUT,
        &format!("/api/v1/issuers/{}/members", w.a),
        &admin,
        Some(json!({"userId": "no-such-user", "role": "issuer"})),
    )
    .await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["code"], "unknown_user");
    let (s, body) = call(
        &app,
        Method::PUT,
        &format!("/api/v1/issuers/{}/members", w.a),
        &admin,
        Some(json!({"userId": user_of_a, "role": "issuer"})),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["kind"], "user");
    let user = app.user_token(&user_of_a, WORK_SCOPES).await;
    works_on_a(&app, &user, &w, "user").await;
    hidden_b(&app, &user, &w, "user").await;

    // A user with no membership sees nothing, and cannot act on A.
    let stranger = app.user_token("stranger", WORK_SCOPES).await;
    let (_, list) = call(&app, Method::GET, "/api/v1/issuers", &stranger, None).await;
    assert_eq!(list["total"], 0);
    let (s, _) = call(
        &app,
        Method::GET,
        &format!("/api/v1/issuers/{}", w.a),
        &stranger,
        None,
    )
    .await;
    assert_eq!(s, 404);

    // Removing the user's membership takes effect on its next request.
    let (s, _) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/issuers/{}/members/user/{user_of_a}", w.a),
        &admin,
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, _) = call(
        &app,
        Method::GET,
        &format!("/api/v1/issuers/{}", w.a),
        &user,
        None,
    )
    .await;
    assert_eq!(s, 404, "membership removal is immediate");
}

#[tokio::test]
async fn a_viewer_reads_and_gets_403_insufficient_role_on_every_write() {
    let app = TestApp::spawn().await;
    let admin = app
        .token("issuers:write issuers:read credentials:issue credentials:read admin")
        .await;
    let (issuer, achievement) = issuer_with_achievement(&app, &admin).await;
    let a = issuer["id"].as_str().unwrap();
    let cred = issue(
        &app,
        &admin,
        json!({"achievementId": achievement, "recipient": recipient()}),
    )
    .await;
    let cred_id = cred["id"].as_str().unwrap();
    let (id, secret) = create_client(
        &app,
        &admin,
        json!({"name": "auditor", "scopes": WORK_SCOPES.split(' ').collect::<Vec<_>>(),
               "issuers": [{"issuerId": a, "role": "viewer"}]}),
    )
    .await;
    let t = app.token_for(&id, &secret, WORK_SCOPES).await;
    for path in [
        format!("/api/v1/issuers/{a}"),
        format!("/api/v1/issuers/{a}/keys"),
        format!("/api/v1/issuers/{a}/achievements"),
        format!("/api/v1/issuers/{a}/achievements/{achievement}"),
        format!("/api/v1/credentials/{cred_id}"),
        format!("/api/v1/credentials/{cred_id}/baked.png"),
    ] {
        let (s, body) = call(&app, Method::GET, &path, &t, None).await;
        assert_eq!(s, 200, "viewer reads {path}: {body}");
    }
    let vc = json!({"credential": {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "type": ["VerifiableCredential"],
        "issuer": issuer["issuerId"],
        "credentialSubject": {"id": "did:example:subject"}
    }});
    let writes: Vec<(Method, String, Value)> = vec![
        (
            Method::PATCH,
            format!("/api/v1/issuers/{a}"),
            json!({"name": "x"}),
        ),
        (
            Method::POST,
            format!("/api/v1/issuers/{a}/keys/rotate"),
            json!({}),
        ),
        (
            Method::POST,
            format!("/api/v1/issuers/{a}/achievements"),
            achievement_body(),
        ),
        (
            Method::PUT,
            format!("/api/v1/issuers/{a}/achievements/{achievement}"),
            achievement_body(),
        ),
        (
            Method::PUT,
            format!("/api/v1/issuers/{a}/members"),
            json!({"clientId": id, "role": "owner"}),
        ),
        (
            Method::POST,
            "/api/v1/credentials".into(),
            json!({"achievementId": achievement, "recipient": recipient()}),
        ),
        (
            Method::POST,
            "/api/v1/credentials/batch".into(),
            json!({"achievementId": achievement, "recipients": [recipient()]}),
        ),
        (
            Method::POST,
            format!("/api/v1/credentials/{cred_id}/status"),
            json!({"purpose": "revocation", "status": true}),
        ),
        (
            Method::POST,
            "/api/v1/credentials/status".into(),
            json!({"credentialIds": [cred_id], "purpose": "revocation", "status": true}),
        ),
        (
            Method::POST,
            "/credentials/status".into(),
            json!({"credentialId": cred["credential"]["id"], "credentialStatus": [{"type": "BitstringStatusListEntry", "statusPurpose": "revocation", "status": true}]}),
        ),
        (Method::POST, "/credentials/issue".into(), vc),
    ];
    for (method, path, body) in writes {
        let resp = app
            .http
            .request(method.clone(), app.url(&path))
            .bearer_auth(&t)
            .json(&body)
            .send()
            .await
            .unwrap();
        let problem = assert_problem(resp, 403, "insufficient_role").await;
        assert!(
            problem["detail"].as_str().unwrap().contains('`'),
            "{method} {path}: {problem}"
        );
    }
    // Nothing was written.
    let (_, c) = call(
        &app,
        Method::GET,
        &format!("/api/v1/credentials/{cred_id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(c["revoked"], false);
    let (_, list) = call(
        &app,
        Method::GET,
        "/api/v1/credentials",
        &app.token("credentials:read").await,
        None,
    )
    .await;
    assert_eq!(list["total"], 1);
}

#[tokio::test]
async fn an_owner_creates_issuers_manages_keys_and_members_and_stays_the_last_owner() {
    let app = TestApp::spawn().await;
    let admin = app.token("issuers:write issuers:read admin").await;
    let (other, _) = issuer_with_achievement(&app, &admin).await;
    // A client limited to issuers (none yet) creates its own issuer and becomes its owner.
    let (id, secret) = create_client(&app, &admin, json!({"name": "school", "scopes": WORK_SCOPES.split(' ').collect::<Vec<_>>(), "issuers": []})).await;
    let t = app.token_for(&id, &secret, WORK_SCOPES).await;
    let (_, before) = call(&app, Method::GET, "/api/v1/issuers", &t, None).await;
    assert_eq!(before["total"], 0);
    let mine = create_issuer(&app, &t, json!({"name": "My School"})).await;
    let c = mine["id"].as_str().unwrap();
    let (s, members) = call(
        &app,
        Method::GET,
        &format!("/api/v1/issuers/{c}/members"),
        &t,
        None,
    )
    .await;
    assert_eq!(s, 200, "{members}");
    assert_eq!(members.as_array().unwrap().len(), 1);
    assert_eq!(members[0]["clientId"], json!(id));
    assert_eq!(members[0]["role"], "owner");
    let (_, list) = call(&app, Method::GET, "/api/v1/issuers", &t, None).await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["id"], json!(c));
    let (s, _) = call(
        &app,
        Method::GET,
        &format!("/api/v1/issuers/{}", other["id"].as_str().unwrap()),
        &t,
        None,
    )
    .await;
    assert_eq!(s, 404, "the other issuer stays hidden");

    // Owners rotate keys and edit the profile.
    let (s, body) = call(
        &app,
        Method::POST,
        &format!("/api/v1/issuers/{c}/keys/rotate"),
        &t,
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let (s, _) = call(
        &app,
        Method::PATCH,
        &format!("/api/v1/issuers/{c}"),
        &t,
        Some(json!({"name": "My School (renamed)"})),
    )
    .await;
    assert_eq!(s, 200);

    // Members: add a viewer, promote it, remove it.
    let (helper, helper_secret) = create_client(
        &app,
        &admin,
        json!({"name": "helper", "scopes": ["issuers:read"], "issuers": []}),
    )
    .await;
    let helper_token = app.token_for(&helper, &helper_secret, "issuers:read").await;
    let (s, _) = call(
        &app,
        Method::GET,
        &format!("/api/v1/issuers/{c}"),
        &helper_token,
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, body) = call(
        &app,
        Method::PUT,
        &format!("/api/v1/issuers/{c}/members"),
        &t,
        Some(json!({"clientId": helper, "role": "viewer"})),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let (s, _) = call(
        &app,
        Method::GET,
        &format!("/api/v1/issuers/{c}"),
        &helper_token,
        None,
    )
    .await;
    assert_eq!(s, 200, "a new membership is effective at once");
    let (s, body) = call(
        &app,
        Method::PUT,
        &format!("/api/v1/issuers/{c}/members"),
        &t,
        Some(json!({"clientId": helper, "role": "issuer"})),
    )
    .await;
    assert_eq!((s, body["role"].clone()), (200, json!("issuer")));
    let (s, body) = call(
        &app,
        Method::PUT,
        &format!("/api/v1/issuers/{c}/members"),
        &t,
        Some(json!({"clientId": "nosuchclient", "role": "viewer"})),
    )
    .await;
    assert_eq!((s, body["code"].clone()), (422, json!("unknown_client")));
    let (s, body) = call(
        &app,
        Method::PUT,
        &format!("/api/v1/issuers/{c}/members"),
        &t,
        Some(json!({"clientId": helper, "userId": "u", "role": "viewer"})),
    )
    .await;
    assert_eq!(s, 422, "{body}");
    let (s, _) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/issuers/{c}/members/client/{helper}"),
        &t,
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, _) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/issuers/{c}/members/client/{helper}"),
        &t,
        None,
    )
    .await;
    assert_eq!(s, 404, "already removed");
    let (s, _) = call(
        &app,
        Method::GET,
        &format!("/api/v1/issuers/{c}"),
        &helper_token,
        None,
    )
    .await;
    assert_eq!(s, 404, "removal is effective at once");

    // The last owner can be neither removed nor demoted, nor deleted with its client.
    let resp = app
        .http
        .delete(app.url(&format!("/api/v1/issuers/{c}/members/client/{id}")))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_problem(resp, 409, "last_owner").await;
    let resp = app
        .http
        .put(app.url(&format!("/api/v1/issuers/{c}/members")))
        .bearer_auth(&t)
        .json(&json!({"clientId": id, "role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 409, "last_owner").await;
    let resp = app
        .http
        .delete(app.url(&format!("/api/v1/clients/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_problem(resp, 409, "last_owner").await;
    // With a second owner, the first may leave.
    let second_owner = create_user(&app, &admin, "second-owner@example.org").await;
    let (s, _) = call(
        &app,
        Method::PUT,
        &format!("/api/v1/issuers/{c}/members"),
        &t,
        Some(json!({"userId": second_owner, "role": "owner"})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, _) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/issuers/{c}/members/client/{id}"),
        &t,
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, _) = call(&app, Method::GET, &format!("/api/v1/issuers/{c}"), &t, None).await;
    assert_eq!(s, 404);

    // Membership changes are in the audit trail, without secrets.
    let (_, audit) = call(&app, Method::GET, "/api/v1/audit?limit=500", &admin, None).await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "membership.added",
        "membership.updated",
        "membership.removed",
        "client.created",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    assert!(!audit.to_string().contains(&secret));
}

#[tokio::test]
async fn global_clients_are_unchanged_and_only_they_administer() {
    let app = TestApp::spawn().await;
    let admin = app.token("issuers:write issuers:read admin").await;
    let (a, _) = issuer_with_achievement(&app, &admin).await;
    let (b, _) = issuer_with_achievement(&app, &admin).await;
    // The bootstrap admin and a client created without `issuers` are global.
    let (g, g_secret) = create_client(
        &app,
        &admin,
        json!({"name": "global", "scopes": ["issuers:read"]}),
    )
    .await;
    let gt = app.token_for(&g, &g_secret, "issuers:read").await;
    let (_, list) = call(&app, Method::GET, "/api/v1/issuers", &gt, None).await;
    assert_eq!(list["total"], 2);
    for issuer in [&a, &b] {
        let (s, _) = call(
            &app,
            Method::GET,
            &format!("/api/v1/issuers/{}", issuer["id"].as_str().unwrap()),
            &gt,
            None,
        )
        .await;
        assert_eq!(s, 200);
    }
    let (_, clients) = call(&app, Method::GET, "/api/v1/clients", &admin, None).await;
    for c in clients.as_array().unwrap() {
        assert_eq!(c["global"], true, "{c}");
    }
    // A client limited to issuers cannot administer, even with the admin scope.
    let (l, l_secret) = create_client(&app, &admin, json!({"name": "limited admin", "scopes": ["admin"], "issuers": [{"issuerId": a["id"], "role": "owner"}]})).await;
    let lt = app.token_for(&l, &l_secret, "admin").await;
    for (method, path, body) in [
        (Method::GET, "/api/v1/clients".to_owned(), None),
        (
            Method::POST,
            "/api/v1/clients".to_owned(),
            Some(json!({"name": "escalate", "scopes": ["admin"]})),
        ),
        (Method::GET, format!("/api/v1/clients/{l}"), None),
        (
            Method::PATCH,
            format!("/api/v1/clients/{l}"),
            Some(json!({"global": true})),
        ),
        (
            Method::POST,
            format!("/api/v1/clients/{l}/rotate-secret"),
            None,
        ),
        (Method::GET, "/api/v1/audit".to_owned(), None),
    ] {
        let (s, body) = call(&app, method.clone(), &path, &lt, body).await;
        assert_eq!(
            (s, body["code"].clone()),
            (403, json!("insufficient_role")),
            "{method} {path}"
        );
    }
    let (_, me) = call(
        &app,
        Method::GET,
        &format!("/api/v1/clients/{l}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(me["global"], false);
    assert_eq!(
        me["issuers"],
        json!([{"issuerId": a["id"], "role": "owner"}])
    );
}

#[tokio::test]
async fn client_management_update_rotate_disable_delete() {
    let app = TestApp::spawn().await;
    let admin = app.token("admin issuers:write").await;
    let issuer = create_issuer(&app, &admin, json!({"name": "Managed"})).await;
    let (id, secret) = create_client(
        &app,
        &admin,
        json!({"name": "wallet", "scopes": ["issuers:read", "credentials:read"], "redirectUris": ["https://wallet.example/cb"]}),
    )
    .await;
    let (s, got) = call(
        &app,
        Method::GET,
        &format!("/api/v1/clients/{id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(got["name"], "wallet");
    assert_eq!(got["redirectUris"], json!(["https://wallet.example/cb"]));
    assert!(!got.to_string().contains(&secret) && got.get("secretHash").is_none());
    // Per-client allowed scopes: asking for more is invalid_scope.
    let resp = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "issuers:read admin"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_scope"
    );

    // Update: name, redirect URIs, memberships; bad input changes nothing.
    let token = app
        .token_for(&id, &secret, "issuers:read credentials:read")
        .await;
    let (s, body) = call(
        &app,
        Method::PATCH,
        &format!("/api/v1/clients/{id}"),
        &admin,
        Some(json!({"redirectUris": ["http://wallet.example/cb"]})),
    )
    .await;
    assert_eq!(s, 422, "{body}");
    let (s, body) = call(
        &app,
        Method::PATCH,
        &format!("/api/v1/clients/{id}"),
        &admin,
        Some(json!({"issuers": [{"issuerId": "nosuchissuer", "role": "viewer"}]})),
    )
    .await;
    assert_eq!((s, body["code"].clone()), (422, json!("unknown_issuer")));
    let (s, body) = call(
        &app,
        Method::PATCH,
        &format!("/api/v1/clients/{id}"),
        &admin,
        Some(json!({"scopes": ["root"]})),
    )
    .await;
    assert_eq!((s, body["code"].clone()), (422, json!("unknown_scope")));
    let (_, unchanged) = call(
        &app,
        Method::GET,
        &format!("/api/v1/clients/{id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(unchanged["global"], true);
    assert_eq!(unchanged["redirectUris"], got["redirectUris"]);
    let (s, body) = call(&app, Method::PATCH, &format!("/api/v1/clients/{id}"), &admin, Some(json!({"name": "wallet 2", "redirectUris": ["https://wallet.example/cb2", "http://127.0.0.1:9999/cb"], "issuers": [{"issuerId": issuer["id"], "role": "viewer"}]}))).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["name"], "wallet 2");
    assert_eq!(body["global"], false);
    assert_eq!(body["redirectUris"].as_array().unwrap().len(), 2);
    // The live token keeps working (same scopes) and now sees only its issuer.
    let (s, list) = call(&app, Method::GET, "/api/v1/issuers", &token, None).await;
    assert_eq!((s, list["total"].clone()), (200, json!(1)));
    // Narrowing the scopes revokes the live tokens.
    let (s, _) = call(
        &app,
        Method::PATCH,
        &format!("/api/v1/clients/{id}"),
        &admin,
        Some(json!({"scopes": ["issuers:read"]})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = call(&app, Method::GET, "/api/v1/issuers", &token, None).await;
    assert_eq!(s, 401, "a token with a scope the client lost is revoked");

    // Rotate: the old secret stops at once, its tokens are revoked, the new secret works.
    let token = app.token_for(&id, &secret, "issuers:read").await;
    let (s, rotated) = call(
        &app,
        Method::POST,
        &format!("/api/v1/clients/{id}/rotate-secret"),
        &admin,
        None,
    )
    .await;
    assert_eq!(s, 200, "{rotated}");
    let new_secret = rotated["clientSecret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    let resp = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "the old secret is refused");
    let (s, _) = call(&app, Method::GET, "/api/v1/issuers", &token, None).await;
    assert_eq!(s, 401, "tokens issued under the old secret are revoked");
    let token = app.token_for(&id, &new_secret, "issuers:read").await;
    let (s, _) = call(&app, Method::GET, "/api/v1/issuers", &token, None).await;
    assert_eq!(s, 200);

    // Disable: tokens stop, no new ones.
    let (s, _) = call(
        &app,
        Method::POST,
        &format!("/api/v1/clients/{id}/disable"),
        &admin,
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, _) = call(&app, Method::GET, "/api/v1/issuers", &token, None).await;
    assert_eq!(s, 401);
    let resp = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&id, Some(&new_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let (_, got) = call(
        &app,
        Method::GET,
        &format!("/api/v1/clients/{id}"),
        &admin,
        None,
    )
    .await;
    assert!(got["disabledAt"].is_string());

    // Delete: gone, with its memberships; a client cannot delete or disable itself.
    let resp = app
        .http
        .delete(app.url(&format!("/api/v1/clients/{}", app.admin_id)))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_problem(resp, 409, "cannot_delete_self").await;
    let (s, _) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/clients/{id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, _) = call(
        &app,
        Method::GET,
        &format!("/api/v1/clients/{id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/clients/{id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (_, members) = call(
        &app,
        Method::GET,
        &format!("/api/v1/issuers/{}/members", issuer["id"].as_str().unwrap()),
        &app.token("issuers:read").await,
        None,
    )
    .await;
    assert!(!members.to_string().contains(&id), "{members}");

    // Every change is audited, never with a secret.
    let (_, audit) = call(&app, Method::GET, "/api/v1/audit?limit=500", &admin, None).await;
    let text = audit.to_string();
    for action in [
        "client.created",
        "client.updated",
        "client.secret_rotated",
        "client.disabled",
        "client.deleted",
        "membership.added",
    ] {
        assert!(text.contains(action), "{action}");
    }
    assert!(!text.contains(&secret) && !text.contains(&new_secret));
}

#[tokio::test]
async fn the_scope_catalogue_describes_every_scope_in_plain_words() {
    let app = TestApp::spawn().await;
    let resp = app
        .http
        .get(app.url("/api/v1/scopes"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "public");
    let list: Value = resp.json().await.unwrap();
    let scopes: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["scope"].as_str().unwrap())
        .collect();
    for s in [
        "issuers:read",
        "issuers:write",
        "keys:manage",
        "credentials:issue",
        "credentials:read",
        "credentials:status",
        "credentials:verify",
        "admin",
        "https://purl.imsglobal.org/spec/ob/v3p0/scope/credential.readonly",
        "https://purl.imsglobal.org/spec/ob/v3p0/scope/credential.upsert",
        "https://purl.imsglobal.org/spec/ob/v3p0/scope/profile.readonly",
        "https://purl.imsglobal.org/spec/ob/v3p0/scope/profile.update",
        "offline_access",
    ] {
        assert!(scopes.contains(&s), "{s} in {scopes:?}");
    }
    for entry in list.as_array().unwrap() {
        let d = entry["description"].as_str().unwrap();
        assert!(
            d.len() > 10 && d.ends_with('.') && d != entry["scope"],
            "{entry}"
        );
    }
}

#[tokio::test]
async fn the_migration_keeps_clients_that_existed_before_it_global() {
    let db = TestDb::create().await;
    let conn = oxbadge::db::connect(&db.url, 2).await.unwrap();
    // The schema as it was before tenancy: the first three migrations.
    Migrator::up(&conn, Some(3)).await.unwrap();
    conn.execute_unprepared(
        "INSERT INTO oauth_clients (id, name, secret_hash, scopes, kind, created_at) \
         VALUES ('oldclient', 'legacy', '00', 'issuers:read', 'service', CURRENT_TIMESTAMP)",
    )
    .await
    .unwrap();
    Migrator::up(&conn, None).await.unwrap();
    let access = oxbadge::accounts::memberships::load_access(
        &conn,
        &oxbadge::accounts::memberships::Principal::Client("oldclient".into()),
    )
    .await
    .unwrap();
    assert_eq!(access, oxbadge::accounts::memberships::IssuerAccess::Global);
    // A user principal is limited to its memberships (none here).
    let user = oxbadge::accounts::memberships::load_access(
        &conn,
        &oxbadge::accounts::memberships::Principal::User("someone".into()),
    )
    .await
    .unwrap();
    assert!(!user.is_global());
    conn.close().await.unwrap();
}

/// A user-bound token's actions are audited under the user (and the client it came through),
/// not under the client alone; a client's own token stays audited under its client id.
#[tokio::test]
async fn a_user_bound_tokens_actions_are_audited_under_the_user() {
    let app = TestApp::spawn().await;
    let admin = app
        .token("issuers:write issuers:read credentials:issue keys:manage admin")
        .await;
    let w = two_issuers(&app, &admin).await;
    let owner = create_user(&app, &admin, "audited-owner@example.org").await;
    let (s, body) = call(
        &app,
        Method::PUT,
        &format!("/api/v1/issuers/{}/members", w.a),
        &admin,
        Some(json!({"userId": owner, "role": "owner"})),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let user = app.user_token(&owner, WORK_SCOPES).await;
    let expected = format!("user:{owner} via client:{}", app.admin_id);

    let cred = issue(
        &app,
        &user,
        json!({"achievementId": w.a_achievement, "recipient": recipient()}),
    )
    .await;
    let cred_id = cred["id"].as_str().unwrap().to_owned();
    let (s, body) = call(
        &app,
        Method::POST,
        &format!("/api/v1/credentials/{cred_id}/status"),
        &user,
        Some(json!({"purpose": "revocation", "status": true})),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = call(
        &app,
        Method::POST,
        &format!("/api/v1/issuers/{}/keys/rotate", w.a),
        &user,
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = call(
        &app,
        Method::POST,
        &format!("/api/v1/issuers/{}/achievements", w.a),
        &user,
        Some(achievement_body()),
    )
    .await;
    assert_eq!(s, 201, "{body}");

    let (s, page) = call(&app, Method::GET, "/api/v1/audit?limit=500", &admin, None).await;
    assert_eq!(s, 200, "{page}");
    let events = page["items"].as_array().unwrap();
    for action in [
        "credential.issued",
        "credential.revoked",
        "key.rotated",
        "achievement.created",
    ] {
        let actors: Vec<&str> = events
            .iter()
            .filter(|e| e["action"] == action)
            .filter_map(|e| e["actor"].as_str())
            .collect();
        assert!(
            actors.contains(&expected.as_str()),
            "{action}: actors {actors:?}, expected {expected}"
        );
    }
    // The admin's own (client-credentials) work on B stays under its client id.
    let b_issued: Vec<&str> = events
        .iter()
        .filter(|e| e["action"] == "credential.issued")
        .filter(|e| e["actor"] != expected.as_str())
        .filter_map(|e| e["actor"].as_str())
        .collect();
    assert!(
        !b_issued.is_empty() && b_issued.iter().all(|a| *a == app.admin_id),
        "{b_issued:?}"
    );
}
