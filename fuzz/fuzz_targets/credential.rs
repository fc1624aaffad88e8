//! Fuzz target: arbitrary bytes into the verifier's credential parsing (see oxbadge::verify::fuzzing).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oxbadge::verify::fuzzing::credential(data));
