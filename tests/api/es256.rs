//! ES256 VC-JWTs with per-issuer P-256 keys: issued over HTTP, verified by implementations other
//! than our signer with the key the issuer publishes (DID document and JWKS), across rotation,
//! revocation, KEK re-wrap and restarts, with the private scalar never stored in the clear.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use oxbadge::db::signing_key;
use p256::ecdsa::{Signature, VerifyingKey, signature::Verifier};
use reqwest::StatusCode;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::{Value, json};
use ssi::{
    claims::{JwsStr, VerificationParameters},
    dids::{DID, DIDResolver, DIDWeb},
    verification_methods::AnyMethod,
};

use crate::{
    issuance::{issue, issuer_with_achievement},
    keys::create_issuer,
    support::{TestApp, TestDb, assert_problem, random_kek, test_settings},
};

/// A compact JWS split into its decoded header and payload, the signing input and the raw
/// signature bytes.
struct Jwt {
    header: Value,
    payload: Value,
    signing_input: String,
    signature: Vec<u8>,
}

fn decode(jws: &str) -> Jwt {
    let parts: Vec<&str> = jws.split('.').collect();
    assert_eq!(parts.len(), 3, "compact JWS: {jws}");
    let json = |part: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    Jwt {
        header: json(parts[0]),
        payload: json(parts[1]),
        signing_input: format!("{}.{}", parts[0], parts[1]),
        signature: URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
    }
}

/// A P-256 verifying key built from a published JWK's `x` and `y` only.
fn key_from_jwk(jwk: &Value) -> VerifyingKey {
    assert_eq!(jwk["kty"], "EC", "{jwk}");
    assert_eq!(jwk["crv"], "P-256", "{jwk}");
    assert!(
        jwk.get("d").is_none(),
        "a published JWK never has `d`: {jwk}"
    );
    let coordinate = |name: &str| {
        let bytes = URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
        let bytes: [u8; 32] = bytes.try_into().expect("32-byte coordinate");
        p256::FieldBytes::from(bytes)
    };
    let point =
        p256::EncodedPoint::from_affine_coordinates(&coordinate("x"), &coordinate("y"), false);
    VerifyingKey::from_encoded_point(&point).unwrap()
}

/// Whether `jwt` verifies under the JWK with p256 (the raw `r ‖ s` signature).
fn p256_verifies(jwt: &Jwt, jwk: &Value) -> bool {
    let Ok(signature) = Signature::from_slice(&jwt.signature) else {
        return false;
    };
    key_from_jwk(jwk)
        .verify(jwt.signing_input.as_bytes(), &signature)
        .is_ok()
}

/// Whether `jws` verifies with ssi's JWS implementation under `jwk`.
fn ssi_verifies_with(jws: &str, jwk: &Value) -> bool {
    let jwk: ssi::JWK = serde_json::from_value(jwk.clone()).unwrap();
    let jwt = decode(jws);
    ssi::claims::jws::verify_bytes(
        ssi::jwk::Algorithm::ES256,
        jwt.signing_input.as_bytes(),
        &jwk,
        &jwt.signature,
    )
    .is_ok()
}

/// Whether `jws` verifies with ssi end to end: ssi resolves the header's `kid` through its own
/// did:web resolver (over HTTP) to the published verification method and its JWK.
async fn ssi_resolves_and_verifies(jws: &str) -> bool {
    let jws = JwsStr::new(jws).unwrap();
    let params = VerificationParameters::from_resolver(DIDWeb.into_vm_resolver::<AnyMethod>());
    matches!(jws.verify(params).await, Ok(Ok(())))
}

/// The issuer's DID document as ssi's did:web resolver fetches it.
async fn resolved_did_document(issuer_id: &str) -> Value {
    let doc = DIDWeb
        .resolve(DID::new(issuer_id).unwrap())
        .await
        .unwrap()
        .document
        .into_document();
    serde_json::to_value(&doc).unwrap()
}

async fn get(app: &TestApp, path: &str) -> (String, Value) {
    let resp = app.http.get(app.url(path)).send().await.unwrap();
    assert_eq!(resp.status(), 200, "GET {path}");
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    (etag, resp.json().await.unwrap())
}

