//! Issuers and key management: encrypted keys at rest, rotation, revocation, KEK rewrap, publication.

use std::collections::HashSet;

use oxbadge::{
    db::{issuer, signing_key},
    keys::store::KeyStore,
};
use reqwest::StatusCode;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::{Value, json};

use crate::support::{TestApp, TestDb, assert_problem, random_kek, test_settings};

/// Creates an issuer through the API; returns the resource.
pub async fn create_issuer(app: &TestApp, token: &str, body: Value) -> Value {
    let resp = app
        .http
        .post(app.url("/api/v1/issuers"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED, "create issuer");
    resp.json().await.unwrap()
}

async fn get_json(app: &TestApp, path: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let resp = app.http.get(app.url(path)).send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

async fn keys_of(app: &TestApp, token: &str, issuer: &str) -> Vec<Value> {
    app.http
        .get(app.url(&format!("/api/v1/issuers/{issuer}/keys")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn issuer_gets_did_web_identity_and_a_published_key() {
    let app = TestApp::spawn().await;
    let token = app.token("issuers:write issuers:read").await;
    let issuer = create_issuer(
        &app,
        &token,
        json!({"name": "Example University", "url": "https://example.edu", "email": "badges@example.edu"}),
    )
    .await;
    let id = issuer["id"].as_str().unwrap();
    let expected = format!("did:web:127.0.0.1%3A{}:issuers:{id}", app.addr.port());
    assert_eq!(issuer["issuerId"], expected);
    assert_eq!(issuer["idType"], "did:web");

    let (status, headers, doc) = get_json(&app, &format!("/issuers/{id}/did.json")).await;
    assert_eq!(status, 200);
    assert_eq!(doc["id"], expected);
    let vms = doc["verificationMethod"].as_array().unwrap();
    assert_eq!(vms.len(), 1);
    assert_eq!(vms[0]["type"], "Multikey");
    assert_eq!(vms[0]["controller"], expected);
    assert!(
        vms[0]["publicKeyMultibase"]
            .as_str()
            .unwrap()
            .starts_with("z6Mk")
    );
    assert_eq!(doc["assertionMethod"][0], vms[0]["id"]);

    // ETag and 304.
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let resp = app
        .http
        .get(app.url(&format!("/issuers/{id}/did.json")))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);

    // The Profile is public JSON-LD.
    let (status, _, profile) = get_json(&app, &format!("/issuers/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(profile["id"], expected);
    assert_eq!(profile["type"], json!(["Profile"]));
    assert_eq!(profile["name"], "Example University");
    assert_eq!(profile["email"], "badges@example.edu");

    // JWKS carries the key with kid = verification method id.
    let (_, _, jwks) = get_json(&app, "/.well-known/jwks.json").await;
    let jwk = &jwks["keys"][0];
    assert_eq!(jwk["kty"], "OKP");
    assert_eq!(jwk["crv"], "Ed25519");
    assert_eq!(jwk["kid"], vms[0]["id"]);
    assert!(jwk.get("d").is_none(), "no private part");

    // The key listing shows public material only.
    let keys = keys_of(&app, &token, id).await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["state"], "active");
    assert_eq!(keys[0]["verificationMethod"], vms[0]["id"]);
    let text = serde_json::to_string(&keys).unwrap();
    assert!(!text.contains("ciphertext") && !text.contains("nonce"));
}

#[tokio::test]
async fn did_web_document_resolves_with_the_ssi_resolver() {
    use ssi::dids::{DID, DIDResolver, DIDWeb};
    let app = TestApp::spawn().await;
    let token = app.token("issuers:write").await;
    let issuer = create_issuer(&app, &token, json!({"name": "Resolvable"})).await;
    let did = issuer["issuerId"].as_str().unwrap();
    let did = DID::new(did).unwrap();
    let output = DIDWeb.resolve(did).await.unwrap();
    let document = output.document.into_document();
    assert_eq!(document.id.as_str(), issuer["issuerId"].as_str().unwrap());
    assert_eq!(document.verification_method.len(), 1);
    assert_eq!(
        document.verification_relationships.assertion_method.len(),
        1
    );
}

#[tokio::test]
async fn url_and_did_key_issuers() {
    let app = TestApp::spawn().await;
    let token = app.token("issuers:write keys:manage").await;
    let url_issuer = create_issuer(&app, &token, json!({"name": "U", "idType": "url"})).await;
    let id = url_issuer["id"].as_str().unwrap();
    assert_eq!(
        url_issuer["issuerId"],
        format!("http://127.0.0.1:{}/issuers/{id}", app.addr.port())
    );
    let (status, _, _) = get_json(&app, &format!("/issuers/{id}/did.json")).await;
    assert_eq!(status, 404, "url issuers have no DID document");

    let key_issuer = create_issuer(&app, &token, json!({"name": "K", "idType": "did:key"})).await;
    let did = key_issuer["issuerId"].as_str().unwrap();
    assert!(did.starts_with("did:key:z6Mk"), "{did}");
    let resp = app
        .http
        .post(app.url(&format!(
            "/api/v1/issuers/{}/keys/rotate",
            key_issuer["id"].as_str().unwrap()
        )))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_problem(resp, 409, "rotation_not_supported").await;
}

#[tokio::test]
async fn bad_issuer_input_is_422_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let token = app.token("issuers:write issuers:read").await;
    for body in [
        json!({"name": ""}),
        json!({"name": "x", "url": "ftp://example.edu"}),
        json!({"name": "x", "email": "not an email"}),
        json!({"name": "x", "idType": "did:ion"}),
        json!({"name": "x", "idType": "url", "wellKnown": true}),
    ] {
        let resp = app
            .http
            .post(app.url("/api/v1/issuers"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 422, "{body}");
    }
    let page: Value = app
        .http
        .get(app.url("/api/v1/issuers"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 0);
    let resp = app
        .http
        .get(app.url("/api/v1/issuers/nope"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_problem(resp, 404, "not_found").await;
}

#[tokio::test]
async fn profile_updates_keep_the_identifier() {
    let app = TestApp::spawn().await;
    let token = app.token("issuers:write issuers:read").await;
    let issuer = create_issuer(
        &app,
        &token,
        json!({"name": "Old", "url": "https://a.example"}),
    )
    .await;
    let id = issuer["id"].as_str().unwrap();
    let resp = app
        .http
        .patch(app.url(&format!("/api/v1/issuers/{id}")))
        .bearer_auth(&token)
        .json(&json!({"name": "New", "url": null, "description": "Badges since 2026"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let updated: Value = resp.json().await.unwrap();
    assert_eq!(updated["name"], "New");
    assert!(updated["url"].is_null());
    assert_eq!(updated["description"], "Badges since 2026");
    assert_eq!(updated["issuerId"], issuer["issuerId"]);
}

#[tokio::test]
async fn well_known_issuer_is_served_at_the_root_did() {
    let app = TestApp::spawn().await;
    let token = app.token("issuers:write").await;
    let issuer = create_issuer(&app, &token, json!({"name": "Root", "wellKnown": true})).await;
    let expected = format!("did:web:127.0.0.1%3A{}", app.addr.port());
    assert_eq!(issuer["issuerId"], expected);
    let (status, _, doc) = get_json(&app, "/.well-known/did.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["id"], expected);
    // Only one issuer can hold it.
    let resp = app
        .http
        .post(app.url("/api/v1/issuers"))
        .bearer_auth(&token)
        .json(&json!({"name": "Root 2", "wellKnown": true}))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 409, "identifier_taken").await;
}

#[tokio::test]
async fn rotation_keeps_old_keys_published_and_revocation_removes_them() {
    let app = TestApp::spawn().await;
    let token = app
        .token("issuers:write issuers:read keys:manage admin")
        .await;
    let issuer = create_issuer(&app, &token, json!({"name": "Rotating"})).await;
    let id = issuer["id"].as_str().unwrap();
    let first = keys_of(&app, &token, id).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let resp = app
        .http
        .post(app.url(&format!("/api/v1/issuers/{id}/keys/rotate")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let rotated: Value = resp.json().await.unwrap();
    assert_eq!(rotated["retiredKeyId"], first);
    let second = rotated["active"]["id"].as_str().unwrap().to_owned();
    assert_ne!(first, second);

    let (_, _, doc) = get_json(&app, &format!("/issuers/{id}/did.json")).await;
    let listed: Vec<&str> = doc["verificationMethod"]
        .as_array()
        .unwrap()
        .iter()
        .map(|vm| vm["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 2, "retired key stays published");
    assert!(listed.iter().any(|v| v.ends_with(&first)));

    let keys = keys_of(&app, &token, id).await;
    let state_of = |k: &str| {
        keys.iter()
            .find(|x| x["id"] == k)
            .map(|x| x["state"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(state_of(&first), "retired");
    assert_eq!(state_of(&second), "active");

    // Revoke the retired key: it leaves the DID document; revoking again is 409.
    let revoke = |key: String| {
        let app = &app;
        let token = token.clone();
        async move {
            app.http
                .post(app.url(&format!("/api/v1/issuers/{id}/keys/{key}/revoke")))
                .bearer_auth(&token)
                .json(&json!({"reason": "laptop stolen"}))
                .send()
                .await
                .unwrap()
        }
    };
    let resp = revoke(first.clone()).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["state"], "revoked");
    assert_eq!(body["revocationReason"], "laptop stolen");
    let (_, _, doc) = get_json(&app, &format!("/issuers/{id}/did.json")).await;
    assert_eq!(doc["verificationMethod"].as_array().unwrap().len(), 1);
    assert_problem(revoke(first.clone()).await, 409, "key_already_revoked").await;

    // Revoking the active key activates a fresh one.
    assert_eq!(revoke(second.clone()).await.status(), 200);
    let keys = keys_of(&app, &token, id).await;
    let active: Vec<&Value> = keys.iter().filter(|k| k["state"] == "active").collect();
    assert_eq!(active.len(), 1);
    assert_ne!(active[0]["id"], second);

    // Everything is in the audit trail.
    let audit: Value = app
        .http
        .get(app.url("/api/v1/audit?limit=50"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for wanted in [
        "issuer.created",
        "key.generated",
        "key.rotated",
        "key.revoked",
    ] {
        assert!(
            actions.contains(&wanted),
            "{wanted} missing from {actions:?}"
        );
    }
    let event = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "key.rotated")
        .unwrap();
    assert_eq!(event["actor"], app.admin_id);
}

#[tokio::test]
async fn twenty_concurrent_rotations_leave_exactly_one_active_key() {
    let app = TestApp::spawn().await;
    let token = app.token("issuers:write issuers:read keys:manage").await;
    let issuer = create_issuer(&app, &token, json!({"name": "Busy"})).await;
    let id = issuer["id"].as_str().unwrap().to_owned();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let http = app.http.clone();
        let url = app.url(&format!("/api/v1/issuers/{id}/keys/rotate"));
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let status = t.await.unwrap();
        assert!(status == 200, "rotation answered {status}");
        ok += 1;
    }
    assert_eq!(ok, 20);
    let keys = keys_of(&app, &token, &id).await;
    assert_eq!(keys.len(), 21);
    assert_eq!(keys.iter().filter(|k| k["state"] == "active").count(), 1);
    let ids: HashSet<&str> = keys.iter().map(|k| k["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 21, "key ids are distinct");
    let publics: HashSet<&str> = keys
        .iter()
        .map(|k| k["publicKeyMultibase"].as_str().unwrap())
        .collect();
    assert_eq!(publics.len(), 21, "key material is never reused");
}

/// Every private key's 32 secret bytes, decrypted through the store.
async fn private_keys(app: &TestApp) -> Vec<[u8; 32]> {
    let rows = signing_key::Entity::find()
        .all(app.state.db())
        .await
        .unwrap();
    rows.iter()
        .map(|row| app.state.keys().decrypt(row).unwrap().to_bytes())
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn database_never_contains_private_key_bytes() {
    let app = TestApp::spawn().await;
    let token = app.token("issuers:write keys:manage").await;
    for n in 0..3 {
        let issuer = create_issuer(&app, &token, json!({"name": format!("I{n}")})).await;
        app.http
            .post(app.url(&format!(
                "/api/v1/issuers/{}/keys/rotate",
                issuer["id"].as_str().unwrap()
            )))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
    }
    let secrets = private_keys(&app).await;
    assert_eq!(secrets.len(), 6);
    let rows = signing_key::Entity::find()
        .all(app.state.db())
        .await
        .unwrap();
    for secret in &secrets {
        let hex_form = hex::encode(secret);
        for row in &rows {
            assert!(!contains(&row.ciphertext, secret));
            assert!(!contains(&row.nonce, secret));
            assert!(!row.public_key.contains(&hex_form));
        }
    }
    if app.db().url.starts_with("sqlite:") {
        // Scan the raw database files (main file and WAL).
        for entry in std::fs::read_dir(app.db().data_dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("oxbadge.db")
            {
                let bytes = std::fs::read(&path).unwrap();
                for secret in &secrets {
                    assert!(
                        !contains(&bytes, secret),
                        "{} holds a private key",
                        path.display()
                    );
                    assert!(!contains(&bytes, hex::encode(secret).as_bytes()));
                }
            }
        }
    } else {
        // PostgreSQL: every column of every row, as the server renders it.
        use sea_orm::{ConnectionTrait, Statement};
        let db = app.state.db();
        let dump = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT encode(nonce, 'hex') || encode(ciphertext, 'hex') || public_key || kek_id AS x FROM signing_keys",
            ))
            .await
            .unwrap();
        for row in dump {
            let text: String = row.try_get("", "x").unwrap();
            for secret in &secrets {
                assert!(!text.contains(&hex::encode(secret)));
            }
        }
    }
}

#[tokio::test]
async fn tampered_or_moved_ciphertext_fails_clearly() {
    let app = TestApp::spawn().await;
    let token = app.token("issuers:write").await;
    let a = create_issuer(&app, &token, json!({"name": "A"})).await;
    let b = create_issuer(&app, &token, json!({"name": "B"})).await;
    let db = app.state.db();
    let key_a = signing_key::Entity::find()
        .filter(signing_key::Column::IssuerId.eq(a["id"].as_str().unwrap()))
        .one(db)
        .await
        .unwrap()
        .unwrap();
    let key_b = signing_key::Entity::find()
        .filter(signing_key::Column::IssuerId.eq(b["id"].as_str().unwrap()))
        .one(db)
        .await
        .unwrap()
        .unwrap();
    let fresh = KeyStore::new(app.state.keys().ring().clone());

    // A flipped ciphertext byte.
    let mut flipped = key_a.clone();
    flipped.ciphertext[3] ^= 0x01;
    let err = fresh.decrypt(&flipped).unwrap_err().to_string();
    assert!(err.contains(&key_a.id), "{err}");

    // A ciphertext moved to another row (other key id and issuer).
    let mut moved = key_b.clone();
    moved.ciphertext = key_a.ciphertext.clone();
    moved.nonce = key_a.nonce.clone();
    assert!(fresh.decrypt(&moved).is_err());
    let mut moved_in_db: signing_key::ActiveModel = key_b.clone().into();
    moved_in_db.ciphertext = Set(key_a.ciphertext.clone());
    moved_in_db.nonce = Set(key_a.nonce.clone());
    moved_in_db.update(db).await.unwrap();
    let issuer_b = issuer::Entity::find_by_id(b["id"].as_str().unwrap().to_owned())
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert!(fresh.active_signing_key(db, &issuer_b).await.is_err());

    // The untouched key still decrypts.
    assert!(fresh.decrypt(&key_a).is_ok());
}

#[tokio::test]
async fn wrong_or_missing_kek_fails_fast_naming_the_kek() {
    let db = TestDb::create().await;
    let settings = test_settings(&db);
    let mut app = oxbadge::App::build(settings.clone()).await.unwrap();
    let admin = app.take_bootstrap_admin().unwrap();
    drop(admin);
    // Create an issuer (and so a key) directly through the domain layer.
    let state = app.state().clone();
    oxbadge::issuers::create_issuer(
        state.db(),
        state.keys(),
        state.public_url(),
        oxbadge::issuers::NewIssuer {
            profile: oxbadge::issuers::ProfileFields {
                name: "K".into(),
                ..Default::default()
            },
            id_type: oxbadge::keys::identity::IdType::DidWeb,
            well_known: false,
        },
        "test",
    )
    .await
    .unwrap();
    drop(app);

    // Same id, wrong material.
    let mut wrong = settings.clone();
    wrong.kek = Some(secrecy::SecretString::from(random_kek("test-kek-1")));
    let err = oxbadge::App::build(wrong).await.err().unwrap().to_string();
    assert!(err.contains("test-kek-1"), "{err}");

    // The KEK the keys are under is not configured at all.
    let mut missing = settings.clone();
    missing.kek = Some(secrecy::SecretString::from(random_kek("other-kek")));
    let err = oxbadge::App::build(missing)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("test-kek-1"), "{err}");
}

#[tokio::test]
async fn rewrap_then_restart_with_only_the_new_kek() {
    let db = TestDb::create().await;
    let old = random_kek("kek-old");
    let new = random_kek("kek-new");
    let mut settings = test_settings(&db);
    settings.kek = Some(secrecy::SecretString::from(old.clone()));
    let app = TestApp::spawn_on(db, settings.clone()).await;
    let token = app.token("issuers:write keys:manage").await;
    let issuer = create_issuer(&app, &token, json!({"name": "Rewrapped"})).await;
    let id = issuer["id"].as_str().unwrap().to_owned();
    let rotated = app
        .http
        .post(app.url(&format!("/api/v1/issuers/{id}/keys/rotate")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 200, "{}", rotated.text().await.unwrap());
    let (_, _, doc_before) = get_json(&app, &format!("/issuers/{id}/did.json")).await;
    let before = private_keys(&app).await;
    let db_url = app.db().url.clone();
    let data_dir = app.db().data_dir.path().to_path_buf();

    // Rewrap through the CLI with the new KEK active and the old one still present.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_oxbadge"))
        .args(["--database-url", &db_url, "--data-dir"])
        .arg(&data_dir)
        .args(["keys", "rewrap"])
        .env("OXBADGE_KEK", format!("{new},{old}"))
        .env("OXBADGE_ACTIVE_KEK", "kek-new")
        .env("OXBADGE_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("re-wrapped 2 key(s)"), "{stdout}");
    let db = app.into_db().await;

    // Restart with only the new KEK: same keys, same document.
    let mut settings = test_settings(&db);
    settings.kek = Some(secrecy::SecretString::from(new));
    let app = TestApp::spawn_on_existing(db, settings).await;
    let (_, _, doc_after) = get_json(&app, &format!("/issuers/{id}/did.json")).await;
    assert_eq!(doc_before, doc_after);
    let mut after = private_keys(&app).await;
    let mut before = before;
    before.sort();
    after.sort();
    assert_eq!(before, after);
    let rows = signing_key::Entity::find()
        .all(app.state.db())
        .await
        .unwrap();
    assert!(rows.iter().all(|r| r.kek_id == "kek-new"));
}

#[tokio::test]
async fn keys_past_their_maximum_age_rotate_once() {
    let app = TestApp::spawn().await;
    let token = app.token("issuers:write").await;
    let issuer = create_issuer(&app, &token, json!({"name": "Aging"})).await;
    let db = app.state.db();
    let key = signing_key::Entity::find()
        .filter(signing_key::Column::IssuerId.eq(issuer["id"].as_str().unwrap()))
        .one(db)
        .await
        .unwrap()
        .unwrap();
    let mut old: signing_key::ActiveModel = key.clone().into();
    old.created_at = Set(chrono::Utc::now() - chrono::Duration::days(400));
    old.update(db).await.unwrap();
    assert_eq!(oxbadge::app::rotate_aged_keys(&app.state).await, 1);
    assert_eq!(oxbadge::app::rotate_aged_keys(&app.state).await, 0);
    let rows = signing_key::Entity::find()
        .filter(signing_key::Column::IssuerId.eq(issuer["id"].as_str().unwrap()))
        .all(db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows.iter().filter(|r| r.state == "active").count(), 1);
    assert!(rows.iter().any(|r| r.id == key.id && r.state == "retired"));
}

#[tokio::test]
async fn development_kek_is_generated_once_with_mode_0600() {
    let db = TestDb::create().await;
    if !db.url.starts_with("sqlite:") {
        // PostgreSQL never falls back to a development KEK.
        let mut settings = test_settings(&db);
        settings.kek = None;
        let err = oxbadge::App::build(settings)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("OXBADGE_KEK"), "{err}");
        return;
    }
    let mut settings = test_settings(&db);
    settings.kek = None;
    let app = TestApp::spawn_on(db, settings.clone()).await;
    let path = app.db().data_dir.path().join("kek");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let first = std::fs::read_to_string(&path).unwrap();
    let token = app.token("issuers:write").await;
    create_issuer(&app, &token, json!({"name": "Dev"})).await;
    let db = app.into_db().await;
    // A restart reuses the same file and still decrypts its keys.
    let app = TestApp::spawn_on_existing(db, settings).await;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), first);
    assert_eq!(private_keys(&app).await.len(), 1);
}

/// Signs a minimal VC 2.0 credential with ssi (a second implementation) using `key`.
async fn ssi_sign(
    issuer_did: &str,
    verification_method: &str,
    key: &ed25519_dalek::SigningKey,
) -> ssi::claims::data_integrity::DataIntegrity<
    ssi::claims::vc::v2::SpecializedJsonCredential,
    ssi::claims::data_integrity::suites::EdDsaRdfc2022,
> {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    use ssi::{
        claims::data_integrity::{CryptographicSuite, ProofOptions, suites::EdDsaRdfc2022},
        dids::{DIDResolver, DIDWeb},
        verification_methods::SingleSecretSigner,
    };
    let jwk: ssi::JWK = serde_json::from_value(json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
        "d": URL_SAFE_NO_PAD.encode(key.to_bytes()),
    }))
    .unwrap();
    let vc: ssi::claims::vc::v2::SpecializedJsonCredential = serde_json::from_value(json!({
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "type": ["VerifiableCredential"],
        "id": "urn:uuid:6a9c92a9-2530-4e2b-9776-530467e9bbe0",
        "issuer": issuer_did,
        "validFrom": "2026-11-01T00:00:00Z",
        "credentialSubject": {"id": "did:example:learner"}
    }))
    .unwrap();
    let resolver = DIDWeb.into_vm_resolver();
    let signer = SingleSecretSigner::new(jwk);
    let options = ProofOptions::from_method_and_options(
        iref::IriBuf::new(verification_method.to_owned())
            .unwrap()
            .into(),
        (),
    );
    EdDsaRdfc2022
        .sign(vc, &resolver, &signer, options)
        .await
        .unwrap()
}

#[tokio::test]
async fn credential_signed_before_rotation_still_verifies_until_its_key_is_revoked() {
    use ssi::{
        claims::VerificationParameters,
        dids::{DIDResolver, DIDWeb},
    };
    let app = TestApp::spawn().await;
    let token = app.token("issuers:write issuers:read keys:manage").await;
    let created = create_issuer(&app, &token, json!({"name": "Signer"})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let issuer = issuer::Entity::find_by_id(id.clone())
        .one(app.state.db())
        .await
        .unwrap()
        .unwrap();
    let active = app
        .state
        .keys()
        .active_signing_key(app.state.db(), &issuer)
        .await
        .unwrap();
    let vc = ssi_sign(
        &issuer.issuer_id,
        &active.verification_method,
        &active.signing_key,
    )
    .await;
    let resolver = DIDWeb.into_vm_resolver();
    let params = VerificationParameters::from_resolver(&resolver);
    assert!(
        vc.verify(&params).await.unwrap().is_ok(),
        "verifies before rotation"
    );

    let resp = app
        .http
        .post(app.url(&format!("/api/v1/issuers/{id}/keys/rotate")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        vc.verify(&params).await.unwrap().is_ok(),
        "a credential signed by the retired key still verifies"
    );

    // A tampered copy does not verify (the check can fail).
    let mut forged = serde_json::to_value(&vc).unwrap();
    forged["credentialSubject"]["id"] = json!("did:example:mallory");
    let forged: ssi::claims::data_integrity::DataIntegrity<
        ssi::claims::vc::v2::SpecializedJsonCredential,
        ssi::claims::data_integrity::suites::EdDsaRdfc2022,
    > = serde_json::from_value(forged).unwrap();
    assert!(
        forged.verify(&params).await.unwrap().is_err(),
        "tampered copy fails"
    );

    // After revoking that key, it no longer verifies.
    let resp = app
        .http
        .post(app.url(&format!(
            "/api/v1/issuers/{id}/keys/{}/revoke",
            active.key_id
        )))
        .bearer_auth(&token)
        .json(&json!({"reason": "compromised"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(vc.verify(&params).await.map(|r| r.is_err()).unwrap_or(true));
}
