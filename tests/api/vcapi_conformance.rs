//! The W3C VC API issuer against what the suites and independent implementations expect (issue
//! 11): the data model rules on issuance, status entries on VC API credentials, `eddsa-jcs-2022`
//! (the W3C vectors, and JCS cross-checked with Python `rfc8785`), and VC-JOSE-COSE `vc+jwt`
//! enveloped credentials (cross-checked with Python `joserfc`).

use std::io::{Read, Write};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signer, SigningKey};
use oxbadge::di::{Cryptosuite, EddsaRdfc2022, ProofOptions, ProofPurpose, eddsa_jcs_2022, jcs};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    issuance::issuer_with_achievement,
    keys::create_issuer,
    support::{TestApp, assert_problem},
};

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vectors/vc-di-eddsa");

fn vector(path: &str) -> String {
    std::fs::read_to_string(format!("{VECTORS}/{path}"))
        .unwrap_or_else(|e| panic!("reading vector {path}: {e}"))
}

fn vector_json(path: &str) -> Value {
    serde_json::from_str(&vector(path)).unwrap()
}

fn w3c_key() -> SigningKey {
    let pair = vector_json("keyPair.json");
    let bytes = bs58::decode(&pair["privateKeyMultibase"].as_str().unwrap()[1..])
        .into_vec()
        .unwrap();
    assert_eq!(&bytes[..2], &[0x80, 0x26], "ed25519-priv multicodec prefix");
    SigningKey::from_bytes(&bytes[2..].try_into().unwrap())
}

