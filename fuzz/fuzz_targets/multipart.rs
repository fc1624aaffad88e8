//! Fuzz target: arbitrary bytes into the verify endpoint's multipart/form-data upload (first line: Content-Type) (see oxbadge::http::fuzzing::multipart).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oxbadge::http::fuzzing::multipart(data));
