//! oxbadge: an Open Badges 3.0 issuer and verifier service.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod di;
pub mod jsonld;
