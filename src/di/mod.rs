//! Data Integrity proofs (W3C VC Data Integrity 1.0): the `eddsa-rdfc-2022` and `eddsa-jcs-2022`
//! cryptosuites over our pinned JSON-LD contexts.

pub mod eddsa_jcs_2022;
mod eddsa_rdfc_2022;
mod error;
pub mod jcs;

pub use eddsa_rdfc_2022::{
    CanonicalForms, EddsaRdfc2022, ProofOptions, ProofPurpose, Suite, proofs_of,
    sign_eddsa_rdfc_2022, verify_eddsa_rdfc_2022,
};
pub use error::DiError;

/// The cryptosuites this service signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Cryptosuite {
    /// `eddsa-rdfc-2022` (RDFC-1.0 canonicalization): the default.
    #[default]
    EddsaRdfc2022,
    /// `eddsa-jcs-2022` (JCS, RFC 8785).
    EddsaJcs2022,
}

impl Cryptosuite {
    /// The `cryptosuite` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EddsaRdfc2022 => "eddsa-rdfc-2022",
            Self::EddsaJcs2022 => eddsa_jcs_2022::CRYPTOSUITE,
        }
    }
}

/// A cryptosuite this service does not sign with.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cryptosuite `{0}` is not supported for signing: use eddsa-rdfc-2022 or eddsa-jcs-2022")]
pub struct UnsupportedCryptosuite(pub String);

impl std::str::FromStr for Cryptosuite {
    type Err = UnsupportedCryptosuite;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "eddsa-rdfc-2022" => Ok(Self::EddsaRdfc2022),
            eddsa_jcs_2022::CRYPTOSUITE => Ok(Self::EddsaJcs2022),
            other => Err(UnsupportedCryptosuite(other.to_owned())),
        }
    }
}

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
