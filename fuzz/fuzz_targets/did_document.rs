//! Fuzz target: arbitrary bytes into fetched DID / controller documents (key resolution) (see oxbadge::verify::fuzzing::did_document).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oxbadge::verify::fuzzing::did_document(data));
