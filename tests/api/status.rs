//! Status: bitstring status lists, revocation, suspension, the 1EdTech revocation list, bulk
//! changes, and allocation under concurrency.

use std::{collections::HashSet, io::Read};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::{
    issuance::{issue, issuer_with_achievement, ssi_verifies},
    support::{TestApp, assert_problem, test_settings},
};

/// Decodes an encodedList independently (gunzip + manual bit test).
fn bit(encoded: &str, index: usize) -> bool {
    let compressed = URL_SAFE_NO_PAD.decode(&encoded[1..]).unwrap();
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(compressed.as_slice())
        .read_to_end(&mut bytes)
        .unwrap();
    assert!(bytes.len() >= 16 * 1024);
    bytes[index / 8] & (0x80 >> (index % 8)) != 0
}

async fn get_list(app: &TestApp, url: &str) -> (String, Value) {
    let path = url
        .split_once("/status/")
        .map(|(_, p)| format!("/status/{p}"))
        .unwrap();
    let resp = app.http.get(app.url(&path)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/vc+ld+json");
    let cc = resp.headers()["cache-control"].to_str().unwrap().to_owned();
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    let ttl = body["credentialSubject"]["ttl"].as_i64().unwrap();
    assert_eq!(cc, format!("public, max-age={}", ttl / 1000));
    (etag, body)
}

async fn set_status(app: &TestApp, token: &str, id: &str, body: Value) -> reqwest::Response {
    app.http
        .post(app.url(&format!("/api/v1/credentials/{id}/status")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn both(s: &mut oxbadge::Settings) {
    s.status_shape = oxbadge::ob::StatusShape::BitstringBoth;
}

#[tokio::test]
async fn revocation_shows_in_the_next_list_read_and_is_final() {
    let app = TestApp::spawn_with(both).await;
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
    let id = issued["id"].as_str().unwrap();
    let entries = issued["credential"]["credentialStatus"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(entries.len(), 2);
    let revocation = entries
        .iter()
        .find(|e| e["statusPurpose"] == "revocation")
        .unwrap();
    let suspension = entries
        .iter()
        .find(|e| e["statusPurpose"] == "suspension")
        .unwrap();
    assert_eq!(revocation["type"], "BitstringStatusListEntry");
    let r_index: usize = revocation["statusListIndex"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let s_index: usize = suspension["statusListIndex"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let r_url = revocation["statusListCredential"].as_str().unwrap();
    let s_url = suspension["statusListCredential"].as_str().unwrap();
    assert_ne!(r_url, s_url);

    let (etag1, list) = get_list(&app, r_url).await;
    assert_eq!(
        list["type"],
        json!(["VerifiableCredential", "BitstringStatusListCredential"])
    );
    assert_eq!(list["credentialSubject"]["statusPurpose"], "revocation");
    assert_eq!(list["issuer"], issued["credential"]["issuer"]["id"]);
    assert!(list["validUntil"].is_string() && list["validFrom"].is_string());
    assert!(!bit(
        list["credentialSubject"]["encodedList"].as_str().unwrap(),
        r_index
    ));
    assert!(ssi_verifies(&list).await, "the list credential verifies");
    // A cached read answers 304 on its ETag.
    let resp = app
        .http
        .get(r_url)
        .header("if-none-match", &etag1)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);

    let resp = set_status(
        &app,
        &token,
        id,
        json!({"purpose": "revocation", "status": true, "reason": "Academic misconduct"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let (etag2, list) = get_list(&app, r_url).await;
    assert_ne!(etag1, etag2);
    assert!(bit(
        list["credentialSubject"]["encodedList"].as_str().unwrap(),
        r_index
    ));
    assert!(ssi_verifies(&list).await);

    // Final.
    let resp = set_status(
        &app,
        &token,
        id,
        json!({"purpose": "revocation", "status": false}),
    )
    .await;
    assert_problem(resp, 409, "revocation_is_final").await;
    let (_, list) = get_list(&app, r_url).await;
    assert!(bit(
        list["credentialSubject"]["encodedList"].as_str().unwrap(),
        r_index
    ));

    // Suspension is reversible and lives in its own list.
    let resp = set_status(
        &app,
        &token,
        id,
        json!({"purpose": "suspension", "status": true}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let (_, list) = get_list(&app, s_url).await;
    assert!(bit(
        list["credentialSubject"]["encodedList"].as_str().unwrap(),
        s_index
    ));
    let resp = set_status(
        &app,
        &token,
        id,
        json!({"purpose": "suspension", "status": false}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let (_, list) = get_list(&app, s_url).await;
    assert!(!bit(
        list["credentialSubject"]["encodedList"].as_str().unwrap(),
        s_index
    ));

    let stored: Value = app
        .http
        .get(app.url(&format!("/api/v1/credentials/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["revoked"], true);
    assert_eq!(stored["suspended"], false);

    // Bad requests change nothing.
    let resp = set_status(
        &app,
        &token,
        id,
        json!({"purpose": "message", "status": true}),
    )
    .await;
    assert_eq!(resp.status(), 422);
    let resp = set_status(
        &app,
        &token,
        "nope",
        json!({"purpose": "revocation", "status": true}),
    )
    .await;
    assert_problem(resp, 404, "not_found").await;
}

#[tokio::test]
async fn one_edtech_revocation_list_names_revoked_credentials() {
    let app = TestApp::spawn().await;
    let token = app
        .token("issuers:write credentials:issue credentials:status")
        .await;
    let (issuer, achievement) = issuer_with_achievement(&app, &token).await;
    let a = issue(
        &app,
        &token,
        json!({"achievementId": achievement, "recipient": {"id": "did:example:a"}}),
    )
    .await;
    let b = issue(
        &app,
        &token,
        json!({"achievementId": achievement, "recipient": {"id": "did:example:b"}}),
    )
    .await;
    let entry = &a["credential"]["credentialStatus"];
    assert_eq!(entry["type"], "1EdTechRevocationList");
    let url = entry["id"].as_str().unwrap();
    assert!(url.ends_with(&format!("/revocations/{}", issuer["id"].as_str().unwrap())));
    let resp = set_status(
        &app,
        &token,
        a["id"].as_str().unwrap(),
        json!({"purpose": "revocation", "status": true, "reason": "Issued in error"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let list: Value = app
        .http
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let revoked = list["revokedCredential"].as_array().unwrap();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["id"], a["credential"]["id"]);
    assert_eq!(revoked[0]["revoked"], true);
    assert_eq!(revoked[0]["revocationReason"], "Issued in error");
    assert!(
        !list
            .to_string()
            .contains(b["credential"]["id"].as_str().unwrap())
    );

    // Conditional requests: a strong ETag, 304 while nothing changed, a new list and tag on the
    // very next request after a revocation.
    let get = |etag: Option<String>| {
        let mut req = app.http.get(url);
        if let Some(etag) = etag {
            req = req.header("if-none-match", etag);
        }
        req.send()
    };
    let resp = get(None).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(resp.headers()["cache-control"], "no-cache");
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.len() > 10);
    assert_eq!(resp.json::<Value>().await.unwrap(), list);
    let resp = get(Some(etag.clone())).await.unwrap();
    assert_eq!(resp.status(), 304);
    let resp = set_status(
        &app,
        &token,
        b["id"].as_str().unwrap(),
        json!({"purpose": "revocation", "status": true}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let resp = get(Some(etag.clone())).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_ne!(resp.headers()["etag"].to_str().unwrap(), etag);
    let list: Value = resp.json().await.unwrap();
    let ids: Vec<&str> = list["revokedCredential"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&b["credential"]["id"].as_str().unwrap()));
    // An unknown issuer is a 404, not an empty list.
    let resp = app
        .http
        .get(app.url("/revocations/no-such-issuer"))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 404, "not_found").await;
}

#[tokio::test]
async fn bulk_revocation_is_atomic_and_touches_each_list_once() {
    let app = TestApp::spawn_with(both).await;
    let token = app
        .token("issuers:write credentials:issue credentials:status")
        .await;
    let (_, achievement) = issuer_with_achievement(&app, &token).await;
    let recipients: Vec<Value> = (0..200)
        .map(|i| json!({"id": format!("did:example:{i}")}))
        .collect();
    let batch: Value = app
        .http
        .post(app.url("/api/v1/credentials/batch"))
        .bearer_auth(&token)
        .json(
            &json!({"achievementId": achievement, "recipients": recipients, "proofFormat": "jwt"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(batch["issued"], 200);
    let ids: Vec<String> = batch["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let indexes: Vec<usize> = batch["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["credential"]["credentialStatus"][0]["statusListIndex"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    let distinct: HashSet<usize> = indexes.iter().copied().collect();
    assert_eq!(distinct.len(), 200);
    let mut sorted = indexes.clone();
    sorted.sort_unstable();
    assert!(
        sorted.windows(2).filter(|w| w[1] == w[0] + 1).count() < 20,
        "indexes are random, not sequential"
    );
    let list_url = batch["results"][0]["credential"]["credentialStatus"][0]["statusListCredential"]
        .as_str()
        .unwrap()
        .to_owned();

    // One unknown id: nothing changes.
    let mut with_unknown = ids.clone();
    with_unknown.push("unknown".into());
    let resp = app
        .http
        .post(app.url("/api/v1/credentials/status"))
        .bearer_auth(&token)
        .json(&json!({"credentialIds": with_unknown, "purpose": "revocation", "status": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let (_, list) = get_list(&app, &list_url).await;
    let encoded = list["credentialSubject"]["encodedList"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(indexes.iter().all(|i| !bit(&encoded, *i)));

    let resp = app
        .http
        .post(app.url("/api/v1/credentials/status"))
        .bearer_auth(&token)
        .json(&json!({"credentialIds": ids, "purpose": "revocation", "status": true, "reason": "cohort withdrawn"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let result: Value = resp.json().await.unwrap();
    assert_eq!(result["changed"], 200);
    assert_eq!(
        result["lists"].as_array().unwrap().len(),
        1,
        "one list, changed once"
    );
    let (_, list) = get_list(&app, &list_url).await;
    let encoded = list["credentialSubject"]["encodedList"].as_str().unwrap();
    assert!(indexes.iter().all(|i| bit(encoded, *i)));
}

#[tokio::test]
async fn concurrent_issuance_from_two_instances_never_shares_an_index() {
    // Two servers on one database (PostgreSQL in CI's second pass, a shared SQLite file otherwise).
    let first = TestApp::spawn_with(both).await;
    let token = first.token("issuers:write credentials:issue").await;
    let (_, achievement) = issuer_with_achievement(&first, &token).await;
    let mut settings = test_settings(first.db());
    both(&mut settings);
    settings.kek = first.state.settings().kek.clone();
    let second_db = crate::support::TestDb::shared(first.db());
    let second = TestApp::spawn_on_existing(second_db, settings).await;
    let token2 = second.token("credentials:issue").await;

    let total = 1000;
    let per_client = 25;
    let mut tasks = Vec::new();
    for c in 0..(total / per_client) {
        let (http, url, token) = if c % 2 == 0 {
            (
                first.http.clone(),
                first.url("/api/v1/credentials"),
                token.clone(),
            )
        } else {
            (
                second.http.clone(),
                second.url("/api/v1/credentials"),
                token2.clone(),
            )
        };
        let achievement = achievement.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..per_client {
                let resp = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({
                        "achievementId": achievement,
                        "recipient": {"id": format!("did:example:{c}-{i}")},
                        "proofFormat": "jwt"
                    }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 201);
                let body: Value = resp.json().await.unwrap();
                for entry in body["credential"]["credentialStatus"].as_array().unwrap() {
                    out.push((
                        entry["statusListCredential"].as_str().unwrap().to_owned(),
                        entry["statusListIndex"].as_str().unwrap().to_owned(),
                    ));
                }
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    assert_eq!(all.len(), total * 2);
    let distinct: HashSet<&(String, String)> = all.iter().collect();
    assert_eq!(
        distinct.len(),
        total * 2,
        "no (list, index) was handed out twice"
    );
}

#[tokio::test]
async fn vc_api_status_update_by_credential_id() {
    let app = TestApp::spawn_with(both).await;
    let token = app
        .token("issuers:write credentials:issue credentials:status credentials:read")
        .await;
    let (_, achievement) = issuer_with_achievement(&app, &token).await;
    let issued = issue(
        &app,
        &token,
        json!({"achievementId": achievement, "recipient": {"id": "did:example:z"}}),
    )
    .await;
    let uri = issued["credential"]["id"].as_str().unwrap();
    let resp = app
        .http
        .post(app.url("/credentials/status"))
        .bearer_auth(&token)
        .json(&json!({"credentialId": uri, "credentialStatus": [{"type": "BitstringStatusListEntry", "statusPurpose": "suspension", "status": true}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let stored: Value = app
        .http
        .get(app.url(&format!(
            "/api/v1/credentials/{}",
            issued["id"].as_str().unwrap()
        )))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["suspended"], true);
    let resp = app
        .http
        .post(app.url("/credentials/status"))
        .bearer_auth(&token)
        .json(&json!({"credentialId": "urn:uuid:unknown", "credentialStatus": [{"type": "revocation", "status": true}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

fn entry_of<'a>(credential: &'a Value, purpose: &str) -> (&'a str, usize) {
    let entry = credential["credentialStatus"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["statusPurpose"] == purpose)
        .unwrap();
    (
        entry["statusListCredential"].as_str().unwrap(),
        entry["statusListIndex"].as_str().unwrap().parse().unwrap(),
    )
}

#[tokio::test]
async fn concurrent_status_changes_each_show_in_the_next_list_read() {
    // Concurrent single changes share transactions (group commit): each is answered on its own,
    // and every acknowledged change is in the very next read of the list.
    let app = TestApp::spawn_with(both).await;
    let token = app
        .token("issuers:write credentials:issue credentials:status")
        .await;
    let (_, achievement) = issuer_with_achievement(&app, &token).await;
    let recipients: Vec<Value> = (0..20)
        .map(|i| json!({"email": format!("s{i}@example.edu")}))
        .collect();
    let batch: Value = app
        .http
        .post(app.url("/api/v1/credentials/batch"))
        .bearer_auth(&token)
        .json(&json!({"achievementId": achievement, "recipients": recipients}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items: Vec<(String, Value)> = batch["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["credential"].clone(),
            )
        })
        .collect();
    let (r_url, _) = entry_of(&items[0].1, "revocation");
    let (_, before) = get_list(&app, r_url).await;
    for (_, credential) in &items {
        let (_, index) = entry_of(credential, "revocation");
        assert!(!bit(
            before["credentialSubject"]["encodedList"].as_str().unwrap(),
            index
        ));
    }

    let mut tasks = Vec::new();
    for (n, (id, _)) in items.iter().enumerate().take(19) {
        let (http, token) = (app.http.clone(), token.clone());
        // One of them names a credential that does not exist.
        let id = if n == 7 {
            "no-such-credential".to_owned()
        } else {
            id.clone()
        };
        let url = app.url(&format!("/api/v1/credentials/{id}/status"));
        tasks.push(tokio::spawn(async move {
            let resp = http
                .post(url)
                .bearer_auth(token)
                .json(&json!({"purpose": "revocation", "status": true, "reason": format!("r{n}")}))
                .send()
                .await
                .unwrap();
            (
                n,
                resp.status().as_u16(),
                resp.json::<Value>().await.unwrap(),
            )
        }));
    }
    for task in tasks {
        let (n, status, body) = task.await.unwrap();
        if n == 7 {
            assert_eq!(status, 404, "{body}");
        } else {
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["changed"], true);
            assert_eq!(body["credentialId"], items[n].0.as_str());
        }
    }
    // Many readers of the just-changed list at once: one rebuilds it while the others wait for
    // that rebuild (single flight); every one of them gets the same, new list.
    let readers: Vec<_> = (0..16)
        .map(|_| {
            let (http, url) = (app.http.clone(), r_url.to_owned());
            tokio::spawn(async move {
                let resp = http.get(url).send().await.unwrap();
                assert_eq!(resp.status(), 200);
                let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
                (etag, resp.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut etags = HashSet::new();
    for reader in readers {
        let (etag, list) = reader.await.unwrap();
        let encoded = list["credentialSubject"]["encodedList"].as_str().unwrap();
        for (n, (_, credential)) in items.iter().enumerate() {
            let (_, index) = entry_of(credential, "revocation");
            assert_eq!(bit(encoded, index), n < 19 && n != 7, "credential {n}");
        }
        etags.insert(etag);
    }
    assert_eq!(etags.len(), 1, "concurrent readers saw different lists");
    let (etag, after) = get_list(&app, r_url).await;
    assert!(etags.contains(&etag));
    let encoded = after["credentialSubject"]["encodedList"].as_str().unwrap();
    for (n, (_, credential)) in items.iter().enumerate() {
        let (_, index) = entry_of(credential, "revocation");
        assert_eq!(bit(encoded, index), n < 19 && n != 7, "credential {n}");
    }

    // Suspend and lift, reading the list right after each answer.
    let (s_url, s_index) = entry_of(&items[19].1, "suspension");
    for round in 0..3 {
        for suspended in [true, false] {
            let resp = set_status(
                &app,
                &token,
                &items[19].0,
                json!({"purpose": "suspension", "status": suspended}),
            )
            .await;
            assert_eq!(resp.status(), 200, "round {round}");
            let (_, list) = get_list(&app, s_url).await;
            assert_eq!(
                bit(
                    list["credentialSubject"]["encodedList"].as_str().unwrap(),
                    s_index
                ),
                suspended,
                "round {round}"
            );
        }
    }
}

#[tokio::test]
async fn a_revocation_through_one_instance_shows_on_another() {
    // On PostgreSQL the second instance would keep its cached list for ten minutes: only the
    // NOTIFY of the first can make the change visible in time. On a shared SQLite file the
    // fallback re-validation (here 200 ms) does.
    let postgres = std::env::var("OXBADGE_TEST_DATABASE_URL").is_ok_and(|v| !v.is_empty());
    let first = TestApp::spawn_with(both).await;
    let token = first
        .token("issuers:write credentials:issue credentials:status")
        .await;
    let (issuer, achievement) = issuer_with_achievement(&first, &token).await;
    let issued = issue(
        &first,
        &token,
        json!({"achievementId": achievement, "recipient": {"email": "two@example.com"}}),
    )
    .await;
    let mut settings = test_settings(first.db());
    both(&mut settings);
    settings.kek = first.state.settings().kek.clone();
    settings.cache_revalidate_ms = if postgres { 600_000 } else { 200 };
    let second =
        TestApp::spawn_on_existing(crate::support::TestDb::shared(first.db()), settings).await;

    let (url, index) = entry_of(&issued["credential"], "revocation");
    // The 1EdTech revocation list of the same issuer, read through the second instance.
    let issuer_cuid = issuer["id"].as_str().unwrap().to_owned();
    let revocations = second.url(&format!("/revocations/{issuer_cuid}"));
    let revoked_there = || async {
        let resp = second.http.get(&revocations).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let list: Value = resp.json().await.unwrap();
        list["revokedCredential"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == issued["credential"]["id"])
    };
    for _ in 0..2 {
        let (_, list) = get_list(&second, url).await;
        assert!(!bit(
            list["credentialSubject"]["encodedList"].as_str().unwrap(),
            index
        ));
        assert!(!revoked_there().await);
    }
    let resp = set_status(
        &first,
        &token,
        issued["id"].as_str().unwrap(),
        json!({"purpose": "revocation", "status": true}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    // The revocation list checks the lists' versions on every request: no waiting at all.
    assert!(revoked_there().await);
    // Poll (not a speed assertion): the change must arrive well before this deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, list) = get_list(&second, url).await;
        if bit(
            list["credentialSubject"]["encodedList"].as_str().unwrap(),
            index,
        ) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the revocation never reached the second instance"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
