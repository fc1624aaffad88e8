//! Fuzz target: arbitrary bytes into a fetched status list's encodedList (see oxbadge::verify::fuzzing::status_list).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oxbadge::verify::fuzzing::status_list(data));