fn jwk_with_kid<'a>(jwks: &'a Value, kid: &Value) -> Option<&'a Value> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == *kid)
}

async fn issue_es256(app: &TestApp, token: &str, achievement: &str, learner: &str) -> Value {
    issue(
        app,
        token,
        json!({
            "achievementId": achievement,
            "recipient": {"id": learner},
            "validUntil": "2099-01-01T00:00:00Z",
            "proofFormat": "jwt",
            "jwtAlgorithm": "ES256"
        }),
    )
    .await
}

async fn keys_of(app: &TestApp, token: &str, issuer: &str) -> Vec<Value> {
    let resp = app
        .http
        .get(app.url(&format!("/api/v1/issuers/{issuer}/keys")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn rotate(app: &TestApp, token: &str, issuer: &str, algorithm: &str) -> reqwest::Response {
    app.http
        .post(app.url(&format!(
            "/api/v1/issuers/{issuer}/keys/rotate?algorithm={algorithm}"
        )))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn es256_jwt_verifies_with_the_key_the_issuer_publishes() {
    let app = TestApp::spawn().await;
    let token = app
        .token("issuers:write issuers:read credentials:issue credentials:read")
        .await;
    let (issuer, achievement) = issuer_with_achievement(&app, &token).await;
    let issuer_id = issuer["issuerId"].as_str().unwrap();
    let id = issuer["id"].as_str().unwrap();
    let did_path = format!("/issuers/{id}/did.json");
    let (did_etag_before, doc_before) = get(&app, &did_path).await;
    let (jwks_etag_before, _) = get(&app, "/.well-known/jwks.json").await;
    assert_eq!(
        doc_before["verificationMethod"].as_array().unwrap().len(),
        1
    );
    assert_eq!(
        keys_of(&app, &token, id).await.len(),
        1,
        "no P-256 key before"
    );

    let body = issue_es256(&app, &token, &achievement, "did:example:learner").await;
    let jws = body["jwt"].as_str().unwrap();
    let jwt = decode(jws);

    // Header: exactly alg, kid, typ; kid names a verification method of the issuer.
    assert_eq!(jwt.header["alg"], "ES256");
    assert_eq!(jwt.header["typ"], "JWT");
    assert_eq!(jwt.header.as_object().unwrap().len(), 3, "{}", jwt.header);
    let kid = jwt.header["kid"].clone();
    assert!(
        kid.as_str().unwrap().starts_with(&format!("{issuer_id}#")),
        "{kid}"
    );
    // Claims (OB 3.0 §8.2.4).
    let vc = &jwt.payload;
    assert_eq!(vc["iss"], issuer_id);
    assert_eq!(vc["issuer"]["id"], issuer_id);
    assert_eq!(vc["jti"], vc["id"]);
    assert_eq!(vc["jti"], body["credential"]["id"]);
    assert_eq!(vc["sub"], "did:example:learner");
    let valid_from = chrono::DateTime::parse_from_rfc3339(vc["validFrom"].as_str().unwrap())
        .unwrap()
        .timestamp();
    assert_eq!(vc["nbf"], valid_from);
    assert_eq!(vc["exp"], 4_070_908_800i64);
    assert!(vc.get("proof").is_none());
    assert_eq!(jwt.signature.len(), 64, "IEEE P1363 r || s, not DER");

    // The DID document (resolved by ssi over HTTP) publishes the key under `kid` as a JWK.
    let doc = resolved_did_document(issuer_id).await;
    let method = doc["verificationMethod"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == kid)
        .unwrap_or_else(|| panic!("{kid} not in {doc}"))
        .clone();
    assert_eq!(method["type"], "JsonWebKey2020");
    assert_eq!(method["controller"], issuer_id);
    assert!(doc["assertionMethod"].as_array().unwrap().contains(&kid));
    let jwk = &method["publicKeyJwk"];
    assert_eq!(jwk.as_object().unwrap().len(), 4, "kty, crv, x, y: {jwk}");
    assert!(p256_verifies(&jwt, jwk));
    assert!(ssi_verifies_with(jws, jwk));
    assert!(ssi_resolves_and_verifies(jws).await);
    // The Ed25519 key is still there, as a Multikey.
    assert!(
        doc["verificationMethod"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["type"] == "Multikey")
    );

    // A tampered payload fails with both verifiers.
    let mut forged = decode(jws);
    forged.signing_input = format!(
        "{}.{}",
        forged.signing_input.split('.').next().unwrap(),
        URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&json!({"iss": issuer_id, "sub": "did:example:mallory"})).unwrap()
        )
    );
    assert!(!p256_verifies(&forged, jwk));
    let forged_jws = format!(
        "{}.{}",
        forged.signing_input,
        URL_SAFE_NO_PAD.encode(&forged.signature)
    );
    assert!(!ssi_resolves_and_verifies(&forged_jws).await);

    // The JWKS lists the same key (EC, ES256) beside the issuer's Ed25519 key (OKP).
    let (jwks_etag, jwks) = get(&app, "/.well-known/jwks.json").await;
    let published = jwk_with_kid(&jwks, &kid).unwrap();
    assert_eq!(published["kty"], "EC");
    assert_eq!(published["crv"], "P-256");
    assert_eq!(published["alg"], "ES256");
    assert_eq!(published["use"], "sig");
    assert_eq!(published["x"], jwk["x"]);
    assert_eq!(published["y"], jwk["y"]);
    assert!(p256_verifies(&jwt, published));
    let ours: Vec<&Value> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["kid"].as_str().unwrap().starts_with(issuer_id))
        .collect();
    assert_eq!(ours.len(), 2);
    assert!(
        ours.iter()
            .any(|k| k["kty"] == "OKP" && k["alg"] == "EdDSA")
    );
    assert!(ours.iter().any(|k| k["kty"] == "EC" && k["alg"] == "ES256"));

    // Both public documents changed, so their ETags did.
    let (did_etag, _) = get(&app, &did_path).await;
    assert_ne!(did_etag, did_etag_before);
    assert_ne!(jwks_etag, jwks_etag_before);

    // The key list shows one active key per algorithm; a second ES256 credential reuses the key.
    let keys = keys_of(&app, &token, id).await;
    assert_eq!(keys.len(), 2);
    let p256: Vec<&Value> = keys.iter().filter(|k| k["algorithm"] == "P-256").collect();
    assert_eq!(p256.len(), 1);
    assert_eq!(p256[0]["state"], "active");
    assert_eq!(p256[0]["verificationMethod"], kid);
    assert!(
        p256[0]["publicKeyMultibase"]
            .as_str()
            .unwrap()
            .starts_with("zDn")
    );
    let again = issue_es256(&app, &token, &achievement, "did:example:other").await;
    let again = decode(again["jwt"].as_str().unwrap());
    assert_eq!(again.header["kid"], kid);
    assert!(p256_verifies(&again, jwk));
    assert_eq!(keys_of(&app, &token, id).await.len(), 2);

    // EdDSA JWTs still use the Ed25519 key.
    let eddsa = issue(
        &app,
        &token,
        json!({"achievementId": achievement, "recipient": {"id": "did:example:e"}, "proofFormat": "jwt"}),
    )
    .await;
    let eddsa = decode(eddsa["jwt"].as_str().unwrap());
    assert_eq!(eddsa.header["alg"], "EdDSA");
    assert_ne!(eddsa.header["kid"], kid);

    // The stored credential is the JWT.
    let stored: Value = app
        .http
        .get(app.url(&format!(
            "/api/v1/credentials/{}",
            body["id"].as_str().unwrap()
        )))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["format"], "jwt");
    assert_eq!(stored["jwt"], jws);
}

