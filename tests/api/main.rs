//! The one integration-test binary: real HTTP against a real database (SQLite, or PostgreSQL when
//! OXBADGE_TEST_DATABASE_URL is set).

mod accounts;
mod browser;
mod crash;
mod di_vectors;
mod es256;
mod foundation;
mod fuzz_corpus;
mod hardening_edge;
mod hardening_state;
mod issuance;
mod jsonld_conformance;
mod keys;
mod oauth_attacks;
mod oauth_code_flow;
mod oauth_registration;
mod oauth_revocation;
mod ob3_consumer;
mod ob3_provider;
mod openapi;
mod ops;
mod poison;
mod scale_out;
mod secrets;
mod shared_limits;
mod status;
mod support;
mod tenancy;
mod vcapi_conformance;
mod verify;
mod verify_conformance;
mod web_pages;
