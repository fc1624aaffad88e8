//! Building and signing credentials: Data Integrity proofs (eddsa-rdfc-2022) and VC-JWT, baked images.

pub mod reference;