#[tokio::test]
async fn rotated_p256_keys_stay_published_until_revoked() {
    let app = TestApp::spawn().await;
    let token = app
        .token("issuers:write issuers:read credentials:issue keys:manage")
        .await;
    let (issuer, achievement) = issuer_with_achievement(&app, &token).await;
    let id = issuer["id"].as_str().unwrap();
    let first = issue_es256(&app, &token, &achievement, "did:example:a").await;
    let first_jws = first["jwt"].as_str().unwrap().to_owned();
    let first = decode(&first_jws);
    let ed25519_before: Vec<Value> = keys_of(&app, &token, id)
        .await
        .into_iter()
        .filter(|k| k["algorithm"] == "Ed25519")
        .collect();
    let old_p256 = keys_of(&app, &token, id)
        .await
        .into_iter()
        .find(|k| k["algorithm"] == "P-256")
        .unwrap();

    let resp = rotate(&app, &token, id, "P-256").await;
    assert_eq!(resp.status(), 200);
    let rotated: Value = resp.json().await.unwrap();
    assert_eq!(rotated["retiredKeyId"], old_p256["id"]);
    assert_eq!(rotated["active"]["algorithm"], "P-256");
    assert_eq!(rotated["active"]["state"], "active");

    // The Ed25519 key is untouched; each algorithm has one active key.
    let keys = keys_of(&app, &token, id).await;
    let ed25519_after: Vec<&Value> = keys
        .iter()
        .filter(|k| k["algorithm"] == "Ed25519")
        .collect();
    assert_eq!(ed25519_after.len(), 1);
    assert_eq!(*ed25519_after[0], ed25519_before[0]);
    for algorithm in ["Ed25519", "P-256"] {
        let active = keys
            .iter()
            .filter(|k| k["algorithm"] == algorithm && k["state"] == "active")
            .count();
        assert_eq!(active, 1, "{algorithm}");
    }

    let second = issue_es256(&app, &token, &achievement, "did:example:b").await;
    let second_jws = second["jwt"].as_str().unwrap().to_owned();
    let second = decode(&second_jws);
    assert_ne!(first.header["kid"], second.header["kid"]);
    assert_eq!(
        second.header["kid"],
        rotated["active"]["verificationMethod"]
    );

    // Both verify with the keys the JWKS publishes (the retired one included), and with ssi.
    let (_, jwks) = get(&app, "/.well-known/jwks.json").await;
    let old_jwk = jwk_with_kid(&jwks, &first.header["kid"]).expect("retired key published");
    let new_jwk = jwk_with_kid(&jwks, &second.header["kid"]).unwrap();
    assert!(p256_verifies(&first, old_jwk));
    assert!(p256_verifies(&second, new_jwk));
    assert!(!p256_verifies(&first, new_jwk));
    assert!(ssi_resolves_and_verifies(&first_jws).await);
    assert!(ssi_resolves_and_verifies(&second_jws).await);

    // Revoking the retired key unpublishes it: the old JWT no longer verifies.
    let resp = app
        .http
        .post(app.url(&format!(
            "/api/v1/issuers/{id}/keys/{}/revoke",
            old_p256["id"].as_str().unwrap()
        )))
        .bearer_auth(&token)
        .json(&json!({"reason": "test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (_, jwks) = get(&app, "/.well-known/jwks.json").await;
    assert!(jwk_with_kid(&jwks, &first.header["kid"]).is_none());
    assert!(!ssi_resolves_and_verifies(&first_jws).await);
    assert!(ssi_resolves_and_verifies(&second_jws).await);

    // Revoking the active P-256 key activates a new P-256 key at once.
    let resp = app
        .http
        .post(app.url(&format!(
            "/api/v1/issuers/{id}/keys/{}/revoke",
            rotated["active"]["id"].as_str().unwrap()
        )))
        .bearer_auth(&token)
        .json(&json!({"reason": "compromised"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let keys = keys_of(&app, &token, id).await;
    let active: Vec<&Value> = keys
        .iter()
        .filter(|k| k["algorithm"] == "P-256" && k["state"] == "active")
        .collect();
    assert_eq!(active.len(), 1);
    let third = issue_es256(&app, &token, &achievement, "did:example:c").await;
    let third = decode(third["jwt"].as_str().unwrap());
    assert_eq!(third.header["kid"], active[0]["verificationMethod"]);

    // Unknown algorithms are refused.
    let resp = rotate(&app, &token, id, "RS256").await;
    let problem = assert_problem(resp, 422, "invalid_request").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("P-256"),
        "{problem}"
    );
}

#[tokio::test]
async fn p256_keys_come_explicitly_or_once_on_first_use() {
    let app = TestApp::spawn().await;
    let token = app
        .token("issuers:write issuers:read credentials:issue keys:manage")
        .await;

    // Explicitly: rotating P-256 on an issuer without one creates its first key.
    let explicit = create_issuer(&app, &token, json!({"name": "Explicit"})).await;
    let explicit_id = explicit["id"].as_str().unwrap();
    let resp = rotate(&app, &token, explicit_id, "P-256").await;
    assert_eq!(resp.status(), 200);
    let created: Value = resp.json().await.unwrap();
    assert_eq!(created["retiredKeyId"], Value::Null);
    assert_eq!(created["active"]["algorithm"], "P-256");
    let (_, doc) = get(&app, &format!("/issuers/{explicit_id}/did.json")).await;
    assert!(
        doc["@context"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "https://w3id.org/security/suites/jws-2020/v1"),
        "{doc}"
    );
    assert_eq!(doc["verificationMethod"].as_array().unwrap().len(), 2);

    // On first use: concurrent first ES256 requests end with exactly one P-256 key.
    let (issuer, achievement) = issuer_with_achievement(&app, &token).await;
    let id = issuer["id"].as_str().unwrap().to_owned();
    let mut tasks = Vec::new();
    for n in 0..8 {
        let http = app.http.clone();
        let url = app.url("/api/v1/credentials");
        let token = token.clone();
        let achievement = achievement.clone();
        tasks.push(tokio::spawn(async move {
            let resp = http
                .post(url)
                .bearer_auth(token)
                .json(&json!({
                    "achievementId": achievement,
                    "recipient": {"id": format!("did:example:{n}")},
                    "proofFormat": "jwt",
                    "jwtAlgorithm": "ES256"
                }))
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let body: Value = resp.json().await.unwrap();
            assert_eq!(status, 201, "{body}");
            body["jwt"].as_str().unwrap().to_owned()
        }));
    }
    let mut kids = std::collections::HashSet::new();
    for task in tasks {
        kids.insert(decode(&task.await.unwrap()).header["kid"].clone());
    }
    assert_eq!(kids.len(), 1, "one key signed them all: {kids:?}");
    let p256: Vec<Value> = keys_of(&app, &token, &id)
        .await
        .into_iter()
        .filter(|k| k["algorithm"] == "P-256")
        .collect();
    assert_eq!(p256.len(), 1);

    // A did:key issuer is its Ed25519 key: no P-256 key, a clear 409.
    let did_key = create_issuer(&app, &token, json!({"name": "Keyed", "idType": "did:key"})).await;
    let did_key_id = did_key["id"].as_str().unwrap();
    let resp = rotate(&app, &token, did_key_id, "P-256").await;
    assert_problem(resp, 409, "algorithm_not_supported").await;
    let resp = app
        .http
        .post(app.url(&format!("/api/v1/issuers/{did_key_id}/achievements")))
        .bearer_auth(&token)
        .json(&json!({
            "name": "K", "description": "K.", "criteria": {"narrative": "K."}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let ach: Value = resp.json().await.unwrap();
    let resp = app
        .http
        .post(app.url("/api/v1/credentials"))
        .bearer_auth(&token)
        .json(&json!({
            "achievementId": ach["id"],
            "recipient": {"id": "did:example:k"},
            "proofFormat": "jwt",
            "jwtAlgorithm": "ES256"
        }))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(resp, 409, "algorithm_not_supported").await;
    assert!(problem["detail"].as_str().unwrap().contains("did:key"));
    assert_eq!(keys_of(&app, &token, did_key_id).await.len(), 1);
}

#[tokio::test]
async fn jwt_algorithm_input_is_checked_and_batches_sign_es256() {
    let app = TestApp::spawn().await;
    let token = app.token("issuers:write credentials:issue").await;
    let (_, achievement) = issuer_with_achievement(&app, &token).await;
    let post = |path: &'static str, body: Value, key: Option<&'static str>| {
        let mut req = app.http.post(app.url(path)).bearer_auth(&token).json(&body);
        if let Some(key) = key {
            req = req.header("Idempotency-Key", key);
        }
        req.send()
    };
    let recipient = json!({"id": "did:example:x"});
    for (body, needle) in [
        (
            json!({"achievementId": achievement, "recipient": recipient, "proofFormat": "jwt", "jwtAlgorithm": "RS256"}),
            "RS256",
        ),
        (
            json!({"achievementId": achievement, "recipient": recipient, "proofFormat": "jwt", "jwtAlgorithm": "es256"}),
            "es256",
        ),
        (
            json!({"achievementId": achievement, "recipient": recipient, "jwtAlgorithm": "ES256"}),
            "proofFormat",
        ),
        (
            json!({"achievementId": achievement, "recipient": recipient, "proofFormat": "data-integrity", "jwtAlgorithm": "EdDSA"}),
            "proofFormat",
        ),
    ] {
        let resp = post("/api/v1/credentials", body.clone(), None)
            .await
            .unwrap();
        let problem = assert_problem(resp, 422, "invalid_request").await;
        assert!(
            problem["detail"].as_str().unwrap().contains(needle),
            "{body} -> {problem}"
        );
    }

    let batch = json!({
        "achievementId": achievement,
        "recipients": [{"id": "did:example:1"}, {"email": "not an email"}, {"id": "did:example:3"}],
        "proofFormat": "jwt",
        "jwtAlgorithm": "ES256"
    });
    let resp = post("/api/v1/credentials/batch", batch.clone(), Some("es-1"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let result: Value = resp.json().await.unwrap();
    assert_eq!(result["issued"], 2);
    assert_eq!(result["failed"], 1);
    let (_, jwks) = get(&app, "/.well-known/jwks.json").await;
    for item in [&result["results"][0], &result["results"][2]] {
        let jwt = decode(item["jwt"].as_str().unwrap());
        assert_eq!(jwt.header["alg"], "ES256");
        assert!(p256_verifies(
            &jwt,
            jwk_with_kid(&jwks, &jwt.header["kid"]).unwrap()
        ));
    }
    // Replays answer the same; the same key with another algorithm is another request.
    let replay = post("/api/v1/credentials/batch", batch.clone(), Some("es-1"))
        .await
        .unwrap();
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.json::<Value>().await.unwrap(), result);
    let mut other = batch.clone();
    other["jwtAlgorithm"] = json!("EdDSA");
    let resp = post("/api/v1/credentials/batch", other, Some("es-1"))
        .await
        .unwrap();
    assert_problem(resp, 422, "idempotency_key_reused").await;
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn database_never_contains_a_p256_private_scalar() {
    let app = TestApp::spawn().await;
    let token = app
        .token("issuers:write credentials:issue keys:manage")
        .await;
    for n in 0..2 {
        let issuer = create_issuer(&app, &token, json!({"name": format!("P{n}")})).await;
        let id = issuer["id"].as_str().unwrap();
        assert_eq!(rotate(&app, &token, id, "P-256").await.status(), 200);
        assert_eq!(rotate(&app, &token, id, "P-256").await.status(), 200);
    }
    let rows = signing_key::Entity::find()
        .all(app.state.db())
        .await
        .unwrap();
    let scalars: Vec<[u8; 32]> = rows
        .iter()
        .filter(|r| r.algorithm == "P-256")
        .map(|r| app.state.keys().decrypt_p256(r).unwrap().to_bytes().into())
        .collect();
    assert_eq!(scalars.len(), 4);
    for scalar in &scalars {
        let hex_form = hex::encode(scalar);
        let b64_form = URL_SAFE_NO_PAD.encode(scalar);
        for row in &rows {
            assert!(!contains(&row.ciphertext, scalar));
            assert!(!contains(&row.nonce, scalar));
            assert!(!row.public_key.contains(&hex_form));
            assert!(!row.public_key.contains(&b64_form));
        }
    }
    if app.db().url.starts_with("sqlite:") {
        for entry in std::fs::read_dir(app.db().data_dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("oxbadge.db")
            {
                let bytes = std::fs::read(&path).unwrap();
                for scalar in &scalars {
                    assert!(
                        !contains(&bytes, scalar),
                        "{} holds a scalar",
                        path.display()
                    );
                    assert!(!contains(&bytes, hex::encode(scalar).as_bytes()));
                    assert!(!contains(&bytes, URL_SAFE_NO_PAD.encode(scalar).as_bytes()));
                }
            }
        }
    } else {
        use sea_orm::{ConnectionTrait, Statement};
        let db = app.state.db();
        let dump = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT encode(nonce, 'hex') || encode(ciphertext, 'hex') || public_key || kek_id \
                 || algorithm AS x FROM signing_keys",
            ))
            .await
            .unwrap();
        for row in dump {
            let text: String = row.try_get("", "x").unwrap();
            for scalar in &scalars {
                assert!(!text.contains(&hex::encode(scalar)));
            }
        }
    }
}

#[tokio::test]
async fn aged_p256_keys_rotate_on_their_own() {
    let app = TestApp::spawn().await;
    let token = app.token("issuers:write keys:manage").await;
    let with_p256 = create_issuer(&app, &token, json!({"name": "Both"})).await;
    let with_p256 = with_p256["id"].as_str().unwrap();
    let without = create_issuer(&app, &token, json!({"name": "Ed25519 only"})).await;
    let without = without["id"].as_str().unwrap();
    assert_eq!(rotate(&app, &token, with_p256, "P-256").await.status(), 200);
    let db = app.state.db();
    // Only the P-256 key is old; nobody's Ed25519 key is.
    let p256 = signing_key::Entity::find()
        .filter(signing_key::Column::IssuerId.eq(with_p256))
        .filter(signing_key::Column::Algorithm.eq("P-256"))
        .one(db)
        .await
        .unwrap()
        .unwrap();
    let mut old: signing_key::ActiveModel = p256.clone().into();
    old.created_at = Set(chrono::Utc::now() - chrono::Duration::days(400));
    old.update(db).await.unwrap();
    assert_eq!(oxbadge::app::rotate_aged_keys(&app.state).await, 1);
    assert_eq!(oxbadge::app::rotate_aged_keys(&app.state).await, 0);
    let rows = signing_key::Entity::find()
        .filter(signing_key::Column::IssuerId.eq(with_p256))
        .all(db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().any(|r| r.id == p256.id && r.state == "retired"));
    for algorithm in ["Ed25519", "P-256"] {
        assert_eq!(
            rows.iter()
                .filter(|r| r.algorithm == algorithm && r.state == "active")
                .count(),
            1
        );
    }
    let untouched = signing_key::Entity::find()
        .filter(signing_key::Column::IssuerId.eq(without))
        .all(db)
        .await
        .unwrap();
    assert_eq!(untouched.len(), 1, "age checks never create P-256 keys");
}

#[tokio::test]
async fn cli_created_p256_keys_survive_rewrap_and_restart() {
    let db = TestDb::create().await;
    let old = random_kek("kek-old");
    let new = random_kek("kek-new");
    let mut settings = test_settings(&db);
    settings.kek = Some(secrecy::SecretString::from(old.clone()));
    let app = TestApp::spawn_on(db, settings).await;
    let token = app
        .token("issuers:write issuers:read credentials:issue")
        .await;
    let (issuer, achievement) = issuer_with_achievement(&app, &token).await;
    let id = issuer["id"].as_str().unwrap().to_owned();
    let db_url = app.db().url.clone();
    let data_dir = app.db().data_dir.path().to_path_buf();
    let cli = |args: &[&str], kek: String, active: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_oxbadge"))
            .args(["--database-url", &db_url, "--data-dir"])
            .arg(&data_dir)
            .args(args)
            .env("OXBADGE_KEK", kek)
            .env("OXBADGE_ACTIVE_KEK", active)
            .env("OXBADGE_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    // The CLI gives the issuer its P-256 key; unknown algorithms fail.
    let out = cli(
        &["keys", "rotate", "--issuer", &id, "--algorithm", "P-256"],
        old.clone(),
        "kek-old",
    );
    assert!(out.contains("Rotated"), "{out}");
    let listed = cli(&["keys", "list", "--issuer", &id], old.clone(), "kek-old");
    assert!(listed.contains("\tP-256\tactive\t"), "{listed}");
    assert!(listed.contains("\tEd25519\tactive\t"), "{listed}");
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_oxbadge"))
        .args(["--database-url", &db_url, "--data-dir"])
        .arg(&data_dir)
        .args([
            "keys",
            "rotate",
            "--issuer",
            &id,
            "--algorithm",
            "secp256k1",
        ])
        .env("OXBADGE_KEK", old.clone())
        .env("OXBADGE_LOG", "warn")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("secp256k1"));

    let before = issue_es256(&app, &token, &achievement, "did:example:before").await;
    let before = decode(before["jwt"].as_str().unwrap());

    // CSV issuance from the CLI signs ES256 with the same key.
    let csv = data_dir.join("recipients.csv");
    std::fs::write(&csv, "id\ndid:example:csv\n").unwrap();
    let csv = csv.to_str().unwrap();
    let out = cli(
        &[
            "issue",
            "--csv",
            csv,
            "--achievement",
            &achievement,
            "--format",
            "jwt",
            "--jwt-algorithm",
            "ES256",
        ],
        old.clone(),
        "kek-old",
    );
    let line: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let from_csv = decode(line["jwt"].as_str().unwrap());
    assert_eq!(from_csv.header["alg"], "ES256");
    assert_eq!(from_csv.header["kid"], before.header["kid"]);

    // Re-wrap both keys under the new KEK, then restart with only the new KEK.
    let out = cli(&["keys", "rewrap"], format!("{new},{old}"), "kek-new");
    assert!(out.contains("re-wrapped 2 key(s)"), "{out}");
    let db = app.into_db().await;
    let mut settings = test_settings(&db);
    settings.kek = Some(secrecy::SecretString::from(new));
    let app = TestApp::spawn_on_existing(db, settings).await;
    let token = app.token("credentials:issue").await;
    let after = issue_es256(&app, &token, &achievement, "did:example:after").await;
    let after = decode(after["jwt"].as_str().unwrap());
    assert_eq!(
        after.header["kid"], before.header["kid"],
        "same key after rewrap"
    );
    let (_, jwks) = get(&app, "/.well-known/jwks.json").await;
    let jwk = jwk_with_kid(&jwks, &after.header["kid"]).unwrap();
    assert!(p256_verifies(&before, jwk));
    assert!(p256_verifies(&after, jwk));
    assert!(p256_verifies(&from_csv, jwk));
    let status = app
        .http
        .get(app.url(&format!("/issuers/{id}/did.json")))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_database_holds_one_active_key_per_issuer_and_algorithm() {
    let app = TestApp::spawn().await;
    let token = app.token("issuers:write keys:manage").await;
    let issuer = create_issuer(&app, &token, json!({"name": "Indexed"})).await;
    let id = issuer["id"].as_str().unwrap();
    assert_eq!(rotate(&app, &token, id, "P-256").await.status(), 200);
    let db = app.state.db();
    let active = signing_key::Entity::find()
        .filter(signing_key::Column::IssuerId.eq(id))
        .filter(signing_key::Column::State.eq("active"))
        .all(db)
        .await
        .unwrap();
    assert_eq!(
        active.len(),
        2,
        "one Ed25519 and one P-256 key are active together"
    );
    // A second active key of an algorithm is refused by the partial unique index itself.
    for key in active {
        let mut copy: signing_key::ActiveModel = key.clone().into();
        copy.id = Set(format!("{}-copy", key.id));
        let err = copy.insert(db).await.unwrap_err();
        assert!(
            oxbadge::db::is_unique_violation(&err),
            "{} {err}",
            key.algorithm
        );
    }
}
