//! The `eddsa-jcs-2022` cryptosuite (W3C Data Integrity EdDSA Cryptosuites v1.0 §3.3): JCS
//! (RFC 8785) instead of RDF canonicalization, then the same SHA-256 ‖ SHA-256, Ed25519 and
//! base58btc multibase as `eddsa-rdfc-2022`.
//!
//! The proof configuration carries the document's `@context` (§3.3.5), so the proof names the
//! contexts it was made under; a verifier checks that the document's `@context` starts with them
//! (§3.3.2 step 3). JCS signs JSON, not a dataset, so safe-mode JSON-LD expansion is run
//! separately (by [`super::EddsaRdfc2022`]) before signing or verifying, as for every suite here.

use serde_json::{Map, Value};

use super::{CanonicalForms, DiError, jcs};

/// The `cryptosuite` name.
pub const CRYPTOSUITE: &str = "eddsa-jcs-2022";

/// The proof configuration to sign for a new proof: `proof` (without `proofValue`), with the
/// document's `@context` when it has one.
pub fn proof_configuration(document: &Map<String, Value>, proof: &Value) -> Value {
    let mut config = proof.clone();
    if let Value::Object(c) = &mut config {
        c.remove("proofValue");
        if let Some(context) = document.get("@context") {
            c.insert("@context".into(), context.clone());
        }
    }
    config
}

/// The canonical forms a new proof signs: JCS of the proof configuration and of `document`
/// without `proof`.
pub fn canonical_forms(document: &Value, proof: &Value) -> Result<CanonicalForms, DiError> {
    let map = document.as_object().ok_or(DiError::NotAnObject)?;
    let mut unsecured = map.clone();
    unsecured.remove("proof");
    Ok(CanonicalForms {
        proof_configuration: jcs::canonicalize(&proof_configuration(map, proof))?,
        document: jcs::canonicalize(&Value::Object(unsecured))?,
    })
}

/// The canonical forms an existing `proof` was made over (§3.3.2): the proof less `proofValue`,
/// and the `unsecured` document (the secured one less `proof`, or for a proof chain the document
/// with the proofs this one names) under the proof's `@context`.
pub fn verification_forms(
    mut unsecured: Map<String, Value>,
    proof: &Value,
) -> Result<CanonicalForms, DiError> {
    let proof_map = proof.as_object().ok_or(DiError::MissingProof)?;
    let mut config = proof_map.clone();
    config.remove("proofValue");
    match proof_map.get("@context") {
        Some(proof_context) => {
            if !starts_with(unsecured.get("@context"), proof_context) {
                return Err(DiError::ContextMismatch);
            }
            unsecured.insert("@context".into(), proof_context.clone());
        }
        None => {
            if let Some(context) = unsecured.get("@context") {
                config.insert("@context".into(), context.clone());
            }
        }
    }
    Ok(CanonicalForms {
        proof_configuration: jcs::canonicalize(&Value::Object(config))?,
        document: jcs::canonicalize(&Value::Object(unsecured))?,
    })
}

/// Whether the document's `@context` starts with every value of the proof's, in order.
fn starts_with(document: Option<&Value>, proof: &Value) -> bool {
    let as_list = |v: &Value| match v {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    let Some(document) = document else {
        return false;
    };
    let (document, proof) = (as_list(document), as_list(proof));
    proof.len() <= document.len() && document.iter().zip(&proof).all(|(d, p)| d == p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_document_must_start_with_the_proof_contexts() {
        let proof = json!(["a", "b"]);
        assert!(starts_with(Some(&json!(["a", "b", "c"])), &proof));
        assert!(starts_with(Some(&json!(["a", "b"])), &proof));
        assert!(!starts_with(Some(&json!(["b", "a"])), &proof));
        assert!(!starts_with(Some(&json!("a")), &proof));
        assert!(starts_with(Some(&json!("a")), &json!("a")));
        assert!(!starts_with(None, &proof));
    }
}
