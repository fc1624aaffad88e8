//! The OB 3.0 REST API, provider side: discovery (validated as OpenAPI 3.0 by
//! openapi-spec-validator), earners owning what was issued to their verified email or linked DID,
//! paging with Link / X-Total-Count, upsert under the equality rule with a third did:key issuer
//! signed here, byte preservation, VC-JWT uploads, profiles, and every error an Imsx_StatusInfo
//! valid under the 1EdTech schema. Tokens are user-bound (`issue_user_token`), as the
//! authorization-code flow grants them.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::{Signer, SigningKey};
use oxbadge::{
    accounts::{
        links::{self, Purpose},
        passwords::NewPassword,
        self_service,
        users::{self, DisplayName, Email, NewUser},
    },
    di::{ProofOptions, ProofPurpose, sign_eddsa_rdfc_2022},
    oauth::{ScopeSet, tokens},
};
use reqwest::Response;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::{
    accounts::{PASSWORD, sign_in},
    issuance::{issue, issuer_with_achievement},
    support::TestApp,
};

const READ: &str = "https://purl.imsglobal.org/spec/ob/v3p0/scope/credential.readonly";
const UPSERT: &str = "https://purl.imsglobal.org/spec/ob/v3p0/scope/credential.upsert";
const PROFILE_READ: &str = "https://purl.imsglobal.org/spec/ob/v3p0/scope/profile.readonly";
const PROFILE_UPDATE: &str = "https://purl.imsglobal.org/spec/ob/v3p0/scope/profile.update";

/// `Imsx_StatusInfo` as published in the 1EdTech OB 3.0 JSON schema
/// (`ob_v3p0_imsx_statusinfo_schema.json`, transcribed: the file is not in ../shared/schemas).
fn imsx_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2019-09/schema#",
        "$id": "https://purl.imsglobal.org/spec/ob/v3p0/schema/json/ob_v3p0_imsx_statusinfo_schema.json",
        "title": "JSON Schema for the Imsx_StatusInfo class",
        "type": "object",
        "properties": {
            "imsx_codeMajor": {"type": "string", "enum": ["failure", "processing", "success", "unsupported"]},
            "imsx_severity": {"type": "string", "enum": ["error", "status", "warning"]},
            "imsx_description": {"type": "string"},
            "imsx_CodeMinor": {"$ref": "#/$defs/Imsx_CodeMinor"}
        },
        "required": ["imsx_codeMajor", "imsx_severity"],
        "additionalProperties": false,
        "$defs": {
            "Imsx_CodeMinor": {
                "type": "object",
                "properties": {
                    "imsx_codeMinorField": {
                        "type": "array",
                        "items": {"$ref": "#/$defs/Imsx_CodeMinorField"},
                        "minItems": 1
                    }
                },
                "required": ["imsx_codeMinorField"],
                "additionalProperties": false
            },
            "Imsx_CodeMinorField": {
                "type": "object",
                "properties": {
                    "imsx_codeMinorFieldName": {"type": "string"},
                    "imsx_codeMinorFieldValue": {"type": "string", "enum": [
                        "forbidden", "fullsuccess", "internal_server_error", "invalid_data",
                        "invalid_query_parameter", "misdirected_request", "not_acceptable",
                        "not_allowed", "not_found", "not_modified", "server_busy",
                        "unauthorizedrequest", "unknown"
                    ]}
                },
                "required": ["imsx_codeMinorFieldName", "imsx_codeMinorFieldValue"],
                "additionalProperties": false
            }
        }
    })
}

/// Asserts an Imsx_StatusInfo error with `status` and code minor `minor`; returns the body.
pub async fn assert_imsx(resp: Response, status: u16, minor: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    let www = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = resp.json().await.unwrap();
    let validator = jsonschema::validator_for(&imsx_schema()).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&body)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{body:#}: {errors:?}");
    assert_eq!(body["imsx_codeMajor"], "failure");
    assert_eq!(body["imsx_severity"], "error");
    assert!(body["imsx_description"].is_string(), "{body}");
    let field = &body["imsx_CodeMinor"]["imsx_codeMinorField"][0];
    assert_eq!(field["imsx_codeMinorFieldName"], "TargetEndSystem");
    assert_eq!(field["imsx_codeMinorFieldValue"], minor, "{body}");
    if status == 401 {
        assert!(
            www.unwrap_or_default().starts_with("Bearer"),
            "401 carries WWW-Authenticate"
        );
    }
    body
}