/// Runs `code` with Python 3, installing `package` with pip first when `import` fails (so the
/// suite works on a fresh machine with Python; `.ci/run` installs both packages up front).
fn python(package: &str, import: &str, code: &str, args: &[&str], stdin: &str) -> String {
    let importable = || {
        std::process::Command::new("python3")
            .args(["-c", &format!("import {import}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !importable() {
        let _ = std::process::Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                package,
            ])
            .output();
        assert!(
            importable(),
            "{package} is not installed and `python3 -m pip install {package}` failed"
        );
    }
    let mut child = std::process::Command::new("python3")
        .arg("-c")
        .arg(code)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is needed for the cross-checks");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python ({package}) failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// JCS by the independent Python `rfc8785` package (Trail of Bits).
fn rfc8785(value: &Value) -> String {
    python(
        "rfc8785",
        "rfc8785",
        "import sys, json, rfc8785\nsys.stdout.buffer.write(rfc8785.dumps(json.loads(sys.stdin.read())))",
        &[],
        &value.to_string(),
    )
}

/// Verifies a compact JWS with Python `joserfc` against `jwk`; returns `{header, payload}`.
fn joserfc_verify(jws: &str, jwk: &Value, alg: &str) -> Value {
    let out = python(
        "joserfc",
        "joserfc",
        r#"
import sys, json
from joserfc import jws
from joserfc.jwk import OKPKey, ECKey
jwk = json.loads(sys.argv[1])
key = OKPKey.import_key(jwk) if jwk["kty"] == "OKP" else ECKey.import_key(jwk)
obj = jws.deserialize_compact(sys.stdin.read().strip(), key, algorithms=[sys.argv[2]])
print(json.dumps({"header": obj.headers(), "payload": json.loads(obj.payload)}))
"#,
        &[&jwk.to_string(), alg],
        jws,
    );
    serde_json::from_str(&out).unwrap()
}

fn hash_data(proof_configuration: &str, document: &str) -> Vec<u8> {
    let mut hash = Sha256::digest(proof_configuration.as_bytes()).to_vec();
    hash.extend_from_slice(&Sha256::digest(document.as_bytes()));
    hash
}

#[test]
fn eddsa_jcs_2022_reproduces_the_w3c_vectors_byte_for_byte() {
    let unsigned = vector_json("unsigned.json");
    let config = vector_json("eddsa-jcs-2022/proofConfigJCS.json");
    let forms = eddsa_jcs_2022::canonical_forms(&unsigned, &config).unwrap();
    assert_eq!(forms.document, vector("eddsa-jcs-2022/canonDocJCS.txt"));
    assert_eq!(
        forms.proof_configuration,
        vector("eddsa-jcs-2022/proofCanonJCS.txt")
    );
    assert_eq!(
        hex::encode(Sha256::digest(forms.document.as_bytes())),
        vector("eddsa-jcs-2022/docHashJCS.txt").trim()
    );
    assert_eq!(
        hex::encode(Sha256::digest(forms.proof_configuration.as_bytes())),
        vector("eddsa-jcs-2022/proofHashJCS.txt").trim()
    );
    assert_eq!(
        hex::encode(forms.hash_data()),
        vector("eddsa-jcs-2022/combinedHashJCS.txt").trim()
    );
    // The independent implementation agrees on both forms.
    assert_eq!(rfc8785(&unsigned), forms.document);
    assert_eq!(rfc8785(&config), forms.proof_configuration);

    let key = w3c_key();
    assert_eq!(
        hex::encode(key.sign(&forms.hash_data()).to_bytes()),
        vector("eddsa-jcs-2022/sigHexJCS.txt").trim()
    );
    let signer = EddsaRdfc2022::default();
    let signed = signer
        .sign_with(
            &unsigned,
            ProofOptions {
                verification_method: config["verificationMethod"].as_str().unwrap().to_owned(),
                created: config["created"]
                    .as_str()
                    .unwrap()
                    .parse::<DateTime<Utc>>()
                    .unwrap(),
                proof_purpose: ProofPurpose::AssertionMethod,
                challenge: None,
                domain: None,
            },
            &key,
            Cryptosuite::EddsaJcs2022,
        )
        .unwrap();
    assert_eq!(
        signed["proof"]["proofValue"].as_str().unwrap(),
        vector("eddsa-jcs-2022/sigBTC58JCS.txt").trim()
    );
    assert_eq!(signed, vector_json("eddsa-jcs-2022/signedJCS.json"));

    // The published signed document verifies; a one-character change or a proof whose contexts
    // the document does not start with does not.
    let public = key.verifying_key();
    let published = vector_json("eddsa-jcs-2022/signedJCS.json");
    signer.verify_proof(&published, 0, &public).unwrap();
    let mut altered = published.clone();
    altered["credentialSubject"]["alumniOf"] = json!("The School of Examplez");
    assert!(signer.verify_proof(&altered, 0, &public).is_err());
    let mut reordered = published.clone();
    reordered["@context"] = json!([
        "https://www.w3.org/ns/credentials/examples/v2",
        "https://www.w3.org/ns/credentials/v2"
    ]);
    assert!(signer.verify_proof(&reordered, 0, &public).is_err());
}

#[test]
fn jcs_agrees_with_rfc8785_on_awkward_documents() {
    let cases = [
        // RFC 8785 §3.2.2 and §3.2.3 examples.
        json!({"numbers": [333_333_333.333_333_3, 1e30, 4.5, 2e-3, 1e-27], "string": "\u{20ac}$\u{f}\nA'B\"\\\\\"/", "literals": [null, true, false]}),
        json!({"\u{20ac}": 1, "\r": 2, "\u{fb33}": 3, "1": 4, "\u{1f600}": 5, "\u{80}": 6, "\u{f6}": 7}),
        json!({"a": [1e21, 1e20, 123_456_789_012_345_680_000.0, 0.1, -0.0, 5e-324, 1.797_693_134_862_315_7e308]}),
        json!({"nested": {"z": {"\u{e000}": [], "\u{10000}": {}}, "y": "tab\there \u{7f} \u{2028}"}}),
        json!([
            9_007_199_254_740_991_i64,
            -9_007_199_254_740_991_i64,
            0,
            -1,
            1.5e-7,
            12.0
        ]),
        vector_json("eddsa-jcs-2022/signedJCS.json"),
    ];
    for case in cases {
        assert_eq!(jcs::canonicalize(&case).unwrap(), rfc8785(&case), "{case}");
    }
}

/// Posts to a VC API path with a bearer token.
async fn post(app: &TestApp, token: &str, path: &str, body: &Value) -> reqwest::Response {
    app.http
        .post(app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn issued(app: &TestApp, token: &str, body: Value) -> Value {
    let resp = post(app, token, "/credentials/issue", &body).await;
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 201, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    body["verifiableCredential"].clone()
}

/// `POST /credentials/verify`: (HTTP status, result).
async fn vc_verify(app: &TestApp, credential: &Value) -> (u16, Value) {
    let resp = app
        .http
        .post(app.url("/credentials/verify"))
        .json(&json!({"verifiableCredential": credential}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn stored_total(app: &TestApp, token: &str) -> u64 {
    let page: Value = app
        .http
        .get(app.url("/api/v1/credentials"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["total"].as_u64().unwrap()
}

fn plain(issuer: &str) -> Value {
    json!({
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "type": ["VerifiableCredential"],
        "issuer": issuer,
        "credentialSubject": {"id": "did:example:subject"}
    })
}

#[tokio::test]
async fn the_issuer_refuses_what_the_data_model_forbids_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let token = app
        .token("issuers:write credentials:issue credentials:read")
        .await;
    let issuer = create_issuer(&app, &token, json!({"name": "VC API issuer"})).await;
    let did = issuer["issuerId"].as_str().unwrap().to_owned();
    let base = plain(&did);
    let with = |member: &str, value: Value| {
        let mut vc = base.clone();
        vc[member] = value;
        vc
    };
    let mut cases: Vec<(&str, Value, &str)> = vec![
        (
            "type without VerifiableCredential",
            with("type", json!(["ExampleCredential"])),
            "type",
        ),
        (
            "validFrom without a time zone",
            with("validFrom", json!("2026-01-01T00:00:00")),
            "validFrom",
        ),
        (
            "validFrom as a date",
            with("validFrom", json!("2026-01-01")),
            "validFrom",
        ),
        (
            "validUntil as a number",
            with("validUntil", json!(1_767_225_600)),
            "validUntil",
        ),
        (
            "credentialStatus without type",
            with(
                "credentialStatus",
                json!({"id": "https://status.example/1#5"}),
            ),
            "credentialStatus.type",
        ),
        (
            "termsOfUse without type",
            with("termsOfUse", json!([{"id": "https://example.org/tou"}])),
            "termsOfUse[0].type",
        ),
        (
            "evidence without type",
            with("evidence", json!({"id": "https://example.org/evidence"})),
            "evidence.type",
        ),
        (
            "refreshService without type",
            with(
                "refreshService",
                json!({"id": "https://example.org/refresh"}),
            ),
            "refreshService.type",
        ),
        (
            "credentialSchema without type",
            with(
                "credentialSchema",
                json!({"id": "https://example.org/schema.json"}),
            ),
            "credentialSchema.type",
        ),
        (
            "relatedResource as a string",
            with("relatedResource", json!(["https://example.org/a"])),
            "relatedResource[0]",
        ),
        (
            "relatedResource without id",
            with("relatedResource", json!([{"digestSRI": "sha384-abc"}])),
            "relatedResource[0].id",
        ),
        (
            "relatedResource repeating an id",
            with(
                "relatedResource",
                json!([
                    {"id": "https://example.org/a", "digestSRI": "sha384-abc"},
                    {"id": "https://example.org/a", "digestSRI": "sha384-abc"}
                ]),
            ),
            "relatedResource[1].id",
        ),
        (
            "relatedResource without a digest",
            with("relatedResource", json!([{"id": "https://example.org/a"}])),
            "relatedResource[0]",
        ),
        (
            "a bitstring entry with a non-integer index",
            with(
                "credentialStatus",
                json!({
                    "id": "https://status.example/lists/1#x", "type": "BitstringStatusListEntry",
                    "statusPurpose": "revocation", "statusListIndex": "x1",
                    "statusListCredential": "https://status.example/lists/1"
                }),
            ),
            "credentialStatus.statusListIndex",
        ),
    ];
    for subject in [
        json!({}),
        json!(null),
        json!(true),
        json!(42),
        json!([]),
        json!("did:example:subject"),
    ] {
        cases.push((
            "a credentialSubject that is not a subject",
            with("credentialSubject", subject),
            "credentialSubject",
        ));
    }
    let mut missing = base.clone();
    missing.as_object_mut().unwrap().remove("credentialSubject");
    cases.push(("no credentialSubject", missing, "credentialSubject"));

    for (what, credential, member) in cases {
        let resp = post(
            &app,
            &token,
            "/credentials/issue",
            &json!({"credential": credential}),
        )
        .await;
        let problem = assert_problem(resp, 400, "invalid_credential").await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.starts_with(member),
            "{what}: the problem names {member}: {detail}"
        );
    }
    assert_eq!(stored_total(&app, &token).await, 0, "nothing was stored");
    // Still issues what the data model allows.
    let vc = issued(&app, &token, json!({"credential": base})).await;
    assert_eq!(vc_verify(&app, &vc).await.0, 200);
}

fn bit(encoded: &str, index: usize) -> bool {
    let compressed = URL_SAFE_NO_PAD.decode(&encoded[1..]).unwrap();
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(compressed.as_slice())
        .read_to_end(&mut bytes)
        .unwrap();
    bytes[index / 8] & (0x80 >> (index % 8)) != 0
}

/// Whether the status bit of `entry` is set in the list it names, as the list credential says.
async fn list_bit(app: &TestApp, entry: &Value) -> bool {
    let url = entry["statusListCredential"].as_str().unwrap();
    let path = format!("/status/{}", url.split_once("/status/").unwrap().1);
    let list: Value = app
        .http
        .get(app.url(&path))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["credentialSubject"]["statusPurpose"],
        entry["statusPurpose"]
    );
    let index: usize = entry["statusListIndex"].as_str().unwrap().parse().unwrap();
    bit(
        list["credentialSubject"]["encodedList"].as_str().unwrap(),
        index,
    )
}

async fn set_status(app: &TestApp, token: &str, vc: &Value, purpose: &str, status: bool) {
    let resp = post(
        app,
        token,
        "/credentials/status",
        &json!({"credentialId": vc["id"], "credentialStatus": [{"type": "BitstringStatusListEntry", "statusPurpose": purpose, "status": status}]}),
    )
    .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

#[tokio::test]
async fn status_options_allocate_entries_that_status_changes_reach() {
    let app = TestApp::spawn().await;
    let token = app
        .token("issuers:write credentials:issue credentials:read credentials:status")
        .await;
    let issuer = create_issuer(&app, &token, json!({"name": "VC API issuer"})).await;
    let did = issuer["issuerId"].as_str().unwrap().to_owned();

    // Both purposes, as the VC API suites ask for them.
    let both = issued(
        &app,
        &token,
        json!({"credential": plain(&did), "options": {"credentialStatus": [
            {"type": "BitstringStatusListEntry", "statusPurpose": "revocation"},
            {"type": "BitstringStatusListEntry", "statusPurpose": "suspension"}
        ]}}),
    )
    .await;
    let entries = both["credentialStatus"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 2, "{both:#}");
    assert_eq!(entries[0]["statusPurpose"], "revocation");
    assert_eq!(entries[1]["statusPurpose"], "suspension");
    for entry in &entries {
        assert_eq!(entry["type"], "BitstringStatusListEntry");
        let url = entry["statusListCredential"].as_str().unwrap();
        assert!(
            url.starts_with(
                &app.state
                    .public_url()
                    .as_str()
                    .trim_end_matches('/')
                    .to_string()
            ),
            "{url}"
        );
        assert!(!list_bit(&app, entry).await);
    }
    let (status, result) = vc_verify(&app, &both).await;
    assert_eq!(status, 200, "{result:#}");

    set_status(&app, &token, &both, "suspension", true).await;
    assert!(list_bit(&app, &entries[1]).await, "the list reflects it");
    assert!(!list_bit(&app, &entries[0]).await);
    let (status, result) = vc_verify(&app, &both).await;
    assert_eq!((status, &result["outcome"]), (422, &json!("suspended")));
    set_status(&app, &token, &both, "suspension", false).await;
    assert_eq!(vc_verify(&app, &both).await.0, 200);
    set_status(&app, &token, &both, "revocation", true).await;
    assert!(list_bit(&app, &entries[0]).await);
    assert_eq!(vc_verify(&app, &both).await.1["outcome"], "revoked");

    // One purpose: one entry (an object).
    let suspendable = issued(
        &app,
        &token,
        json!({"credential": plain(&did), "options": {"credentialStatus": [
            {"type": "BitstringStatusListEntry", "statusPurpose": "suspension"}
        ]}}),
    )
    .await;
    assert_eq!(
        suspendable["credentialStatus"]["statusPurpose"],
        "suspension"
    );
    set_status(&app, &token, &suspendable, "suspension", true).await;
    assert_eq!(
        vc_verify(&app, &suspendable).await.1["outcome"],
        "suspended"
    );

    // Options say nothing: the server's shape (1EdTech revocation list by default).
    let default = issued(&app, &token, json!({"credential": plain(&did)})).await;
    assert_eq!(
        default["credentialStatus"]["type"], "1EdTechRevocationList",
        "{default:#}"
    );
    assert_eq!(vc_verify(&app, &default).await.0, 200);
    set_status(&app, &token, &default, "revocation", true).await;
    assert_eq!(vc_verify(&app, &default).await.1["outcome"], "revoked");

    // Refused: a bad option, a credentialStatus in both places, a client entry in our lists.
    for options in [
        json!({"credentialStatus": [{"type": "StatusList2021Entry", "statusPurpose": "revocation"}]}),
        json!({"credentialStatus": [{"type": "BitstringStatusListEntry", "statusPurpose": "message"}]}),
        json!({"credentialStatus": [
            {"type": "BitstringStatusListEntry", "statusPurpose": "revocation"},
            {"type": "BitstringStatusListEntry", "statusPurpose": "revocation"}
        ]}),
        json!({"credentialStatus": []}),
    ] {
        let resp = post(
            &app,
            &token,
            "/credentials/issue",
            &json!({"credential": plain(&did), "options": options}),
        )
        .await;
        assert_problem(resp, 400, "invalid_options").await;
    }
    let mut copied = plain(&did);
    copied["credentialStatus"] = entries[1].clone();
    let resp = post(
        &app,
        &token,
        "/credentials/issue",
        &json!({"credential": copied}),
    )
    .await;
    assert_problem(resp, 400, "invalid_credential_status").await;
    let mut foreign = plain(&did);
    foreign["credentialStatus"] = json!({
        "id": "https://status.example/lists/1#7", "type": "BitstringStatusListEntry",
        "statusPurpose": "revocation", "statusListIndex": "7",
        "statusListCredential": "https://status.example/lists/1"
    });
    let resp = post(
        &app,
        &token,
        "/credentials/issue",
        &json!({"credential": foreign.clone(), "options": {"credentialStatus": [{"type": "BitstringStatusListEntry", "statusPurpose": "revocation"}]}}),
    )
    .await;
    assert_problem(resp, 400, "invalid_credential_status").await;
    // A valid entry of another status service is kept as it is.
    let kept = issued(&app, &token, json!({"credential": foreign.clone()})).await;
    assert_eq!(kept["credentialStatus"], foreign["credentialStatus"]);
    assert_eq!(stored_total(&app, &token).await, 4);
}

#[tokio::test]
async fn a_bitstring_server_shape_applies_when_options_say_nothing() {
    let app = TestApp::spawn_with(|s| {
        s.status_shape = oxbadge::ob::StatusShape::BitstringBoth;
    })
    .await;
    let token = app
        .token("issuers:write credentials:issue credentials:read credentials:status")
        .await;
    let issuer = create_issuer(&app, &token, json!({"name": "VC API issuer"})).await;
    let did = issuer["issuerId"].as_str().unwrap().to_owned();
    let vc = issued(&app, &token, json!({"credential": plain(&did)})).await;
    let entries = vc["credentialStatus"].as_array().unwrap();
    let purposes: Vec<&Value> = entries.iter().map(|e| &e["statusPurpose"]).collect();
    assert_eq!(purposes, [&json!("revocation"), &json!("suspension")]);
    set_status(&app, &token, &vc, "suspension", true).await;
    assert!(list_bit(&app, &entries[1]).await);
    assert_eq!(vc_verify(&app, &vc).await.1["outcome"], "suspended");
}

/// The JWK the service publishes for verification method `kid`.
async fn published_jwk(app: &TestApp, kid: &str) -> Value {
    let jwks: Value = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap_or_else(|| panic!("{kid} is not in {jwks}"))
        .clone()
}

/// Checks an `eddsa-jcs-2022` proof independently: JCS by `rfc8785`, the key from the JWKS.
async fn jcs_proof_holds(app: &TestApp, signed: &Value) -> bool {
    let proof = &signed["proof"];
    let jwk = published_jwk(app, proof["verificationMethod"].as_str().unwrap()).await;
    let x: [u8; 32] = URL_SAFE_NO_PAD
        .decode(jwk["x"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let key = ed25519_dalek::VerifyingKey::from_bytes(&x).unwrap();
    let mut config = proof.clone();
    config.as_object_mut().unwrap().remove("proofValue");
    let mut document = signed.clone();
    document.as_object_mut().unwrap().remove("proof");
    let hash = hash_data(&rfc8785(&config), &rfc8785(&document));
    let value = bs58::decode(&proof["proofValue"].as_str().unwrap()[1..])
        .into_vec()
        .unwrap();
    let signature = ed25519_dalek::Signature::from_slice(&value).unwrap();
    key.verify_strict(&hash, &signature).is_ok()
}

#[tokio::test]
async fn eddsa_jcs_2022_on_request_for_vc_api_and_native_issuance() {
    let app = TestApp::spawn().await;
    let token = app
        .token("issuers:write credentials:issue credentials:read")
        .await;
    let (issuer, achievement) = issuer_with_achievement(&app, &token).await;
    let did = issuer["issuerId"].as_str().unwrap().to_owned();

    let vc = issued(
        &app,
        &token,
        json!({"credential": plain(&did), "options": {"cryptosuite": "eddsa-jcs-2022"}}),
    )
    .await;
    assert_eq!(vc["proof"]["type"], "DataIntegrityProof");
    assert_eq!(vc["proof"]["cryptosuite"], "eddsa-jcs-2022");
    assert_eq!(vc["proof"]["@context"], vc["@context"]);
    assert!(jcs_proof_holds(&app, &vc).await, "{vc:#}");
    let (status, result) = vc_verify(&app, &vc).await;
    assert_eq!(status, 200, "{result:#}");
    let mut altered = vc.clone();
    altered["credentialSubject"]["id"] = json!("did:example:someone-else");
    let (status, result) = vc_verify(&app, &altered).await;
    assert_eq!((status, &result["outcome"]), (422, &json!("invalid")));

    // Native issuance, by the `cryptosuite` field.
    let native = crate::issuance::issue(
        &app,
        &token,
        json!({"achievementId": achievement, "recipient": {"id": "did:example:learner"}, "cryptosuite": "eddsa-jcs-2022"}),
    )
    .await;
    let credential = &native["credential"];
    assert_eq!(credential["proof"]["cryptosuite"], "eddsa-jcs-2022");
    assert!(jcs_proof_holds(&app, credential).await);
    let (status, result) = vc_verify(&app, credential).await;
    assert_eq!(status, 200, "{result:#}");

    // Unknown suites are refused, naming the option.
    let resp = post(
        &app,
        &token,
        "/credentials/issue",
        &json!({"credential": plain(&did), "options": {"cryptosuite": "ecdsa-sd-2023"}}),
    )
    .await;
    let problem = assert_problem(resp, 400, "invalid_options").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("ecdsa-sd-2023")
    );
    let resp = post(
        &app,
        &token,
        "/api/v1/credentials",
        &json!({"achievementId": achievement, "recipient": {"id": "did:example:learner"}, "proofFormat": "jwt", "cryptosuite": "eddsa-jcs-2022"}),
    )
    .await;
    assert_problem(resp, 422, "invalid_request").await;
}

#[tokio::test]
async fn the_w3c_eddsa_jcs_2022_vector_verifies_over_http() {
    let app = TestApp::spawn().await;
    let signed = vector_json("eddsa-jcs-2022/signedJCS.json");
    let (status, result) = vc_verify(&app, &signed).await;
    assert_eq!(status, 200, "{result:#}");
    let mut altered = signed.clone();
    altered["name"] = json!("Alumni Credentiak");
    let (status, result) = vc_verify(&app, &altered).await;
    assert_eq!((status, &result["outcome"]), (422, &json!("invalid")));
}

fn decode_part(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn vc_jose_cose_enveloped_credentials_on_request() {
    let app = TestApp::spawn().await;
    let token = app
        .token("issuers:write credentials:issue credentials:read credentials:status")
        .await;
    let issuer = create_issuer(&app, &token, json!({"name": "VC API issuer"})).await;
    let did = issuer["issuerId"].as_str().unwrap().to_owned();

    for alg in ["EdDSA", "ES256"] {
        let enveloped = issued(
            &app,
            &token,
            json!({"credential": plain(&did), "options": {
                "format": "application/vc+jwt", "alg": alg,
                "credentialStatus": [{"type": "BitstringStatusListEntry", "statusPurpose": "revocation"}]
            }}),
        )
        .await;
        assert_eq!(enveloped["type"], "EnvelopedVerifiableCredential");
        assert_eq!(
            enveloped["@context"],
            "https://www.w3.org/ns/credentials/v2"
        );
        let jws = enveloped["id"]
            .as_str()
            .unwrap()
            .strip_prefix("data:application/vc+jwt,")
            .unwrap_or_else(|| panic!("{enveloped}"))
            .to_owned();
        let parts: Vec<&str> = jws.split('.').collect();
        let header = decode_part(parts[0]);
        let payload = decode_part(parts[1]);
        assert_eq!(header["typ"], "vc+jwt");
        assert_eq!(header["alg"], alg);
        // The credential is the whole payload: nothing added beside it.
        assert_eq!(payload["issuer"], did);
        assert!(payload["id"].is_string() && payload["validFrom"].is_string());
        assert_eq!(
            payload["credentialStatus"]["type"],
            "BitstringStatusListEntry"
        );
        for claim in ["iss", "jti", "nbf", "sub", "vc"] {
            assert!(payload.get(claim).is_none(), "{claim} in {payload}");
        }
        // jose's Python counterpart verifies it with the key the issuer publishes.
        let jwk = published_jwk(&app, header["kid"].as_str().unwrap()).await;
        let checked = joserfc_verify(&jws, &jwk, alg);
        assert_eq!(checked["payload"], payload);
        assert_eq!(checked["header"]["typ"], "vc+jwt");

        // Our verifier accepts it as the VC API sends it and as a bare JWS.
        let (status, result) = vc_verify(&app, &enveloped).await;
        assert_eq!(status, 200, "{alg}: {result:#}");
        let report: Value = app
            .http
            .post(app.url("/api/v1/verify"))
            .header("content-type", "text/plain")
            .body(jws.clone())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(report["outcome"], "verified", "{report:#}");
        // Its status entry works like any other.
        set_status(&app, &token, &payload, "revocation", true).await;
        assert_eq!(vc_verify(&app, &enveloped).await.1["outcome"], "revoked");

        // A changed payload under the same signature is invalid.
        let mut forged = payload.clone();
        forged["credentialSubject"]["id"] = json!("did:example:mallory");
        let forged_jws = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(forged.to_string()),
            parts[2]
        );
        let (status, result) = vc_verify(
            &app,
            &json!({"@context": "https://www.w3.org/ns/credentials/v2", "type": "EnvelopedVerifiableCredential",
                    "id": format!("data:application/vc+jwt,{forged_jws}")}),
        )
        .await;
        assert_eq!((status, &result["outcome"]), (422, &json!("invalid")));
    }
    let resp = post(
        &app,
        &token,
        "/credentials/issue",
        &json!({"credential": plain(&did), "options": {"format": "application/vc+jwt", "cryptosuite": "eddsa-jcs-2022"}}),
    )
    .await;
    assert_problem(resp, 400, "invalid_options").await;
    let resp = post(
        &app,
        &token,
        "/credentials/issue",
        &json!({"credential": plain(&did), "options": {"format": "application/vc+sd-jwt"}}),
    )
    .await;
    assert_problem(resp, 400, "invalid_options").await;
    // VC-JOSE-COSE secures VC 2.0 only.
    let mut v11 = plain(&did);
    v11["@context"] = json!(["https://www.w3.org/2018/credentials/v1"]);
    let resp = post(
        &app,
        &token,
        "/credentials/issue",
        &json!({"credential": v11, "options": {"format": "application/vc+jwt"}}),
    )
    .await;
    assert_problem(resp, 400, "invalid_credential").await;
    assert_eq!(stored_total(&app, &token).await, 2, "one per algorithm");
}

#[tokio::test]
async fn concurrent_native_issuances_keep_their_own_cryptosuite() {
    let app = TestApp::spawn().await;
    let token = app
        .token("issuers:write credentials:issue credentials:read")
        .await;
    let (_, achievement) = issuer_with_achievement(&app, &token).await;
    // Concurrent single issuances share one group commit; each keeps the suite it asked for.
    let requests = (0..8).map(|i| {
        let suite = if i % 2 == 0 {
            "eddsa-jcs-2022"
        } else {
            "eddsa-rdfc-2022"
        };
        let body = json!({"achievementId": achievement, "recipient": {"id": format!("did:example:{i}")}, "cryptosuite": suite});
        let (app, token) = (&app, &token);
        async move {
            let issued = crate::issuance::issue(app, token, body).await;
            (suite, issued["credential"].clone())
        }
    });
    for (suite, credential) in futures_util::future::join_all(requests).await {
        assert_eq!(credential["proof"]["cryptosuite"], suite);
        assert_eq!(vc_verify(&app, &credential).await.0, 200, "{suite}");
    }
}
