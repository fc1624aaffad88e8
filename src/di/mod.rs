//! Data Integrity proofs (W3C VC Data Integrity 1.0): the `eddsa-rdfc-2022` cryptosuite over our
//! pinned JSON-LD contexts.

mod eddsa_rdfc_2022;
mod error;

pub use eddsa_rdfc_2022::{
    CanonicalForms, EddsaRdfc2022, ProofOptions, ProofPurpose, Suite, proofs_of,
    sign_eddsa_rdfc_2022, verify_eddsa_rdfc_2022,
};
pub use error::DiError;

#[cfg(test)]
mod tests {
    /// The fast path is shared across request handlers and blocking workers.
    #[test]
    fn signer_and_loader_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<super::EddsaRdfc2022>();
        assert_send_sync::<crate::jsonld::ContextLoader>();
    }
}