/// A user (verified or not) of `app`; returns the id.
pub async fn create_user(app: &TestApp, email: &str, verified: bool) -> String {
    users::create_user(
        app.state.db(),
        app.state.accounts(),
        NewUser {
            email: Email::parse(email).unwrap(),
            display_name: DisplayName::parse("Lee Learner").unwrap(),
            password: NewPassword::parse(PASSWORD).unwrap(),
            is_admin: false,
            email_verified: verified,
        },
        "test",
    )
    .await
    .unwrap()
    .id
}

/// Confirms a user's address through a real verification link.
async fn verify_email(app: &TestApp, user_id: &str) {
    let secret = links::create(
        app.state.db(),
        app.state.accounts().clock(),
        user_id,
        Purpose::VerifyEmail,
    )
    .await
    .unwrap();
    self_service::verify_email(app.state.db(), app.state.accounts(), secret.expose_secret())
        .await
        .unwrap();
}

/// A client allowed the OB 3.0 scopes and a token it holds for `user_id` with `scopes`.
async fn user_token(app: &TestApp, user_id: &str, scopes: &str) -> String {
    let all = ScopeSet::parse(&format!("{READ} {UPSERT} {PROFILE_READ} {PROFILE_UPDATE}")).unwrap();
    let client = tokens::create_client(app.state.db(), "backpack", all)
        .await
        .unwrap();
    let grant = tokens::issue_user_token(
        app.state.db(),
        &client.client_id,
        user_id,
        ScopeSet::parse(scopes).unwrap(),
        3600,
    )
    .await
    .unwrap();
    grant.access_token.expose_secret().to_owned()
}

