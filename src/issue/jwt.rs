//! VC-JWT as OB 3.0 §8.2 defines it: the credential is the JWT payload, plus `iss`, `jti`, `nbf`,
//! `sub` (when the subject has an id) and `exp` (when it expires). The header carries `alg`, `kid`
//! and `typ: JWT`, nothing else. Signed with EdDSA (Ed25519) or ES256 (P-256, which the 1EdTech
//! validator requires).

use std::{fmt, str::FromStr};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::DateTime;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};

/// JWS algorithms a VC-JWT can be signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum JwtAlgorithm {
    /// EdDSA over Ed25519 (RFC 8037), with the issuer's Ed25519 key.
    #[default]
    EdDsa,
    /// ECDSA over P-256 with SHA-256 (RFC 7518 §3.4), with the issuer's P-256 key.
    Es256,
}

impl JwtAlgorithm {
    /// The JOSE `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::EdDsa => "EdDSA",
            JwtAlgorithm::Es256 => "ES256",
        }
    }
}

impl fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A JWS algorithm we do not sign with.
#[derive(Debug, thiserror::Error)]
#[error("JWT algorithm `{0}` is not supported: use EdDSA or ES256")]
pub struct UnsupportedJwtAlgorithm(pub String);

impl FromStr for JwtAlgorithm {
    type Err = UnsupportedJwtAlgorithm;

    /// Exact JOSE names (they are case-sensitive, RFC 7515 §4.1.1).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "EdDSA" => Ok(JwtAlgorithm::EdDsa),
            "ES256" => Ok(JwtAlgorithm::Es256),
            other => Err(UnsupportedJwtAlgorithm(other.to_owned())),
        }
    }
}

/// A credential that cannot become a JWT (missing or malformed required fields).
#[derive(Debug, thiserror::Error)]
#[error("VC-JWT: {0}")]
pub struct JwtError(pub String);

fn epoch(value: &Value, field: &str) -> Result<i64, JwtError> {
    let text = value
        .as_str()
        .ok_or_else(|| JwtError(format!("`{field}` must be a date-time string")))?;
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp())
        .map_err(|e| JwtError(format!("`{field}`: {e}")))
}

/// The JWT claims for `credential` (VC 2.0 `validFrom`/`validUntil`, or VC 1.1
/// `issuanceDate`/`expirationDate`).
pub fn claims(credential: &Value) -> Result<Value, JwtError> {
    let mut payload = credential.clone();
    let obj = payload
        .as_object_mut()
        .ok_or_else(|| JwtError("the credential must be a JSON object".into()))?;
    let issuer = match credential.get("issuer") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| JwtError("issuer.id is required".into()))?
            .to_owned(),
        _ => return Err(JwtError("issuer is required".into())),
    };
    obj.insert("iss".into(), json!(issuer));
    if let Some(id) = credential.get("id").and_then(Value::as_str) {
        obj.insert("jti".into(), json!(id));
    }
    let from = credential
        .get("validFrom")
        .or_else(|| credential.get("issuanceDate"))
        .ok_or_else(|| JwtError("validFrom is required".into()))?;
    obj.insert("nbf".into(), json!(epoch(from, "validFrom")?));
    if let Some(until) = credential
        .get("validUntil")
        .or_else(|| credential.get("expirationDate"))
    {
        obj.insert("exp".into(), json!(epoch(until, "validUntil")?));
    }
    if let Some(sub) = credential
        .pointer("/credentialSubject/id")
        .and_then(Value::as_str)
    {
        obj.insert("sub".into(), json!(sub));
    }
    Ok(payload)
}

/// The compact JWS of `credential`'s claims under the header `{alg, kid, typ: JWT}`, signed by
/// `sign` over the JWS signing input.
fn compact_jws(
    credential: &Value,
    alg: JwtAlgorithm,
    kid: &str,
    sign: impl FnOnce(&[u8]) -> Vec<u8>,
) -> Result<String, JwtError> {
    let header = json!({"alg": alg.as_str(), "kid": kid, "typ": "JWT"});
    let payload = claims(credential)?;
    Ok(signed_compact(&header, &payload, sign))
}

