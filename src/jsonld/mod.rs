//! JSON-LD for signing: the pinned context loader and canonicalization of documents into
//! RDFC-1.0 N-Quads (expansion, RDF conversion, canonical labelling), in JSON-LD safe mode.
//!
//! This is a focused JSON-LD 1.1 processor: it implements the parts of expansion and RDF
//! conversion that our pinned contexts and credentials use, and refuses the rest with
//! [`JsonLdError::Unsupported`] instead of producing a different dataset than the spec.

mod context;
mod error;
mod expand;
mod loader;
mod rdf;
mod urdna2015;

pub use error::JsonLdError;
pub use expand::Profile;
pub(crate) use expand::TopLevel;
pub(crate) use loader::Canonical;
pub use loader::{
    CREDENTIALS_STATUS_V1, CREDENTIALS_V1, CREDENTIALS_V2, ContextLoader, DATA_INTEGRITY_V2,
    OB_V3P0_CONTEXT, OB_V3P0_EXTENSIONS,
};
pub(crate) use urdna2015::Budget;
pub use urdna2015::{CanonicalizationLimits, CanonicalizationWork};
