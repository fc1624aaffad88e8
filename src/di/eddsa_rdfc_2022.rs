//! The `eddsa-rdfc-2022` cryptosuite (W3C Data Integrity EdDSA Cryptosuites v1.0 §3.2):
//! RDFC-1.0 canonicalization, SHA-256, Ed25519, base58btc multibase.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{Cryptosuite, DiError, eddsa_jcs_2022};
use crate::jsonld::{Budget, Canonical, CanonicalizationLimits, ContextLoader, Profile, TopLevel};

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
    /// `challenge`: for an `authentication` proof, the verifier's nonce (prevents replay).
    pub challenge: Option<String>,
    /// `domain`: for an `authentication` proof, the verifier the proof is meant for.
    pub domain: Option<String>,
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
    limits: CanonicalizationLimits,
    /// Set when the request this work serves is gone; canonicalization then stops.
    cancel: Option<Arc<AtomicBool>>,
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
            limits: CanonicalizationLimits::default(),
            cancel: None,
        }
    }

    /// The same suite with other bounds on RDFC-1.0 work (signing and verifying alike): a
    /// document that needs more fails with [`crate::jsonld::JsonLdError::LimitExceeded`].
    pub fn with_limits(mut self, limits: CanonicalizationLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The bounds on RDFC-1.0 work in force.
    pub fn limits(&self) -> CanonicalizationLimits {
        self.limits
    }

    /// The same suite, stopping its canonicalization (with
    /// [`crate::jsonld::JsonLdError::Cancelled`]) once `cancel` is set.
    pub fn with_cancel(mut self, cancel: Arc<AtomicBool>) -> Self {
        self.cancel = Some(cancel);
        self
    }

    fn budget(&self) -> Budget<'_> {
        Budget {
            limits: self.limits,
            cancel: self.cancel.as_deref(),
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

    /// Checks that `document` (its `proof` left out) is acceptable JSON-LD under the pinned
    /// contexts in safe mode: every context known, every term and type defined.
    pub fn check_contexts(&self, document: &Value) -> Result<(), DiError> {
        self.canonical_document(document, self.profile).map(|_| ())
    }

    fn canonical_document(&self, document: &Value, profile: Profile) -> Result<Canonical, DiError> {
        Ok(self.loader.canonicalize_bounded(
            document,
            TopLevel {
                context: None,
                skip: &["proof"],
            },
            profile,
            self.budget(),
        )?)
    }

    /// The proof configuration: `proof` without `proofValue`, under the document's `@context`.
    fn canonical_proof(
        &self,
        proof: &Value,
        context: &Value,
        profile: Profile,
    ) -> Result<Canonical, DiError> {
        Ok(self.loader.canonicalize_bounded(
            proof,
            TopLevel {
                context: Some(context),
                skip: &["proofValue", "@context"],
            },
            profile,
            self.budget(),
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
        self.sign_with(document, options, key, Cryptosuite::EddsaRdfc2022)
    }

    /// Adds a proof of `cryptosuite` to `document` (see [`Self::sign`]). An `eddsa-jcs-2022`
    /// proof carries the document's `@context`; the document must still be acceptable JSON-LD
    /// under the pinned contexts (safe mode), although JCS itself does not expand it.
    pub fn sign_with(
        &self,
        document: &Value,
        options: ProofOptions,
        key: &SigningKey,
        cryptosuite: Cryptosuite,
    ) -> Result<Value, DiError> {
        let mut proof = Map::new();
        proof.insert("type".into(), PROOF_TYPE.into());
        proof.insert("cryptosuite".into(), cryptosuite.as_str().into());
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
        if let Some(challenge) = options.challenge {
            proof.insert("challenge".into(), challenge.into());
        }
        if let Some(domain) = options.domain {
            proof.insert("domain".into(), domain.into());
        }
        let mut proof = Value::Object(proof);
        let hash = match cryptosuite {
            Cryptosuite::EddsaRdfc2022 => self.canonical_forms(document, &proof)?.hash_data(),
            Cryptosuite::EddsaJcs2022 => {
                self.check_contexts(document)?;
                if let Some(map) = document.as_object() {
                    proof = eddsa_jcs_2022::proof_configuration(map, &proof);
                }
                eddsa_jcs_2022::canonical_forms(document, &proof)?.hash_data()
            }
        };
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
    /// one of them verifies. Proofs of other suites are ignored.
    pub fn verify(&self, signed: &Value, public_key: &VerifyingKey) -> Result<(), DiError> {
        let proofs = proofs_of(signed)?;
        let candidates: Vec<usize> = (0..proofs.len())
            .filter(|&i| Suite::of(&proofs[i]) == Some(Suite::EddsaRdfc2022))
            .collect();
        if candidates.is_empty() {
            return Err(DiError::UnsupportedProof);
        }
        let mut last_error = DiError::InvalidSignature;
        for index in candidates {
            match self.verify_proof(signed, index, public_key) {
                Ok(()) => return Ok(()),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    /// Verifies proof number `index` of `signed` (an Ed25519 suite: see [`Suite`]) against
    /// `public_key`. A proof naming `previousProof` is verified over the document secured by
    /// those earlier proofs (a proof chain); the earlier proofs must be in the same proof set.
    pub fn verify_proof(
        &self,
        signed: &Value,
        index: usize,
        public_key: &VerifyingKey,
    ) -> Result<(), DiError> {
        let map = signed.as_object().ok_or(DiError::NotAnObject)?;
        let proofs = proofs_of(signed)?;
        let proof = proofs.get(index).ok_or(DiError::MissingProof)?;
        let Some(suite) = Suite::of(proof) else {
            return Err(DiError::UnsupportedProof);
        };
        if suite == Suite::EddsaJcs2022 {
            return self.verify_jcs_proof(signed, proofs, proof, public_key);
        }
        let context = map.get("@context").ok_or(DiError::MissingContext)?;
        if proof.get("@context").is_some_and(|c| c != context) {
            return Err(DiError::ContextMismatch);
        }
        let signature = decode_proof_value(proof.get("proofValue"))?;
        let chained = chained_document(signed, proofs, proof)?;
        let secured = chained.as_ref().unwrap_or(signed);
        let canonical = |profile| match &chained {
            None => self.canonical_document(secured, profile),
            Some(doc) => Ok(self.loader.canonicalize_bounded(
                doc,
                TopLevel {
                    context: None,
                    skip: &[],
                },
                profile,
                self.budget(),
            )?),
        };
        let document = canonical(self.profile)?;
        match self.check(
            proof,
            context,
            &document,
            self.profile,
            &signature,
            public_key,
        ) {
            // Credentials signed by stock `ssi` differ from the spec in typed booleans and numbers
            // (e.g. OB `hashed: true`); accept them too, but only when that difference can matter.
            Err(DiError::InvalidSignature) if self.profile == Profile::Rdfc10 => {
                let ssi_document = canonical(Profile::SsiCompatible)?;
                self.check(
                    proof,
                    context,
                    &ssi_document,
                    Profile::SsiCompatible,
                    &signature,
                    public_key,
                )
            }
            other => other,
        }
    }

    /// An `eddsa-jcs-2022` proof: the document must be acceptable JSON-LD (so that a verified
    /// proof means what it does for the RDFC suites), start with the proof's contexts, and the
    /// signature must cover the JCS forms.
    fn verify_jcs_proof(
        &self,
        signed: &Value,
        proofs: &[Value],
        proof: &Value,
        public_key: &VerifyingKey,
    ) -> Result<(), DiError> {
        self.check_contexts(signed)?;
        let signature = decode_proof_value(proof.get("proofValue"))?;
        let unsecured = match chained_document(signed, proofs, proof)? {
            Some(Value::Object(doc)) => doc,
            _ => {
                let mut doc = signed.as_object().ok_or(DiError::NotAnObject)?.clone();
                doc.remove("proof");
                doc
            }
        };
        let forms = eddsa_jcs_2022::verification_forms(unsecured, proof)?;
        public_key
            .verify_strict(&forms.hash_data(), &signature)
            .map_err(|_| DiError::InvalidSignature)
    }

    fn check(
        &self,
        proof: &Value,
        context: &Value,
        document: &Canonical,
        profile: Profile,
        signature: &Signature,
        public_key: &VerifyingKey,
    ) -> Result<(), DiError> {
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
            .verify_strict(&hash, signature)
            .map_err(|_| DiError::InvalidSignature)
    }
}

/// The Data Integrity suites this verifier accepts. All sign SHA-256 of the canonical proof
/// configuration ‖ SHA-256 of the canonical document with Ed25519, and encode the signature as
/// multibase base58btc; the first three canonicalize with RDFC-1.0 and differ in how the proof
/// names itself, `eddsa-jcs-2022` canonicalizes with JCS (RFC 8785).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// `DataIntegrityProof` with `cryptosuite: "eddsa-rdfc-2022"` (what we sign).
    EddsaRdfc2022,
    /// `DataIntegrityProof` with `cryptosuite: "eddsa-2022"`, the draft name of the same suite.
    Eddsa2022,
    /// The legacy `Ed25519Signature2020` proof type.
    Ed25519Signature2020,
    /// `DataIntegrityProof` with `cryptosuite: "eddsa-jcs-2022"`: JCS instead of RDFC-1.0
    /// (see [`super::eddsa_jcs_2022`]).
    EddsaJcs2022,
}

impl Suite {
    /// The suite of `proof`, when it is one of ours.
    pub fn of(proof: &Value) -> Option<Self> {
        let cryptosuite = proof.get("cryptosuite").and_then(Value::as_str);
        match proof.get("type").and_then(Value::as_str)? {
            PROOF_TYPE => match cryptosuite? {
                CRYPTOSUITE => Some(Self::EddsaRdfc2022),
                "eddsa-2022" => Some(Self::Eddsa2022),
                super::eddsa_jcs_2022::CRYPTOSUITE => Some(Self::EddsaJcs2022),
                _ => None,
            },
            "Ed25519Signature2020" => Some(Self::Ed25519Signature2020),
            _ => None,
        }
    }

    /// The name reports use: the cryptosuite, or the proof type for the legacy suite.
    pub fn name(self) -> &'static str {
        match self {
            Self::EddsaRdfc2022 => CRYPTOSUITE,
            Self::Eddsa2022 => "eddsa-2022",
            Self::Ed25519Signature2020 => "Ed25519Signature2020",
            Self::EddsaJcs2022 => super::eddsa_jcs_2022::CRYPTOSUITE,
        }
    }
}

/// The proofs of `signed` (`proof` may be one object or a set).
pub fn proofs_of(signed: &Value) -> Result<&[Value], DiError> {
    let map = signed.as_object().ok_or(DiError::NotAnObject)?;
    match map.get("proof") {
        None => Err(DiError::MissingProof),
        Some(Value::Array(items)) if items.is_empty() => Err(DiError::MissingProof),
        Some(Value::Array(items)) => Ok(items),
        Some(single) => Ok(std::slice::from_ref(single)),
    }
}

/// For a proof with `previousProof`, the document it secures: the unsecured document with
/// `proof` set to the proofs it names (VC Data Integrity 1.0, "Verify Proof Chain"). `None` for
/// a proof without `previousProof`.
fn chained_document(
    signed: &Value,
    proofs: &[Value],
    proof: &Value,
) -> Result<Option<Value>, DiError> {
    let ids: Vec<&str> = match proof.get("previousProof") {
        None => return Ok(None),
        Some(Value::String(id)) => vec![id.as_str()],
        Some(Value::Array(ids)) => ids
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| DiError::ProofChain("previousProof must hold proof ids".into()))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(DiError::ProofChain(
                "previousProof must be a proof id or a list of them".into(),
            ));
        }
    };
    let mut previous = Vec::with_capacity(ids.len());
    for id in ids {
        let found = proofs
            .iter()
            .find(|p| p.get("id").and_then(Value::as_str) == Some(id))
            .ok_or_else(|| {
                DiError::ProofChain(format!("previousProof {id} is not among the proofs"))
            })?;
        previous.push(found.clone());
    }
    let mut document = signed.clone();
    if let Value::Object(map) = &mut document {
        map.insert("proof".into(), Value::Array(previous));
    }
    Ok(Some(document))
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
