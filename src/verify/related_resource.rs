//! `relatedResource` integrity (VC Data Model 2.0 §5.3): the digests a credential gives for the
//! resources it relies on (`digestSRI`, `digestMultibase`), checked against the documents this
//! verifier holds, the pinned JSON-LD contexts. Nothing is fetched: a resource we do not hold is
//! reported as not checked.
//!
//! A digest that does not match our pinned copy means the issuer committed to a different
//! version of a context than the one this verifier processed the credential with, so what we
//! read may not be what was signed for: the check is `indeterminate` (like an unknown context),
//! with the mismatch named. A digest that cannot be parsed is malformed: `failed`.

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use serde_json::Value;
use sha2::{Digest, Sha256, Sha384, Sha512};

use super::report::{Check, problem};
use crate::jsonld::ContextLoader;

const NAME: &str = "related_resource";

/// A hash algorithm digests may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Algorithm {
    Sha256,
    Sha384,
    Sha512,
}

impl Algorithm {
    fn digest(self, bytes: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(bytes).to_vec(),
            Self::Sha384 => Sha384::digest(bytes).to_vec(),
            Self::Sha512 => Sha512::digest(bytes).to_vec(),
        }
    }

    fn len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }
}

/// One parsed digest value.
#[derive(Debug)]
enum Parsed {
    /// An algorithm we implement, and the expected digest.
    Known(Algorithm, Vec<u8>),
    /// Well-formed, but an algorithm we do not implement.
    Unsupported(String),
}

/// Parses one SRI hash-expression (`sha384-<base64>`, options after `?` ignored).
fn parse_sri(expression: &str) -> Result<Parsed, String> {
    let (alg, rest) = expression
        .split_once('-')
        .ok_or_else(|| format!("digestSRI `{expression}` is not `<algorithm>-<base64>`"))?;
    let value = rest.split_once('?').map_or(rest, |(v, _)| v);
    let alg = match alg.to_ascii_lowercase().as_str() {
        "sha256" => Algorithm::Sha256,
        "sha384" => Algorithm::Sha384,
        "sha512" => Algorithm::Sha512,
        other => return Ok(Parsed::Unsupported(format!("digestSRI algorithm {other}"))),
    };
    let digest = STANDARD
        .decode(value)
        .or_else(|_| URL_SAFE_NO_PAD.decode(value.trim_end_matches('=')))
        .map_err(|_| format!("digestSRI `{expression}` is not base64"))?;
    if digest.len() != alg.len() {
        return Err(format!(
            "digestSRI `{expression}` has {} bytes, not {}",
            digest.len(),
            alg.len()
        ));
    }
    Ok(Parsed::Known(alg, digest))
}

/// Parses a `digestMultibase`: multibase (`u` base64url, `z` base58btc) of a multihash.
fn parse_multibase(value: &str) -> Result<Parsed, String> {
    let bad = || format!("digestMultibase `{value}` is not a multibase multihash");
    let mut chars = value.chars();
    let bytes = match chars.next() {
        Some('u') => URL_SAFE_NO_PAD.decode(chars.as_str()).map_err(|_| bad())?,
        Some('z') => bs58::decode(chars.as_str()).into_vec().map_err(|_| bad())?,
        Some(base) => {
            return Ok(Parsed::Unsupported(format!(
                "digestMultibase base `{base}`"
            )));
        }
        None => return Err(bad()),
    };
    // Multihash: varint code, varint length, digest. The codes we know fit in one byte.
    let (&code, rest) = bytes.split_first().ok_or_else(bad)?;
    let (&length, digest) = rest.split_first().ok_or_else(bad)?;
    if code & 0x80 != 0 {
        return Ok(Parsed::Unsupported("digestMultibase multihash code".into()));
    }
    let alg = match code {
        0x12 => Algorithm::Sha256,
        0x20 => Algorithm::Sha384,
        0x13 => Algorithm::Sha512,
        other => {
            return Ok(Parsed::Unsupported(format!(
                "digestMultibase multihash code 0x{other:02x}"
            )));
        }
    };
    if usize::from(length) != alg.len() || digest.len() != alg.len() {
        return Err(bad());
    }
    Ok(Parsed::Known(alg, digest.to_vec()))
}

