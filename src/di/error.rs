//! Errors of Data Integrity signing and verification.

use crate::jsonld::JsonLdError;

/// Why a document could not be signed or a proof did not verify.
#[derive(Debug, thiserror::Error)]
pub enum DiError {
    /// The document is not acceptable JSON-LD (unknown context, undefined term, ...): 422.
    #[error(transparent)]
    JsonLd(#[from] JsonLdError),
    /// The document is not a JSON object: 400.
    #[error("a Data Integrity document must be a JSON object")]
    NotAnObject,
    /// The document has no `@context`, so its proof configuration cannot be expanded: 422.
    #[error("the document has no @context")]
    MissingContext,
    /// Verification of a document without `proof`: 422.
    #[error("the document has no proof")]
    MissingProof,
    /// The proof is not of a supported suite (eddsa-rdfc-2022, eddsa-jcs-2022, eddsa-2022,
    /// Ed25519Signature2020): 422.
    #[error("unsupported proof type or cryptosuite")]
    UnsupportedProof,
    /// A proof chain (`previousProof`) names proofs that are not in the proof set: 422.
    #[error("proof chain: {0}")]
    ProofChain(String),
    /// The proof's own `@context` differs from the document's: 422.
    #[error("the proof's @context differs from the document's")]
    ContextMismatch,
    /// `proofValue` is missing or not a multibase base58btc Ed25519 signature: 422.
    #[error("invalid proofValue: {0}")]
    InvalidProofValue(&'static str),
    /// The signature does not match the document and key (forged or altered): 422.
    #[error("the signature does not verify")]
    InvalidSignature,
    /// The document holds a value JCS cannot canonicalize (`eddsa-jcs-2022`): 422.
    #[error(transparent)]
    Jcs(#[from] super::jcs::JcsError),
}
