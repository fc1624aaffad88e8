//! Fuzz target: arbitrary bytes into the verifier's png parsing (see oxbadge::verify::fuzzing).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oxbadge::verify::fuzzing::png(data));
