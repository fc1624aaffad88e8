//! Publication formats for public keys: Multikey (`z6Mk…` Ed25519, `zDn…` P-256), did:key, did:web
//! identifiers, DID verification methods and JWKs.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::VerifyingKey;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};
use url::Url;

/// Multicodec prefix of an Ed25519 public key (varint 0xed).
const ED25519_PUB: [u8; 2] = [0xed, 0x01];

/// Multicodec prefix of a P-256 public key (varint 0x1200), followed by the 33-byte SEC1
/// compressed point.
const P256_PUB: [u8; 2] = [0x80, 0x24];

/// Verification-method type of P-256 keys in DID documents. `JsonWebKey2020` rather than the newer
/// `JsonWebKey`: JWT verifiers only read `publicKeyJwk`, which both carry, but DID tooling such as
/// `ssi` 0.16 resolves a `kid` only to the verification-method types it knows, and it knows
/// `JsonWebKey2020`, not `JsonWebKey`.
pub const JWK_METHOD_TYPE: &str = "JsonWebKey2020";

/// The JSON-LD context that defines [`JWK_METHOD_TYPE`] and `publicKeyJwk`.
pub const JWK_METHOD_CONTEXT: &str = "https://w3id.org/security/suites/jws-2020/v1";

/// Failures decoding published key formats.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Not a base58btc multibase string.
    #[error("not a base58btc multibase value (must start with `z`)")]
    NotMultibase,
    /// Wrong multicodec or length.
    #[error("not an Ed25519 public key multikey")]
    NotEd25519,
    /// Wrong multicodec or length.
    #[error("not a P-256 public key multikey")]
    NotP256,
    /// A multicodec this service does not publish.
    #[error("not an Ed25519 or P-256 public key multikey")]
    UnknownKeyType,
    /// The bytes are not a valid curve point.
    #[error("invalid Ed25519 public key")]
    InvalidKey,
    /// The bytes are not a valid P-256 point.
    #[error("invalid P-256 public key")]
    InvalidP256Key,
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
    let bytes = multibase_bytes(value)?;
    if bytes.len() != 34 || bytes[..2] != ED25519_PUB {
        return Err(PublishError::NotEd25519);
    }
    let raw: [u8; 32] = bytes[2..]
        .try_into()
        .map_err(|_| PublishError::NotEd25519)?;
    VerifyingKey::from_bytes(&raw).map_err(|_| PublishError::InvalidKey)
}

/// `z` + base58btc(0x8024 ‖ compressed point): the Multikey form of a P-256 public key (`zDn…`).
pub fn p256_multibase(key: &p256::ecdsa::VerifyingKey) -> String {
    let point = key.to_encoded_point(true);
    let mut bytes = Vec::with_capacity(35);
    bytes.extend_from_slice(&P256_PUB);
    bytes.extend_from_slice(point.as_bytes());
    format!("z{}", bs58::encode(bytes).into_string())
}

/// Parses a `zDn…` Multikey into a P-256 public key (the point must be on the curve).
pub fn parse_p256_multibase(value: &str) -> Result<p256::ecdsa::VerifyingKey, PublishError> {
    let bytes = multibase_bytes(value)?;
    if bytes.len() != 35 || bytes[..2] != P256_PUB {
        return Err(PublishError::NotP256);
    }
    p256::ecdsa::VerifyingKey::from_sec1_bytes(&bytes[2..])
        .map_err(|_| PublishError::InvalidP256Key)
}

fn multibase_bytes(value: &str) -> Result<Vec<u8>, PublishError> {
    let encoded = value.strip_prefix('z').ok_or(PublishError::NotMultibase)?;
    bs58::decode(encoded)
        .into_vec()
        .map_err(|_| PublishError::NotMultibase)
}

/// A published public key of either algorithm, as stored (a self-describing Multikey).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// Ed25519: published as a `Multikey` and an OKP JWK.
    Ed25519(VerifyingKey),
    /// P-256: published as a JWK verification method and an EC JWK.
    P256(p256::ecdsa::VerifyingKey),
}

impl PublicKey {
    /// Parses a stored Multikey by its multicodec prefix.
    pub fn from_multibase(value: &str) -> Result<Self, PublishError> {
        let bytes = multibase_bytes(value)?;
        match bytes.get(..2) {
            Some(prefix) if prefix == ED25519_PUB => {
                parse_ed25519_multibase(value).map(PublicKey::Ed25519)
            }
            Some(prefix) if prefix == P256_PUB => parse_p256_multibase(value).map(PublicKey::P256),
            _ => Err(PublishError::UnknownKeyType),
        }
    }

    /// The DID verification method for this key (controller = the issuer id).
    pub fn verification_method(&self, id: &str, controller: &str) -> Value {
        match self {
            PublicKey::Ed25519(key) => multikey_verification_method(id, controller, key),
            PublicKey::P256(key) => jwk_verification_method(id, controller, key),
        }
    }

    /// The public JWK for a JWKS, `kid` = the verification-method id.
    pub fn jwk(&self, kid: &str) -> Value {
        match self {
            PublicKey::Ed25519(key) => ed25519_public_jwk(key, kid),
            PublicKey::P256(key) => p256_public_jwk(key, kid),
        }
    }
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
    json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(key.as_bytes()),
        "kid": kid,
        "alg": "EdDSA",
        "use": "sig",
    })
}

