//! The reference Data Integrity `eddsa-rdfc-2022` path: stock `ssi`, with every JSON-LD context we
//! accept pinned offline. It is correct but spends most of its time re-processing contexts; it is the
//! baseline the fast signer is measured and differentially tested against.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde_json::Value;
use ssi::{
    claims::{
        SignatureEnvironment, VerificationParameters,
        data_integrity::{
            CryptographicSuite, DataIntegrity, DataIntegrityDocument, ProofOptions,
            suites::EdDsaRdfc2022,
        },
    },
    json_ld::ContextLoader,
    verification_methods::{Multikey, ProofPurpose, ReferenceOrOwned, SingleSecretSigner},
};

/// OB 3.0 context URLs and their pinned documents (MIT, see contexts/LICENSE-open-badges-context.txt).
pub const OB_CONTEXTS: &[(&str, &str)] = &[
    (
        "https://purl.imsglobal.org/spec/ob/v3p0/context.json",
        include_str!("contexts/ob-v3p0-context-3.0.0.json"),
    ),
    (
        "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.1.json",
        include_str!("contexts/ob-v3p0-context-3.0.1.json"),
    ),
    (
        "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.2.json",
        include_str!("contexts/ob-v3p0-context-3.0.2.json"),
    ),
    (
        "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
        include_str!("contexts/ob-v3p0-context-3.0.3.json"),
    ),
    (
        "https://purl.imsglobal.org/spec/ob/v3p0/extensions.json",
        include_str!("contexts/ob-v3p0-extensions.json"),
    ),
];

/// Failures of the reference path.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// The document is not a JSON-LD object we can sign (400 at the edge).
    #[error("document: {0}")]
    Document(String),
    /// Signing failed: an unknown context, an undefined term (safe mode), or a malformed value.
    #[error("signing: {0}")]
    Sign(String),
    /// The proof does not verify.
    #[error("verification: {0}")]
    Verify(String),
}

/// Stock-ssi signer and verifier with pinned contexts.
#[derive(Clone)]
pub struct ReferenceSigner {
    loader: ContextLoader,
}

impl std::fmt::Debug for ReferenceSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReferenceSigner")
    }
}

/// A `Multikey` verification method for `key`.
fn multikey(vm_id: &str, controller: &str, key: &VerifyingKey) -> Result<Multikey, ReferenceError> {
    let id = iref::IriBuf::new(vm_id.to_owned()).map_err(|_| {
        ReferenceError::Document(format!("verification method `{vm_id}` is not an IRI"))
    })?;
    let controller = iref::UriBuf::new(controller.as_bytes().to_vec())
        .map_err(|_| ReferenceError::Document(format!("controller `{controller}` is not a URI")))?;
    Ok(Multikey::from_public_key(id, controller, key))
}

impl ReferenceSigner {
    /// A signer whose loader knows the W3C contexts bundled with ssi and the OB 3.0 contexts.
    pub fn new() -> Result<Self, ReferenceError> {
        let map: HashMap<String, String> = OB_CONTEXTS
            .iter()
            .map(|(url, doc)| ((*url).to_owned(), (*doc).to_owned()))
            .collect();
        let loader = ContextLoader::default()
            .with_context_map_from(map)
            .map_err(|e| ReferenceError::Document(format!("pinned contexts: {e}")))?;
        Ok(Self { loader })
    }

