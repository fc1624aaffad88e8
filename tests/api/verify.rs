//! Verification: published vectors verify and one-character changes do not; our own credentials
//! verify, then show revoked, suspended and expired; baked images and JWTs round-trip; claim and
//! controller mismatches fail; outbound fetches to private addresses are refused; a second
//! instance's did:web keys and status lists are fetched and checked; rate limit and optional scope.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};

use crate::{
    issuance::{issue, issuer_with_achievement},
    support::{TestApp, assert_problem},
};

fn vector(path: &str) -> Value {
    let text = std::fs::read_to_string(format!(
        "{}/../shared/vectors/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

const VECTORS: [&str; 6] = [
    "vc-di-eddsa/eddsa-rdfc-2022/signedDataInt.json",
    "vc-di-eddsa/Ed25519Signature2020/signedEdSig.json",
    "vc-di-eddsa/proof-set-chain/signedProofSet2.json",
    "vc-di-eddsa/proof-set-chain/signedProofChain1.json",
    "vc-di-eddsa/proof-set-chain/signedProofChain2.json",
    "ob-v3p0-ldp/signed-credential.json",
];

/// POSTs `body` with `content_type` to /api/v1/verify and returns the report.
async fn verify_raw(app: &TestApp, content_type: &str, body: Vec<u8>) -> Value {
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
    verify_raw(
        app,
        "application/json",
        serde_json::to_vec(credential).unwrap(),
    )
    .await
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {report:#}"))
}

/// Every string leaf of `value`, as JSON pointers.
fn string_leaves(value: &Value, path: String, out: &mut Vec<String>) {
    match value {
        Value::String(_) => out.push(path),
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                string_leaves(v, format!("{path}/{i}"), out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                string_leaves(
                    v,
                    format!("{path}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        _ => {}
    }
}

fn change_one_character(value: &mut Value, pointer: &str) -> bool {
    let Some(Value::String(s)) = value.pointer_mut(pointer) else {
        return false;
    };
    let Some(first) = s.chars().next() else {
        return false;
    };
    let replacement = if first == 'a' { 'b' } else { 'a' };
    s.replace_range(..first.len_utf8(), &replacement.to_string());
    true
}

#[tokio::test]
async fn published_vectors_verify_and_no_one_character_change_does() {
    let app = TestApp::spawn().await;
    for path in VECTORS {
        let original = vector(path);
        let report = verify_json(&app, &original).await;
        assert_eq!(report["outcome"], "verified", "{path}: {report:#}");
        assert_eq!(report["verified"], true);
        assert_eq!(check(&report, "proof")["status"], "passed", "{path}");
        let mut leaves = Vec::new();
        string_leaves(&original, String::new(), &mut leaves);
        assert!(leaves.len() > 15, "{path}");
        for pointer in leaves {
            let mut changed = original.clone();
            assert!(change_one_character(&mut changed, &pointer));
            let report = verify_json(&app, &changed).await;
            assert_ne!(
                report["outcome"], "verified",
                "{path}: changing {pointer} still verifies"
            );
        }
    }
    // The OB vector's key sits in the verification method's fragment; its controller is the
    // issuer, as OB 3.0 requires.
    let ob = verify_json(&app, &vector("ob-v3p0-ldp/signed-credential.json")).await;
    assert_eq!(check(&ob, "key_controller")["status"], "passed");
    assert_eq!(check(&ob, "schema")["status"], "passed");
    assert_eq!(check(&ob, "contexts")["status"], "passed");
    // The W3C vectors are not Open Badges: a controller other than the issuer is only a warning.
    let w3c = verify_json(&app, &vector(VECTORS[0])).await;
    assert_eq!(check(&w3c, "key_controller")["status"], "warning");
}

#[tokio::test]
async fn vc_api_verify_answers_200_only_when_verified() {
    let app = TestApp::spawn().await;
    let post = |path: &'static str, body: Value| {
        let app = &app;
        async move {
            app.http
                .post(app.url(path))
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let good = vector(VECTORS[0]);
    let resp = post("/credentials/verify", json!({"verifiableCredential": good})).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["verified"], true);
    assert_eq!(body["problemDetails"], json!([]));
    assert!(body["checks"].as_array().unwrap().contains(&json!("proof")));

    let mut bad = good.clone();
    bad["credentialSubject"]["alumniOf"] = json!("The School of Forgeries");
    let resp = post("/credentials/verify", json!({"verifiableCredential": bad})).await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["verified"], false);
    assert_eq!(body["outcome"], "invalid");
    assert!(
        body["problemDetails"][0]["type"]
            .as_str()
            .unwrap()
            .contains("PROOF_VERIFICATION_ERROR"),
        "{body:#}"
    );

    // A credential sent as a JSON string is malformed.
    let resp = post(
        "/credentials/verify",
        json!({"verifiableCredential": good.to_string()}),
    )
    .await;
    assert_problem(resp, 400, "invalid_credential").await;
    let resp = post("/credentials/verify", json!({"nothing": 1})).await;
    assert!(resp.status().is_client_error());

    // A presentation without a proof carrying a verified credential verifies; asked for a
    // challenge it cannot show, it does not.
    let vp = json!({
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "type": ["VerifiablePresentation"],
        "verifiableCredential": [good]
    });
    let resp = post(
        "/presentations/verify",
        json!({"verifiablePresentation": vp}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let resp = post(
        "/presentations/verify",
        json!({"verifiablePresentation": vp, "options": {"challenge": "abc", "domain": "example.org"}}),
    )
    .await;
    assert_eq!(resp.status(), 422);
    let vp_bad = json!({
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "type": ["VerifiablePresentation"],
        "verifiableCredential": [bad]
    });
    let resp = post(
        "/presentations/verify",
        json!({"verifiablePresentation": vp_bad}),
    )
    .await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["outcome"], "invalid");
    assert_eq!(body["report"]["credentials"][0]["outcome"], "invalid");
}

/// A signed presentation: our signer with `proofPurpose: authentication`, holder = a did:key.
#[tokio::test]
async fn signed_presentations_bind_their_holder() {
    use oxbadge::di::{EddsaRdfc2022, ProofOptions, ProofPurpose};
    let app = TestApp::spawn().await;
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let did = oxbadge::keys::publish::did_key_for_ed25519(&key.verifying_key());
    let mb = did.trim_start_matches("did:key:").to_owned();
    let vp = json!({
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "type": ["VerifiablePresentation"],
        "holder": did,
        "verifiableCredential": [vector(VECTORS[0])]
    });
    let sign = |vp: &Value, purpose| {
        EddsaRdfc2022::default()
            .sign(
                vp,
                ProofOptions {
                    verification_method: format!("{did}#{mb}"),
                    created: chrono::Utc::now(),
                    proof_purpose: purpose,
                    challenge: None,
                    domain: None,
                },
                &key,
            )
            .unwrap()
    };
    let signed = sign(&vp, ProofPurpose::Authentication);
    let report = verify_json(&app, &signed).await;
    assert_eq!(report["kind"], "presentation");
    assert_eq!(report["outcome"], "verified", "{report:#}");
    assert_eq!(report["credentials"][0]["outcome"], "verified");
    // Signed for the wrong purpose, or by someone other than the holder: invalid.
    let wrong_purpose = sign(&vp, ProofPurpose::AssertionMethod);
    assert_eq!(
        verify_json(&app, &wrong_purpose).await["outcome"],
        "invalid"
    );
    let mut other_holder = vp.clone();
    other_holder["holder"] = json!("did:example:someone-else");
    let signed = sign(&other_holder, ProofPurpose::Authentication);
    let report = verify_json(&app, &signed).await;
    assert_eq!(report["outcome"], "invalid", "{report:#}");

    // Challenge and domain are signed into the proof and checked against what the verifier asks.
    let bound = EddsaRdfc2022::default()
        .sign(
            &vp,
            ProofOptions {
                verification_method: format!("{did}#{mb}"),
                created: chrono::Utc::now(),
                proof_purpose: ProofPurpose::Authentication,
                challenge: Some("n-0S6_WzA2Mj".into()),
                domain: Some("verifier.example".into()),
            },
            &key,
        )
        .unwrap();
    assert_eq!(bound["proof"]["challenge"], "n-0S6_WzA2Mj");
    assert_eq!(bound["proof"]["domain"], "verifier.example");
    let vc_api = |body: Value| {
        app.http
            .post(app.url("/presentations/verify"))
            .json(&body)
            .send()
    };
    let asked = |challenge: &str, domain: &str| json!({"verifiablePresentation": bound, "options": {"challenge": challenge, "domain": domain}});
    let resp = vc_api(asked("n-0S6_WzA2Mj", "verifier.example"))
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["verified"], true);
    // Another challenge (a replay) or another domain: 422.
    for (challenge, domain) in [
        ("another-nonce", "verifier.example"),
        ("n-0S6_WzA2Mj", "evil.example"),
    ] {
        let resp = vc_api(asked(challenge, domain)).await.unwrap();
        assert_eq!(resp.status(), 422, "{challenge} {domain}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["verified"], false);
    }
    // The challenge rewritten in the proof to match a new request breaks the signature.
    let mut replayed = bound.clone();
    replayed["proof"]["challenge"] = json!("another-nonce");
    let resp = vc_api(
        json!({"verifiablePresentation": replayed, "options": {"challenge": "another-nonce"}}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 422);
    assert_eq!(resp.json::<Value>().await.unwrap()["outcome"], "invalid");
    // The native endpoint takes them as query parameters.
    let resp = app
        .http
        .post(app.url("/api/v1/verify?challenge=n-0S6_WzA2Mj&domain=verifier.example"))
        .json(&bound)
        .send()
        .await
        .unwrap();
    let report: Value = resp.json().await.unwrap();
    assert_eq!(report["outcome"], "verified", "{report:#}");
    let resp = app
        .http
        .post(app.url("/api/v1/verify?challenge=another-nonce"))
        .json(&bound)
        .send()
        .await
        .unwrap();
    let report: Value = resp.json().await.unwrap();
    assert_eq!(report["outcome"], "invalid", "{report:#}");
}

#[tokio::test]
async fn our_credentials_verify_then_show_revoked_suspended_expired() {
    let app = TestApp::spawn_with(|s| {
        s.status_shape = oxbadge::ob::StatusShape::BitstringBoth;
    })
    .await;
    let token = app
        .token("issuers:write issuers:read credentials:issue credentials:read credentials:status")
        .await;
    let (_, achievement) = issuer_with_achievement(&app, &token).await;
    let a = issue(
        &app,
        &token,
        json!({"achievementId": achievement, "recipient": {"email": "learner@example.edu"}}),
    )
    .await;
    let b = issue(
        &app,
        &token,
        json!({"achievementId": achievement, "recipient": {"id": "did:example:b"}, "proofFormat": "jwt"}),
    )
    .await;
    let report = verify_json(&app, &a["credential"]).await;
    assert_eq!(report["outcome"], "verified", "{report:#}");
    for name in [
        "parse",
        "schema",
        "contexts",
        "proof",
        "key_controller",
        "validity",
    ] {
        assert_eq!(
            check(&report, name)["status"],
            "passed",
            "{name}: {report:#}"
        );
    }
    let statuses: Vec<&Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == "status")
        .collect();
    assert_eq!(statuses.len(), 2, "revocation and suspension entries");
    assert!(statuses.iter().all(|c| c["status"] == "passed"));

    // Recipient: the right email matches (its hash with the salt), a wrong one does not.
    let url = |q: &str| app.url(&format!("/api/v1/verify?{q}"));
    let with_recipient = |q: String| {
        let app = &app;
        let body = a["credential"].clone();
        let u = url(&q);
        async move {
            let resp = app.http.post(u).json(&body).send().await.unwrap();
            resp.json::<Value>().await.unwrap()
        }
    };
    let ok = with_recipient("recipientEmail=Learner%40Example.edu".into()).await;
    assert_eq!(check(&ok, "recipient")["status"], "passed");
    assert_eq!(ok["outcome"], "verified");
    let wrong = with_recipient("recipientEmail=someone%40example.edu".into()).await;
    assert_eq!(check(&wrong, "recipient")["status"], "failed");
    assert_eq!(wrong["outcome"], "invalid");

    // The VC-JWT of an own issuer verifies from the database.
    let jwt = b["jwt"].as_str().unwrap();
    let report = verify_raw(&app, "text/plain", jwt.as_bytes().to_vec()).await;
    assert_eq!(report["format"], "vc-jwt");
    assert_eq!(report["outcome"], "verified", "{report:#}");
    assert_eq!(check(&report, "jwt_claims")["status"], "passed");

    let set_status = |id: String, body: Value| {
        let app = &app;
        let token = token.clone();
        async move {
            let resp = app
                .http
                .post(app.url(&format!("/api/v1/credentials/{id}/status")))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
        }
    };
    let a_id = a["id"].as_str().unwrap().to_owned();
    set_status(
        a_id.clone(),
        json!({"purpose": "suspension", "status": true}),
    )
    .await;
    assert_eq!(
        verify_json(&app, &a["credential"]).await["outcome"],
        "suspended"
    );
    set_status(
        a_id.clone(),
        json!({"purpose": "suspension", "status": false}),
    )
    .await;
    assert_eq!(
        verify_json(&app, &a["credential"]).await["outcome"],
        "verified"
    );
    set_status(
        a_id.clone(),
        json!({"purpose": "revocation", "status": true, "reason": "error"}),
    )
    .await;
    let report = verify_json(&app, &a["credential"]).await;
    assert_eq!(report["outcome"], "revoked");
    let revoked_entries: Vec<&Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == "status" && c["status"] == "failed")
        .collect();
    assert_eq!(revoked_entries.len(), 1, "{report:#}");
    assert_eq!(
        revoked_entries[0]["problem"]["type"],
        "urn:oxbadge:verify:revoked"
    );
    let b_id = b["id"].as_str().unwrap().to_owned();
    set_status(b_id, json!({"purpose": "revocation", "status": true})).await;
    let report = verify_raw(&app, "text/plain", jwt.as_bytes().to_vec()).await;
    assert_eq!(report["outcome"], "revoked");

    // Expired and not yet valid: credentials issued through the VC API with those dates.
    let issuer_id = a["credential"]["issuer"]["id"].clone();
    for (field, date, outcome) in [
        ("validUntil", "2001-01-01T00:00:00Z", "expired"),
        ("validFrom", "2999-01-01T00:00:00Z", "not_yet_valid"),
    ] {
        let mut vc = json!({
            "@context": ["https://www.w3.org/ns/credentials/v2"],
            "type": ["VerifiableCredential"],
            "issuer": issuer_id,
            "validFrom": "2000-01-01T00:00:00Z",
            "credentialSubject": {"id": "did:example:c"}
        });
        vc[field] = json!(date);
        let resp = app
            .http
            .post(app.url("/credentials/issue"))
            .bearer_auth(&token)
            .json(&json!({"credential": vc}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
        let body: Value = resp.json().await.unwrap();
        let report = verify_json(&app, &body["verifiableCredential"]).await;
        assert_eq!(report["outcome"], outcome, "{report:#}");
    }
}

#[tokio::test]
async fn one_edtech_status_and_baked_images_round_trip() {
    let app = TestApp::spawn().await;
    let token = app
        .token("issuers:write credentials:issue credentials:read credentials:status")
        .await;
    let (_, achievement) = issuer_with_achievement(&app, &token).await;
    let di = issue(
        &app,
        &token,
        json!({"achievementId": achievement, "recipient": {"email": "a@example.com"}}),
    )
    .await;
    let id = di["id"].as_str().unwrap();
    let png = app
        .http
        .get(app.url(&format!("/api/v1/credentials/{id}/baked.png")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let report = verify_raw(&app, "image/png", png.clone()).await;
    assert_eq!(report["source"], "png");
    assert_eq!(report["outcome"], "verified", "{report:#}");
    // Decoded from the image, the credential is echoed; sent as JSON, it is not.
    assert_eq!(report["credential"]["id"], di["credential"]["id"]);
    assert!(
        verify_json(&app, &di["credential"])
            .await
            .get("credential")
            .is_none()
    );
    assert_eq!(check(&report, "status")["status"], "passed");
    let svg = app
        .http
        .get(app.url(&format!("/api/v1/credentials/{id}/baked.svg")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    // Multipart upload of the SVG, with a recipient field.
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(svg.clone())
                .file_name("badge.svg")
                .mime_str("image/svg+xml")
                .unwrap(),
        )
        .text("recipientEmail", "a@example.com");
    let resp = app
        .http
        .post(app.url("/api/v1/verify"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let report: Value = resp.json().await.unwrap();
    assert_eq!(report["source"], "svg");
    assert_eq!(report["outcome"], "verified", "{report:#}");
    assert_eq!(check(&report, "recipient")["status"], "passed");
    // An image without a credential is a 400, not a report.
    let plain = oxbadge::issue::bake::default_png("x");
    let resp = app
        .http
        .post(app.url("/api/v1/verify"))
        .header("content-type", "image/png")
        .body(plain)
        .send()
        .await
        .unwrap();
    assert_problem(resp, 400, "unreadable_credential").await;
    // A media type the verifier does not read is a 415, and so is an untyped binary upload
    // that is no PNG.
    for (content_type, body) in [
        ("image/gif", b"GIF89a\x01\x00".to_vec()),
        ("application/octet-stream", vec![0xff, 0xfe, 0x00, 0x01]),
    ] {
        let resp = app
            .http
            .post(app.url("/api/v1/verify"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_problem(resp, 415, "unsupported_media_type").await;
    }

    // Revoked through the API: the 1EdTech revocation list entry reads revoked.
    let resp = app
        .http
        .post(app.url(&format!("/api/v1/credentials/{id}/status")))
        .bearer_auth(&token)
        .json(&json!({"purpose": "revocation", "status": true}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let report = verify_raw(&app, "image/png", png).await;
    assert_eq!(report["outcome"], "revoked", "{report:#}");
}

fn did_key(key: &SigningKey) -> (String, String) {
    let did = oxbadge::keys::publish::did_key_for_ed25519(&key.verifying_key());
    let vm = format!("{did}#{}", did.trim_start_matches("did:key:"));
    (did, vm)
}

fn ob_credential(issuer: &str, subject: &str) -> Value {
    json!({
        "@context": [
            "https://www.w3.org/ns/credentials/v2",
            "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
        ],
        "id": "urn:uuid:5b0c6a62-9d3b-4a49-8d5c-07d1e8a9c3f1",
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "issuer": {"id": issuer, "type": ["Profile"], "name": "Someone"},
        "validFrom": "2024-01-01T00:00:00Z",
        "credentialSubject": {
            "id": subject,
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

fn sign_jwt(header: Value, payload: Value, key: &SigningKey) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let sig = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

#[tokio::test]
async fn mismatched_claims_and_foreign_controllers_fail() {
    use oxbadge::di::{ProofOptions, ProofPurpose, sign_eddsa_rdfc_2022};
    let app = TestApp::spawn().await;
    let key = SigningKey::from_bytes(&[11u8; 32]);
    let (did, vm) = did_key(&key);
    let vc = ob_credential(&did, "did:example:learner");
    let mut payload = vc.clone();
    payload["iss"] = json!(did);
    payload["jti"] = vc["id"].clone();
    payload["nbf"] = json!(1_704_067_200);
    payload["sub"] = json!("did:example:learner");
    let header = json!({"alg": "EdDSA", "kid": vm, "typ": "JWT"});
    let good = sign_jwt(header.clone(), payload.clone(), &key);
    let report = verify_raw(&app, "text/plain", good.into_bytes()).await;
    assert_eq!(report["outcome"], "verified", "{report:#}");

    let mut wrong_sub = payload.clone();
    wrong_sub["sub"] = json!("did:example:someone-else");
    let jws = sign_jwt(header.clone(), wrong_sub, &key);
    let report = verify_raw(&app, "text/plain", jws.into_bytes()).await;
    assert_eq!(report["outcome"], "invalid");
    assert_eq!(check(&report, "jwt_claims")["status"], "failed");
    assert!(
        check(&report, "jwt_claims")["detail"]
            .as_str()
            .unwrap()
            .contains("sub")
    );

    // alg none, and a jwk header for a key that is not the issuer's, are refused.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": vm}).to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let resp = app
        .http
        .post(app.url("/api/v1/verify"))
        .header("content-type", "text/plain")
        .body(none)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let report: Value = resp.json().await.unwrap();
    assert_eq!(report["outcome"], "invalid");
    assert!(
        check(&report, "proof")["detail"]
            .as_str()
            .unwrap()
            .contains("none")
    );
    let intruder = SigningKey::from_bytes(&[12u8; 32]);
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(intruder.verifying_key().as_bytes())});
    let forged = sign_jwt(
        json!({"alg": "EdDSA", "jwk": jwk, "typ": "JWT"}),
        payload.clone(),
        &intruder,
    );
    let report = verify_raw(&app, "text/plain", forged.into_bytes()).await;
    assert_eq!(report["outcome"], "invalid");
    assert_eq!(check(&report, "key_controller")["status"], "failed");

    // A Data Integrity credential whose issuer is not the key's controller.
    let other = SigningKey::from_bytes(&[13u8; 32]);
    let (_, other_vm) = did_key(&other);
    let signed = sign_eddsa_rdfc_2022(
        &vc,
        ProofOptions {
            verification_method: other_vm,
            created: chrono::Utc::now(),
            proof_purpose: ProofPurpose::AssertionMethod,
            challenge: None,
            domain: None,
        },
        &other,
    )
    .unwrap();
    let report = verify_json(&app, &signed).await;
    assert_eq!(check(&report, "proof")["status"], "passed");
    assert_eq!(check(&report, "key_controller")["status"], "failed");
    assert_eq!(report["outcome"], "invalid");

    // An endorsement travels inside the credential and is verified by the same steps.
    let endorser = SigningKey::from_bytes(&[14u8; 32]);
    let (endorser_did, endorser_vm) = did_key(&endorser);
    let endorsement = json!({
        "@context": [
            "https://www.w3.org/ns/credentials/v2",
            "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
        ],
        "id": "urn:uuid:7e1c8f0a-5d0b-4f3e-9d59-1a2b3c4d5e6f",
        "type": ["VerifiableCredential", "EndorsementCredential"],
        "issuer": {"id": endorser_did, "type": ["Profile"], "name": "Endorser"},
        "validFrom": "2024-01-01T00:00:00Z",
        "credentialSubject": {"id": "https://example.org/achievements/1", "type": ["EndorsementSubject"], "endorsementComment": "Good"}
    });
    let endorsement = sign_eddsa_rdfc_2022(
        &endorsement,
        ProofOptions {
            verification_method: endorser_vm,
            created: chrono::Utc::now(),
            proof_purpose: ProofPurpose::AssertionMethod,
            challenge: None,
            domain: None,
        },
        &endorser,
    )
    .unwrap();
    let mut endorsed = vc.clone();
    endorsed["endorsement"] = json!([endorsement]);
    let signed = sign_eddsa_rdfc_2022(
        &endorsed,
        ProofOptions {
            verification_method: did_key(&key).1,
            created: chrono::Utc::now(),
            proof_purpose: ProofPurpose::AssertionMethod,
            challenge: None,
            domain: None,
        },
        &key,
    )
    .unwrap();
    let report = verify_json(&app, &signed).await;
    assert_eq!(report["outcome"], "verified", "{report:#}");
    assert_eq!(check(&report, "endorsements")["status"], "passed");
    assert_eq!(report["endorsements"][0]["outcome"], "verified");
}

#[tokio::test]
async fn fetches_to_private_addresses_are_refused_by_default() {
    let app = TestApp::spawn().await;
    // A listener that must never see a connection.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let key = SigningKey::from_bytes(&[21u8; 32]);
    for vm in [
        format!("https://127.0.0.1:{port}/keys/1"),
        format!("http://127.0.0.1:{port}/keys/1"),
        "https://10.0.0.1/keys/1".to_owned(),
        "https://169.254.169.254/latest/meta-data/key".to_owned(),
        format!("did:web:localhost%3A{port}#key-1"),
        format!("did:web:127.0.0.1%3A{port}#key-1"),
    ] {
        let issuer = vm.split('#').next().unwrap().to_owned();
        let vc = ob_credential(&issuer, "did:example:x");
        let signed = oxbadge::di::sign_eddsa_rdfc_2022(
            &vc,
            oxbadge::di::ProofOptions {
                verification_method: vm.clone(),
                created: chrono::Utc::now(),
                proof_purpose: oxbadge::di::ProofPurpose::AssertionMethod,
                challenge: None,
                domain: None,
            },
            &key,
        )
        .unwrap();
        let report = verify_json(&app, &signed).await;
        assert_eq!(report["outcome"], "indeterminate", "{vm}: {report:#}");
        let detail = check(&report, "proof")["detail"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(detail.contains("refused"), "{vm}: {detail}");
    }
    let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
    assert!(
        accepted.is_err(),
        "the verifier connected to a loopback address"
    );
}

#[tokio::test]
async fn a_second_instance_keys_and_status_lists_are_fetched_and_checked() {
    // Instance B issues; instance A (its own database) verifies over HTTP, allowed to reach
    // loopback by configuration.
    let b = TestApp::spawn_with(|s| {
        s.status_shape = oxbadge::ob::StatusShape::BitstringBoth;
    })
    .await;
    let a = TestApp::spawn_with(fetch_from_loopback).await;
    let token = b
        .token("issuers:write credentials:issue credentials:read credentials:status")
        .await;
    let (issuer, achievement) = issuer_with_achievement(&b, &token).await;
    assert!(issuer["issuerId"].as_str().unwrap().starts_with("did:web:"));
    let kept = issue(
        &b,
        &token,
        json!({"achievementId": achievement, "recipient": {"id": "did:example:1"}}),
    )
    .await;
    let revoked = issue(
        &b,
        &token,
        json!({"achievementId": achievement, "recipient": {"id": "did:example:2"}}),
    )
    .await;
    let resp = b
        .http
        .post(b.url(&format!(
            "/api/v1/credentials/{}/status",
            revoked["id"].as_str().unwrap()
        )))
        .bearer_auth(&token)
        .json(&json!({"purpose": "revocation", "status": true}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let report = verify_json(&a, &kept["credential"]).await;
    assert_eq!(report["outcome"], "verified", "{report:#}");
    assert_eq!(check(&report, "key_controller")["status"], "passed");
    let report = verify_json(&a, &revoked["credential"]).await;
    assert_eq!(report["outcome"], "revoked", "{report:#}");
    // Without the allowance, the same credential cannot be checked from A's point of view.
    let strict = TestApp::spawn().await;
    let report = verify_json(&strict, &kept["credential"]).await;
    assert_eq!(report["outcome"], "indeterminate");
}

#[tokio::test]
async fn verification_is_rate_limited_and_can_require_a_scope() {
    let app = TestApp::spawn_with(|s| {
        s.verify_rate_limit_per_minute = 1;
        s.verify_rate_limit_burst = 2;
    })
    .await;
    let body = vector(VECTORS[0]);
    for _ in 0..2 {
        let resp = app
            .http
            .post(app.url("/api/v1/verify"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let resp = app
        .http
        .post(app.url("/api/v1/verify"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("retry-after").is_some());
    assert_problem(resp, 429, "rate_limited").await;

    let app = TestApp::spawn_with(|s| s.verify_require_scope = true).await;
    let send = |token: Option<String>| {
        let app = &app;
        let body = body.clone();
        async move {
            let mut req = app.http.post(app.url("/api/v1/verify")).json(&body);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req.send().await.unwrap()
        }
    };
    let resp = send(None).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().get("www-authenticate").is_some());
    let resp = send(Some(app.token("credentials:read").await)).await;
    assert_eq!(resp.status(), 403);
    let resp = send(Some(app.token("credentials:verify").await)).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn rotation_keeps_old_credentials_verifying_and_key_revocation_ends_them() {
    let app = TestApp::spawn().await;
    let token = app
        .token("issuers:write issuers:read credentials:issue keys:manage")
        .await;
    let (issuer, achievement) = issuer_with_achievement(&app, &token).await;
    let id = issuer["id"].as_str().unwrap();
    let old = issue(
        &app,
        &token,
        json!({"achievementId": achievement, "recipient": {"id": "did:example:1"}}),
    )
    .await;
    assert_eq!(
        verify_json(&app, &old["credential"]).await["outcome"],
        "verified"
    );
    let resp = app
        .http
        .post(app.url(&format!("/api/v1/issuers/{id}/keys/rotate")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    // Signed by the new key right after the rotation, and the old one still verifies.
    let new = issue(
        &app,
        &token,
        json!({"achievementId": achievement, "recipient": {"id": "did:example:2"}}),
    )
    .await;
    assert_eq!(
        verify_json(&app, &new["credential"]).await["outcome"],
        "verified"
    );
    assert_eq!(
        verify_json(&app, &old["credential"]).await["outcome"],
        "verified"
    );
    let old_key = old["credential"]["proof"]["verificationMethod"]
        .as_str()
        .unwrap()
        .rsplit('#')
        .next()
        .unwrap()
        .to_owned();
    let resp = app
        .http
        .post(app.url(&format!("/api/v1/issuers/{id}/keys/{old_key}/revoke")))
        .bearer_auth(&token)
        .json(&json!({"reason": "compromised"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let report = verify_json(&app, &old["credential"]).await;
    assert_eq!(report["outcome"], "invalid", "{report:#}");
    assert!(
        check(&report, "proof")["detail"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );
    assert_eq!(
        verify_json(&app, &new["credential"]).await["outcome"],
        "verified"
    );
}

/// Serves `document` as JSON on a loopback port, to every request; returns its base URL.
/// Lets the verifier fetch plain http from loopback, where the tests serve their documents.
fn fetch_from_loopback(s: &mut oxbadge::Settings) {
    s.verify_fetch_allow_http = true;
    s.verify_fetch_allow_private = true;
}

async fn serve_json(document: Value) -> String {
    serve_body("application/json", |_| document.to_string()).await
}

/// Serves one body (made from the server's base URL) to every request on a loopback port.
async fn serve_body(content_type: &'static str, make: impl FnOnce(&str) -> String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let body = make(&base);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncache-control: max-age=60\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    base
}

#[tokio::test]
async fn jwt_status_lists_of_other_issuers_are_verified_and_read() {
    use oxbadge::di::{EddsaRdfc2022, ProofOptions, ProofPurpose};
    // Another issuer (a did:key) publishes its revocation list as a VC-JWT
    // (`application/vc+jwt`); bit 42 is set.
    let app = TestApp::spawn_with(fetch_from_loopback).await;
    let key = SigningKey::from_bytes(&[9u8; 32]);
    let did = oxbadge::keys::publish::did_key_for_ed25519(&key.verifying_key());
    let kid = format!("{did}#{}", did.trim_start_matches("did:key:"));
    let mut bits = oxbadge::status::bitstring::Bitstring::new(oxbadge::status::bitstring::MIN_BITS);
    bits.set(42, true).unwrap();
    let encoded = bits.encode();
    let now = chrono::Utc::now();
    let stamp = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let list = |url: &str, issuer: &str| {
        json!({
            "@context": ["https://www.w3.org/ns/credentials/v2"],
            "id": url,
            "type": ["VerifiableCredential", "BitstringStatusListCredential"],
            "issuer": issuer,
            "validFrom": stamp(now - chrono::Duration::hours(1)),
            "validUntil": stamp(now + chrono::Duration::hours(1)),
            "credentialSubject": {
                "id": format!("{url}#list"),
                "type": "BitstringStatusList",
                "statusPurpose": "revocation",
                "encodedList": encoded,
            }
        })
    };
    let base = serve_body("application/vc+jwt", |base| {
        oxbadge::issue::jwt::sign_eddsa(&list(&format!("{base}/status/1"), &did), &kid, &key)
            .unwrap()
    })
    .await;
    let list_url = format!("{base}/status/1");
    let credential = |index: u32, list_url: &str| {
        let mut vc = ob_credential(&did, "did:example:learner");
        vc["credentialStatus"] = json!({
            "id": format!("{list_url}#{index}"),
            "type": "BitstringStatusListEntry",
            "statusPurpose": "revocation",
            "statusListIndex": index.to_string(),
            "statusListCredential": list_url,
        });
        EddsaRdfc2022::default()
            .sign(
                &vc,
                ProofOptions {
                    verification_method: kid.clone(),
                    created: now,
                    proof_purpose: ProofPurpose::AssertionMethod,
                    challenge: None,
                    domain: None,
                },
                &key,
            )
            .unwrap()
    };
    let report = verify_json(&app, &credential(42, &list_url)).await;
    assert_eq!(report["outcome"], "revoked", "{report:#}");
    let report = verify_json(&app, &credential(7, &list_url)).await;
    assert_eq!(report["outcome"], "verified", "{report:#}");
    assert_eq!(check(&report, "status")["status"], "passed");

    // The same list signed by someone else's key (kid of another did:key) is not trusted: the
    // status is unknown, so the credential is not reported as verified.
    let other = SigningKey::from_bytes(&[10u8; 32]);
    let other_did = oxbadge::keys::publish::did_key_for_ed25519(&other.verifying_key());
    let other_kid = format!("{other_did}#{}", other_did.trim_start_matches("did:key:"));
    let forged = serve_body("application/vc+jwt", |base| {
        oxbadge::issue::jwt::sign_eddsa(
            &list(&format!("{base}/status/1"), &did),
            &other_kid,
            &other,
        )
        .unwrap()
    })
    .await;
    let report = verify_json(&app, &credential(7, &format!("{forged}/status/1"))).await;
    assert_eq!(report["outcome"], "indeterminate", "{report:#}");
    assert!(
        check(&report, "status")["problem"]["detail"]
            .as_str()
            .unwrap()
            .contains("not of its issuer"),
        "{report:#}"
    );
    // A list JWT whose signature was altered does not verify.
    let tampered = serve_body("application/vc+jwt", |base| {
        let jws =
            oxbadge::issue::jwt::sign_eddsa(&list(&format!("{base}/status/1"), &did), &kid, &key)
                .unwrap();
        let (input, sig) = jws.rsplit_once('.').unwrap();
        let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        sig[0] ^= 1;
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    })
    .await;
    let report = verify_json(&app, &credential(7, &format!("{tampered}/status/1"))).await;
    assert_eq!(report["outcome"], "indeterminate", "{report:#}");
}

fn jwt_payload(vc: &Value, issuer: &str) -> Value {
    let mut payload = vc.clone();
    payload["iss"] = json!(issuer);
    payload["jti"] = vc["id"].clone();
    payload["nbf"] = json!(1_704_067_200);
    payload["sub"] = vc["credentialSubject"]["id"].clone();
    payload
}

fn signing_input(header: &Value, payload: &Value) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    )
}

#[tokio::test]
async fn es256_and_rs256_jwts_verify_with_resolved_keys() {
    use p256::ecdsa::signature::Signer as _;
    // ES256 with a did:key (P-256, zDn…) issuer: resolved offline.
    let app = TestApp::spawn_with(fetch_from_loopback).await;
    let p256_key = p256::ecdsa::SigningKey::from_slice(&[0x42; 32]).unwrap();
    let point = p256_key.verifying_key().to_encoded_point(true);
    let mut multikey = vec![0x80, 0x24];
    multikey.extend_from_slice(point.as_bytes());
    let mb = format!("z{}", bs58::encode(multikey).into_string());
    assert!(mb.starts_with("zDn"));
    let did = format!("did:key:{mb}");
    let vc = ob_credential(&did, "did:example:learner");
    let header = json!({"alg": "ES256", "kid": format!("{did}#{mb}"), "typ": "JWT"});
    let input = signing_input(&header, &jwt_payload(&vc, &did));
    let sig: p256::ecdsa::Signature = p256_key.sign(input.as_bytes());
    let jws = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()));
    let report = verify_raw(&app, "text/plain", jws.clone().into_bytes()).await;
    assert_eq!(report["outcome"], "verified", "{report:#}");
    // The same signature claimed as EdDSA does not verify.
    let mut parts: Vec<String> = jws.split('.').map(str::to_owned).collect();
    parts[0] =
        URL_SAFE_NO_PAD.encode(json!({"alg": "EdDSA", "kid": format!("{did}#{mb}")}).to_string());
    let report = verify_raw(&app, "text/plain", parts.join(".").into_bytes()).await;
    assert_eq!(report["outcome"], "invalid");

    // RS256 with the key published as a JWK document at an https-style URL (served on loopback,
    // which this app is configured to allow).
    use rsa::PublicKeyParts;
    let mut rng = rand::thread_rng();
    let rsa_key = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let public = rsa_key.to_public_key();
    let jwk = json!({
        "kty": "RSA",
        "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
    });
    let base = serve_json(jwk).await;
    let issuer = format!("{base}/keys/rsa");
    let vc = ob_credential(&issuer, "did:example:learner");
    let header = json!({"alg": "RS256", "kid": issuer, "typ": "JWT"});
    let input = signing_input(&header, &jwt_payload(&vc, &issuer));
    use sha2::Digest;
    let digest = sha2::Sha256::digest(input.as_bytes());
    let sig = rsa_key
        .sign(
            rsa::PaddingScheme::new_pkcs1v15_sign(Some(rsa::Hash::SHA2_256)),
            &digest,
        )
        .unwrap();
    let jws = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig));
    let report = verify_raw(&app, "text/plain", jws.into_bytes()).await;
    assert_eq!(report["outcome"], "verified", "{report:#}");
    assert_eq!(check(&report, "key_controller")["status"], "passed");
}

#[tokio::test]
async fn our_es256_jwts_verify_from_the_database() {
    let app = TestApp::spawn().await;
    let token = app
        .token("issuers:write credentials:issue credentials:read")
        .await;
    let (_, achievement) = issuer_with_achievement(&app, &token).await;
    let body = issue(
        &app,
        &token,
        json!({"achievementId": achievement, "recipient": {"id": "did:example:es"}, "proofFormat": "jwt", "jwtAlgorithm": "ES256"}),
    )
    .await;
    let jwt = body["jwt"].as_str().unwrap();
    let report = verify_raw(&app, "text/plain", jwt.as_bytes().to_vec()).await;
    assert_eq!(report["outcome"], "verified", "{report:#}");
    assert!(
        check(&report, "proof")["detail"]
            .as_str()
            .unwrap()
            .contains("Es256")
    );
}
