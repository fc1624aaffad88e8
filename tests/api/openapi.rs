//! The OpenAPI document: committed copy is current, every operation is documented, and every
//! protected operation enforces exactly the scope it declares.

use reqwest::Method;
use serde_json::Value;

use crate::support::{TestApp, assert_problem};

/// Operations that are public by design (no token).
const PUBLIC_OPERATIONS: &[&str] = &[
    "health",
    "ready",
    "metrics",
    "token",
    "getIssuerDidDocument",
    "getWellKnownDidDocument",
    "getIssuerProfile",
    "getJwks",
    "getPublicAchievement",
    "getStatusList",
    "getRevocationList",
    // Verification is public by default (verify_require_scope puts it behind credentials:verify;
    // tests/api/verify.rs checks that).
    "verifyBadge",
    "vcApiVerifyCredential",
    "vcApiVerifyPresentation",
    // The scope catalogue (the consent page shows the same text).
    "listScopes",
    // People: self-service registration is public (the other account operations declare the
    // `sessionCookie` scheme, see SESSION_OPERATIONS).
    "registerAccount",
    // OB 3.0: the Service Description Document is never protected (tests/api/ob3_provider.rs).
    "getServiceDescription",
    // OAuth: discovery is public; registration is open (OB 3.0) or behind the initial access
    // token, configuration takes the registration access token, revocation and introspection
    // authenticate the client (tests/api/oauth_registration.rs, oauth_revocation.rs).
    "authorizationServerMetadata",
    "registerClient",
    "readClientRegistration",
    "updateClientRegistration",
    "deleteClientRegistration",
    "revokeToken",
    "introspectToken",
];

/// Operations that authenticate with the browser session cookie (+ X-CSRF-Token on writes)
/// instead of a bearer token (tests/api/accounts.rs drives them).
const SESSION_OPERATIONS: &[&str] = &[
    "getAccount",
    "changePassword",
    "listAccountSessions",
    "endAccountSession",
    // DID linking is account self-service (tests/api/ob3_provider.rs).
    "createDidChallenge",
    "linkDid",
    "listDids",
    "unlinkDid",
    // Connections to other OB 3.0 hosts (tests/api/ob3_consumer.rs).
    "listHostConnections",
    "connectHost",
    "importFromHost",
    "disconnectHost",
    "listIssuerHostConnections",
    "connectIssuerHost",
    "pushCredentialToHost",
    "pushProfileToHost",
    "disconnectIssuerHost",
];

/// The OB 3.0 API's scopes (scheme `OAuth2ACG`, user-bound tokens; tests/api/ob3_provider.rs
/// checks their 401/403 answers, which are Imsx_StatusInfo rather than problem documents).
const OB3_SCOPES: &[&str] = &[
    "https://purl.imsglobal.org/spec/ob/v3p0/scope/credential.readonly",
    "https://purl.imsglobal.org/spec/ob/v3p0/scope/credential.upsert",
    "https://purl.imsglobal.org/spec/ob/v3p0/scope/profile.readonly",
    "https://purl.imsglobal.org/spec/ob/v3p0/scope/profile.update",
];

const ALL_SCOPES: &[&str] = &[
    "issuers:read",
    "issuers:write",
    "keys:manage",
    "credentials:issue",
    "credentials:read",
    "credentials:status",
    "credentials:verify",
    "admin",
];

#[test]
fn committed_openapi_document_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let generated = oxbadge::http::openapi_json();
    assert!(
        committed == generated,
        "openapi/openapi.json is stale: regenerate it with\n    cargo run -- openapi > openapi/openapi.json"
    );
}

fn operations(spec: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ops.push((path.clone(), method.clone(), op.clone()));
        }
    }
    ops
}

#[test]
fn every_operation_has_an_id_docs_and_a_declared_security_decision() {
    let spec: Value = serde_json::from_str(&oxbadge::http::openapi_json()).unwrap();
    for (path, method, op) in operations(&spec) {
        let id = op["operationId"].as_str();
        assert!(id.is_some(), "{method} {path} has no operationId");
        let id = id.unwrap();
        assert!(
            op["summary"].is_string() || op["description"].is_string(),
            "{id} has no documentation"
        );
        let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
        assert!(
            secured || PUBLIC_OPERATIONS.contains(&id),
            "{id} ({method} {path}) declares no security and is not on the public list"
        );
        if secured && op["security"][0]["OAuth2ACG"].is_array() {
            let scopes = op["security"][0]["OAuth2ACG"].as_array().unwrap();
            assert_eq!(scopes.len(), 1, "{id} must declare exactly one scope");
            assert!(
                OB3_SCOPES.contains(&scopes[0].as_str().unwrap()),
                "{id}: unknown scope"
            );
        } else if secured && op["security"][0].get("sessionCookie").is_some() {
            assert!(
                SESSION_OPERATIONS.contains(&id),
                "{id} ({method} {path}) declares the session cookie but is not on the session list"
            );
            assert_eq!(
                op["security"],
                serde_json::json!([{"sessionCookie": []}]),
                "{id}: the session cookie is its only scheme"
            );
        } else if secured {
            let scopes: Vec<&str> = op["security"][0]["oauth2"]
                .as_array()
                .unwrap_or_else(|| panic!("{id} security is not oauth2"))
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect();
            assert_eq!(scopes.len(), 1, "{id} must declare exactly one scope");
            assert!(ALL_SCOPES.contains(&scopes[0]), "{id}: unknown scope");
        }
    }
}