    /// Signs `document` (any JSON-LD object without `proof`) with an eddsa-rdfc-2022
    /// DataIntegrityProof, purpose assertionMethod, created at `created` (whole seconds).
    pub async fn sign(
        &self,
        document: Value,
        verification_method: &str,
        controller: &str,
        created: DateTime<Utc>,
        key: &SigningKey,
    ) -> Result<Value, ReferenceError> {
        let doc: DataIntegrityDocument = serde_json::from_value(document)
            .map_err(|e| ReferenceError::Document(e.to_string()))?;
        let method = multikey(verification_method, controller, &key.verifying_key())?;
        let mut resolver = HashMap::new();
        resolver.insert(method.id.clone(), method.clone());
        let jwk: ssi::JWK = {
            use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
            serde_json::from_value(serde_json::json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
                "d": URL_SAFE_NO_PAD.encode(key.to_bytes()),
            }))
            .map_err(|e| ReferenceError::Sign(e.to_string()))?
        };
        let signer = SingleSecretSigner::new(jwk);
        let created = created
            .to_rfc3339_opts(SecondsFormat::Secs, true)
            .parse()
            .map_err(|_| ReferenceError::Sign("created is not a valid xsd:dateTime".into()))?;
        let options = ProofOptions::new(
            created,
            ReferenceOrOwned::Reference(method.id.clone()),
            ProofPurpose::Assertion,
            (),
        );
        let env = SignatureEnvironment {
            json_ld_loader: &self.loader,
            eip712_loader: (),
        };
        let signed = EdDsaRdfc2022
            .sign_with(env, doc, &resolver, &signer, options, ())
            .await
            .map_err(|e| ReferenceError::Sign(e.to_string()))?;
        serde_json::to_value(&signed).map_err(|e| ReferenceError::Sign(e.to_string()))
    }

    /// Verifies an eddsa-rdfc-2022 proof on `document` with `key` as the verification method.
    pub async fn verify(
        &self,
        document: Value,
        verification_method: &str,
        controller: &str,
        key: &VerifyingKey,
    ) -> Result<(), ReferenceError> {
        let signed: DataIntegrity<DataIntegrityDocument, EdDsaRdfc2022> =
            serde_json::from_value(document)
                .map_err(|e| ReferenceError::Document(e.to_string()))?;
        let method = multikey(verification_method, controller, key)?;
        let mut resolver = HashMap::new();
        resolver.insert(method.id.clone(), method);
        let params =
            VerificationParameters::from_resolver(&resolver).with_json_ld_loader(&self.loader);
        signed
            .verify(params)
            .await
            .map_err(|e| ReferenceError::Verify(e.to_string()))?
            .map_err(|e| ReferenceError::Verify(e.to_string()))
    }
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

    #[tokio::test]
    async fn reproduces_the_ob3_example_proof_byte_for_byte() {
        let signed: Value =
            serde_json::from_str(&vector("ob-v3p0-ldp/signed-credential.json")).unwrap();
        let mut unsigned = signed.clone();
        let proof = unsigned.as_object_mut().unwrap().remove("proof").unwrap();
        let seed: [u8; 32] =
            hex::decode("6241a409e6707bb640a0140a8a32bc3d193c33a661747284d6adfa4ed4180be4")
                .unwrap()
                .try_into()
                .unwrap();
        let key = SigningKey::from_bytes(&seed);
        let vm = proof["verificationMethod"].as_str().unwrap();
        let controller = vm.split('#').next().unwrap();
        let created: DateTime<Utc> = proof["created"].as_str().unwrap().parse().unwrap();
        let signer = ReferenceSigner::new().unwrap();
        let out = signer
            .sign(unsigned, vm, controller, created, &key)
            .await
            .unwrap();
        assert_eq!(out["proof"]["proofValue"], proof["proofValue"]);
        signer
            .verify(out, vm, controller, &key.verifying_key())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn reproduces_the_w3c_eddsa_rdfc_2022_vector() {
        let unsigned: Value = serde_json::from_str(&vector("vc-di-eddsa/unsigned.json")).unwrap();
        let config: Value = serde_json::from_str(&vector(
            "vc-di-eddsa/eddsa-rdfc-2022/proofConfigDataInt.json",
        ))
        .unwrap();
        let expected = vector("vc-di-eddsa/eddsa-rdfc-2022/sigBTC58DataInt.txt");
        let pair: Value = serde_json::from_str(&vector("vc-di-eddsa/keyPair.json")).unwrap();
        let private = bs58::decode(&pair["privateKeyMultibase"].as_str().unwrap()[1..])
            .into_vec()
            .unwrap();
        let key = SigningKey::from_bytes(&private[2..].try_into().unwrap());
        let vm = config["verificationMethod"].as_str().unwrap();
        let controller = vm.split('#').next().unwrap();
        let created: DateTime<Utc> = config["created"].as_str().unwrap().parse().unwrap();
        let signer = ReferenceSigner::new().unwrap();
        let out = signer
            .sign(unsigned, vm, controller, created, &key)
            .await
            .unwrap();
        assert_eq!(out["proof"]["proofValue"], expected.trim());
        // One changed character in a claim breaks verification.
        let mut tampered = out.clone();
        tampered["credentialSubject"]["alumniOf"] = serde_json::json!("The School of Examples!");
        assert!(
            signer
                .verify(tampered, vm, controller, &key.verifying_key())
                .await
                .is_err()
        );
    }
}