fn strings(value: Option<&Value>) -> Vec<&str> {
    match value {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// What one related resource amounts to.
enum Outcome {
    Matched(String),
    NotHeld(String),
    Mismatch(String),
    Malformed(String),
}

fn check_resource(resource: &Value, loader: &ContextLoader) -> Outcome {
    let Some(id) = resource.get("id").and_then(Value::as_str) else {
        return Outcome::Malformed("a relatedResource has no id".into());
    };
    let mut parsed = Vec::new();
    for sri in strings(resource.get("digestSRI")) {
        // An SRI value may hold several space-separated hash-expressions.
        for expression in sri.split_ascii_whitespace() {
            match parse_sri(expression) {
                Ok(p) => parsed.push((true, p)),
                Err(e) => return Outcome::Malformed(e),
            }
        }
    }
    for mb in strings(resource.get("digestMultibase")) {
        match parse_multibase(mb) {
            Ok(p) => parsed.push((false, p)),
            Err(e) => return Outcome::Malformed(e),
        }
    }
    if parsed.is_empty() {
        return Outcome::Malformed(format!("the relatedResource {id} has no digest"));
    }
    let Some(document) = loader.document(id) else {
        return Outcome::NotHeld(id.to_owned());
    };
    let known: Vec<(bool, Algorithm, &[u8])> = parsed
        .iter()
        .filter_map(|(sri, p)| match p {
            Parsed::Known(alg, digest) => Some((*sri, *alg, digest.as_slice())),
            Parsed::Unsupported(_) => None,
        })
        .collect();
    if known.is_empty() {
        let what: Vec<&str> = parsed
            .iter()
            .filter_map(|(_, p)| match p {
                Parsed::Unsupported(what) => Some(what.as_str()),
                Parsed::Known(..) => None,
            })
            .collect();
        return Outcome::NotHeld(format!("{id} (unsupported {})", what.join(", ")));
    }
    // SRI: the strongest algorithm listed decides, and any of its values may match. Multibase:
    // every value must match.
    let strongest_sri = known
        .iter()
        .filter(|(sri, ..)| *sri)
        .map(|(_, alg, _)| *alg)
        .max();
    let sri_ok = strongest_sri.is_none_or(|strongest| {
        known
            .iter()
            .filter(|(sri, alg, _)| *sri && *alg == strongest)
            .any(|(_, alg, digest)| alg.digest(document.as_bytes()) == *digest)
    });
    let multibase_ok = known
        .iter()
        .filter(|(sri, ..)| !*sri)
        .all(|(_, alg, digest)| alg.digest(document.as_bytes()) == *digest);
    if sri_ok && multibase_ok {
        Outcome::Matched(id.to_owned())
    } else {
        Outcome::Mismatch(id.to_owned())
    }
}

/// The `related_resource` check; `None` when the credential lists no related resources.
pub fn check(credential: &Value, loader: &ContextLoader) -> Option<Check> {
    let resources: Vec<&Value> = match credential.get("relatedResource")? {
        Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    let mut matched = Vec::new();
    let mut not_held = Vec::new();
    let mut mismatched = Vec::new();
    let mut malformed = Vec::new();
    for resource in resources {
        if !resource.is_object() {
            malformed.push("a relatedResource is not an object".to_owned());
            continue;
        }
        match check_resource(resource, loader) {
            Outcome::Matched(id) => matched.push(id),
            Outcome::NotHeld(id) => not_held.push(id),
            Outcome::Mismatch(id) => mismatched.push(id),
            Outcome::Malformed(why) => malformed.push(why),
        }
    }
    let mut notes = Vec::new();
    if !matched.is_empty() {
        notes.push(format!(
            "digest matches the pinned copy of {}",
            matched.join(", ")
        ));
    }
    if !not_held.is_empty() {
        notes.push(format!(
            "not checked (not held by this verifier, which fetches no resources): {}",
            not_held.join(", ")
        ));
    }
    Some(if !malformed.is_empty() {
        Check::failed(
            NAME,
            problem::MALFORMED,
            "Malformed related resource",
            malformed.join("; "),
        )
    } else if !mismatched.is_empty() {
        let mut detail = format!(
            "the digest given for {} does not match the copy this verifier holds",
            mismatched.join(", ")
        );
        for note in &notes {
            detail.push_str("; ");
            detail.push_str(note);
        }
        Check::indeterminate(
            NAME,
            problem::ours("related_resource_mismatch"),
            "Related resource digest mismatch",
            detail,
        )
    } else if matched.is_empty() {
        Check::skipped(NAME, notes.join("; "))
    } else {
        Check::passed(NAME, notes.join("; "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sri_and_multibase_forms() {
        let loader = ContextLoader::new();
        let url = crate::jsonld::OB_V3P0_CONTEXT;
        let bytes = loader.document(url).unwrap().as_bytes();
        let sri = format!("sha384-{}", STANDARD.encode(Sha384::digest(bytes)));
        let mut multihash = vec![0x12, 0x20];
        multihash.extend_from_slice(&Sha256::digest(bytes));
        let mb = format!("u{}", URL_SAFE_NO_PAD.encode(&multihash));
        let good =
            json!({"relatedResource": [{"id": url, "digestSRI": sri, "digestMultibase": mb}]});
        assert_eq!(
            check(&good, &loader).unwrap().status,
            super::super::report::CheckStatus::Passed
        );
        let bad = json!({"relatedResource": {"id": url, "digestSRI": format!("sha256-{}", STANDARD.encode([0u8; 32]))}});
        assert_eq!(
            check(&bad, &loader).unwrap().status,
            super::super::report::CheckStatus::Indeterminate
        );
        let other =
            json!({"relatedResource": {"id": "https://example.org/x.png", "digestSRI": sri}});
        assert_eq!(
            check(&other, &loader).unwrap().status,
            super::super::report::CheckStatus::Skipped
        );
        let malformed = json!({"relatedResource": {"id": url, "digestSRI": "sha384-%%%"}});
        assert_eq!(
            check(&malformed, &loader).unwrap().status,
            super::super::report::CheckStatus::Failed
        );
        assert!(check(&json!({}), &loader).is_none());
    }
}
