//! Issue 11, the verifier's wrong verdicts, over real HTTP: a key rotation seen from a second
//! instance (a cached DID document is re-fetched once, single-flight and rate-limited, before any
//! verdict); key URLs that answer 404 (invalid only when the controller's document no longer
//! lists the key); unsupported cryptosuites (indeterminate, named); the OB implementation guide's
//! JWKS rule for JWTs without a DID/URL `kid`; `relatedResource` digests against the pinned
//! contexts; and the report naming the schema a credential was checked against.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use sha2::Digest;

use crate::{
    issuance::{issue, issuer_with_achievement},
    support::TestApp,
};

/// Lets the verifier fetch plain http from loopback, where the other instance and the scripted
/// servers of these tests live.
fn fetch_from_loopback(s: &mut oxbadge::Settings) {
    s.verify_fetch_allow_http = true;
    s.verify_fetch_allow_private = true;
}

async fn verify(app: &TestApp, body: Vec<u8>, content_type: &str) -> Value {
    let resp = app
        .http
        .post(app.url("/api/v1/verify"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn verify_json(app: &TestApp, credential: &Value) -> Value {
    verify(
        app,
        serde_json::to_vec(credential).unwrap(),
        "application/json",
    )
    .await
}

async fn verify_jwt(app: &TestApp, jws: &str) -> Value {
    verify(app, jws.as_bytes().to_vec(), "text/plain").await
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {report:#}"))
}

fn detail(report: &Value, name: &str) -> String {
    check(report, name)["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// One scripted answer: status, Cache-Control, body.
type Answer = (u16, &'static str, String);

/// A loopback HTTP server whose answers the test changes while it runs, counting requests per
/// path. Unknown paths answer 404.
#[derive(Clone)]
struct Scripted {
    base: String,
    routes: Arc<Mutex<HashMap<String, Answer>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl Scripted {
    async fn start() -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = Scripted {
            base,
            routes: Arc::default(),
            hits: Arc::default(),
        };
        let handle = server.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let handle = handle.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&request);
                    let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    *handle.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
                    let (status, cache, body) = handle
                        .routes
                        .lock()
                        .unwrap()
                        .get(&path)
                        .cloned()
                        .unwrap_or((404, "no-store", "{}".into()));
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncache-control: {cache}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        server
    }

    fn answer(&self, path: &str, status: u16, cache: &'static str, body: &Value) {
        self.routes
            .lock()
            .unwrap()
            .insert(path.to_owned(), (status, cache, body.to_string()));
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// `did:web` of this server's host (its document is at `/.well-known/did.json`).
    fn did(&self) -> String {
        format!(
            "did:web:{}",
            self.base.trim_start_matches("http://").replace(':', "%3A")
        )
    }
}

fn multibase(key: &SigningKey) -> String {
    oxbadge::keys::publish::did_key_for_ed25519(&key.verifying_key())
        .trim_start_matches("did:key:")
        .to_owned()
}

fn multikey(id: &str, controller: &str, key: &SigningKey) -> Value {
    json!({"id": id, "type": "Multikey", "controller": controller, "publicKeyMultibase": multibase(key)})
}

/// A DID document listing `keys` (fragment, key) under `assertionMethod`.
fn did_document(did: &str, keys: &[(&str, &SigningKey)]) -> Value {
    let methods: Vec<Value> = keys
        .iter()
        .map(|(frag, key)| multikey(&format!("{did}#{frag}"), did, key))
        .collect();
    let ids: Vec<Value> = keys
        .iter()
        .map(|(f, _)| json!(format!("{did}#{f}")))
        .collect();
    json!({
        "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
        "id": did,
        "verificationMethod": methods,
        "assertionMethod": ids,
    })
}

fn ob_credential(issuer: &str) -> Value {
    json!({
        "@context": [
            "https://www.w3.org/ns/credentials/v2",
            "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
        ],
        "id": format!("urn:example:{}", cuid2::create_id()),
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "issuer": {"id": issuer, "type": ["Profile"], "name": "Someone"},
        "validFrom": "2024-01-01T00:00:00Z",
        "credentialSubject": {
            "id": "did:example:learner",
            "type": ["AchievementSubject"],
            "achievement": {
                "id": "https://example.org/achievements/1",
                "type": ["Achievement"],
                "name": "A",
                "description": "D",
                "criteria": {"narrative": "N"}
            }
        }
    })
}

/// `vc` signed with eddsa-rdfc-2022 by `key` as `verification_method`.
fn sign(vc: &Value, verification_method: &str, key: &SigningKey) -> Value {
    use oxbadge::di::{EddsaRdfc2022, ProofOptions, ProofPurpose};
    EddsaRdfc2022::default()
        .sign(
            vc,
            ProofOptions {
                verification_method: verification_method.to_owned(),
                created: chrono::Utc::now(),
                proof_purpose: ProofPurpose::AssertionMethod,
                challenge: None,
                domain: None,
            },
            key,
        )
        .unwrap()
}

#[tokio::test]
async fn a_rotation_on_one_instance_verifies_at_once_on_another() {
    // B issues (did:web issuers, DID documents served with max-age=300); A verifies over HTTP.
    let b = TestApp::spawn().await;
    let a = TestApp::spawn_with(fetch_from_loopback).await;
    let token = b
        .token("issuers:write issuers:read credentials:issue credentials:read keys:manage")
        .await;

    // Ed25519: A caches the DID document, B rotates, A verifies the first credential signed
    // with the new key at once.
    let (issuer, achievement) = issuer_with_achievement(&b, &token).await;
    let award = |n: u32| json!({"achievementId": achievement, "recipient": {"id": format!("did:example:{n}")}});
    let before = issue(&b, &token, award(1)).await;
    let report = verify_json(&a, &before["credential"]).await;
    assert_eq!(report["outcome"], "verified", "{report:#}");
    let resp = b
        .http
        .post(b.url(&format!(
            "/api/v1/issuers/{}/keys/rotate",
            issuer["id"].as_str().unwrap()
        )))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let after = issue(&b, &token, award(2)).await;
    assert_ne!(
        after["credential"]["proof"]["verificationMethod"],
        before["credential"]["proof"]["verificationMethod"]
    );
    let report = verify_json(&a, &after["credential"]).await;
    assert_eq!(report["outcome"], "verified", "{report:#}");
    assert_eq!(check(&report, "key_controller")["status"], "passed");
    // The old key is still published, and still verifies.
    let report = verify_json(&a, &before["credential"]).await;
    assert_eq!(report["outcome"], "verified", "{report:#}");

    // ES256: an issuer's first ES256 JWT is signed with a P-256 key made for it on the spot,
    // after A cached its DID document.
    let (_, achievement) = issuer_with_achievement(&b, &token).await;
    let first = issue(
        &b,
        &token,
        json!({"achievementId": achievement, "recipient": {"id": "did:example:3"}}),
    )
    .await;
    let report = verify_json(&a, &first["credential"]).await;
    assert_eq!(report["outcome"], "verified", "{report:#}");
    let es256 = issue(
        &b,
        &token,
        json!({"achievementId": achievement, "recipient": {"id": "did:example:4"}, "proofFormat": "jwt", "jwtAlgorithm": "ES256"}),
    )
    .await;
    let report = verify_jwt(&a, es256["jwt"].as_str().unwrap()).await;
    assert_eq!(report["outcome"], "verified", "{report:#}");
    assert!(detail(&report, "proof").contains("Es256"), "{report:#}");
}

#[tokio::test]
async fn a_cached_document_is_refetched_once_single_flight_and_rate_limited() {
    let server = Scripted::start().await;
    let did = server.did();
    let k1 = SigningKey::from_bytes(&[21u8; 32]);
    let k2 = SigningKey::from_bytes(&[22u8; 32]);
    let forged = SigningKey::from_bytes(&[23u8; 32]);
    const DOC: &str = "/.well-known/did.json";
    server.answer(DOC, 200, "max-age=300", &did_document(&did, &[("k1", &k1)]));
    let a = TestApp::spawn_with(fetch_from_loopback).await;
    let signed =
        |frag: &str, key: &SigningKey| sign(&ob_credential(&did), &format!("{did}#{frag}"), key);
    let report = verify_json(&a, &signed("k1", &k1)).await;
    assert_eq!(report["outcome"], "verified", "{report:#}");
    assert_eq!(server.hits(DOC), 1);

    // The issuer adds k2. Eight verifications of a k2 credential at once: every one verified,
    // and the document fetched once more, not eight times.
    server.answer(
        DOC,
        200,
        "max-age=300",
        &did_document(&did, &[("k1", &k1), ("k2", &k2)]),
    );
    let credential = signed("k2", &k2);
    let reports =
        futures_util::future::join_all((0..8).map(|_| verify_json(&a, &credential))).await;
    for report in &reports {
        assert_eq!(report["outcome"], "verified", "{report:#}");
    }
    assert_eq!(server.hits(DOC), 2);

    // A made-up key right after: the document was re-fetched moments ago, so it is not fetched
    // again, and the credential is not called forged on the strength of a cached copy.
    let report = verify_json(&a, &signed("k9", &forged)).await;
    assert_eq!(report["outcome"], "indeterminate", "{report:#}");
    assert!(
        detail(&report, "proof").contains("re-fetched"),
        "{report:#}"
    );
    assert_eq!(server.hits(DOC), 2);

    // Without the rate limit: a fresh copy that does not list the key makes the proof invalid;
    // a document that cannot be re-fetched leaves the verdict indeterminate.
    let unlimited = TestApp::spawn_with(|s| {
        fetch_from_loopback(s);
        s.verify_refetch_interval_secs = 0;
    })
    .await;
    let report = verify_json(&unlimited, &signed("k1", &k1)).await;
    assert_eq!(report["outcome"], "verified", "{report:#}");
    let report = verify_json(&unlimited, &signed("k9", &forged)).await;
    assert_eq!(report["outcome"], "invalid", "{report:#}");
    assert!(
        detail(&report, "proof").contains("does not list"),
        "{report:#}"
    );
    server.answer(DOC, 503, "no-store", &json!({}));
    let report = verify_json(&unlimited, &signed("k9", &forged)).await;
    assert_eq!(report["outcome"], "indeterminate", "{report:#}");
    assert!(detail(&report, "proof").contains("HTTP 503"), "{report:#}");
    // A key the cached copy lists still verifies while the host is down.
    let report = verify_json(&unlimited, &signed("k2", &k2)).await;
    assert_eq!(report["outcome"], "verified", "{report:#}");
}

#[tokio::test]
async fn a_key_url_that_answers_404_is_invalid_only_when_its_controller_no_longer_lists_it() {
    let server = Scripted::start().await;
    let issuer = format!("{}/issuers/1", server.base);
    let key_url = format!("{}/keys/1", server.base);
    let key = SigningKey::from_bytes(&[31u8; 32]);
    let other = SigningKey::from_bytes(&[32u8; 32]);
    let controller_doc = |listed: &[&str]| {
        json!({
            "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
            "id": issuer,
            "verificationMethod": [multikey(&format!("{issuer}#k2"), &issuer, &other)],
            "assertionMethod": listed,
        })
    };
    let k2 = format!("{issuer}#k2");
    server.answer(
        "/issuers/1",
        200,
        "no-store",
        &controller_doc(&[&key_url, &k2]),
    );
    server.answer(
        "/keys/1",
        200,
        "no-store",
        &multikey(&key_url, &issuer, &key),
    );
    let a = TestApp::spawn_with(fetch_from_loopback).await;
    let credential = sign(&ob_credential(&issuer), &key_url, &key);
    let report = verify_json(&a, &credential).await;
    assert_eq!(report["outcome"], "verified", "{report:#}");

    // The key document is gone and the issuer no longer lists the key: the key is gone.
    server.answer("/keys/1", 404, "no-store", &json!({}));
    server.answer("/issuers/1", 200, "no-store", &controller_doc(&[&k2]));
    let report = verify_json(&a, &credential).await;
    assert_eq!(report["outcome"], "invalid", "{report:#}");
    assert!(detail(&report, "proof").contains("HTTP 404"), "{report:#}");
    assert!(
        detail(&report, "proof").contains("does not list"),
        "{report:#}"
    );
    server.answer("/keys/1", 410, "no-store", &json!({}));
    let report = verify_json(&a, &credential).await;
    assert_eq!(report["outcome"], "invalid", "{report:#}");

    // The issuer still lists it (a broken host), or cannot be asked: we cannot tell.
    server.answer("/keys/1", 404, "no-store", &json!({}));
    server.answer(
        "/issuers/1",
        200,
        "no-store",
        &controller_doc(&[&key_url, &k2]),
    );
    let report = verify_json(&a, &credential).await;
    assert_eq!(report["outcome"], "indeterminate", "{report:#}");
    server.answer("/issuers/1", 503, "no-store", &json!({}));
    let report = verify_json(&a, &credential).await;
    assert_eq!(report["outcome"], "indeterminate", "{report:#}");

    // 5xx on the key URL: indeterminate whatever the issuer lists.
    server.answer("/keys/1", 500, "no-store", &json!({}));
    server.answer("/issuers/1", 200, "no-store", &controller_doc(&[&k2]));
    let report = verify_json(&a, &credential).await;
    assert_eq!(report["outcome"], "indeterminate", "{report:#}");

    // A did:web whose DID document answers 404: its controller document was not fetched, so
    // the verdict stays indeterminate; once served without the key, it is invalid.
    let did = server.did();
    let credential = sign(&ob_credential(&did), &format!("{did}#k1"), &key);
    let report = verify_json(&a, &credential).await;
    assert_eq!(report["outcome"], "indeterminate", "{report:#}");
    server.answer(
        "/.well-known/did.json",
        200,
        "no-store",
        &did_document(&did, &[("k2", &other)]),
    );
    let report = verify_json(&a, &credential).await;
    assert_eq!(report["outcome"], "invalid", "{report:#}");
}

#[tokio::test]
async fn unsupported_cryptosuites_are_indeterminate_and_named() {
    let app = TestApp::spawn().await;
    let key = SigningKey::from_bytes(&[41u8; 32]);
    let did = oxbadge::keys::publish::did_key_for_ed25519(&key.verifying_key());
    let vm = format!("{did}#{}", multibase(&key));
    let signed = sign(&ob_credential(&did), &vm, &key);
    assert_eq!(verify_json(&app, &signed).await["outcome"], "verified");
    for suite in [
        "ecdsa-sd-2023",
        "bbs-2023",
        "ecdsa-rdfc-2019",
        "made-up-2099",
    ] {
        let mut credential = signed.clone();
        credential["proof"]["cryptosuite"] = json!(suite);
        let report = verify_json(&app, &credential).await;
        assert_eq!(report["outcome"], "indeterminate", "{suite}: {report:#}");
        let proof = check(&report, "proof");
        assert_eq!(proof["status"], "indeterminate");
        let text = proof["problem"]["detail"].as_str().unwrap();
        assert!(text.contains(suite), "{text}");
        assert!(text.contains("not supported by this verifier"), "{text}");
    }
    // A proof that names no suite at all is malformed.
    let mut credential = signed.clone();
    credential["proof"]
        .as_object_mut()
        .unwrap()
        .remove("cryptosuite");
    assert_eq!(verify_json(&app, &credential).await["outcome"], "invalid");
    // One supported proof that verifies beside an unsupported one: the set is only partly
    // checked, so it is not verified either.
    let mut credential = signed.clone();
    let mut foreign = signed["proof"].clone();
    foreign["cryptosuite"] = json!("bbs-2023");
    credential["proof"] = json!([signed["proof"].clone(), foreign]);
    assert_eq!(
        verify_json(&app, &credential).await["outcome"],
        "indeterminate"
    );
}

fn jwt(header: Value, payload: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let sig = sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// An EdDSA signer for [`jwt`].
fn eddsa(key: &SigningKey) -> impl Fn(&[u8]) -> Vec<u8> + '_ {
    move |m| {
        use ed25519_dalek::Signer;
        key.sign(m).to_bytes().to_vec()
    }
}

fn jwt_payload(vc: &Value, issuer: &str) -> Value {
    let mut payload = vc.clone();
    payload["iss"] = json!(issuer);
    payload["jti"] = vc["id"].clone();
    payload["nbf"] = json!(1_704_067_200);
    payload["sub"] = vc["credentialSubject"]["id"].clone();
    payload
}

#[tokio::test]
async fn jwts_without_a_usable_kid_use_the_issuer_hosts_jwks() {
    use p256::ecdsa::signature::Signer as _;
    let server = Scripted::start().await;
    let issuer = format!("{}/issuers/1", server.base);
    let ed = SigningKey::from_bytes(&[51u8; 32]);
    let p256_key = p256::ecdsa::SigningKey::from_slice(&[0x52; 32]).unwrap();
    let point = p256_key.verifying_key().to_encoded_point(false);
    let stranger = SigningKey::from_bytes(&[53u8; 32]);
    server.answer(
        "/.well-known/jwks.json",
        200,
        "max-age=300",
        &json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "p-1",
             "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
             "y": URL_SAFE_NO_PAD.encode(point.y().unwrap())},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed-1",
             "x": URL_SAFE_NO_PAD.encode(ed.verifying_key().as_bytes())},
        ]}),
    );
    let a = TestApp::spawn_with(fetch_from_loopback).await;
    let payload = jwt_payload(&ob_credential(&issuer), &issuer);

    // No kid: the key is found in the host's JWK Set and bound to the https issuer there.
    let token = jwt(json!({"alg": "EdDSA", "typ": "JWT"}), &payload, eddsa(&ed));
    let report = verify_jwt(&a, &token).await;
    assert_eq!(report["outcome"], "verified", "{report:#}");
    assert_eq!(check(&report, "key_controller")["status"], "passed");
    assert!(detail(&report, "proof").contains("jwks.json"), "{report:#}");
    let es256 = jwt(json!({"alg": "ES256", "typ": "JWT"}), &payload, |m| {
        let sig: p256::ecdsa::Signature = p256_key.sign(m);
        sig.to_bytes().to_vec()
    });
    let report = verify_jwt(&a, &es256).await;
    assert_eq!(report["outcome"], "verified", "{report:#}");

    // A kid that is neither a DID nor a URL names a key of that set.
    let token = jwt(
        json!({"alg": "EdDSA", "kid": "ed-1", "typ": "JWT"}),
        &payload,
        eddsa(&ed),
    );
    let report = verify_jwt(&a, &token).await;
    assert_eq!(report["outcome"], "verified", "{report:#}");
    assert_eq!(server.hits("/.well-known/jwks.json"), 1);

    // Keys the (re-fetched) set does not hold do not verify.
    let token = jwt(
        json!({"alg": "EdDSA", "kid": "nope", "typ": "JWT"}),
        &payload,
        eddsa(&ed),
    );
    let report = verify_jwt(&a, &token).await;
    assert_eq!(report["outcome"], "invalid", "{report:#}");
    let token = jwt(
        json!({"alg": "EdDSA", "typ": "JWT"}),
        &payload,
        eddsa(&stranger),
    );
    let unlimited = TestApp::spawn_with(|s| {
        fetch_from_loopback(s);
        s.verify_refetch_interval_secs = 0;
    })
    .await;
    let report = verify_jwt(&unlimited, &token).await;
    assert_eq!(report["outcome"], "invalid", "{report:#}");

    // The rule binds keys only to an issuer on the set's host: a did issuer gets no JWKS.
    let did_payload = jwt_payload(&ob_credential("did:example:someone"), "did:example:someone");
    let token = jwt(
        json!({"alg": "EdDSA", "typ": "JWT"}),
        &did_payload,
        eddsa(&ed),
    );
    let report = verify_jwt(&a, &token).await;
    assert_eq!(report["outcome"], "invalid", "{report:#}");
}

fn pinned_context(file: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../shared/contexts/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[tokio::test]
async fn related_resource_digests_are_checked_against_the_pinned_contexts() {
    let app = TestApp::spawn().await;
    let key = SigningKey::from_bytes(&[61u8; 32]);
    let did = oxbadge::keys::publish::did_key_for_ed25519(&key.verifying_key());
    let vm = format!("{did}#{}", multibase(&key));
    // The digests of the published OB 3.0.3 context (the file of record in ../shared).
    let ob = pinned_context("ob-v3p0-context-3.0.3.json");
    let sri = format!("sha384-{}", STANDARD.encode(sha2::Sha384::digest(&ob)));
    let mut multihash = vec![0x12, 0x20];
    multihash.extend_from_slice(&sha2::Sha256::digest(&ob));
    let multibase_digest = format!("u{}", URL_SAFE_NO_PAD.encode(&multihash));
    let with = |resources: Value| {
        let mut vc = ob_credential(&did);
        vc["relatedResource"] = resources;
        sign(&vc, &vm, &key)
    };
    const OB: &str = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json";

    let report = verify_json(
        &app,
        &with(json!([
            {"id": OB, "digestSRI": sri, "digestMultibase": multibase_digest},
            {"id": "https://example.org/badge.png", "digestSRI": sri}
        ])),
    )
    .await;
    assert_eq!(report["outcome"], "verified", "{report:#}");
    let related = check(&report, "related_resource");
    assert_eq!(related["status"], "passed", "{report:#}");
    assert!(related["detail"].as_str().unwrap().contains("not checked"));

    // A digest that does not match the context this verifier processed the credential with.
    let mut wrong = ob.clone();
    wrong.push(b'\n');
    let wrong_sri = format!("sha384-{}", STANDARD.encode(sha2::Sha384::digest(&wrong)));
    for resource in [
        json!({"id": OB, "digestSRI": wrong_sri}),
        json!({"id": OB, "digestSRI": sri, "digestMultibase": format!("z{}", bs58::encode([0x12, 0x20].iter().chain([7u8; 32].iter()).copied().collect::<Vec<u8>>()).into_string())}),
    ] {
        let report = verify_json(&app, &with(json!([resource]))).await;
        assert_eq!(report["outcome"], "indeterminate", "{report:#}");
        let related = check(&report, "related_resource");
        assert_eq!(related["status"], "indeterminate");
        assert!(
            related["problem"]["detail"]
                .as_str()
                .unwrap()
                .contains("does not match"),
            "{report:#}"
        );
    }
    // A digest that is not one at all is malformed.
    let report = verify_json(
        &app,
        &with(json!([{"id": OB, "digestSRI": "sha384-not base64!"}])),
    )
    .await;
    assert_eq!(report["outcome"], "invalid", "{report:#}");
}

fn schema_errors(credential: &Value) -> Vec<String> {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/schemas/ob_v3p0_achievementcredential_schema_draft4.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::draft4::new(&schema).unwrap();
    validator
        .iter_errors(credential)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[tokio::test]
async fn the_verify_report_names_the_schema_a_credential_was_checked_against() {
    // vc1.1 + 1edtech: issued credentials pass the published 1EdTech schema completely, and the
    // report says what the verifier held them to.
    let app = TestApp::spawn_with(|s| {
        s.credential_profile = oxbadge::ob::CredentialProfile::Vc11;
        s.status_shape = oxbadge::ob::StatusShape::OneEdTech;
    })
    .await;
    let token = app.token("issuers:write credentials:issue").await;
    let (_, achievement) = issuer_with_achievement(&app, &token).await;
    for recipient in [
        json!({"email": "a@example.com"}),
        json!({"id": "did:example:learner"}),
    ] {
        let body = issue(
            &app,
            &token,
            json!({"achievementId": achievement, "recipient": recipient, "validUntil": "2099-01-01T00:00:00Z"}),
        )
        .await;
        let vc = &body["credential"];
        assert_eq!(schema_errors(vc), Vec::<String>::new(), "{vc:#}");
        let report = verify_json(&app, vc).await;
        assert_eq!(report["outcome"], "verified", "{report:#}");
        let schema = &report["schema"];
        assert_eq!(schema["dataModel"], "vc1.1", "{report:#}");
        let against = schema["checkedAgainst"].as_str().unwrap();
        assert!(against.contains("structural"), "{against}");
        assert!(against.contains("VC Data Model 1.1"), "{against}");
        assert_eq!(
            schema["declared"],
            json!([
                "https://purl.imsglobal.org/spec/ob/v3p0/schema/json/ob_v3p0_achievementcredential_schema.json"
            ]),
            "{report:#}"
        );
    }
    // The default VC 2.0 profile is held to the VC 2.0 form of the structural checks.
    let app = TestApp::spawn().await;
    let token = app.token("issuers:write credentials:issue").await;
    let (_, achievement) = issuer_with_achievement(&app, &token).await;
    let body = issue(
        &app,
        &token,
        json!({"achievementId": achievement, "recipient": {"id": "did:example:learner"}, "proofFormat": "jwt"}),
    )
    .await;
    let report = verify_jwt(&app, body["jwt"].as_str().unwrap()).await;
    assert_eq!(report["outcome"], "verified", "{report:#}");
    assert_eq!(report["schema"]["dataModel"], "vc2", "{report:#}");
    assert!(
        report["schema"]["checkedAgainst"]
            .as_str()
            .unwrap()
            .contains("VC Data Model 2.0")
    );
}
