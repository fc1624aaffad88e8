//! The `eddsa-rdfc-2022` cryptosuite (W3C Data Integrity EdDSA Cryptosuites v1.0 §3.2):
//! RDFC-1.0 canonicalization, SHA-256, Ed25519, base58btc multibase.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::DiError;
use crate::jsonld::{Canonical, ContextLoader, Profile, TopLevel};

const PROOF_TYPE: &str = "DataIntegrityProof";
const CRYPTOSUITE: &str = "eddsa-rdfc-2022";

/// Why the proof was made (`proofPurpose`); credentials use `assertionMethod`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofPurpose {
    /// `assertionMethod`: issuing credentials.
    AssertionMethod,
    /// `authentication`: presentations.
    Authentication,
    /// `capabilityInvocation`.
    CapabilityInvocation,
    /// `capabilityDelegation`.
    CapabilityDelegation,
}

impl ProofPurpose {
    /// The `proofPurpose` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AssertionMethod => "assertionMethod",
            Self::Authentication => "authentication",
            Self::CapabilityInvocation => "capabilityInvocation",
            Self::CapabilityDelegation => "capabilityDelegation",
        }
    }
}

/// The options a proof is created with.
#[derive(Debug, Clone)]
pub struct ProofOptions {
    /// `verificationMethod`: the URL of the public key (e.g. `did:key:z6Mk…#z6Mk…`).
    pub verification_method: String,
    /// `created`; written with second precision when it has no fraction (`2010-01-01T19:23:24Z`).
    pub created: DateTime<Utc>,
    /// `proofPurpose`.
    pub proof_purpose: ProofPurpose,
}

/// The two canonical N-Quads documents a proof signs, exposed for tests and diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalForms {
    /// The proof configuration (proof without `proofValue`, with the document's `@context`).
    pub proof_configuration: String,
    /// The document without `proof`.
    pub document: String,
}

impl CanonicalForms {
    /// hashData = SHA-256(proof configuration) ‖ SHA-256(document).
    pub fn hash_data(&self) -> [u8; 64] {
        let mut hash = [0u8; 64];
        hash[..32].copy_from_slice(&Sha256::digest(self.proof_configuration.as_bytes()));
        hash[32..].copy_from_slice(&Sha256::digest(self.document.as_bytes()));
        hash
    }
}

/// `eddsa-rdfc-2022` signer and verifier over a (shared) pinned context loader.
///
/// Cheap to clone and `Send + Sync`; keep one per process so the loader's memo stays warm.
/// VC 1.1 documents (`https://www.w3.org/2018/credentials/v1`) must list
/// [`crate::jsonld::DATA_INTEGRITY_V2`] in their `@context`, as the VC API requires: otherwise
/// `DataIntegrityProof` is an undefined type and signing fails with that error.
#[derive(Debug, Clone)]
pub struct EddsaRdfc2022 {
    loader: Arc<ContextLoader>,
    profile: Profile,
}

impl Default for EddsaRdfc2022 {
    fn default() -> Self {
        Self::new(ContextLoader::shared())
    }
}

impl EddsaRdfc2022 {
    /// A cryptosuite instance using `loader` for contexts.
    pub fn new(loader: Arc<ContextLoader>) -> Self {
        Self {
            loader,
            profile: Profile::Rdfc10,
        }
    }

    /// The same suite producing `profile`'s literal forms. Signing should stay with the default
    /// ([`Profile::Rdfc10`]); [`Profile::SsiCompatible`] exists to reproduce stock `ssi`.
    pub fn with_profile(mut self, profile: Profile) -> Self {
        self.profile = profile;
        self
    }

    /// Canonical forms of `document` (its `proof`, if any, left out) and of `proof` (its
    /// `proofValue`, if any, left out), the latter under the document's `@context`.
    pub fn canonical_forms(
        &self,
        document: &Value,
        proof: &Value,
    ) -> Result<CanonicalForms, DiError> {
        let map = document.as_object().ok_or(DiError::NotAnObject)?;
        let context = map.get("@context").ok_or(DiError::MissingContext)?;
        Ok(CanonicalForms {
            proof_configuration: self.canonical_proof(proof, context, self.profile)?.nquads,
            document: self.canonical_document(document, self.profile)?.nquads,
        })
    }

    fn canonical_document(&self, document: &Value, profile: Profile) -> Result<Canonical, DiError> {
        Ok(self.loader.canonicalize_with(
            document,
            TopLevel {
                context: None,
                skip: &["proof"],
            },
            profile,
        )?)
    }

    /// The proof configuration: `proof` without `proofValue`, under the document's `@context`.
    fn canonical_proof(
        &self,
        proof: &Value,
        context: &Value,
        profile: Profile,
    ) -> Result<Canonical, DiError> {
        Ok(self.loader.canonicalize_with(
            proof,
            TopLevel {
                context: Some(context),
                skip: &["proofValue", "@context"],
            },
            profile,
        )?)
    }

