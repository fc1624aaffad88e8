//! Data Integrity proofs (W3C VC Data Integrity 1.0): the `eddsa-rdfc-2022` cryptosuite over our
//! pinned JSON-LD contexts.

mod eddsa_rdfc_2022;
mod error;

pub use eddsa_rdfc_2022::{
    CanonicalForms, EddsaRdfc2022, ProofOptions, ProofPurpose, sign_eddsa_rdfc_2022,
    verify_eddsa_rdfc_2022,
};
pub use error::DiError;
