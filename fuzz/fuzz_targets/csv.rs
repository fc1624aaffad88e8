//! Fuzz target: arbitrary bytes into the recipients CSV reader of `oxbadge issue --csv`
//! (oxbadge::issue::recipients_csv::read).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = oxbadge::issue::recipients_csv::read(data);
});
