//! Publication formats for public keys: Multikey (`z6Mk…`), did:key, did:web identifiers, DID
//! verification methods and JWKs.

use ed25519_dalek::VerifyingKey;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};
use url::Url;

/// Multicodec prefix of an Ed25519 public key (varint 0xed).
const ED25519_PUB: [u8; 2] = [0xed, 0x01];

/// Failures decoding published key formats.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Not a base58btc multibase string.
    #[error("not a base58btc multibase value (must start with `z`)")]
    NotMultibase,
    /// Wrong multicodec or length.
    #[error("not an Ed25519 public key multikey")]
    NotEd25519,
    /// The bytes are not a valid curve point.
    #[error("invalid Ed25519 public key")]
    InvalidKey,
    /// A did:web cannot be formed from this URL.
    #[error("cannot form a did:web from {0}")]
    DidWeb(String),
}

/// `z` + base58btc(0xed01 ‖ key): the Multikey form of an Ed25519 public key.
pub fn ed25519_multibase(key: &VerifyingKey) -> String {
    let mut bytes = Vec::with_capacity(34);
    bytes.extend_from_slice(&ED25519_PUB);
    bytes.extend_from_slice(key.as_bytes());
    format!("z{}", bs58::encode(bytes).into_string())
}

/// Parses a `z6Mk…` Multikey into an Ed25519 public key.
pub fn parse_ed25519_multibase(value: &str) -> Result<VerifyingKey, PublishError> {
    let encoded = value.strip_prefix('z').ok_or(PublishError::NotMultibase)?;
    let bytes = bs58::decode(encoded)
        .into_vec()
        .map_err(|_| PublishError::NotMultibase)?;
    if bytes.len() != 34 || bytes[..2] != ED25519_PUB {
        return Err(PublishError::NotEd25519);
    }
    let raw: [u8; 32] = bytes[2..]
        .try_into()
        .map_err(|_| PublishError::NotEd25519)?;
    VerifyingKey::from_bytes(&raw).map_err(|_| PublishError::InvalidKey)
}

/// `did:key:z6Mk…` of an Ed25519 key.
pub fn did_key_for_ed25519(key: &VerifyingKey) -> String {
    format!("did:key:{}", ed25519_multibase(key))
}

/// Characters percent-encoded inside a did:web segment (everything but unreserved characters).
const DID_WEB_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The did:web for `base` plus `segments` (did:web method spec §3.2): the host (with `%3A` before a
/// port), then the base URL's path segments and `segments`, each joined with `:`.
pub fn did_web_for(base: &Url, segments: &[&str]) -> Result<String, PublishError> {
    let host = base
        .host_str()
        .ok_or_else(|| PublishError::DidWeb(base.to_string()))?
        .to_ascii_lowercase();
    let mut did = format!("did:web:{}", utf8_percent_encode(&host, DID_WEB_SEGMENT));
    if let Some(port) = base.port() {
        did.push_str(&format!("%3A{port}"));
    }
    let base_segments = base
        .path_segments()
        .map(|s| s.filter(|p| !p.is_empty()).collect::<Vec<_>>())
        .unwrap_or_default();
    for segment in base_segments.iter().chain(segments.iter()) {
        did.push(':');
        did.extend(utf8_percent_encode(segment, DID_WEB_SEGMENT));
    }
    Ok(did)
}

/// A `Multikey` verification method.
pub fn multikey_verification_method(id: &str, controller: &str, key: &VerifyingKey) -> Value {
    json!({
        "id": id,
        "type": "Multikey",
        "controller": controller,
        "publicKeyMultibase": ed25519_multibase(key),
    })
}

/// The public JWK (RFC 8037 OKP) of an Ed25519 key.
pub fn ed25519_public_jwk(key: &VerifyingKey, kid: &str) -> Value {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(key.as_bytes()),
        "kid": kid,
        "alg": "EdDSA",
        "use": "sig",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(path: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/../shared/vectors/{path}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn multikey_matches_the_w3c_vector_key_pair() {
        let pair: Value = serde_json::from_str(&vector("vc-di-eddsa/keyPair.json")).unwrap();
        let public = pair["publicKeyMultibase"].as_str().unwrap();
        let private = pair["privateKeyMultibase"].as_str().unwrap();
        let decoded = bs58::decode(&private[1..]).into_vec().unwrap();
        assert_eq!(&decoded[..2], &[0x80, 0x26]);
        let seed: [u8; 32] = decoded[2..].try_into().unwrap();
        assert_eq!(
            hex::encode(seed),
            "c96ef9ea10c5e414c471723aff9de72c35fa5b70fae97e8832ecac7d2e2b8ed6"
        );
        let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
        assert_eq!(ed25519_multibase(&signing.verifying_key()), public);
        assert_eq!(
            parse_ed25519_multibase(public).unwrap(),
            signing.verifying_key()
        );
    }

    #[test]
    fn multikey_matches_the_ob3_example_key() {
        let raw: [u8; 32] =
            hex::decode("4bdeafde2ea8beefadd8c699b5c7e0704cf51154d52e17b20b71337ca04cc5a5")
                .unwrap()
                .try_into()
                .unwrap();
        let key = VerifyingKey::from_bytes(&raw).unwrap();
        assert_eq!(
            ed25519_multibase(&key),
            "z6MkjZRZv3aez3r18pB1RBFJR1kwUVJ5jHt92JmQwXbd5hwi"
        );
        assert!(
            parse_ed25519_multibase("z6MkjZRZv3aez3r18pB1RBFJR1kwUVJ5jHt92JmQwXbd5hwj").is_err()
        );
        assert!(parse_ed25519_multibase("6MkjZRZv3aez").is_err());
    }

    #[test]
    fn did_web_encoding_follows_the_method_spec() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            did_web_for(&u("https://w3c-ccg.github.io"), &[]).unwrap(),
            "did:web:w3c-ccg.github.io"
        );
        assert_eq!(
            did_web_for(&u("https://w3c-ccg.github.io/user/alice"), &[]).unwrap(),
            "did:web:w3c-ccg.github.io:user:alice"
        );
        assert_eq!(
            did_web_for(&u("https://example.com:3000"), &["user", "alice"]).unwrap(),
            "did:web:example.com%3A3000:user:alice"
        );
        assert_eq!(
            did_web_for(&u("http://127.0.0.1:8080/"), &["issuers", "abc"]).unwrap(),
            "did:web:127.0.0.1%3A8080:issuers:abc"
        );
        assert_eq!(
            did_web_for(&u("https://Example.COM"), &["a b"]).unwrap(),
            "did:web:example.com:a%20b"
        );
    }

    #[test]
    fn jwk_matches_rfc8037() {
        let raw: [u8; 32] =
            hex::decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
                .unwrap()
                .try_into()
                .unwrap();
        let jwk = ed25519_public_jwk(&VerifyingKey::from_bytes(&raw).unwrap(), "k");
        assert_eq!(jwk["x"], "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
        assert_eq!(
            did_key_for_ed25519(&VerifyingKey::from_bytes(&raw).unwrap())[..12],
            *"did:key:z6Mk"
        );
    }
}
