//! Fuzz target: arbitrary bytes into the verifier's svg parsing (see oxbadge::verify::fuzzing).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oxbadge::verify::fuzzing::svg(data));