async fn get_credentials(app: &TestApp, token: &str, query: &str) -> (u64, String, Value) {
    let resp = app
        .http
        .get(app.url(&format!("/ims/ob/v3p0/credentials{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "GET credentials{query}");
    let total = resp.headers()["x-total-count"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let link = resp.headers()["link"].to_str().unwrap().to_owned();
    (total, link, resp.json().await.unwrap())
}

pub fn did_key(key: &SigningKey) -> (String, String) {
    let did = oxbadge::keys::publish::did_key_for_ed25519(&key.verifying_key());
    let vm = format!("{did}#{}", did.trim_start_matches("did:key:"));
    (did, vm)
}

/// An OpenBadgeCredential by the did:key `issuer`, with an extension property under an inline
/// context (an unknown property the host must keep).
pub fn third_party_credential(issuer: &str, valid_from: &str, name: &str) -> Value {
    json!({
        "@context": [
            "https://www.w3.org/ns/credentials/v2",
            "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
            {"exampleExtension": "https://example.org/vocab#exampleExtension"}
        ],
        "id": "urn:uuid:2d5f4b8e-8a0b-4f7c-9a51-3c1d2e9b7a10",
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": name,
        "issuer": {"id": issuer, "type": ["Profile"], "name": "Third Party Academy"},
        "validFrom": valid_from,
        "exampleExtension": "kept exactly: ünïcödé, 1.50, [\"a\"]",
        "credentialSubject": {
            "id": "did:example:learner",
            "type": ["AchievementSubject"],
            "achievement": {
                "id": "https://third.example/achievements/welding",
                "type": ["Achievement"],
                "name": "Welding",
                "description": "Welds safely.",
                "criteria": {"narrative": "Pass the practical."}
            }
        }
    })
}

pub fn sign(vc: &Value, key: &SigningKey) -> Value {
    sign_eddsa_rdfc_2022(
        vc,
        ProofOptions {
            verification_method: did_key(key).1,
            created: chrono::Utc::now(),
            proof_purpose: ProofPurpose::AssertionMethod,
            challenge: None,
            domain: None,
        },
        key,
    )
    .unwrap()
}

async fn upsert(app: &TestApp, token: &str, content_type: &str, body: String) -> Response {
    app.http
        .post(app.url("/ims/ob/v3p0/credentials"))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn discovery_is_an_openapi_3_service_description_with_etag() {
    let app = TestApp::spawn_with(|s| {
        s.tos_url = Some("https://badges.example/terms".parse().unwrap());
        s.privacy_url = Some("https://badges.example/privacy".parse().unwrap());
        s.image_url = Some("https://badges.example/logo.png".parse().unwrap());
    })
    .await;
    let resp = app
        .http
        .get(app.url("/ims/ob/v3p0/discovery"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    let text = resp.text().await.unwrap();
    let sdd: Value = serde_json::from_str(&text).unwrap();
    assert!(sdd["openapi"].as_str().unwrap().starts_with("3.0"));
    assert!(sdd["info"]["title"].is_string() && sdd["info"]["version"].is_string());
    assert_eq!(
        sdd["info"]["termsOfService"],
        "https://badges.example/terms"
    );
    assert_eq!(
        sdd["info"]["x-imssf-privacyPolicyUrl"],
        "https://badges.example/privacy"
    );
    assert_eq!(
        sdd["info"]["x-imssf-image"],
        "https://badges.example/logo.png"
    );
    let scheme = &sdd["components"]["securitySchemes"]["OAuth2ACG"];
    assert_eq!(scheme["type"], "oauth2");
    assert_eq!(
        scheme["x-imssf-registrationUrl"],
        app.url("/oauth/register")
    );
    let flow = &scheme["flows"]["authorizationCode"];
    assert_eq!(flow["authorizationUrl"], app.url("/oauth/authorize"));
    assert_eq!(flow["tokenUrl"], app.url("/oauth/token"));
    assert_eq!(flow["refreshUrl"], app.url("/oauth/token"));
    for scope in [READ, UPSERT, PROFILE_READ, PROFILE_UPDATE] {
        assert!(flow["scopes"][scope].is_string(), "scope {scope}");
    }
    for op in [
        "getCredentials",
        "upsertCredential",
        "getProfile",
        "putProfile",
        "getServiceDescription",
    ] {
        assert!(text.contains(&format!("\"operationId\": \"{op}\"")), "{op}");
    }
    // An independent validator: the document is valid OpenAPI 3.0.
    let mut child = std::process::Command::new("python3")
        .args([
            "-c",
            "import json,sys\nfrom openapi_spec_validator import validate\nvalidate(json.load(sys.stdin))\nprint('valid')",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with openapi-spec-validator (pip install openapi-spec-validator)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openapi-spec-validator: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Cacheable: the same tag answers 304.
    let resp = app
        .http
        .get(app.url("/ims/ob/v3p0/discovery"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);
}

#[tokio::test]
async fn earners_own_what_was_issued_to_their_verified_email_and_only_that() {
    let app = TestApp::spawn().await;
    let admin = app
        .token("issuers:write issuers:read credentials:issue")
        .await;
    let (_, achievement) = issuer_with_achievement(&app, &admin).await;
    let learner = create_user(&app, "learner@example.org", false).await;
    let token = user_token(&app, &learner, READ).await;
    let mine = issue(
        &app,
        &admin,
        json!({"achievementId": achievement, "recipient": {"email": "Learner@Example.org"}}),
    )
    .await;
    issue(
        &app,
        &admin,
        json!({"achievementId": achievement, "recipient": {"email": "someone.else@example.org"}}),
    )
    .await;
    // Not before the address is verified.
    let (total, link, body) = get_credentials(&app, &token, "").await;
    assert_eq!(total, 0);
    assert_eq!(body["credential"], json!([]));
    assert!(
        link.contains("rel=\"first\"") && link.contains("rel=\"last\""),
        "{link}"
    );

    verify_email(&app, &learner).await;
    let (total, _, body) = get_credentials(&app, &token, "").await;
    assert_eq!(total, 1);
    assert_eq!(body["credential"], json!([mine["credential"]]));
    // A credential issued later joins; the other address's never does.
    let later = issue(
        &app,
        &admin,
        json!({"achievementId": achievement, "recipient": {"email": "learner@example.org"}, "proofFormat": "jwt"}),
    )
    .await;
    issue(
        &app,
        &admin,
        json!({"achievementId": achievement, "recipient": {"email": "someone.else@example.org"}}),
    )
    .await;
    let (total, _, body) = get_credentials(&app, &token, "").await;
    assert_eq!(total, 2, "{body:#}");
    assert_eq!(body["credential"], json!([mine["credential"]]));
    let jws = later["jwt"].as_str();
    assert_eq!(
        body["compactJwsString"].as_array().unwrap().len(),
        1,
        "{later:#}"
    );
    if let Some(jws) = jws {
        assert_eq!(body["compactJwsString"][0], jws);
    }
}

#[tokio::test]
async fn pages_carry_total_and_link_relations_and_bad_parameters_are_400() {
    let app = TestApp::spawn().await;
    let admin = app
        .token("issuers:write issuers:read credentials:issue")
        .await;
    let (_, achievement) = issuer_with_achievement(&app, &admin).await;
    let learner = create_user(&app, "pager@example.org", true).await;
    let token = user_token(&app, &learner, READ).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let body = issue(
            &app,
            &admin,
            json!({"achievementId": achievement, "recipient": {"email": "pager@example.org"}}),
        )
        .await;
        ids.push(body["credential"]["id"].as_str().unwrap().to_owned());
    }
    let page_ids = |body: &Value| -> Vec<String> {
        body["credential"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (total, link, body) = get_credentials(&app, &token, "?limit=2").await;
    assert_eq!(total, 5);
    assert_eq!(page_ids(&body), ids[0..2]);
    let base = app.url("/ims/ob/v3p0/credentials");
    assert!(
        link.contains(&format!("<{base}?limit=2&offset=0>; rel=\"first\"")),
        "{link}"
    );
    assert!(
        link.contains(&format!("<{base}?limit=2&offset=2>; rel=\"next\"")),
        "{link}"
    );
    assert!(
        link.contains(&format!("<{base}?limit=2&offset=4>; rel=\"last\"")),
        "{link}"
    );
    assert!(!link.contains("prev"), "{link}");

    let (_, link, body) = get_credentials(&app, &token, "?limit=2&offset=2").await;
    assert_eq!(page_ids(&body), ids[2..4]);
    assert!(
        link.contains("offset=0>; rel=\"prev\"") && link.contains("offset=4>; rel=\"next\""),
        "{link}"
    );

    let (_, link, body) = get_credentials(&app, &token, "?limit=2&offset=4").await;
    assert_eq!(page_ids(&body), ids[4..5]);
    assert!(
        link.contains("rel=\"prev\"") && !link.contains("rel=\"next\""),
        "{link}"
    );
    // A stable order: the same page twice is the same.
    let (_, _, again) = get_credentials(&app, &token, "?limit=2&offset=2").await;
    assert_eq!(page_ids(&again), ids[2..4]);
    // `since` after everything keeps nothing; before everything keeps all.
    let (total, _, _) = get_credentials(&app, &token, "?since=2999-01-01T00:00:00Z").await;
    assert_eq!(total, 0);
    let (total, link, _) =
        get_credentials(&app, &token, "?since=2000-01-01T00:00:00Z&limit=2").await;
    assert_eq!(total, 5);
    assert!(link.contains("since=2000-01-01T00%3A00%3A00Z"), "{link}");

    for bad in [
        "?limit=0",
        "?limit=ten",
        "?offset=-1",
        "?offset=x",
        "?since=yesterday",
        "?limit=-5",
    ] {
        let resp = app
            .http
            .get(app.url(&format!("/ims/ob/v3p0/credentials{bad}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_imsx(resp, 400, "invalid_query_parameter").await;
    }
}

#[tokio::test]
async fn upsert_follows_the_equality_rule_and_keeps_every_byte() {
    let app = TestApp::spawn().await;
    let learner = create_user(&app, "holder@example.org", true).await;
    let token = user_token(&app, &learner, &format!("{READ} {UPSERT}")).await;
    let third = SigningKey::from_bytes(&[41u8; 32]);
    let (did, _) = did_key(&third);

    let first = sign(
        &third_party_credential(&did, "2024-01-01T00:00:00Z", "Welding"),
        &third,
    );
    let first_text = serde_json::to_string_pretty(&first).unwrap();
    let resp = upsert(&app, &token, "application/vc+ld+json", first_text.clone()).await;
    assert_eq!(resp.status(), 201);
    let echoed: Value = resp.json().await.unwrap();
    assert_eq!(echoed, first);

    // A newer copy (same issuer.id and id, later validFrom, percent-encoded id) replaces it.
    let mut newer = third_party_credential(&did, "2024-06-01T00:00:00Z", "Welding (renewed)");
    newer["id"] = json!("urn:uuid:2d5f4b8e%2D8a0b-4f7c-9a51-3c1d2e9b7a10");
    let newer = sign(&newer, &third);
    let resp = upsert(&app, &token, "application/json", newer.to_string()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), newer);

    // The older copy again: 200 with the stored newer one, unchanged.
    let resp = upsert(
        &app,
        &token,
        "application/ld+json; charset=utf-8",
        first_text,
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), newer);

    let (total, _, body) = get_credentials(&app, &token, "").await;
    assert_eq!(total, 1);
    assert_eq!(body["credential"], json!([newer]));
    assert_eq!(
        body["credential"][0]["exampleExtension"],
        "kept exactly: ünïcödé, 1.50, [\"a\"]"
    );

    // A credential that does not verify (altered after signing) is refused, and not stored.
    let mut forged = newer.clone();
    forged["name"] = json!("Welding (forged)");
    forged["validFrom"] = json!("2025-01-01T00:00:00Z");
    let resp = upsert(&app, &token, "application/json", forged.to_string()).await;
    let body = assert_imsx(resp, 422, "invalid_data").await;
    assert!(
        body["imsx_description"].as_str().unwrap().contains("proof"),
        "{body}"
    );
    let (total, _, body) = get_credentials(&app, &token, "").await;
    assert_eq!((total, &body["credential"][0]), (1, &newer));
    // Not a credential at all.
    let resp = upsert(&app, &token, "application/json", "{\"hello\":1}".into()).await;
    assert_imsx(resp, 422, "invalid_data").await;
    let resp = upsert(&app, &token, "application/json", "{not json".into()).await;
    assert_imsx(resp, 422, "invalid_data").await;
}

#[tokio::test]
async fn vc_jwt_uploads_come_and_go_as_compact_jws() {
    let app = TestApp::spawn().await;
    let learner = create_user(&app, "jwt@example.org", true).await;
    let token = user_token(&app, &learner, &format!("{READ} {UPSERT}")).await;
    let key = SigningKey::from_bytes(&[42u8; 32]);
    let (did, vm) = did_key(&key);
    let mut vc = third_party_credential(&did, "2024-01-01T00:00:00Z", "JWT badge");
    vc["@context"] = json!([
        "https://www.w3.org/ns/credentials/v2",
        "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
    ]);
    vc.as_object_mut().unwrap().remove("exampleExtension");
    let mut payload = vc.clone();
    payload["iss"] = json!(did);
    payload["jti"] = vc["id"].clone();
    payload["nbf"] = json!(1_704_067_200);
    payload["sub"] = json!("did:example:learner");
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(json!({"alg": "EdDSA", "kid": vm, "typ": "JWT"}).to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let jws = format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(key.sign(input.as_bytes()).to_bytes())
    );
    let resp = upsert(&app, &token, "text/plain", format!("{jws}\n")).await;
    assert_eq!(resp.status(), 201);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(resp.text().await.unwrap(), jws);
    let (total, _, body) = get_credentials(&app, &token, "").await;
    assert_eq!(total, 1);
    assert_eq!(body["compactJwsString"], json!([jws]));
    assert_eq!(body["credential"], json!([]));
    // A JWS with a broken signature does not verify.
    let broken = format!("{input}.{}", URL_SAFE_NO_PAD.encode([0u8; 64]));
    let resp = upsert(&app, &token, "text/plain", broken).await;
    assert_imsx(resp, 422, "invalid_data").await;
    let resp = upsert(&app, &token, "text/plain", "just text".into()).await;
    assert_imsx(resp, 422, "invalid_data").await;
}

#[tokio::test]
async fn profiles_read_and_replace() {
    let app = TestApp::spawn().await;
    let learner = create_user(&app, "profile@example.org", true).await;
    let token = user_token(&app, &learner, &format!("{PROFILE_READ} {PROFILE_UPDATE}")).await;
    let resp = app
        .http
        .get(app.url("/ims/ob/v3p0/profile"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let profile: Value = resp.json().await.unwrap();
    assert_eq!(profile["type"], json!(["Profile"]));
    assert_eq!(profile["id"], format!("urn:oxbadge:user:{learner}"));
    assert_eq!(profile["name"], "Lee Learner");
    assert_eq!(profile["email"], "profile@example.org");

    let new = json!({
        "id": "did:example:lee",
        "type": ["Profile"],
        "name": "Lee L.",
        "email": "lee@example.org",
        "url": "https://lee.example",
        "someExtension": {"nested": [1, 2.5, "x"]}
    });
    let put = |body: String| {
        app.http
            .put(app.url("/ims/ob/v3p0/profile"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let resp = put(new.to_string()).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), new);
    let resp = app
        .http
        .get(app.url("/ims/ob/v3p0/profile"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap(), new);
    for bad in [
        json!({"type": ["Profile"], "name": "No id"}),
        json!({"id": "did:example:lee", "type": ["Person"]}),
        json!({"id": "did:example:lee", "type": ["Profile"], "email": "not-an-email"}),
        json!(["Profile"]),
    ] {
        let resp = put(bad.to_string()).await.unwrap();
        assert_imsx(resp, 422, "invalid_data").await;
    }
    let resp = app
        .http
        .get(app.url("/ims/ob/v3p0/profile"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        new,
        "a rejected PUT changes nothing"
    );
}

#[tokio::test]
async fn every_error_is_an_imsx_status_info() {
    let app = TestApp::spawn().await;
    let learner = create_user(&app, "errors@example.org", true).await;
    for path in ["/ims/ob/v3p0/credentials", "/ims/ob/v3p0/profile"] {
        let resp = app.http.get(app.url(path)).send().await.unwrap();
        assert_imsx(resp, 401, "unauthorizedrequest").await;
        let resp = app
            .http
            .get(app.url(path))
            .bearer_auth("oxbat_not-a-real-token")
            .send()
            .await
            .unwrap();
        assert_imsx(resp, 401, "unauthorizedrequest").await;
    }
    let resp = app
        .http
        .post(app.url("/ims/ob/v3p0/credentials"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_imsx(resp, 401, "unauthorizedrequest").await;
    // A valid token without the scope.
    let profile_only = user_token(&app, &learner, PROFILE_READ).await;
    let resp = app
        .http
        .get(app.url("/ims/ob/v3p0/credentials"))
        .bearer_auth(&profile_only)
        .send()
        .await
        .unwrap();
    assert_imsx(resp, 403, "forbidden").await;
    let resp = upsert(&app, &profile_only, "application/json", "{}".into()).await;
    assert_imsx(resp, 403, "forbidden").await;
    // Unknown path and unsupported media type under the OB 3.0 base.
    let resp = app
        .http
        .get(app.url("/ims/ob/v3p0/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_imsx(resp, 404, "not_found").await;
    let upserter = user_token(&app, &learner, UPSERT).await;
    let resp = upsert(&app, &upserter, "image/png", "x".into()).await;
    assert_imsx(resp, 415, "invalid_data").await;
    // A revoked (expired) token is 401 as well.
    let expired = tokens::issue_user_token(
        app.state.db(),
        &tokens::create_client(app.state.db(), "short", ScopeSet::parse(READ).unwrap())
            .await
            .unwrap()
            .client_id,
        &learner,
        ScopeSet::parse(READ).unwrap(),
        0,
    )
    .await
    .unwrap();
    let resp = app
        .http
        .get(app.url("/ims/ob/v3p0/credentials"))
        .bearer_auth(expired.access_token.expose_secret())
        .send()
        .await
        .unwrap();
    assert_imsx(resp, 401, "unauthorizedrequest").await;
}

/// Signs a DID-auth presentation for `challenge` and `domain`.
fn did_auth(key: &SigningKey, challenge: &str, domain: &str) -> Value {
    let (did, vm) = did_key(key);
    let vp = json!({
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "type": ["VerifiablePresentation"],
        "holder": did
    });
    sign_eddsa_rdfc_2022(
        &vp,
        ProofOptions {
            verification_method: vm,
            created: chrono::Utc::now(),
            proof_purpose: ProofPurpose::Authentication,
            challenge: Some(challenge.to_owned()),
            domain: Some(domain.to_owned()),
        },
        key,
    )
    .unwrap()
}

#[tokio::test]
async fn a_linked_did_brings_its_credentials_and_unlinking_takes_them_away() {
    let app = TestApp::spawn().await;
    let admin = app
        .token("issuers:write issuers:read credentials:issue")
        .await;
    let (_, achievement) = issuer_with_achievement(&app, &admin).await;
    let learner = create_user(&app, "did.holder@example.org", true).await;
    let token = user_token(&app, &learner, READ).await;
    let key = SigningKey::from_bytes(&[43u8; 32]);
    let (did, _) = did_key(&key);
    let issued = issue(
        &app,
        &admin,
        json!({"achievementId": achievement, "recipient": {"id": did}}),
    )
    .await;
    let (total, _, _) = get_credentials(&app, &token, "").await;
    assert_eq!(total, 0, "not linked yet");

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie = sign_in(&app, &http, "did.holder@example.org", PASSWORD).await;
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
    let post = |path: &str, body: Option<Value>| {
        let mut req = http
            .post(app.url(path))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send()
    };
    // Without the CSRF header: refused.
    let resp = http
        .post(app.url("/api/v1/account/dids/challenge"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    let challenge: Value = post("/api/v1/account/dids/challenge", None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let nonce = challenge["challenge"].as_str().unwrap();
    let domain = challenge["domain"].as_str().unwrap();
    assert_eq!(domain, format!("127.0.0.1:{}", app.addr.port()));
    // A presentation for another domain is refused, and spends the nonce.
    let wrong = did_auth(&key, nonce, "evil.example");
    let resp = post("/api/v1/account/dids", Some(wrong)).await.unwrap();
    assert_eq!(resp.status(), 422);
    let vp = did_auth(&key, nonce, domain);
    let resp = post("/api/v1/account/dids", Some(vp.clone()))
        .await
        .unwrap();
    assert_eq!(resp.status(), 422, "the nonce was spent");

    let challenge: Value = post("/api/v1/account/dids/challenge", None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let vp = did_auth(&key, challenge["challenge"].as_str().unwrap(), domain);
    let resp = post("/api/v1/account/dids", Some(vp.clone()))
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    // Replaying the same presentation fails.
    let resp = post("/api/v1/account/dids", Some(vp)).await.unwrap();
    assert_eq!(resp.status(), 422);
    let list: Value = http
        .get(app.url("/api/v1/account/dids"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["did"], did);

    let (total, _, body) = get_credentials(&app, &token, "").await;
    assert_eq!(total, 1);
    assert_eq!(body["credential"], json!([issued["credential"]]));

    let resp = http
        .delete(app.url(&format!("/api/v1/account/dids/{}", urlencoding(&did))))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (total, _, body) = get_credentials(&app, &token, "").await;
    assert_eq!(total, 0);
    assert_eq!(body["credential"], json!([]));
}

fn urlencoding(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Benchmark (run by hand, see BENCHMARKS.md): seeds `OB3_BENCH_ROWS` (default 1,000,000)
/// credentials issued to one earner with bulk SQL, collects them into the earner's collection
/// through the real collection step, then times `GET /ims/ob/v3p0/credentials` page 1 and page
/// 10,000 (limit 100) over HTTP and the page query alone, and prints the query plans.
/// `OXBADGE_TEST_DATABASE_URL=postgres://… cargo test --test api ob3_provider::bench -- --ignored --nocapture`
#[tokio::test]
#[ignore]
async fn bench_pages_of_a_million_credentials() {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    use std::time::{Duration, Instant};
    let rows: u64 = std::env::var("OB3_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let app = TestApp::spawn().await;
    let db = app.state.db();
    let backend = db.get_database_backend();
    let admin = app
        .token("issuers:write issuers:read credentials:issue")
        .await;
    let (issuer, _) = issuer_with_achievement(&app, &admin).await;
    let issuer_id = issuer["id"].as_str().unwrap().to_owned();
    let learner = create_user(&app, "bench@example.org", true).await;
    let token = user_token(&app, &learner, READ).await;

    let seeded = Instant::now();
    let sql = match backend {
        DbBackend::Postgres => format!(
            "INSERT INTO credentials (id, credential_uri, issuer_id, achievement_id, format, document, key_id, valid_from, valid_until, created_at, recipient_key) \
             SELECT 'bench' || lpad(n::text, 8, '0'), 'urn:uuid:bench-' || n, '{issuer_id}', NULL, 'data-integrity', \
             '{{\"id\":\"urn:uuid:bench-' || n || '\",\"type\":[\"VerifiableCredential\",\"OpenBadgeCredential\"]}}', 'k', \
             TIMESTAMPTZ '2026-01-01 00:00:00+00', NULL, TIMESTAMPTZ '2026-01-01 00:00:00+00' + n * INTERVAL '1 millisecond', 'mailto:bench@example.org' \
             FROM generate_series(1, {rows}) AS n"
        ),
        _ => format!(
            "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {rows}) \
             INSERT INTO credentials (id, credential_uri, issuer_id, achievement_id, format, document, key_id, valid_from, valid_until, created_at, recipient_key) \
             SELECT 'bench' || printf('%08d', n), 'urn:uuid:bench-' || n, '{issuer_id}', NULL, 'data-integrity', \
             '{{\"id\":\"urn:uuid:bench-' || n || '\",\"type\":[\"VerifiableCredential\",\"OpenBadgeCredential\"]}}', 'k', \
             '2026-01-01T00:00:00+00:00', NULL, '2026-01-01T00:00:00+00:00', 'mailto:bench@example.org' FROM seq"
        ),
    };
    db.execute_unprepared(&sql).await.unwrap();
    if backend == DbBackend::Postgres {
        db.execute_unprepared("ANALYZE").await.unwrap();
    }
    println!("seeded {rows} credentials in {:?}", seeded.elapsed());
    let collected = Instant::now();
    let total = oxbadge::ob3::ownership::collect(db, &learner)
        .await
        .unwrap();
    println!("collected {total} holdings in {:?}", collected.elapsed());
    assert_eq!(total as u64, rows);
    if backend == DbBackend::Postgres {
        db.execute_unprepared("VACUUM ANALYZE ob3_holdings")
            .await
            .unwrap();
    } else {
        db.execute_unprepared("ANALYZE").await.unwrap();
    }

    let last_offset = (rows / 100 - 1) * 100;
    for (label, offset) in [("page 1", 0), ("page 10,000", last_offset)] {
        let query = format!("?limit=100&offset={offset}");
        let mut http_times = Vec::new();
        for _ in 0..21 {
            let started = Instant::now();
            let (t, _, body) = get_credentials(&app, &token, &query).await;
            http_times.push(started.elapsed());
            assert_eq!(t, rows);
            assert_eq!(body["credential"].as_array().unwrap().len(), 100);
        }
        let mut query_times = Vec::new();
        for _ in 0..21 {
            let started = Instant::now();
            let page = oxbadge::ob3::provider::credentials_page(
                db,
                &learner,
                oxbadge::ob3::provider::PageRequest {
                    limit: 100,
                    offset,
                    since: None,
                },
            )
            .await
            .unwrap();
            query_times.push(started.elapsed());
            assert_eq!(page.items.len(), 100);
        }
        http_times.sort();
        query_times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{backend:?} {label} (offset {offset}): HTTP median {:.2} ms (min {:.2}, max {:.2}); collection check + page query median {:.2} ms (min {:.2}, max {:.2})",
            ms(http_times[10]),
            ms(http_times[0]),
            ms(http_times[20]),
            ms(query_times[10]),
            ms(query_times[0]),
            ms(query_times[20]),
        );
        let page_sql = format!(
            "SELECT c.format, c.document, u.format, u.body FROM ob3_holdings h \
             LEFT JOIN credentials c ON c.id = h.credential_id LEFT JOIN ob3_uploads u ON u.id = h.upload_id \
             WHERE h.user_id = '{learner}' AND h.position > {offset} ORDER BY h.position LIMIT 100"
        );
        let explain = match backend {
            DbBackend::Postgres => format!("EXPLAIN (ANALYZE, BUFFERS) {page_sql}"),
            _ => format!("EXPLAIN QUERY PLAN {page_sql}"),
        };
        let plan = db
            .query_all_raw(Statement::from_string(backend, explain))
            .await
            .unwrap();
        println!("EXPLAIN {label}:");
        for row in plan {
            let line: String = match backend {
                DbBackend::Postgres => row.try_get("", "QUERY PLAN").unwrap(),
                _ => row.try_get("", "detail").unwrap(),
            };
            println!("  {line}");
        }
        assert!(ms(query_times[10]) < 1000.0);
    }
    let probe = format!(
        "SELECT 1 FROM credentials c WHERE c.recipient_key = 'mailto:bench@example.org' AND c.created_at > '2027-01-01' \
         AND NOT EXISTS (SELECT 1 FROM ob3_holdings h WHERE h.user_id = '{learner}' AND h.credential_id = c.id) LIMIT 1"
    );
    let explain = match backend {
        DbBackend::Postgres => format!("EXPLAIN {probe}"),
        _ => format!("EXPLAIN QUERY PLAN {probe}"),
    };
    println!("EXPLAIN collection probe:");
    for row in db
        .query_all_raw(Statement::from_string(backend, explain))
        .await
        .unwrap()
    {
        let line: String = match backend {
            DbBackend::Postgres => row.try_get("", "QUERY PLAN").unwrap(),
            _ => row.try_get("", "detail").unwrap(),
        };
        println!("  {line}");
    }
}