/// The bare public JWK (RFC 7518 §6.2.1) of a P-256 key: `kty`, `crv`, and the 32-byte big-endian
/// affine coordinates `x` and `y`, base64url without padding.
pub fn p256_jwk_members(key: &p256::ecdsa::VerifyingKey) -> Value {
    let point = key.to_encoded_point(false);
    // An uncompressed point of a valid key always has both coordinates; `[]` cannot occur.
    let coordinate =
        |c: Option<&p256::FieldBytes>| URL_SAFE_NO_PAD.encode(c.map_or(&[][..], |b| b));
    json!({
        "kty": "EC",
        "crv": "P-256",
        "x": coordinate(point.x()),
        "y": coordinate(point.y()),
    })
}

/// The public JWK of a P-256 key for a JWKS: the members plus `kid`, `alg: ES256`, `use: sig`.
pub fn p256_public_jwk(key: &p256::ecdsa::VerifyingKey, kid: &str) -> Value {
    let mut jwk = p256_jwk_members(key);
    if let Some(map) = jwk.as_object_mut() {
        map.insert("kid".into(), json!(kid));
        map.insert("alg".into(), json!("ES256"));
        map.insert("use".into(), json!("sig"));
    }
    jwk
}

/// A JWK verification method ([`JWK_METHOD_TYPE`]) carrying the bare public JWK.
pub fn jwk_verification_method(
    id: &str,
    controller: &str,
    key: &p256::ecdsa::VerifyingKey,
) -> Value {
    json!({
        "id": id,
        "type": JWK_METHOD_TYPE,
        "controller": controller,
        "publicKeyJwk": p256_jwk_members(key),
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

    /// RFC 7515 Appendix A.3's P-256 key pair.
    fn rfc7515_a3_key() -> p256::ecdsa::SigningKey {
        let d = URL_SAFE_NO_PAD
            .decode("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI")
            .unwrap();
        p256::ecdsa::SigningKey::from_slice(&d).unwrap()
    }

    #[test]
    fn p256_jwk_matches_rfc7515_a3() {
        let key = rfc7515_a3_key();
        let jwk = p256_public_jwk(key.verifying_key(), "did:web:example.edu#k");
        assert_eq!(
            jwk,
            json!({
                "kty": "EC",
                "crv": "P-256",
                "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
                "kid": "did:web:example.edu#k",
                "alg": "ES256",
                "use": "sig",
            })
        );
        let method = jwk_verification_method("did:web:e#k", "did:web:e", key.verifying_key());
        assert_eq!(method["type"], JWK_METHOD_TYPE);
        assert_eq!(method["controller"], "did:web:e");
        assert_eq!(
            method["publicKeyJwk"],
            p256_jwk_members(key.verifying_key()),
            "no kid/alg/use inside a verification method"
        );
        assert_eq!(method["publicKeyJwk"].as_object().unwrap().len(), 4);
    }

    #[test]
    fn p256_multikey_round_trips_and_matches_the_did_key_vector() {
        // did:key P-256 test vectors (did:key method spec), the second with its published JWK.
        let vector = "zDnaerDaTF5BXEavCrfRZEk316dpbLsfPDZ3WJ5hRTPFU2169";
        let key = parse_p256_multibase(vector).unwrap();
        assert_eq!(p256_multibase(&key), vector);
        let with_jwk = "zDnaerx9CtbPJ1q36T5Ln5wYt3MQYeGRG5ehnPAmxcf5mDZpv";
        let key = parse_p256_multibase(with_jwk).unwrap();
        assert_eq!(
            p256_jwk_members(&key),
            json!({
                "kty": "EC",
                "crv": "P-256",
                "x": "igrFmi0whuihKnj9R3Om1SoMph72wUGeFaBbzG2vzns",
                "y": "efsX5b10x8yjyrj4ny3pGfLcY7Xby1KzgqOdqnsrJIM",
            })
        );
        assert_eq!(p256_multibase(&key), with_jwk);
        let bytes = bs58::decode(&vector[1..]).into_vec().unwrap();
        assert_eq!(&bytes[..2], &[0x80, 0x24], "multicodec 0x1200 as a varint");
        assert_eq!(bytes.len(), 2 + 33, "compressed SEC1 point");
        assert!(matches!(bytes[2], 0x02 | 0x03));

        let ours = rfc7515_a3_key();
        let encoded = p256_multibase(ours.verifying_key());
        assert!(encoded.starts_with("zDn"), "{encoded}");
        assert_eq!(
            PublicKey::from_multibase(&encoded).unwrap(),
            PublicKey::P256(*ours.verifying_key())
        );
        // Not a point on the curve; the wrong codec; an Ed25519 key.
        let mut off_curve = bytes.clone();
        off_curve[2] = 0x04;
        let off_curve = format!("z{}", bs58::encode(off_curve).into_string());
        assert!(matches!(
            parse_p256_multibase(&off_curve),
            Err(PublishError::InvalidP256Key)
        ));
        let ed = "z6MkjZRZv3aez3r18pB1RBFJR1kwUVJ5jHt92JmQwXbd5hwi";
        assert!(matches!(
            parse_p256_multibase(ed),
            Err(PublishError::NotP256)
        ));
        assert!(matches!(
            PublicKey::from_multibase(ed),
            Ok(PublicKey::Ed25519(_))
        ));
        assert!(matches!(
            PublicKey::from_multibase("zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme"),
            Err(PublishError::UnknownKeyType)
        ));
    }
}
