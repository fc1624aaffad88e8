//! VC-JWT as OB 3.0 §8.2 defines it (and VC 1.1 `vc` claims): decoding, header rules, the
//! signature (EdDSA, ES256, RS256), and the claim ↔ credential consistency checks of §8.2.6.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::DateTime;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::resolve::PublicKey;

/// A decoded (not yet verified) compact JWS.
#[derive(Debug, Clone)]
pub struct DecodedJwt {
    /// The protected header.
    pub header: Map<String, Value>,
    /// The payload claims.
    pub payload: Map<String, Value>,
    /// `base64url(header) . base64url(payload)`, the signed bytes.
    pub signing_input: String,
    /// The raw signature.
    pub signature: Vec<u8>,
}

/// The JWT signature algorithms we verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Ed25519.
    EdDsa,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
}

impl Algorithm {
    /// Whether `key` is of the type this algorithm signs with.
    pub fn accepts(self, key: &PublicKey) -> bool {
        matches!(
            (self, key),
            (Self::EdDsa, PublicKey::Ed25519(_))
                | (Self::Es256, PublicKey::P256(_))
                | (Self::Rs256, PublicKey::Rsa(_))
        )
    }
}

/// Registered claims that OB 3.0 adds beside the credential in the payload.
const JWT_CLAIMS: [&str; 7] = ["iss", "jti", "nbf", "exp", "sub", "iat", "aud"];
/// The header fields OB 3.0 §8.2 permits.
const HEADER_FIELDS: [&str; 4] = ["alg", "kid", "jwk", "typ"];

fn part(text: &str, what: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| format!("the JWT {what} is not base64url"))
}

fn object(bytes: &[u8], what: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(format!("the JWT {what} is not a JSON object")),
        Err(e) => Err(format!("the JWT {what} is not JSON: {e}")),
    }
}

/// Splits and decodes a compact JWS.
pub fn decode(jws: &str) -> Result<DecodedJwt, String> {
    let mut parts = jws.trim().split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("a compact JWS has three parts".into());
    };
    Ok(DecodedJwt {
        header: object(&part(h, "header")?, "header")?,
        payload: object(&part(p, "payload")?, "payload")?,
        signing_input: format!("{h}.{p}"),
        signature: part(s, "signature")?,
    })
}

impl DecodedJwt {
    /// The algorithm, or why the header is unacceptable (`none`, unknown `alg`).
    pub fn algorithm(&self) -> Result<Algorithm, String> {
        match self.header.get("alg").and_then(Value::as_str) {
            Some("EdDSA") => Ok(Algorithm::EdDsa),
            Some("ES256") => Ok(Algorithm::Es256),
            Some("RS256") => Ok(Algorithm::Rs256),
            Some(other) => Err(format!(
                "JWT alg {other} is not accepted (EdDSA, ES256, RS256)"
            )),
            None => Err("the JWT header has no alg".into()),
        }
    }

    /// Header rules of OB 3.0 §8.2: at most one of `kid` / `jwk`, `typ` (if present) is `JWT`.
    /// A header with neither is allowed: the OB implementation guide then looks the key up in the
    /// issuer host's JWK Set. Returns hard errors; [`Self::header_warnings`] lists tolerated
    /// deviations.
    pub fn header_errors(&self) -> Vec<String> {
        let mut errors = Vec::new();
        match (self.header.get("kid"), self.header.get("jwk")) {
            (Some(_), Some(_)) => errors.push("the JWT header has both kid and jwk".into()),
            (Some(kid), None) if !kid.is_string() => errors.push("kid must be a string".into()),
            (None, Some(jwk)) if !jwk.is_object() => errors.push("jwk must be an object".into()),
            _ => {}
        }
        if let Some(typ) = self.header.get("typ")
            && typ.as_str() != Some("JWT")
            && !self.is_vc_jose()
        {
            errors.push(format!("typ must be \"JWT\" (or \"vc+jwt\"), not {typ}"));
        }
        errors
    }

    /// Header fields OB 3.0 does not permit (reported, not fatal).
    pub fn header_warnings(&self) -> Vec<String> {
        self.header
            .keys()
            .filter(|k| !HEADER_FIELDS.contains(&k.as_str()))
            .map(|k| format!("header field `{k}` is not part of OB 3.0 VC-JWT"))
            .collect()
    }

