//! JSON-LD conformance against the independent implementations (issue 11 items 2, 6, 7): base
//! direction (`@direction`, converted with `rdfDirection: "i18n-datatype"` as
//! `@digitalbazaar/eddsa-rdfc-2022-cryptosuite` runs jsonld.js) and language tags, nested context
//! objects, and the W3C status context for VC 1.1 credentials with bitstring entries. Canonical
//! forms are compared byte for byte with jsonld.js (npm `jsonld`, safe mode) and pyld; inputs
//! jsonld.js refuses are refused here too.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use oxbadge::jsonld::{CREDENTIALS_STATUS_V1, CREDENTIALS_V2, ContextLoader};
use serde_json::{Value, json};

use crate::{
    issuance::{issue, issuer_with_achievement},
    keys::create_issuer,
    support::TestApp,
};

const JS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/jsonld-js");

/// An independent JSON-LD processor.
#[derive(Debug, Clone, Copy)]
enum Peer {
    JsonLdJs,
    Pyld,
}

fn ensure(peer: Peer) {
    static JS: OnceLock<Result<(), String>> = OnceLock::new();
    static PY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = match peer {
        Peer::JsonLdJs => JS.get_or_init(|| {
            let present = || {
                std::path::Path::new(JS_DIR)
                    .join("node_modules/jsonld")
                    .exists()
            };
            if present() {
                return Ok(());
            }
            let out = Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--silent"])
                .current_dir(JS_DIR)
                .output()
                .map_err(|e| format!("npm is needed for the jsonld.js cross-check: {e}"))?;
            if present() {
                Ok(())
            } else {
                Err(format!(
                    "npm install jsonld failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        }),
        Peer::Pyld => PY.get_or_init(|| {
            let importable = || {
                Command::new("python3")
                    .args(["-c", "import pyld"])
                    .output()
                    .is_ok_and(|o| o.status.success())
            };
            if importable() {
                return Ok(());
            }
            let out = Command::new("python3")
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
                    "pip install pyld failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        }),
    };
    if let Err(why) = ready {
        panic!("{why}");
    }
}

/// The canonical N-Quads `peer` makes of `document` (proof removed) with our pinned contexts, or
/// the error it refuses the document with.
fn peer_canonical(peer: Peer, document: &Value) -> Result<String, String> {
    ensure(peer);
    let loader = ContextLoader::new();
    let contexts: serde_json::Map<String, Value> = loader
        .urls()
        .filter_map(|u| loader.document(u).map(|d| (u.to_owned(), json!(d))))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("contexts.json");
    std::fs::write(&map, Value::Object(contexts).to_string()).unwrap();
    let mut command = match peer {
        Peer::JsonLdJs => {
            let mut c = Command::new("node");
            c.arg(format!("{JS_DIR}/canon.mjs"));
            c
        }
        Peer::Pyld => {
            let mut c = Command::new("python3");
            c.arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/api/pyld_canon.py"
            ));
            c
        }
    };
    let mut child = command
        .arg(&map)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{peer:?} could not start: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(document.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    match out.status.code() {
        Some(0) => Ok(String::from_utf8(out.stdout).unwrap()),
        Some(2) => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        _ => panic!("{peer:?} failed: {}", String::from_utf8_lossy(&out.stderr)),
    }
}

fn ours(document: &Value) -> Result<String, String> {
    let mut document = document.clone();
    if let Some(map) = document.as_object_mut() {
        map.remove("proof");
    }
    ContextLoader::new()
        .canonicalize(&document)
        .map_err(|e| e.to_string())
}

/// Ours, jsonld.js and pyld agree byte for byte.
fn assert_same_everywhere(name: &str, document: &Value) -> String {
    let mine = ours(document).unwrap_or_else(|e| panic!("{name}: we refused it: {e}"));
    for peer in [Peer::JsonLdJs, Peer::Pyld] {
        let theirs = peer_canonical(peer, document)
            .unwrap_or_else(|e| panic!("{name}: {peer:?} refused it: {e}"));
        assert_eq!(mine, theirs, "{name}: {peer:?} differs\n{document:#}");
    }
    mine
}

fn credential(extra: Value) -> Value {
    let mut vc = json!({
        "@context": [CREDENTIALS_V2, "https://www.w3.org/ns/credentials/examples/v2"],
        "id": "urn:uuid:7f5b1c4e-3d2a-4b6c-9e8f-0a1b2c3d4e5f",
        "type": ["VerifiableCredential"],
        "issuer": "https://issuer.example/issuers/1",
        "validFrom": "2026-01-01T00:00:00Z",
        "credentialSubject": {"id": "did:example:subject"}
    });
    for (k, v) in extra.as_object().unwrap() {
        vc[k] = v.clone();
    }
    vc
}

/// VC 2.0 §11.1 language and base direction: every form canonicalizes as jsonld.js and pyld do
/// (`"…"^^<https://www.w3.org/ns/i18n#ar-eg_rtl>`, lower-cased language tags).
#[test]
fn direction_and_language_match_jsonld_js_and_pyld() {
    let cases = [
        (
            "language and direction",
            credential(json!({
                "name": {"@value": "شهادة", "@language": "ar-EG", "@direction": "rtl"},
                "description": {"@value": "A credential", "@language": "en", "@direction": "ltr"}
            })),
        ),
        (
            "direction alone",
            credential(json!({"name": {"@value": "Hello", "@direction": "rtl"}})),
        ),
        (
            "language alone, upper case",
            credential(json!({"name": {"@value": "Colour", "@language": "en-GB"}})),
        ),
        (
            "several values",
            credential(json!({"name": [
                {"@value": "Name", "@language": "en", "@direction": "ltr"},
                {"@value": "اسم", "@language": "ar", "@direction": "rtl"},
                {"@value": "Nom", "@language": "fr"}
            ]})),
        ),
        (
            "inside the subject",
            credential(json!({"credentialSubject": {
                "id": "did:example:subject",
                "name": {"@value": "שם", "@language": "he", "@direction": "rtl"}
            }})),
        ),
    ];
    for (name, document) in &cases {
        let nquads = assert_same_everywhere(name, document);
        if name.contains("direction") {
            assert!(
                nquads.contains("^^<https://www.w3.org/ns/i18n#"),
                "{nquads}"
            );
        }
    }
}

/// What jsonld.js refuses (safe mode, `i18n-datatype`), we refuse.
#[test]
fn direction_refusals_match_jsonld_js() {
    let cases = [
        (
            "direction not ltr/rtl",
            credential(json!({"name": {"@value": "x", "@direction": "up"}})),
        ),
        (
            "direction not a string",
            credential(json!({"name": {"@value": "x", "@direction": 1}})),
        ),
        (
            "direction with a type",
            credential(json!({"name": {
                "@value": "x",
                "@direction": "rtl",
                "@type": "https://www.w3.org/2001/XMLSchema#string"
            }})),
        ),
        (
            "language tag not BCP 47",
            credential(json!({"name": {"@value": "x", "@language": "en_US", "@direction": "ltr"}})),
        ),
    ];
    for (name, document) in &cases {
        let mine = ours(document);
        assert!(mine.is_err(), "{name}: we accepted it: {mine:?}");
        let theirs = peer_canonical(Peer::JsonLdJs, document);
        assert!(theirs.is_err(), "{name}: jsonld.js accepted it: {theirs:?}");
    }
}

/// JSON-LD 1.1 API §4.1.2: a map with `@context` inside a `@context` array stands for that
/// context, as in jsonld.js and pyld (the shape the W3C proof-chain fixtures' documents take).
#[test]
fn nested_context_objects_match_jsonld_js_and_pyld() {
    let nested = json!({"@context": {
        "ex": "https://example.org/vocab#",
        "favoriteColor": "ex:favoriteColor",
        "Badge": "ex:Badge"
    }});
    let mut document = credential(json!({"credentialSubject": {
        "id": "did:example:subject",
        "type": "Badge",
        "favoriteColor": "blue"
    }}));
    document["@context"] = json!([CREDENTIALS_V2, nested]);
    let nquads = assert_same_everywhere("nested context object", &document);
    assert!(
        nquads.contains("<https://example.org/vocab#favoriteColor> \"blue\""),
        "{nquads}"
    );
    // The whole `@context` given as `{"@context": [...]}`: jsonld.js takes it, pyld refuses it;
    // we refuse it too rather than sign what one of them cannot verify.
    document["@context"] = json!({"@context": [CREDENTIALS_V2, nested["@context"]]});
    assert!(ours(&document).is_err());
    assert!(peer_canonical(Peer::Pyld, &document).is_err());
    // A nested `@context` that is not a context definition is refused by all.
    document["@context"] = json!([CREDENTIALS_V2, {"@context": CREDENTIALS_V2}]);
    assert!(ours(&document).is_err());
    assert!(peer_canonical(Peer::JsonLdJs, &document).is_err());
}

/// The W3C status context is pinned with its published text (npm
/// `@digitalbazaar/vc-bitstring-status-list-context`, `src/jsonld/contexts/SOURCES.md`), and VC 1.1
/// documents using it canonicalize as jsonld.js and pyld say.
#[test]
fn the_status_context_is_pinned_and_agrees() {
    let loader = ContextLoader::new();
    let text = loader.document(CREDENTIALS_STATUS_V1).unwrap();
    let parsed: Value = serde_json::from_str(text).unwrap();
    assert_eq!(
        parsed["@context"]["BitstringStatusListEntry"]["@id"],
        "https://www.w3.org/ns/credentials/status#BitstringStatusListEntry"
    );
    let document = json!({
        "@context": [
            "https://www.w3.org/2018/credentials/v1",
            CREDENTIALS_STATUS_V1
        ],
        "id": "urn:uuid:7f5b1c4e-3d2a-4b6c-9e8f-0a1b2c3d4e60",
        "type": ["VerifiableCredential"],
        "issuer": "https://issuer.example/issuers/1",
        "issuanceDate": "2026-01-01T00:00:00Z",
        "credentialSubject": {"id": "did:example:subject"},
        "credentialStatus": {
            "id": "https://issuer.example/status/1#7",
            "type": "BitstringStatusListEntry",
            "statusPurpose": "revocation",
            "statusListIndex": "7",
            "statusListCredential": "https://issuer.example/status/1"
        }
    });
    assert_same_everywhere("VC 1.1 with a bitstring entry", &document);
}

/// Every credential profile and status shape can sign (what start-up checks).
#[test]
fn every_configuration_can_sign() {
    use oxbadge::ob::{CredentialProfile, StatusShape};
    let signer = oxbadge::di::EddsaRdfc2022::default();
    for profile in [CredentialProfile::Vc2, CredentialProfile::Vc11] {
        for shape in [
            StatusShape::OneEdTech,
            StatusShape::Bitstring,
            StatusShape::BitstringBoth,
        ] {
            oxbadge::issue::check_signable(&signer, profile, shape)
                .unwrap_or_else(|e| panic!("{profile:?} {shape:?}: {e}"));
        }
    }
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {report:#}"))
}

async fn verify(app: &TestApp, credential: &Value) -> Value {
    let resp = app
        .http
        .post(app.url("/api/v1/verify"))
        .json(credential)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// Issue 11 item 2 over HTTP: `vc1.1` with `bitstring` and `bitstring-both` issues (the status
/// context is listed), verifies, and after revocation verifies as revoked; jsonld.js and pyld
/// canonicalize the issued credential as we signed it.
#[tokio::test]
async fn vc11_bitstring_credentials_issue_verify_and_revoke() {
    for shape in [
        oxbadge::ob::StatusShape::Bitstring,
        oxbadge::ob::StatusShape::BitstringBoth,
    ] {
        let app = TestApp::spawn_with(|s| {
            s.credential_profile = oxbadge::ob::CredentialProfile::Vc11;
            s.status_shape = shape;
        })
        .await;
        let token = app
            .token("issuers:write credentials:issue credentials:status credentials:read")
            .await;
        let (_, achievement) = issuer_with_achievement(&app, &token).await;
        let issued = issue(
            &app,
            &token,
            json!({"achievementId": achievement, "recipient": {"email": "a@example.com"}}),
        )
        .await;
        let vc = &issued["credential"];
        let contexts = vc["@context"].as_array().unwrap();
        assert!(contexts.contains(&json!(CREDENTIALS_STATUS_V1)), "{vc:#}");
        assert!(vc["issuanceDate"].is_string(), "{vc:#}");
        assert_same_everywhere("issued VC 1.1 credential", vc);

        let report = verify(&app, vc).await;
        assert_eq!(report["outcome"], "verified", "{shape:?}: {report:#}");
        assert_eq!(check(&report, "contexts")["status"], "passed");

        let id = issued["id"].as_str().unwrap();
        let resp = app
            .http
            .post(app.url(&format!("/api/v1/credentials/{id}/status")))
            .bearer_auth(&token)
            .json(&json!({"purpose": "revocation", "status": true, "reason": "Issued in error"}))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        assert_eq!(status, 200, "{}", resp.text().await.unwrap());
        let report = verify(&app, vc).await;
        assert_eq!(report["outcome"], "revoked", "{shape:?}: {report:#}");
        app.stop().await;
    }
}

/// Issue 11 items 6 and 7 over HTTP: the VC API issuer signs credentials with base direction and
/// with a nested context object, the public verifier verifies them, and an input jsonld.js
/// refuses is refused (400) without signing.
#[tokio::test]
async fn direction_and_nested_contexts_issue_and_verify_over_http() {
    let app = TestApp::spawn().await;
    let token = app.token("issuers:write credentials:issue").await;
    let issuer = create_issuer(&app, &token, json!({"name": "Direction issuer"})).await;
    let did = issuer["issuerId"].as_str().unwrap();
    let post = |vc: Value| {
        let app = &app;
        let token = token.clone();
        async move {
            app.http
                .post(app.url("/credentials/issue"))
                .bearer_auth(&token)
                .json(&json!({"credential": vc}))
                .send()
                .await
                .unwrap()
        }
    };
    let mut directed = credential(json!({
        "name": {"@value": "شهادة", "@language": "ar-EG", "@direction": "rtl"},
        "description": {"@value": "A credential", "@language": "en", "@direction": "ltr"}
    }));
    directed["issuer"] = json!(did);
    directed.as_object_mut().unwrap().remove("id");
    let mut nested = credential(json!({"credentialSubject": {
        "id": "did:example:subject",
        "favoriteColor": "blue"
    }}));
    nested["issuer"] = json!(did);
    nested.as_object_mut().unwrap().remove("id");
    nested["@context"] = json!([CREDENTIALS_V2, {"@context": {
        "favoriteColor": "https://example.org/vocab#favoriteColor"
    }}]);
    for (name, vc) in [("direction", directed.clone()), ("nested context", nested)] {
        let resp = post(vc).await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 201, "{name}: {body:#}");
        let signed = &body["verifiableCredential"];
        assert_same_everywhere(name, signed);
        let report = verify(&app, signed).await;
        assert_eq!(report["outcome"], "verified", "{name}: {report:#}");
    }
    directed["name"]["@direction"] = json!("up");
    let resp = post(directed).await;
    assert_eq!(resp.status(), 400);
    app.stop().await;
}
