//! Issuer signing keys: envelope encryption under KEKs, the key store (generation, rotation,
//! revocation, rewrap), identifiers, and the public documents that publish keys.

pub mod documents;
pub mod envelope;
pub mod identity;
pub mod publish;
pub mod ring;
pub mod store;
