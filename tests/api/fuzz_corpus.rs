//! Replays the fuzz corpora (fuzz/corpus/<target>/, plus any fixed crash reproducers under
//! fuzz/regressions/<target>/) through the same entry points the cargo-fuzz targets call, so a
//! parser change that panics on an input the fuzzer once found fails here, on stable Rust.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut count = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{target}: {} panics", path.display());
            count += 1;
        }
    }
    count
}

/// What the `csv` fuzz target runs.
fn csv(data: &[u8]) {
    let _ = oxbadge::issue::recipients_csv::read(data);
}

#[test]
fn fuzz_corpora_replay_without_a_panic() {
    use oxbadge::verify::fuzzing;
    for (target, run) in [
        ("credential", fuzzing::credential as fn(&[u8])),
        ("jwt", fuzzing::jwt),
        ("png", fuzzing::png),
        ("svg", fuzzing::svg),
        ("did_document", fuzzing::did_document),
        ("jwks", fuzzing::jwks),
        ("status_list", fuzzing::status_list),
        ("multipart", oxbadge::http::fuzzing::multipart),
        ("oauth_form", oxbadge::http::fuzzing::oauth_form),
        ("csv", csv),
    ] {
        let replayed = replay(target, run);
        assert!(
            replayed >= 2,
            "{target}: the corpus is missing ({replayed} inputs)"
        );
    }
}

#[test]
fn corpus_seeds_reach_the_parsers_they_are_for() {
    use oxbadge::issue::bake::{Embedded, extract_png, extract_svg};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let png = std::fs::read(root.join("png/baked.png")).unwrap();
    assert!(matches!(extract_png(&png), Ok(Embedded::Json(_))));
    let svg = std::fs::read_to_string(root.join("svg/baked-jwt.svg")).unwrap();
    assert!(matches!(extract_svg(&svg), Ok(Embedded::Jws(_))));
    let jwt = std::fs::read_to_string(root.join("jwt/eddsa.jwt")).unwrap();
    assert!(oxbadge::verify::jwt::decode(&jwt).is_ok());
    let csv = std::fs::read(root.join("csv/emails.csv")).unwrap();
    let rows = oxbadge::issue::recipients_csv::read(csv.as_slice()).unwrap();
    assert!(rows.len() == 2 && rows.iter().all(Result::is_ok));
}

/// Every fuzz target in fuzz/Cargo.toml has a corpus that this test replays.
#[test]
fn every_fuzz_target_has_a_replayed_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let targets: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|n| *n != "oxbadge-fuzz")
        .collect();
    assert_eq!(targets.len(), 10, "{targets:?}");
    let this = include_str!("fuzz_corpus.rs");
    for target in targets {
        assert!(
            root.join("corpus").join(target).is_dir(),
            "fuzz target {target} has no corpus"
        );
        assert!(
            this.contains(&format!("(\"{target}\", ")),
            "fuzz target {target} is not replayed here"
        );
    }
}
