//! Entry points for the fuzz targets in `fuzz/` and for the test that replays their corpora:
//! each feeds arbitrary bytes to one parser the verifier exposes to untrusted input. None may
//! panic, whatever the bytes.

use ed25519_dalek::VerifyingKey;
use serde_json::Value;

use super::{input, jwt, resolve::PublicKey, structure_check};
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
