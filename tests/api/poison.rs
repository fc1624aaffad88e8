//! Poison graphs (issue 12 item 1): credentials whose blank nodes RDFC-1.0 cannot tell apart
//! cheaply are refused within the configured canonicalization bounds (`indeterminate` on
//! verification, 422 on issuance), the bounds leave every real document far behind, and work
//! whose client went away stops and frees its worker.

use std::time::{Duration, Instant};

use oxbadge::jsonld::{CanonicalizationLimits, CanonicalizationWork, ContextLoader, JsonLdError};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::TestApp;

/// A VC 2.0 credential whose subject `knows` `n` blank nodes that all `knows` each other: a
/// clique, so every blank node has the same first-degree hash and Hash N-Degree Quads has to try
/// the permutations of the group (factorial work without a bound). About 2.4 KB for n = 9.
pub fn poison_credential(n: usize) -> Value {
    let nodes: Vec<Value> = (0..n)
        .map(|i| {
            let others: Vec<Value> = (0..n)
                .filter(|&j| j != i)
                .map(|j| json!({"id": format!("_:n{j}")}))
                .collect();
            json!({"id": format!("_:n{i}"), "knows": others})
        })
        .collect();
    json!({
        "@context": [
            "https://www.w3.org/ns/credentials/v2",
            "https://www.w3.org/ns/credentials/examples/v2"
        ],
        "id": "urn:uuid:0d3c1a1e-5b1c-4c53-9f6f-7d4e3c2b1a00",
        "type": ["VerifiableCredential"],
        "issuer": "did:key:z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2",
        "validFrom": "2026-01-01T00:00:00Z",
        "credentialSubject": {"id": "did:example:subject", "knows": nodes}
    })
}

/// The poison credential with a well-formed `eddsa-rdfc-2022` proof by a did:key (resolved
/// offline) whose signature is garbage: verification gets as far as canonicalization.
pub fn signed_poison(n: usize) -> Value {
    let mut vc = poison_credential(n);
    let key = "did:key:z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2";
    vc["proof"] = json!({
        "type": "DataIntegrityProof",
        "cryptosuite": "eddsa-rdfc-2022",
        "created": "2026-01-01T00:00:00Z",
        "verificationMethod": format!("{key}#{}", key.trim_start_matches("did:key:")),
        "proofPurpose": "assertionMethod",
        "proofValue": format!("z{}", bs58::encode([7u8; 64]).into_string()),
    });
    vc
}

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vectors");

/// Every JSON document of the shared vectors and the fuzz corpus (proofs and all).
fn every_document() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut dirs = vec![
        std::path::PathBuf::from(VECTORS),
        std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus")),
    ];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "json")
                && let Ok(text) = std::fs::read_to_string(&path)
                && let Ok(value) = serde_json::from_str::<Value>(&text)
                && value.get("@context").is_some()
            {
                out.push((path.display().to_string(), value));
            }
        }
    }
    out
}

fn unbounded() -> CanonicalizationLimits {
    CanonicalizationLimits {
        max_calls: u64::MAX,
        max_permutations: u64::MAX,
        max_depth: u32::MAX,
    }
}

/// The most work any real document needs, measured against the defaults: the largest figure
/// must stay at least 10 times below its limit (the figures are in BENCHMARKS.md).
#[test]
fn real_documents_stay_far_below_the_limits() {
    let loader = ContextLoader::new();
    let mut most = CanonicalizationWork::default();
    let mut measured = 0;
    let mut documents = every_document();
    // Documents built to need Hash N-Degree Quads: identical evidence, results and alignments
    // (the shapes of real credentials that do), and the same with 32 identical entries.
    let mut twins = documents
        .iter()
        .find(|(p, _)| p.ends_with("ob-v3p0-ldp/signed-credential.json"))
        .map(|(_, v)| v.clone())
        .expect("the OB 3.0 example is among the vectors");
    twins.as_object_mut().unwrap().remove("proof");
    for copies in [3, 32] {
        let mut doc = twins.clone();
        doc["evidence"] = json!(vec![json!({"type": ["Evidence"], "name": "Twin"}); copies]);
        doc["credentialSubject"]["result"] = json!(vec![
            json!({"type": ["Result"], "value": "A", "alignment": [
                {"type": ["Alignment"], "targetName": "Same", "targetUrl": "https://example.org/s"},
                {"type": ["Alignment"], "targetName": "Same", "targetUrl": "https://example.org/s"}
            ]});
            copies
        ]);
        doc["credentialSubject"]["achievement"]["alignment"] = json!(vec![
            json!({"type": ["Alignment"], "targetName": "Same", "targetUrl": "https://example.org/s"});
            copies
        ]);
        documents.push((format!("{copies} identical evidence/result/alignment"), doc));
    }
    twins = documents.last().unwrap().1.clone();
    twins["credentialSubject"]["achievement"]["tag"] = json!(vec!["same"; 64]);
    documents.push(("64 identical tags".into(), twins));
    for (path, document) in &documents {
        match loader.canonicalize_within(document, unbounded()) {
            Ok((_, work)) => {
                measured += 1;
                println!(
                    "{path}: {} calls, {} permutations, depth {}",
                    work.calls, work.permutations, work.depth
                );
                most.calls = most.calls.max(work.calls);
                most.permutations = most.permutations.max(work.permutations);
                most.depth = most.depth.max(work.depth);
            }
            // Vectors of other suites may use contexts we do not pin; they need no bound.
            Err(e) => println!("{path}: not canonicalized ({e})"),
        }
    }
    println!("most: {most:?} over {measured} documents");
    assert!(measured >= 18, "only {measured} documents measured");
    let limits = CanonicalizationLimits::default();
    assert!(most.calls * 10 <= limits.max_calls, "{most:?}");
    assert!(
        most.permutations * 10 <= limits.max_permutations,
        "{most:?}"
    );
    assert!(most.depth * 4 <= limits.max_depth, "{most:?}");
}