    /// The credential the JWT carries: the payload itself (OB 3.0 / VC 2.0), less the registered
    /// claims, or the VC 1.1 `vc` claim completed from `iss`/`jti`/`nbf`/`exp`/`sub`.
    pub fn credential(&self) -> Result<Value, String> {
        if let Some(vc) = self.payload.get("vc") {
            let mut vc = vc
                .as_object()
                .cloned()
                .ok_or("the `vc` claim must be an object")?;
            let claim = |k: &str| self.payload.get(k);
            if let Some(jti) = claim("jti") {
                vc.entry("id").or_insert_with(|| jti.clone());
            }
            if let Some(iss) = claim("iss") {
                vc.entry("issuer").or_insert_with(|| iss.clone());
            }
            if let Some(date) = claim("nbf").and_then(Value::as_i64).and_then(rfc3339) {
                vc.entry("issuanceDate").or_insert(date.into());
            }
            if let Some(date) = claim("exp").and_then(Value::as_i64).and_then(rfc3339) {
                vc.entry("expirationDate").or_insert(date.into());
            }
            if let Some(sub) = claim("sub")
                && let Some(Value::Object(subject)) = vc.get_mut("credentialSubject")
            {
                subject.entry("id").or_insert_with(|| sub.clone());
            }
            return Ok(Value::Object(vc));
        }
        let mut credential = self.payload.clone();
        for claim in JWT_CLAIMS {
            credential.remove(claim);
        }
        Ok(Value::Object(credential))
    }

    /// Whether this is a VC-JOSE-COSE secured credential (`typ: vc+jwt`): the payload is the
    /// credential itself, and the registered claims are optional (present ones must still agree).
    pub fn is_vc_jose(&self) -> bool {
        self.header.get("typ").and_then(Value::as_str) == Some("vc+jwt")
    }

    /// OB 3.0 §8.2.6: each registered claim must agree with the credential field it mirrors.
    /// A `vc+jwt` need not carry them (VC-JOSE-COSE §3.1.1).
    pub fn claim_mismatches(&self, credential: &Value) -> Vec<String> {
        let mut problems = Vec::new();
        let required = !self.is_vc_jose();
        let issuer = issuer_id(credential);
        match (self.payload.get("iss").and_then(Value::as_str), issuer) {
            (Some(iss), Some(id)) if iss == id => {}
            (Some(iss), Some(id)) => problems.push(format!("iss {iss} differs from issuer {id}")),
            (None, _) if required => problems.push("the JWT has no iss claim".into()),
            (None, _) => {}
            (Some(_), None) => problems.push("the credential has no issuer".into()),
        }
        let id = credential.get("id").and_then(Value::as_str);
        match (self.payload.get("jti").and_then(Value::as_str), id) {
            (Some(jti), Some(id)) if jti != id => {
                problems.push(format!("jti {jti} differs from the credential id {id}"))
            }
            (None, Some(_)) if required => problems.push("the JWT has no jti claim".into()),
            _ => {}
        }
        let subject = credential
            .pointer("/credentialSubject/id")
            .and_then(Value::as_str);
        match (self.payload.get("sub").and_then(Value::as_str), subject) {
            (Some(sub), Some(id)) if sub != id => {
                problems.push(format!("sub {sub} differs from credentialSubject.id {id}"))
            }
            (Some(sub), None) => problems.push(format!(
                "sub {sub} is set but the credential subject has no id"
            )),
            (None, Some(_)) if required => problems.push("the JWT has no sub claim".into()),
            _ => {}
        }
        let date = |field: &str, legacy: &str| {
            credential
                .get(field)
                .or_else(|| credential.get(legacy))
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.timestamp())
        };
        let numeric = |claim: &str| self.payload.get(claim).and_then(Value::as_i64);
        match (numeric("nbf"), date("validFrom", "issuanceDate")) {
            (Some(nbf), Some(from)) if nbf != from => {
                problems.push(format!("nbf {nbf} differs from validFrom ({from})"))
            }
            (None, _) if required => problems.push("the JWT has no nbf claim".into()),
            _ => {}
        }
        match (numeric("exp"), date("validUntil", "expirationDate")) {
            (Some(exp), Some(until)) if exp != until => {
                problems.push(format!("exp {exp} differs from validUntil ({until})"))
            }
            (None, Some(_)) if required => {
                problems.push("validUntil is set but the JWT has no exp".into())
            }
            (Some(_), None) => {
                problems.push("exp is set but the credential has no validUntil".into())
            }
            _ => {}
        }
        problems
    }

    /// Verifies the signature with `key`, which must match the algorithm.
    pub fn verify_signature(&self, alg: Algorithm, key: &PublicKey) -> Result<(), String> {
        let message = self.signing_input.as_bytes();
        match (alg, key) {
            (Algorithm::EdDsa, PublicKey::Ed25519(k)) => {
                let sig = ed25519_dalek::Signature::from_slice(&self.signature)
                    .map_err(|_| "an EdDSA signature is 64 bytes".to_owned())?;
                k.verify_strict(message, &sig)
                    .map_err(|_| "the EdDSA signature does not verify".to_owned())
            }
            (Algorithm::Es256, PublicKey::P256(k)) => {
                use p256::ecdsa::signature::Verifier;
                let sig = p256::ecdsa::Signature::from_slice(&self.signature)
                    .map_err(|_| "an ES256 signature is 64 bytes (r ‖ s)".to_owned())?;
                k.verify(message, &sig)
                    .map_err(|_| "the ES256 signature does not verify".to_owned())
            }
            (Algorithm::Rs256, PublicKey::Rsa(k)) => {
                use rsa::PublicKey as _;
                let digest = Sha256::digest(message);
                k.verify(
                    rsa::PaddingScheme::new_pkcs1v15_sign(Some(rsa::Hash::SHA2_256)),
                    &digest,
                    &self.signature,
                )
                .map_err(|_| "the RS256 signature does not verify".to_owned())
            }
            (alg, key) => Err(format!(
                "alg {alg:?} cannot be used with a {} key",
                key.kind()
            )),
        }
    }
}