#[test]
fn the_session_cookie_is_a_declared_security_scheme_of_every_session_operation() {
    let spec: Value = serde_json::from_str(&oxbadge::http::openapi_json()).unwrap();
    let scheme = &spec["components"]["securitySchemes"]["sessionCookie"];
    assert_eq!(scheme["type"], "apiKey");
    assert_eq!(scheme["in"], "cookie");
    assert_eq!(scheme["name"], oxbadge::accounts::session_cookie::NAME);
    let declared: Vec<String> = operations(&spec)
        .into_iter()
        .filter(|(_, _, op)| op["security"][0].get("sessionCookie").is_some())
        .filter_map(|(_, _, op)| op["operationId"].as_str().map(str::to_owned))
        .collect();
    for id in SESSION_OPERATIONS {
        assert!(
            declared.iter().any(|d| d == id),
            "{id} does not declare the sessionCookie scheme"
        );
    }
    assert_eq!(declared.len(), SESSION_OPERATIONS.len(), "{declared:?}");
}

/// Every session-cookie operation answers 401 `not_signed_in` without a cookie and with a
/// cookie that names no session (a bearer token does not stand in for it).
#[tokio::test]
async fn every_session_operation_refuses_a_missing_or_unknown_cookie() {
    let app = TestApp::spawn().await;
    let spec: Value = serde_json::from_str(&oxbadge::http::openapi_json()).unwrap();
    let token = app.token(&ALL_SCOPES.join(" ")).await;
    let mut checked = 0;
    for (path, method, op) in operations(&spec) {
        if op["security"][0].get("sessionCookie").is_none() {
            continue;
        }
        let id = op["operationId"].as_str().unwrap_or_default().to_owned();
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let url = app.url(&concrete(&path));
        for cookie in [None, Some("oxbadge_session=bm90LWEtc2Vzc2lvbg")] {
            let mut req = app
                .http
                .request(method.clone(), &url)
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body("{}");
            if let Some(cookie) = cookie {
                req = req.header("cookie", cookie);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 401, "{id} with cookie {cookie:?}");
            assert_problem(resp, 401, "not_signed_in").await;
        }
        checked += 1;
    }
    assert_eq!(checked, SESSION_OPERATIONS.len());
}

/// Fills `{param}` segments with a placeholder.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') && seg.ends_with('}') {
                "placeholder"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_protected_operation_returns_401_without_token_and_403_without_its_scope() {
    let app = TestApp::spawn().await;
    let spec: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut checked = 0;
    for (path, method, op) in operations(&spec) {
        let Some(required) = op["security"][0]["oauth2"][0].as_str() else {
            continue;
        };
        let id = op["operationId"].as_str().unwrap_or_default().to_owned();
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let url = app.url(&concrete(&path));

        // No token → 401 with a Bearer challenge.
        let resp = app
            .http
            .request(method.clone(), &url)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        assert_eq!(resp.status(), 401, "{id} without a token");
        assert!(
            challenge.starts_with("Bearer"),
            "{id}: challenge {challenge:?}"
        );
        assert_problem(resp, 401, "invalid_token").await;

        // Every scope except the required one → 403 insufficient_scope.
        let others: Vec<&str> = ALL_SCOPES
            .iter()
            .copied()
            .filter(|s| *s != required)
            .collect();
        let token = app.token(&others.join(" ")).await;
        let resp = app
            .http
            .request(method.clone(), &url)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{id} with scopes {others:?}");
        let body = assert_problem(resp, 403, "insufficient_scope").await;
        assert!(
            body["detail"].as_str().unwrap().contains(required),
            "{id}: detail names the scope"
        );

        // The required scope alone passes the scope check (any status but 401/403).
        let token = app.token(required).await;
        let resp = app
            .http
            .request(method, &url)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert!(
            resp.status() != 401 && resp.status() != 403,
            "{id} with its own scope `{required}` got {}",
            resp.status()
        );
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} protected operations found");
}
