//! Fuzz target: arbitrary bytes into fetched JWK Sets (key resolution) (see oxbadge::verify::fuzzing::jwks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oxbadge::verify::fuzzing::jwks(data));