/// The bound holds on the poison graph in milliseconds (where unbounded work takes minutes),
/// names the limit, and smaller cliques that real processors handle still canonicalize.
#[test]
fn the_bound_refuses_a_clique_quickly_and_names_the_limit() {
    let loader = ContextLoader::new();
    let start = Instant::now();
    let err = loader
        .canonicalize_within(&poison_credential(9), CanonicalizationLimits::default())
        .unwrap_err();
    let elapsed = start.elapsed();
    assert!(matches!(err, JsonLdError::LimitExceeded { .. }), "{err:?}");
    assert!(err.to_string().contains("limit `rdfc_max_"), "{err}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    // A clique of 4 is cheap: canonicalized within the defaults.
    loader
        .canonicalize_within(&poison_credential(4), CanonicalizationLimits::default())
        .unwrap();
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {report:#}"))
}

/// Over real HTTP: the public verifier answers a poison credential quickly, `indeterminate`, with
/// a problem naming the limit.
#[tokio::test]
async fn a_poison_credential_is_indeterminate_naming_the_limit() {
    let app = TestApp::spawn().await;
    for n in [9, 12] {
        let start = Instant::now();
        let resp = app
            .http
            .post(app.url("/api/v1/verify"))
            .json(&signed_poison(n))
            .send()
            .await
            .unwrap();
        let elapsed = start.elapsed();
        assert_eq!(resp.status(), 200);
        let report: Value = resp.json().await.unwrap();
        assert_eq!(report["outcome"], "indeterminate", "{report:#}");
        let contexts = check(&report, "contexts");
        assert_eq!(contexts["status"], "indeterminate", "{report:#}");
        assert_eq!(
            contexts["problem"]["type"],
            "urn:oxbadge:verify:canonicalization_limit"
        );
        let detail = contexts["detail"].as_str().unwrap();
        assert!(detail.contains("limit `rdfc_max_"), "{detail}");
        assert_eq!(check(&report, "proof")["status"], "indeterminate");
        assert!(elapsed < Duration::from_secs(5), "clique {n}: {elapsed:?}");
    }
    app.stop().await;
}

/// The signing path has the same bound: the VC API issuer answers 422 naming the limit.
#[tokio::test]
async fn issuing_a_poison_credential_is_422_naming_the_limit() {
    let app = TestApp::spawn().await;
    let token = app.token("issuers:write credentials:issue").await;
    let issuer = crate::keys::create_issuer(&app, &token, json!({"name": "Poison issuer"})).await;
    let mut vc = poison_credential(9);
    vc["issuer"] = issuer["issuerId"].clone();
    let resp = app
        .http
        .post(app.url("/credentials/issue"))
        .bearer_auth(&token)
        .json(&json!({"credential": vc}))
        .send()
        .await
        .unwrap();
    let body = crate::support::assert_problem(resp, 422, "canonicalization_limit").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("limit `rdfc_max_"),
        "{body:#}"
    );
    app.stop().await;
}

/// With the bounds lifted and one verify worker, a poison credential would hold the worker for
/// minutes; when its client disconnects the work stops, and the next verification gets the
/// worker at once.
#[tokio::test]
async fn a_disconnected_clients_work_stops() {
    let app = TestApp::spawn_with(|s| {
        s.verify_workers = 1;
        s.rdfc_max_calls = u64::MAX;
        s.rdfc_max_permutations = u64::MAX;
        s.rdfc_max_depth = u32::MAX;
    })
    .await;
    // A client that sends the poison credential and hangs up 300 ms later.
    let body = serde_json::to_vec(&signed_poison(9)).unwrap();
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/verify HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        app.addr,
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&body).await.unwrap();
    let mut answer = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(300), socket.read(&mut answer)).await;
    assert!(
        early.is_err(),
        "the poison verification should still be running"
    );
    drop(socket);
    let start = Instant::now();
    let text = std::fs::read_to_string(format!(
        "{VECTORS}/vc-di-eddsa/eddsa-rdfc-2022/signedDataInt.json"
    ))
    .unwrap();
    let resp = app
        .http
        .post(app.url("/api/v1/verify"))
        .header("content-type", "application/json")
        .body(text)
        .send()
        .await
        .unwrap();
    let elapsed = start.elapsed();
    let report: Value = resp.json().await.unwrap();
    assert_eq!(check(&report, "proof")["status"], "passed", "{report:#}");
    assert!(
        elapsed < Duration::from_secs(10),
        "the worker was still busy with the abandoned poison graph: {elapsed:?}"
    );
    app.stop().await;
}
