//! Fuzz target: arbitrary bytes into the token endpoint's form body (first line: Authorization header) (see oxbadge::http::fuzzing::oauth_form).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oxbadge::http::fuzzing::oauth_form(data));
