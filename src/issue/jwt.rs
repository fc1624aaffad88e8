//! VC-JWT as OB 3.0 §8.2 defines it: the credential is the JWT payload, plus `iss`, `jti`, `nbf`,
//! `sub` (when the subject has an id) and `exp` (when it expires). The header carries `alg`, `kid`
//! and `typ: JWT`, nothing else.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::DateTime;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};

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

/// Signs `credential` as a compact JWS with EdDSA (Ed25519).
pub fn sign_eddsa(credential: &Value, kid: &str, key: &SigningKey) -> Result<String, JwtError> {
    let header = json!({"alg": "EdDSA", "kid": kid, "typ": "JWT"});
    let payload = claims(credential)?;
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let signature = key.sign(signing_input.as_bytes());
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    ))
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
}
