//! The one integration-test binary: real HTTP against a real database (SQLite, or PostgreSQL when
//! OXBADGE_TEST_DATABASE_URL is set).

mod crash;
mod di_vectors;
mod es256;
mod foundation;
mod fuzz_corpus;
mod issuance;
mod keys;
mod openapi;
mod ops;
mod status;
mod support;
mod verify;