/// `base64url(header) . base64url(payload) . base64url(signature)`.
fn signed_compact(header: &Value, payload: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let signature = sign(signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// The media type of a VC-JOSE-COSE credential secured with JOSE.
pub const VC_JWT_MEDIA_TYPE: &str = "application/vc+jwt";

/// VC-JOSE-COSE (W3C, §3.1.1): `credential` secured as a compact JWS whose payload is the
/// credential itself, nothing added, under the header `{alg, kid, typ: "vc+jwt"}`; signed with
/// the issuer's Ed25519 key (EdDSA) or P-256 key (ES256), the one `key` holds.
pub fn sign_vc_jose(credential: &Value, kid: &str, key: VcJoseKey<'_>) -> Result<String, JwtError> {
    if !credential.is_object() {
        return Err(JwtError("the credential must be a JSON object".into()));
    }
    let alg = match key {
        VcJoseKey::Ed25519(_) => JwtAlgorithm::EdDsa,
        VcJoseKey::P256(_) => JwtAlgorithm::Es256,
    };
    let header = json!({"alg": alg.as_str(), "kid": kid, "typ": "vc+jwt"});
    Ok(signed_compact(&header, credential, |input| match key {
        VcJoseKey::Ed25519(k) => k.sign(input).to_bytes().to_vec(),
        VcJoseKey::P256(k) => es256_signature(k, input).to_vec(),
    }))
}

/// The key a `vc+jwt` is signed with.
#[derive(Clone, Copy)]
pub enum VcJoseKey<'a> {
    /// EdDSA.
    Ed25519(&'a SigningKey),
    /// ES256.
    P256(&'a p256::ecdsa::SigningKey),
}

/// The VC 2.0 `EnvelopedVerifiableCredential` that carries a `vc+jwt` (VC-JOSE-COSE §3.1.1,
/// VC 2.0 §4.13): `id` is the `data:application/vc+jwt,` URL of the JWS.
pub fn enveloped(jws: &str) -> Value {
    json!({
        "@context": crate::ob::CREDENTIALS_V2,
        "id": format!("data:{VC_JWT_MEDIA_TYPE},{jws}"),
        "type": "EnvelopedVerifiableCredential",
    })
}

/// Signs `credential` as a compact JWS with EdDSA (Ed25519).
pub fn sign_eddsa(credential: &Value, kid: &str, key: &SigningKey) -> Result<String, JwtError> {
    compact_jws(credential, JwtAlgorithm::EdDsa, kid, |input| {
        key.sign(input).to_bytes().to_vec()
    })
}

/// The ES256 JWS signature of `input` (RFC 7518 §3.4): ECDSA P-256 over SHA-256, deterministic
/// nonce (RFC 6979), encoded as the 64-byte `r ‖ s` (IEEE P1363), not DER.
pub fn es256_signature(key: &p256::ecdsa::SigningKey, input: &[u8]) -> [u8; 64] {
    let signature: p256::ecdsa::Signature = key.sign(input);
    signature.to_bytes().into()
}

/// Signs `credential` as a compact JWS with ES256 (P-256).
pub fn sign_es256(
    credential: &Value,
    kid: &str,
    key: &p256::ecdsa::SigningKey,
) -> Result<String, JwtError> {
    compact_jws(credential, JwtAlgorithm::Es256, kid, |input| {
        es256_signature(key, input).to_vec()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Verifier;

    #[test]
    fn claims_mirror_the_credential_and_the_signature_verifies() {
        let key = SigningKey::from_bytes(&[3u8; 32]);
        let vc = json!({
            "id": "urn:uuid:1",
            "issuer": {"id": "did:web:example.edu", "type": ["Profile"]},
            "validFrom": "2026-01-01T00:00:00Z",
            "validUntil": "2027-01-01T00:00:00Z",
            "credentialSubject": {"id": "did:example:learner"}
        });
        let jws = sign_eddsa(&vc, "did:web:example.edu#k1", &key).unwrap();
        let parts: Vec<&str> = jws.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(
            header,
            json!({"alg": "EdDSA", "kid": "did:web:example.edu#k1", "typ": "JWT"})
        );
        let payload: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(payload["iss"], "did:web:example.edu");
        assert_eq!(payload["jti"], "urn:uuid:1");
        assert_eq!(payload["sub"], "did:example:learner");
        assert_eq!(payload["nbf"], 1_767_225_600);
        assert_eq!(payload["exp"], 1_798_761_600);
        let sig = ed25519_dalek::Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap())
            .unwrap();
        key.verifying_key()
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap();
    }

    #[test]
    fn es256_signatures_are_rfc6979_r_and_s() {
        // RFC 6979 Appendix A.2.5: P-256, SHA-256, message "sample".
        let x = hex::decode("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721")
            .unwrap();
        let key = p256::ecdsa::SigningKey::from_slice(&x).unwrap();
        let signature = es256_signature(&key, b"sample");
        assert_eq!(
            hex::encode_upper(&signature[..32]),
            "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716"
        );
        assert_eq!(
            hex::encode_upper(&signature[32..]),
            "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8"
        );
    }

    #[test]
    fn es256_jws_header_claims_and_signature() {
        let key = p256::ecdsa::SigningKey::from_slice(&[5u8; 32]).unwrap();
        let vc = json!({
            "id": "urn:uuid:2",
            "issuer": "did:web:example.edu",
            "validFrom": "2026-01-01T00:00:00Z",
            "credentialSubject": {"id": "did:example:learner"}
        });
        let jws = sign_es256(&vc, "did:web:example.edu#p", &key).unwrap();
        let parts: Vec<&str> = jws.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(
            header,
            json!({"alg": "ES256", "kid": "did:web:example.edu#p", "typ": "JWT"})
        );
        let payload: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(payload["iss"], "did:web:example.edu");
        assert!(payload.get("exp").is_none());
        let raw = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        assert_eq!(raw.len(), 64, "r || s, not DER");
        let sig = p256::ecdsa::Signature::from_slice(&raw).unwrap();
        use p256::ecdsa::signature::Verifier as _;
        key.verifying_key()
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap();
        assert_eq!(
            jws,
            sign_es256(&vc, "did:web:example.edu#p", &key).unwrap(),
            "deterministic"
        );
    }

    #[test]
    fn jwt_algorithm_names_are_exact() {
        assert_eq!(
            "ES256".parse::<JwtAlgorithm>().unwrap(),
            JwtAlgorithm::Es256
        );
        assert_eq!(
            "EdDSA".parse::<JwtAlgorithm>().unwrap(),
            JwtAlgorithm::EdDsa
        );
        assert!("es256".parse::<JwtAlgorithm>().is_err());
        let err = "RS256".parse::<JwtAlgorithm>().unwrap_err().to_string();
        assert!(err.contains("RS256") && err.contains("ES256"), "{err}");
    }
}
