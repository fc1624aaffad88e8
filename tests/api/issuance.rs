//! Issuance: achievements, signed OB 3.0 credentials (Data Integrity and VC-JWT), batches with
//! idempotency, the W3C VC API, and conformance with the OB 3.0 JSON Schema.

use std::collections::HashSet;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use ssi::{
    claims::{
        VerificationParameters,
        data_integrity::{DataIntegrity, DataIntegrityDocument, suites::EdDsaRdfc2022},
    },
    dids::{DIDResolver, DIDWeb},
};

use crate::{
    keys::create_issuer,
    support::{TestApp, assert_problem},
};

/// An issuer with one achievement; returns (issuer, achievement id).
pub async fn issuer_with_achievement(app: &TestApp, token: &str) -> (Value, String) {
    let issuer = create_issuer(
        app,
        token,
        json!({"name": "Example University", "url": "https://example.edu"}),
    )
    .await;
    let resp = app
        .http
        .post(app.url(&format!(
            "/api/v1/issuers/{}/achievements",
            issuer["id"].as_str().unwrap()
        )))
        .bearer_auth(token)
        .json(&json!({
            "name": "Teamwork",
            "description": "Collaborates effectively in a team.",
            "criteria": {"narrative": "Complete the group project with a passing peer review."},
            "achievementType": "Badge",
            "tag": ["collaboration"],
            "alignment": [{"targetName": "Teamwork", "targetUrl": "https://example.org/frameworks/teamwork"}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let ach: Value = resp.json().await.unwrap();
    (issuer, ach["id"].as_str().unwrap().to_owned())
}

/// Issues one credential; returns the 201 body.
pub async fn issue(app: &TestApp, token: &str, body: Value) -> Value {
    let resp = app
        .http
        .post(app.url("/api/v1/credentials"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 201, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// The pinned loader a third-party verifier would use (ssi's W3C contexts + the OB contexts).
fn loader() -> ssi::json_ld::ContextLoader {
    let ours = oxbadge::jsonld::ContextLoader::new();
    let map = ours
        .urls()
        .filter(|u| u.starts_with("https://purl.imsglobal.org/"))
        .filter_map(|u| ours.document(u).map(|d| (u.to_owned(), d.to_owned())))
        .collect();
    ssi::json_ld::ContextLoader::default()
        .with_context_map_from(map)
        .unwrap()
}

/// Verifies a Data Integrity credential with stock ssi, resolving the key through did:web.
pub async fn ssi_verifies(credential: &Value) -> bool {
    let vc: DataIntegrity<DataIntegrityDocument, EdDsaRdfc2022> =
        serde_json::from_value(credential.clone()).unwrap();
    let resolver = DIDWeb.into_vm_resolver();
    let params = VerificationParameters::from_resolver(&resolver).with_json_ld_loader(loader());
    vc.verify(params).await.map(|r| r.is_ok()).unwrap_or(false)
}

/// Verifies a Data Integrity credential with our spec-conformant verifier, the key resolved through
/// ssi's did:web resolver (an independent path to the published key).
pub async fn spec_verifies(credential: &Value) -> bool {
    let vm = credential["proof"]["verificationMethod"].as_str().unwrap();
    let did = vm.split('#').next().unwrap();
    let doc = DIDWeb
        .resolve(ssi::dids::DID::new(did).unwrap())
        .await
        .unwrap()
        .document
        .into_document();
    let doc = serde_json::to_value(&doc).unwrap();
    let Some(method) = doc["verificationMethod"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == vm)
    else {
        return false;
    };
    let key = oxbadge::keys::publish::parse_ed25519_multibase(
        method["publicKeyMultibase"].as_str().unwrap(),
    )
    .unwrap();
    let suite =
        oxbadge::di::EddsaRdfc2022::new(std::sync::Arc::new(oxbadge::jsonld::ContextLoader::new()));
    suite.verify(credential, &key).is_ok()
}

/// Canonical N-Quads of `document` (without its proof) according to pyld, given exactly the pinned
/// context documents our loader holds.
pub fn pyld_canonical(document: &Value) -> String {
    use std::io::Write;
    let loader = oxbadge::jsonld::ContextLoader::new();
    let contexts: serde_json::Map<String, Value> = loader
        .urls()
        .filter_map(|u| loader.document(u).map(|d| (u.to_owned(), json!(d))))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("contexts.json");
    std::fs::write(&map, Value::Object(contexts).to_string()).unwrap();
    ensure_pyld();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/pyld_canon.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .arg(&map)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is needed for the pyld cross-check (.ci/run installs pyld)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(document.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "pyld failed (pip install pyld): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Makes sure pyld can be imported, installing it with pip once per test run when it cannot (so
/// `cargo test --workspace` works on a fresh machine with Python; `.ci/run` installs it up front).
fn ensure_pyld() {
    static READY: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let importable = || {
        std::process::Command::new("python3")
            .args(["-c", "import pyld"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let ready = READY.get_or_init(|| {
        if importable() {
            return Ok(());
        }
        let install = std::process::Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "pyld",
            ])
            .output()
            .map_err(|e| format!("python3 is needed for the pyld cross-check: {e}"))?;
        if importable() {
            Ok(())
        } else {
            Err(format!(
                "pyld is not installed and `python3 -m pip install pyld` failed: {}",
                String::from_utf8_lossy(&install.stderr)
            ))
        }
    });
    if let Err(why) = ready {
        panic!("{why}");
    }
}

/// Our canonical form of a signed document (the proof left out).
fn our_canonical(document: &Value) -> String {
    let suite =
        oxbadge::di::EddsaRdfc2022::new(std::sync::Arc::new(oxbadge::jsonld::ContextLoader::new()));
    suite
        .canonical_forms(document, &document["proof"])
        .unwrap()
        .document
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
async fn issues_a_signed_ob3_credential_to_an_email_recipient() {
    let app = TestApp::spawn().await;
    let token = app
        .token("issuers:write issuers:read credentials:issue credentials:read")
        .await;
    let (issuer, achievement) = issuer_with_achievement(&app, &token).await;
    let body = issue(
        &app,
        &token,
        json!({
            "achievementId": achievement,
            "recipient": {"email": "Learner@Example.edu"},
            "result": [{"value": "A", "status": "Completed"}],
            "evidence": [{"id": "https://example.edu/portfolio/42", "name": "Project report"}]
        }),
    )
    .await;
    let vc = &body["credential"];
    assert_eq!(vc["@context"][0], "https://www.w3.org/ns/credentials/v2");
    assert_eq!(
        vc["@context"][1],
        "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
    );
    assert_eq!(
        vc["type"],
        json!(["VerifiableCredential", "OpenBadgeCredential"])
    );
    assert!(vc["id"].as_str().unwrap().starts_with("urn:uuid:"));
    assert_eq!(vc["issuer"]["id"], issuer["issuerId"]);
    assert_eq!(vc["issuer"]["type"], json!(["Profile"]));
    assert!(vc["validFrom"].as_str().unwrap().ends_with('Z'));
    let subject = &vc["credentialSubject"];
    assert_eq!(subject["type"], json!(["AchievementSubject"]));
    assert!(subject.get("id").is_none());
    let identity = &subject["identifier"][0];
    assert_eq!(identity["identityType"], "emailAddress");
    assert_eq!(identity["hashed"], true);
    let salt = identity["salt"].as_str().unwrap();
    assert_eq!(
        identity["identityHash"],
        oxbadge::ob::identity_hash("learner@example.edu", salt)
    );
    assert!(
        !vc.to_string().contains("Learner@Example.edu"),
        "no plaintext email"
    );
    assert_eq!(subject["achievement"]["name"], "Teamwork");
    assert_eq!(subject["achievement"]["type"], json!(["Achievement"]));
    assert_eq!(subject["result"][0]["type"], json!(["Result"]));
    assert_eq!(vc["evidence"][0]["type"], json!(["Evidence"]));
    assert_eq!(vc["credentialStatus"]["type"], "1EdTechRevocationList");
    let proof = &vc["proof"];
    assert_eq!(proof["type"], "DataIntegrityProof");
    assert_eq!(proof["cryptosuite"], "eddsa-rdfc-2022");
    assert_eq!(proof["proofPurpose"], "assertionMethod");
    assert!(
        proof["verificationMethod"]
            .as_str()
            .unwrap()
            .starts_with(issuer["issuerId"].as_str().unwrap())
    );
    // A second JSON-LD implementation (pyld) canonicalizes it exactly as we signed it, and the
    // proof verifies against the key the DID document publishes.
    assert_eq!(our_canonical(vc), pyld_canonical(vc));
    assert!(spec_verifies(vc).await, "verifies through did:web");
    let mut forged = vc.clone();
    forged["credentialSubject"]["achievement"]["name"] = json!("Teamwork!");
    assert!(!spec_verifies(&forged).await);

    // Stored durably: the same document comes back.
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
    assert_eq!(&stored["credential"], vc);
    assert_eq!(stored["revoked"], false);
    let page: Value = app
        .http
        .get(app.url("/api/v1/credentials"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 1);
}

#[tokio::test]
async fn issued_credentials_follow_the_ob3_json_schema() {
    // VC 2.0 (default): the 1EdTech schema predates VC 2.0 and requires `issuanceDate`, which the
    // VC 2.0 and OB 3.0.3 contexts do not define (strict JSON-LD refuses it). Everything else
    // must validate.
    let app = TestApp::spawn().await;
    let token = app.token("issuers:write credentials:issue").await;
    let (_, achievement) = issuer_with_achievement(&app, &token).await;
    for recipient in [
        json!({"email": "a@example.com"}),
        json!({"id": "did:example:learner"}),
    ] {
        let body = issue(
            &app,
            &token,
            json!({"achievementId": achievement, "recipient": recipient}),
        )
        .await;
        let errors = schema_errors(&body["credential"]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("issuanceDate"), "{errors:?}");
    }

    // VC 1.1 profile: validates completely, and still verifies.
    let app =
        TestApp::spawn_with(|s| s.credential_profile = oxbadge::ob::CredentialProfile::Vc11).await;
    let token = app.token("issuers:write credentials:issue").await;
    let (_, achievement) = issuer_with_achievement(&app, &token).await;
    let body = issue(
        &app,
        &token,
        json!({"achievementId": achievement, "recipient": {"email": "a@example.com"}, "validUntil": "2099-01-01T00:00:00Z"}),
    )
    .await;
    let vc = &body["credential"];
    assert_eq!(vc["@context"][0], "https://www.w3.org/2018/credentials/v1");
    assert!(vc.get("issuanceDate").is_some() && vc.get("expirationDate").is_some());
    assert_eq!(schema_errors(vc), Vec::<String>::new());
    assert_eq!(our_canonical(vc), pyld_canonical(vc));
    assert!(spec_verifies(vc).await);
}

#[tokio::test]
async fn vc_jwt_format() {
    let app = TestApp::spawn().await;
    let token = app.token("issuers:write credentials:issue").await;
    let (issuer, achievement) = issuer_with_achievement(&app, &token).await;
    let body = issue(
        &app,
        &token,
        json!({
            "achievementId": achievement,
            "recipient": {"id": "did:example:learner"},
            "validUntil": "2099-01-01T00:00:00Z",
            "proofFormat": "jwt"
        }),
    )
    .await;
    let jws = body["jwt"].as_str().unwrap();
    let parts: Vec<&str> = jws.split('.').collect();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header.as_object().unwrap().len(), 3);
    assert_eq!(payload["iss"], issuer["issuerId"]);
    assert_eq!(payload["jti"], payload["id"]);
    assert_eq!(payload["sub"], "did:example:learner");
    assert_eq!(payload["exp"], 4_070_908_800i64);
    assert!(payload.get("proof").is_none());
    // The signature verifies with the key the DID document publishes under `kid`.
    let did = ssi::dids::DID::new(issuer["issuerId"].as_str().unwrap()).unwrap();
    let doc = DIDWeb.resolve(did).await.unwrap().document.into_document();
    let doc = serde_json::to_value(&doc).unwrap();
    let vm = doc["verificationMethod"]
        .as_array()
        .unwrap()
        .iter()
        .find(|vm| vm["id"] == header["kid"])
        .unwrap();
    let key =
        oxbadge::keys::publish::parse_ed25519_multibase(vm["publicKeyMultibase"].as_str().unwrap())
            .unwrap();
    let sig =
        ed25519_dalek::Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
    use ed25519_dalek::Verifier;
    key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .unwrap();
}

#[tokio::test]
async fn bad_issuance_input_is_4xx_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let token = app
        .token("issuers:write credentials:issue credentials:read")
        .await;
    let (issuer, achievement) = issuer_with_achievement(&app, &token).await;
    let cases = [
        (json!({"achievementId": achievement, "recipient": {}}), 422),
        (
            json!({"achievementId": achievement, "recipient": {"email": "x@y.z", "id": "did:a:b"}}),
            422,
        ),
        (
            json!({"achievementId": achievement, "recipient": {"email": "not-an-email"}}),
            422,
        ),
        (
            json!({"achievementId": achievement, "recipient": {"id": "not a uri"}}),
            422,
        ),
        (
            json!({"achievementId": achievement, "recipient": {"id": "did:a:b"}, "proofFormat": "ldp"}),
            422,
        ),
        (
            json!({"achievementId": achievement, "recipient": {"id": "did:a:b"}, "validUntil": "2001-01-01T00:00:00Z"}),
            422,
        ),
        (
            json!({"achievementId": achievement, "recipient": {"id": "did:a:b"}, "result": [{"status": "Great"}]}),
            422,
        ),
        (
            json!({"achievementId": "nope", "recipient": {"id": "did:a:b"}}),
            404,
        ),
        (json!({"recipient": {"id": "did:a:b"}}), 400),
    ];
    for (body, status) in cases {
        let resp = app
            .http
            .post(app.url("/api/v1/credentials"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{body}");
    }
    // Achievements are validated too.
    let resp = app
        .http
        .post(app.url(&format!(
            "/api/v1/issuers/{}/achievements",
            issuer["id"].as_str().unwrap()
        )))
        .bearer_auth(&token)
        .json(&json!({"name": "X", "description": "Y", "criteria": {}}))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 422, "invalid_achievement").await;
    let page: Value = app
        .http
        .get(app.url("/api/v1/credentials"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 0);
}

#[tokio::test]
async fn batches_report_per_item_and_never_issue_twice() {
    let app = TestApp::spawn().await;
    let token = app
        .token("issuers:write credentials:issue credentials:read")
        .await;
    let (_, achievement) = issuer_with_achievement(&app, &token).await;
    let mut recipients: Vec<Value> = (0..30)
        .map(|i| json!({"email": format!("learner{i}@example.edu")}))
        .collect();
    recipients[7] = json!({"email": "broken"});
    let body =
        json!({"achievementId": achievement, "recipients": recipients, "proofFormat": "jwt"});
    let send = |body: Value, key: &'static str| {
        let app = &app;
        let token = token.clone();
        async move {
            app.http
                .post(app.url("/api/v1/credentials/batch"))
                .bearer_auth(&token)
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let first = send(body.clone(), "batch-1").await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["issued"], 29);
    assert_eq!(first["failed"], 1);
    assert_eq!(first["results"][7]["index"], 7);
    assert_eq!(first["results"][7]["error"]["status"], 422);
    assert!(first["results"][8]["jwt"].is_string());

    let retry = send(body.clone(), "batch-1").await;
    assert_eq!(retry.status(), 200, "a retry replays");
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry, first);

    let mut other = body.clone();
    other["recipients"][0] = json!({"email": "someone.else@example.edu"});
    let reused = send(other, "batch-1").await;
    assert_problem(reused, 422, "idempotency_key_reused").await;

    let page: Value = app
        .http
        .get(app.url("/api/v1/credentials?limit=200"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 29, "the retry issued nothing");
    let ids: HashSet<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 29);
}

#[tokio::test]
async fn vc_api_issue() {
    let app = TestApp::spawn().await;
    let token = app.token("issuers:write credentials:issue").await;
    let issuer = create_issuer(&app, &token, json!({"name": "VC API issuer"})).await;
    let did = issuer["issuerId"].as_str().unwrap();
    let post = |body: Value| {
        let app = &app;
        let token = token.clone();
        async move {
            app.http
                .post(app.url("/credentials/issue"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let v2 = json!({
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "type": ["VerifiableCredential"],
        "issuer": did,
        "credentialSubject": {"id": "did:example:subject"}
    });
    let resp = post(json!({"credential": v2})).await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    let vc = &body["verifiableCredential"];
    assert_eq!(vc["proof"]["cryptosuite"], "eddsa-rdfc-2022");
    assert!(vc["id"].is_string() && vc["validFrom"].is_string());
    assert!(ssi_verifies(vc).await);

    let v11 = json!({
        "@context": ["https://www.w3.org/2018/credentials/v1"],
        "type": ["VerifiableCredential"],
        "issuer": {"id": did},
        "issuanceDate": "2026-01-01T00:00:00Z",
        "credentialSubject": {"id": "did:example:subject"}
    });
    let resp = post(json!({"credential": v11, "options": {}})).await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["verifiableCredential"]["@context"]
            .as_array()
            .unwrap()
            .contains(&json!("https://w3id.org/security/data-integrity/v2"))
    );
    assert!(ssi_verifies(&body["verifiableCredential"]).await);

    // Unknown remote context: refused (never fetched), naming it.
    let mut unknown = v2.clone();
    unknown["@context"] = json!([
        "https://www.w3.org/ns/credentials/v2",
        "https://evil.example/ctx.json"
    ]);
    let resp = post(json!({"credential": unknown})).await;
    let problem = assert_problem(resp, 400, "invalid_credential").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("evil.example"),
        "{problem}"
    );
    // Undefined term: refused.
    let mut undefined = v2.clone();
    undefined["credentialSubject"]["favouriteColour"] = json!("blue");
    let resp = post(json!({"credential": undefined})).await;
    let problem = assert_problem(resp, 400, "invalid_credential").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("favouriteColour"),
        "{problem}"
    );
    // A credential as a JSON string is malformed.
    let resp = post(json!({"credential": v2.to_string()})).await;
    assert_eq!(resp.status(), 400);
    // Not our issuer.
    let mut foreign = v2.clone();
    foreign["issuer"] = json!("did:web:elsewhere.example");
    let resp = post(json!({"credential": foreign})).await;
    assert_problem(resp, 422, "unknown_issuer").await;
}

#[tokio::test]
async fn baked_png_and_svg_round_trip() {
    use oxbadge::issue::bake::{Embedded, extract_png, extract_svg};
    let app = TestApp::spawn().await;
    let token = app
        .token("issuers:write credentials:issue credentials:read")
        .await;
    let (issuer, _) = issuer_with_achievement(&app, &token).await;
    // An achievement whose image is an SVG data URI: the baked SVG is that image.
    let own_svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\"><rect id=\"mine\" width=\"10\" height=\"10\"/></svg>";
    let image = format!(
        "data:image/svg+xml,{}",
        percent_encoding::utf8_percent_encode(own_svg, percent_encoding::NON_ALPHANUMERIC)
    );
    let resp = app
        .http
        .post(app.url(&format!(
            "/api/v1/issuers/{}/achievements",
            issuer["id"].as_str().unwrap()
        )))
        .bearer_auth(&token)
        .json(&json!({"name": "Drawn", "description": "d", "criteria": {"narrative": "n"}, "image": image}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let achievement: Value = resp.json().await.unwrap();
    let di = issue(
        &app,
        &token,
        json!({"achievementId": achievement["id"], "recipient": {"email": "a@example.com"}}),
    )
    .await;
    let jwt = issue(
        &app,
        &token,
        json!({"achievementId": achievement["id"], "recipient": {"id": "did:example:b"}, "proofFormat": "jwt"}),
    )
    .await;
    let get = |path: String| {
        let app = &app;
        let token = token.clone();
        async move {
            let resp = app
                .http
                .get(app.url(&path))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{path}");
            let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
            (ct, resp.bytes().await.unwrap().to_vec())
        }
    };
    let (ct, png) = get(format!(
        "/api/v1/credentials/{}/baked.png",
        di["id"].as_str().unwrap()
    ))
    .await;
    assert_eq!(ct, "image/png");
    let Embedded::Json(text) = extract_png(&png).unwrap() else {
        panic!("JSON expected")
    };
    let extracted: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(extracted, di["credential"]);
    assert!(
        spec_verifies(&extracted).await,
        "the baked credential still verifies"
    );

    let (ct, svg) = get(format!(
        "/api/v1/credentials/{}/baked.svg",
        di["id"].as_str().unwrap()
    ))
    .await;
    assert_eq!(ct, "image/svg+xml");
    let svg = String::from_utf8(svg).unwrap();
    assert!(
        svg.contains("id=\"mine\""),
        "the achievement's own image is used"
    );
    let Embedded::Json(text) = extract_svg(&svg).unwrap() else {
        panic!("JSON expected")
    };
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        di["credential"]
    );

    let (_, svg) = get(format!(
        "/api/v1/credentials/{}/baked.svg",
        jwt["id"].as_str().unwrap()
    ))
    .await;
    assert_eq!(
        extract_svg(&String::from_utf8(svg).unwrap()).unwrap(),
        Embedded::Jws(jwt["jwt"].as_str().unwrap().to_owned())
    );
    let (_, png) = get(format!(
        "/api/v1/credentials/{}/baked.png",
        jwt["id"].as_str().unwrap()
    ))
    .await;
    assert_eq!(
        extract_png(&png).unwrap(),
        Embedded::Jws(jwt["jwt"].as_str().unwrap().to_owned())
    );
}

#[tokio::test]
async fn a_stale_pending_idempotency_key_is_taken_over() {
    use sea_orm::{ActiveModelTrait, Set};
    let app = TestApp::spawn().await;
    let token = app.token("issuers:write credentials:issue").await;
    let (_, achievement) = issuer_with_achievement(&app, &token).await;
    let body = json!({"achievementId": achievement, "recipients": [{"id": "did:example:a"}], "proofFormat": "jwt"});
    let send = || {
        app.http
            .post(app.url("/api/v1/credentials/batch"))
            .bearer_auth(&token)
            .header("Idempotency-Key", "crashed-run")
            .json(&body)
            .send()
    };
    // First attempt claims the key; simulate a crash by leaving it pending.
    let first = send().await.unwrap();
    assert_eq!(first.status(), 201);
    let row = {
        use sea_orm::EntityTrait;
        oxbadge::db::idempotency_key::Entity::find()
            .one(app.state.db())
            .await
            .unwrap()
            .unwrap()
    };
    let mut pending: oxbadge::db::idempotency_key::ActiveModel = row.into();
    pending.response = Set(String::new());
    pending.created_at = Set(chrono::Utc::now() - chrono::Duration::minutes(5));
    let pending = pending.update(app.state.db()).await.unwrap();
    // Recently pending: still in progress.
    assert_problem(send().await.unwrap(), 409, "idempotency_in_progress").await;
    // Pending for longer than a batch can take: a retry takes it over.
    let mut stale: oxbadge::db::idempotency_key::ActiveModel = pending.into();
    stale.created_at = Set(chrono::Utc::now() - chrono::Duration::minutes(30));
    stale.update(app.state.db()).await.unwrap();
    let retry = send().await.unwrap();
    assert_eq!(retry.status(), 201);
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry["issued"], 1);
    assert_eq!(send().await.unwrap().status(), 200, "now replayed");
}

#[tokio::test]
async fn concurrent_single_issuances_keep_their_own_results() {
    // Concurrent single issuances are stored in shared transactions (group commit); each request
    // must still get its own answer, and a failing one must not take the others down.
    let app = TestApp::spawn().await;
    let token = app
        .token("issuers:write credentials:issue credentials:read")
        .await;
    let (_, achievement) = issuer_with_achievement(&app, &token).await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (http, url, token) = (
            app.http.clone(),
            app.url("/api/v1/credentials"),
            token.clone(),
        );
        // One request names an achievement that does not exist.
        let achievement = if i == 17 {
            "no-such-achievement".to_owned()
        } else {
            achievement.clone()
        };
        tasks.push(tokio::spawn(async move {
            let resp = http
                .post(url)
                .bearer_auth(token)
                .json(&json!({"achievementId": achievement, "recipient": {"email": format!("learner{i}@example.edu")}}))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap();
            (i, status, body)
        }));
    }
    let mut issued = Vec::new();
    for task in tasks {
        let (i, status, body) = task.await.unwrap();
        if i == 17 {
            assert_eq!(status, 404, "{body}");
            assert_eq!(body["code"], "not_found", "{body}");
        } else {
            assert_eq!(status, 201, "{body}");
            issued.push(body);
        }
    }
    assert_eq!(issued.len(), 49);
    let ids: HashSet<&str> = issued.iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 49, "every request got its own credential");
    for body in &issued {
        let resp = app
            .http
            .get(app.url(&format!(
                "/api/v1/credentials/{}",
                body["id"].as_str().unwrap()
            )))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let stored: Value = resp.json().await.unwrap();
        assert_eq!(
            stored["credential"], body["credential"],
            "what was answered is stored"
        );
    }
    let page: Value = app
        .http
        .get(app.url("/api/v1/credentials?limit=1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 49, "nothing else was stored");
}