fn rfc3339(epoch: i64) -> Option<String> {
    DateTime::from_timestamp(epoch, 0).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// The issuer id of a credential (`issuer` as a string or `issuer.id`).
pub fn issuer_id(credential: &Value) -> Option<&str> {
    match credential.get("issuer")? {
        Value::String(s) => Some(s),
        Value::Object(o) => o.get("id").and_then(Value::as_str),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issue::jwt::sign_eddsa;
    use ed25519_dalek::SigningKey;
    use serde_json::json;

    fn credential() -> Value {
        json!({
            "@context": ["https://www.w3.org/ns/credentials/v2"],
            "id": "urn:uuid:1",
            "type": ["VerifiableCredential"],
            "issuer": {"id": "did:example:issuer", "type": ["Profile"]},
            "validFrom": "2026-01-01T00:00:00Z",
            "credentialSubject": {"id": "did:example:learner"}
        })
    }

    #[test]
    fn round_trip_and_tamper() {
        let key = SigningKey::from_bytes(&[9u8; 32]);
        let jws = sign_eddsa(&credential(), "did:example:issuer#k", &key).unwrap();
        let decoded = decode(&jws).unwrap();
        assert!(decoded.header_errors().is_empty());
        assert_eq!(decoded.credential().unwrap(), credential());
        assert!(decoded.claim_mismatches(&credential()).is_empty());
        let pk = PublicKey::Ed25519(key.verifying_key());
        decoded.verify_signature(Algorithm::EdDsa, &pk).unwrap();
        assert!(decoded.verify_signature(Algorithm::Es256, &pk).is_err());
        let mut other = credential();
        other["credentialSubject"]["id"] = json!("did:example:someone-else");
        assert_eq!(decoded.claim_mismatches(&other).len(), 1);
    }

    #[test]
    fn vc11_claim_is_completed_from_registered_claims() {
        let payload = json!({
            "iss": "did:example:issuer", "jti": "urn:uuid:2", "nbf": 1_767_225_600, "sub": "did:example:s",
            "vc": {"@context": ["https://www.w3.org/2018/credentials/v1"], "type": ["VerifiableCredential"],
                   "credentialSubject": {"name": "x"}}
        });
        let jwt = DecodedJwt {
            header: Map::new(),
            payload: payload.as_object().unwrap().clone(),
            signing_input: String::new(),
            signature: Vec::new(),
        };
        let vc = jwt.credential().unwrap();
        assert_eq!(vc["issuer"], "did:example:issuer");
        assert_eq!(vc["id"], "urn:uuid:2");
        assert_eq!(vc["issuanceDate"], "2026-01-01T00:00:00Z");
        assert_eq!(vc["credentialSubject"]["id"], "did:example:s");
        assert!(jwt.claim_mismatches(&vc).is_empty());
    }
}
