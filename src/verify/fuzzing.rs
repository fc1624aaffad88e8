//! Entry points for the fuzz targets in `fuzz/` and for the test that replays their corpora:
//! each feeds arbitrary bytes to one parser the verifier exposes to untrusted input. None may
//! panic, whatever the bytes.

use ed25519_dalek::VerifyingKey;
use serde_json::Value;

use super::{
    input, jwt,
    resolve::{self, PublicKey},
    structure_check,
};
use crate::{di::EddsaRdfc2022, issue::bake};

/// A JSON credential: parsing, the structural check, JSON-LD expansion and RDFC canonicalization
/// of the document and its proofs, and a Data Integrity verification attempt.
pub fn credential(data: &[u8]) {
    let Ok(input::Submitted::Json(value, _)) = input::parse("application/json", data) else {
        return;
    };
    let _ = structure_check(&value);
    let _ = jwt::issuer_id(&value);
    let suite = EddsaRdfc2022::default();
    let _ = suite.check_contexts(&value);
    if let Ok(proofs) = crate::di::proofs_of(&value) {
        let key = VerifyingKey::from_bytes(&[
            0x4b, 0xde, 0xaf, 0xde, 0x2e, 0xa8, 0xbe, 0xef, 0xad, 0xd8, 0xc6, 0x99, 0xb5, 0xc7,
            0xe0, 0x70, 0x4c, 0xf5, 0x11, 0x54, 0xd5, 0x2e, 0x17, 0xb2, 0x0b, 0x71, 0x33, 0x7c,
            0xa0, 0x4c, 0xc5, 0xa5,
        ]);
        if let Ok(key) = key {
            for index in 0..proofs.len().min(4) {
                let _ = suite.verify_proof(&value, index, &key);
            }
        }
    }
}

/// A compact JWS: decoding, header rules, the carried credential, claim checks, and a signature
/// check against a fixed key of each type the algorithm could name.
pub fn jwt(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(decoded) = jwt::decode(text) else {
        return;
    };
    let _ = decoded.header_errors();
    let _ = decoded.header_warnings();
    if let Ok(credential) = decoded.credential() {
        let _ = decoded.claim_mismatches(&credential);
        let _ = structure_check(&credential);
    }
    if let (Ok(alg), Ok(key)) = (decoded.algorithm(), VerifyingKey::from_bytes(&[0x11; 32])) {
        let _ = decoded.verify_signature(alg, &PublicKey::Ed25519(key));
    }
    if let Some(jwk) = decoded.header.get("jwk") {
        let _ = super::resolve::parse_jwk(jwk);
    }
    if let Some(Value::String(kid)) = decoded.header.get("kid") {
        let _ = super::resolve::did_web_url(kid);
        let _ = super::resolve::parse_multikey(kid.rsplit('#').next().unwrap_or_default());
    }
}

/// A baked PNG: chunk walking, iTXt decoding, and what the extracted text parses into.
pub fn png(data: &[u8]) {
    let _ = bake::extract_png(data);
    let _ = input::parse("image/png", data);
    let _ = input::sniff(data);
}

/// A baked SVG: locating the credential element, CDATA and attribute forms.
pub fn svg(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = bake::extract_svg(text);
    }
    let _ = input::parse("image/svg+xml", data);
}

/// A fetched DID document or controller document (did:web, an `https` key or controller URL):
/// JSON as the fetcher reads it, then every lookup the resolver makes in it, for the methods it
/// lists and for a few it does not.
pub fn did_document(data: &[u8]) {
    let Ok(document) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let base = document
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("https://issuer.example/keys")
        .to_owned();
    let _ = resolve::did_web_url(&base);
    let mut urls = vec![
        base.clone(),
        format!("{base}#key-1"),
        format!("{base}#z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2"),
    ];
    for method in document
        .get("verificationMethod")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .take(8)
    {
        let _ = resolve::key_of_method(method);
        if let Some(id) = method.get("id").and_then(Value::as_str) {
            urls.push(resolve::absolute(id, &base));
        }
    }
    for url in &urls {
        let (url_base, fragment) = resolve::split_fragment(url);
        let _ = resolve::locate(&document, url_base, fragment, url);
        let _ = resolve::method_in_document(&document, &base, url);
        let _ = resolve::relationships(&document, &base, url);
    }
}

/// A fetched JWK Set (`/.well-known/jwks.json`, or a `keys` document a key URL points at): the
/// host-JWKS lookup by each `kid` and without one, and the key-URL lookup.
pub fn jwks(data: &[u8]) {
    let Ok(document) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let url = "https://issuer.example/.well-known/jwks.json";
    let issuer = "https://issuer.example/";
    let _ = resolve::key_in_jwks(&document, url, issuer, None, |_| true);
    let _ = resolve::key_in_jwks(&document, url, issuer, None, |k| {
        matches!(k, PublicKey::P256(_))
    });
    let kids: Vec<String> = document
        .get("keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .take(8)
        .filter_map(|k| k.get("kid").and_then(Value::as_str).map(str::to_owned))
        .collect();
    for kid in &kids {
        let _ = resolve::key_in_jwks(&document, url, issuer, Some(kid), |_| true);
        let method_url = format!("{url}#{kid}");
        let _ = resolve::locate(&document, url, Some(kid.as_str()), &method_url);
    }
    let _ = resolve::locate(&document, url, None, url);
}

/// A fetched status list's `encodedList` (multibase base64url GZIP; StatusList2021's plain
/// base64url), read at a few positions. The input is the list credential's `credentialSubject`
/// as JSON, or else the bytes are taken as the `encodedList` itself.
pub fn status_list(data: &[u8]) {
    let subject = match serde_json::from_slice::<Value>(data) {
        Ok(subject @ Value::Object(_)) => subject,
        _ => serde_json::json!({"encodedList": String::from_utf8_lossy(data)}),
    };
    for kind in ["BitstringStatusListEntry", "StatusList2021Entry"] {
        for (index, size) in [(0, 1), (131_071, 1), (1_000, 2), (usize::MAX, 8)] {
            let _ = super::status::status_value(&subject, kind, index, size);
        }
    }
}