    /// Adds an `eddsa-rdfc-2022` proof to `document` and returns the signed document. An
    /// existing `proof` is kept and the new one added beside it (a proof set).
    pub fn sign(
        &self,
        document: &Value,
        options: ProofOptions,
        key: &SigningKey,
    ) -> Result<Value, DiError> {
        let mut proof = Map::new();
        proof.insert("type".into(), PROOF_TYPE.into());
        proof.insert("cryptosuite".into(), CRYPTOSUITE.into());
        proof.insert(
            "created".into(),
            options
                .created
                .to_rfc3339_opts(SecondsFormat::AutoSi, true)
                .into(),
        );
        proof.insert(
            "verificationMethod".into(),
            options.verification_method.into(),
        );
        proof.insert("proofPurpose".into(), options.proof_purpose.as_str().into());
        let mut proof = Value::Object(proof);
        let hash = self.canonical_forms(document, &proof)?.hash_data();
        let signature = key.sign(&hash);
        let proof_value = format!("z{}", bs58::encode(signature.to_bytes()).into_string());
        if let Value::Object(p) = &mut proof {
            p.insert("proofValue".into(), proof_value.into());
        }
        let mut signed = document.clone();
        if let Value::Object(map) = &mut signed {
            let proofs = match map.remove("proof") {
                None => proof,
                Some(Value::Array(mut existing)) => {
                    existing.push(proof);
                    Value::Array(existing)
                }
                Some(existing) => Value::Array(vec![existing, proof]),
            };
            map.insert("proof".into(), proofs);
        }
        Ok(signed)
    }

    /// Verifies the `eddsa-rdfc-2022` proof(s) of `signed` against `public_key`: succeeds when
    /// one of them verifies. Proofs of other suites are ignored; chains are refused.
    pub fn verify(&self, signed: &Value, public_key: &VerifyingKey) -> Result<(), DiError> {
        let map = signed.as_object().ok_or(DiError::NotAnObject)?;
        let proofs: &[Value] = match map.get("proof") {
            None => return Err(DiError::MissingProof),
            Some(Value::Array(items)) => items,
            Some(single) => std::slice::from_ref(single),
        };
        let candidates: Vec<&Value> = proofs
            .iter()
            .filter(|p| {
                p.get("type").and_then(Value::as_str) == Some(PROOF_TYPE)
                    && p.get("cryptosuite").and_then(Value::as_str) == Some(CRYPTOSUITE)
            })
            .collect();
        if candidates.is_empty() {
            return Err(DiError::UnsupportedProof);
        }
        let context = map.get("@context").ok_or(DiError::MissingContext)?;
        let document = self.canonical_document(signed, self.profile)?;
        let mut last_error = DiError::InvalidSignature;
        for &proof in &candidates {
            match self.verify_one(proof, context, &document, self.profile, public_key) {
                Ok(()) => return Ok(()),
                Err(e) => last_error = e,
            }
        }
        // Credentials signed by stock `ssi` differ from the spec in typed booleans and numbers
        // (e.g. OB `hashed: true`); accept them too, but only when that difference can matter.
        if self.profile == Profile::Rdfc10 && matches!(last_error, DiError::InvalidSignature) {
            let ssi_document = self.canonical_document(signed, Profile::SsiCompatible)?;
            for &proof in &candidates {
                if self
                    .verify_one(
                        proof,
                        context,
                        &ssi_document,
                        Profile::SsiCompatible,
                        public_key,
                    )
                    .is_ok()
                {
                    return Ok(());
                }
            }
        }
        Err(last_error)
    }

    fn verify_one(
        &self,
        proof: &Value,
        context: &Value,
        document: &Canonical,
        profile: Profile,
        public_key: &VerifyingKey,
    ) -> Result<(), DiError> {
        if proof.get("previousProof").is_some() {
            return Err(DiError::ProofChain);
        }
        if proof.get("@context").is_some_and(|c| c != context) {
            return Err(DiError::ContextMismatch);
        }
        let signature = decode_proof_value(proof.get("proofValue"))?;
        let configuration = self.canonical_proof(proof, context, profile)?;
        if profile == Profile::SsiCompatible
            && !(document.profile_matters || configuration.profile_matters)
        {
            // Same bytes as the spec form, which already failed.
            return Err(DiError::InvalidSignature);
        }
        let mut hash = [0u8; 64];
        hash[..32].copy_from_slice(&Sha256::digest(configuration.nquads.as_bytes()));
        hash[32..].copy_from_slice(&Sha256::digest(document.nquads.as_bytes()));
        public_key
            .verify_strict(&hash, &signature)
            .map_err(|_| DiError::InvalidSignature)
    }
}

fn decode_proof_value(value: Option<&Value>) -> Result<Signature, DiError> {
    let text = value
        .and_then(Value::as_str)
        .ok_or(DiError::InvalidProofValue("missing or not a string"))?;
    let encoded = text
        .strip_prefix('z')
        .ok_or(DiError::InvalidProofValue("not multibase base58btc ('z')"))?;
    let bytes = bs58::decode(encoded)
        .into_vec()
        .map_err(|_| DiError::InvalidProofValue("not base58btc"))?;
    let bytes: [u8; 64] = bytes
        .try_into()
        .map_err(|_| DiError::InvalidProofValue("not a 64-byte Ed25519 signature"))?;
    Ok(Signature::from_bytes(&bytes))
}

/// Signs `document` with `eddsa-rdfc-2022` using the process-wide pinned loader.
pub fn sign_eddsa_rdfc_2022(
    document: &Value,
    options: ProofOptions,
    key: &SigningKey,
) -> Result<Value, DiError> {
    EddsaRdfc2022::default().sign(document, options, key)
}

/// Verifies an `eddsa-rdfc-2022` proof of `signed` using the process-wide pinned loader.
pub fn verify_eddsa_rdfc_2022(signed: &Value, public_key: &VerifyingKey) -> Result<(), DiError> {
    EddsaRdfc2022::default().verify(signed, public_key)
}
