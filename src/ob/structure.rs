//! The structural ("schema") rules of a credential, in typed Rust rather than a JSON Schema
//! engine, shared by the verifier and both issuance paths (what we verify is what we refuse to
//! sign): the VC Data Model 2.0 (and 1.1) rules for every verifiable credential, and what the
//! 1EdTech AchievementCredential / EndorsementCredential schemas and OB 3.0 §1 require of an
//! Open Badge.

use std::collections::HashSet;

use chrono::DateTime;
use serde_json::Value;

use super::{CREDENTIALS_V1, CREDENTIALS_V2};

const OB_CONTEXT_PREFIX: &str = "https://purl.imsglobal.org/spec/ob/v3p0/context";

/// One broken rule: the member it is about (a dotted path such as `credentialSubject` or
/// `credentialStatus[1].statusListIndex`) and what is wrong, as a sentence that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StructureProblem {
    /// The member, as a dotted path from the credential.
    pub member: String,
    /// What is wrong (a sentence starting with the member).
    pub message: String,
}

impl std::fmt::Display for StructureProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The result of the structural check.
#[derive(Debug, Clone, Default)]
pub struct Structure {
    /// Whether the credential is an Open Badge (and so was held to the OB rules too).
    pub open_badge: bool,
    /// Every rule it breaks (empty: it conforms).
    pub problems: Vec<StructureProblem>,
}

impl Structure {
    /// Whether no rule is broken.
    pub fn conforms(&self) -> bool {
        self.problems.is_empty()
    }

    /// The problems as one line, `; `-separated.
    pub fn summary(&self) -> String {
        self.problems
            .iter()
            .map(|p| p.message.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn push(&mut self, member: impl Into<String>, message: impl Into<String>) {
        self.problems.push(StructureProblem {
            member: member.into(),
            message: message.into(),
        });
    }
}

/// The values of `type` (a string or a list of strings).
pub fn types_of(value: &Value) -> Vec<&str> {
    match value.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Whether the credential is an Open Badge (OB 3.0 credential types).
pub fn is_open_badge(vc: &Value) -> bool {
    types_of(vc).iter().any(|t| {
        matches!(
            *t,
            "OpenBadgeCredential" | "AchievementCredential" | "EndorsementCredential"
        )
    })
}

fn text<'a>(value: &'a Value, field: &str) -> Option<&'a str> {
    value
        .get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

fn is_uri(s: &str) -> bool {
    s.split_once(':').is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            && !rest.is_empty()
            && !rest.contains(char::is_whitespace)
    })
}

fn is_rfc3339(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|t| DateTime::parse_from_rfc3339(t).is_ok())
}

/// An XML Schema 1.1 `dateTimeStamp` (a `dateTime` with a mandatory time zone), as VC 2.0
/// requires of `validFrom` / `validUntil`:
/// `YYYY-MM-DDThh:mm:ss(.s+)?(Z|(+|-)hh:mm)` with a real calendar date. Years past 9999 and
/// `24:00:00` are valid XML Schema but are refused here (no credential needs them, and they do
/// not survive a round trip through RFC 3339 tools).
pub fn is_date_time_stamp(value: &Value) -> bool {
    let Some(s) = value.as_str() else {
        return false;
    };
    let b = s.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        b.get(range.clone())
            .is_some_and(|d| d.len() == range.len() && d.iter().all(u8::is_ascii_digit))
    };
    let shape = digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && b.get(10) == Some(&b'T')
        && digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16)
        && b.get(16) == Some(&b':')
        && digits(17..19);
    if !shape {
        return false;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    let zone_ok = match b.get(i) {
        Some(b'Z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            // XML Schema time zones run from -14:00 to +14:00.
            let hours = s.get(i + 1..i + 3).and_then(|h| h.parse::<u8>().ok());
            let minutes = s.get(i + 4..i + 6).and_then(|m| m.parse::<u8>().ok());
            i + 6 == b.len()
                && digits(i + 1..i + 3)
                && b.get(i + 3) == Some(&b':')
                && digits(i + 4..i + 6)
                && matches!(
                    (hours, minutes),
                    (Some(0..=13), Some(0..=59)) | (Some(14), Some(0))
                )
        }
        _ => false,
    };
    // The calendar and clock ranges (month 13, 25:00, +15:00 ...) are left to chrono, whose
    // RFC 3339 parser accepts exactly the values in range once the shape above holds.
    zone_ok && DateTime::parse_from_rfc3339(s).is_ok()
}

fn find_null(value: &Value, path: &mut String) -> Option<String> {
    match value {
        Value::Null => Some(path.clone()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let found = find_null(v, path);
            path.truncate(len);
            found
        }),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let len = path.len();
            path.push('.');
            path.push_str(k);
            let found = find_null(v, path);
            path.truncate(len);
            found
        }),
        _ => None,
    }
}

/// The items of a member that holds one object or a list of them, with their paths.
fn items<'a>(name: &str, value: &'a Value) -> Vec<(String, &'a Value)> {
    match value {
        Value::Array(list) => list
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("{name}[{i}]"), v))
            .collect(),
        one => vec![(name.to_owned(), one)],
    }
}

/// VC 2.0 §4.10–4.13 and §5: `credentialStatus`, `termsOfUse`, `evidence`, `refreshService` and
/// `credentialSchema` hold objects, each with a `type` (a schema also an `id`).
fn typed_members(vc: &Value, out: &mut Structure) {
    for name in [
        "credentialStatus",
        "termsOfUse",
        "evidence",
        "refreshService",
        "credentialSchema",
    ] {
        let Some(value) = vc.get(name) else {
            continue;
        };
        for (path, item) in items(name, value) {
            if !item.is_object() {
                out.push(&path, format!("{path} must be an object with a type"));
                continue;
            }
            let typed = match item.get("type") {
                Some(Value::String(t)) => !t.trim().is_empty(),
                Some(Value::Array(ts)) => !ts.is_empty() && ts.iter().all(Value::is_string),
                _ => false,
            };
            if !typed {
                out.push(
                    format!("{path}.type"),
                    format!("{path}.type is required (a string or a list of strings)"),
                );
            }
            if name == "credentialSchema"
                && !item.get("id").and_then(Value::as_str).is_some_and(is_uri)
            {
                out.push(
                    format!("{path}.id"),
                    format!("{path}.id must be the URL of the schema"),
                );
            }
            if name == "credentialStatus" && types_of(item).contains(&"BitstringStatusListEntry") {
                bitstring_entry(&path, item, out);
            }
        }
    }
}

/// Bitstring Status List v1.0 §2.1: `statusPurpose`, `statusListIndex` (an integer, written as a
/// string of decimal digits) and `statusListCredential` (a URL).
fn bitstring_entry(path: &str, entry: &Value, out: &mut Structure) {
    if text(entry, "statusPurpose").is_none() {
        out.push(
            format!("{path}.statusPurpose"),
            format!("{path}.statusPurpose is required"),
        );
    }
    let index_ok = entry
        .get("statusListIndex")
        .and_then(Value::as_str)
        .is_some_and(|i| !i.is_empty() && i.len() <= 19 && i.bytes().all(|b| b.is_ascii_digit()));
    if !index_ok {
        out.push(
            format!("{path}.statusListIndex"),
            format!("{path}.statusListIndex must be a non-negative integer written as a string"),
        );
    }
    if !entry
        .get("statusListCredential")
        .and_then(Value::as_str)
        .is_some_and(is_uri)
    {
        out.push(
            format!("{path}.statusListCredential"),
            format!("{path}.statusListCredential must be the URL of the status list credential"),
        );
    }
}

/// VC 2.0 §5.3: each `relatedResource` is an object with a URL `id`, unique in the list, and a
/// `digestSRI` or `digestMultibase`.
fn related_resources(vc: &Value, out: &mut Structure) {
    let Some(value) = vc.get("relatedResource") else {
        return;
    };
    let mut seen = HashSet::new();
    for (path, item) in items("relatedResource", value) {
        if !item.is_object() {
            out.push(
                &path,
                format!("{path} must be an object with an id and a digest, not a bare value"),
            );
            continue;
        }
        match item.get("id").and_then(Value::as_str) {
            Some(id) if is_uri(id) => {
                if !seen.insert(id) {
                    out.push(
                        format!("{path}.id"),
                        format!("{path}.id {id} repeats an earlier relatedResource id"),
                    );
                }
            }
            _ => out.push(
                format!("{path}.id"),
                format!("{path}.id must be the URL of the resource"),
            ),
        }
        let digest = ["digestSRI", "digestMultibase"]
            .iter()
            .any(|d| text(item, d).is_some());
        if !digest {
            out.push(
                format!("{path}.digestSRI"),
                format!("{path} needs a digestSRI or a digestMultibase"),
            );
        }
    }
}

/// Rules common to every verifiable credential; returns whether it is VC 2.0.
fn vc_rules(vc: &Value, out: &mut Structure) -> bool {
    let contexts: Vec<&str> = match vc.get("@context") {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(s)) => vec![s.as_str()],
        _ => Vec::new(),
    };
    let v2 = contexts.first() == Some(&CREDENTIALS_V2);
    let v1 = contexts.first() == Some(&CREDENTIALS_V1);
    if !v1 && !v2 {
        out.push(
            "@context",
            format!("@context must start with {CREDENTIALS_V2} (or {CREDENTIALS_V1})"),
        );
    }
    if !types_of(vc).contains(&"VerifiableCredential") {
        out.push("type", "type must include VerifiableCredential");
    }
    if let Some(id) = vc.get("id")
        && !id.as_str().is_some_and(is_uri)
    {
        out.push("id", "id must be a URI");
    }
    match vc.get("issuer") {
        Some(Value::String(s)) if is_uri(s) => {}
        Some(Value::Object(o)) if o.get("id").and_then(Value::as_str).is_some_and(is_uri) => {}
        Some(_) => out.push("issuer", "issuer must be a URI or an object with a URI id"),
        None => out.push("issuer", "issuer is required"),
    }
    if v2 {
        for field in ["validFrom", "validUntil"] {
            if vc.get(field).is_some_and(|d| !is_date_time_stamp(d)) {
                out.push(
                    field,
                    format!(
                        "{field} must be an XML Schema dateTimeStamp (e.g. 2026-01-01T00:00:00Z)"
                    ),
                );
            }
        }
    } else {
        match vc.get("issuanceDate") {
            Some(d) if is_rfc3339(d) => {}
            Some(_) => out.push("issuanceDate", "issuanceDate must be an RFC 3339 date-time"),
            None if v1 => out.push("issuanceDate", "issuanceDate is required"),
            None => {}
        }
        if vc.get("expirationDate").is_some_and(|d| !is_rfc3339(d)) {
            out.push(
                "expirationDate",
                "expirationDate must be an RFC 3339 date-time",
            );
        }
    }
    let subject_ok = match vc.get("credentialSubject") {
        Some(Value::Object(s)) => !s.is_empty(),
        Some(Value::Array(list)) => {
            !list.is_empty()
                && list
                    .iter()
                    .all(|s| s.as_object().is_some_and(|o| !o.is_empty()))
        }
        _ => false,
    };
    if !subject_ok {
        out.push(
            "credentialSubject",
            match vc.get("credentialSubject") {
                None => "credentialSubject is required".to_owned(),
                Some(_) => "credentialSubject must be an object with at least one property, or a non-empty list of them".to_owned(),
            },
        );
    }
    typed_members(vc, out);
    related_resources(vc, out);
    v2
}

fn ob_rules(vc: &Value, v2: bool, out: &mut Structure) {
    let contexts: Vec<&str> = match vc.get("@context") {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !contexts.iter().any(|c| c.starts_with(OB_CONTEXT_PREFIX)) {
        out.push("@context", "an Open Badges 3.0 context is required");
    }
    if vc.get("id").is_none() {
        out.push("id", "id is required");
    }
    if v2 && vc.get("validFrom").is_none() {
        out.push("validFrom", "validFrom is required");
    }
    if let Some(issuer @ Value::Object(_)) = vc.get("issuer")
        && !types_of(issuer).contains(&"Profile")
    {
        out.push("issuer.type", "issuer.type must include Profile");
    }
    let Some(subject) = vc.get("credentialSubject").filter(|s| s.is_object()) else {
        out.push("credentialSubject", "credentialSubject must be one object");
        return;
    };
    if types_of(vc).contains(&"EndorsementCredential") {
        if !types_of(subject).contains(&"EndorsementSubject") {
            out.push(
                "credentialSubject.type",
                "credentialSubject.type must include EndorsementSubject",
            );
        }
        if subject.get("id").is_none() {
            out.push("credentialSubject.id", "credentialSubject.id is required");
        }
        return;
    }
    if !types_of(subject).contains(&"AchievementSubject") {
        out.push(
            "credentialSubject.type",
            "credentialSubject.type must include AchievementSubject",
        );
    }
    let identifiers = subject.get("identifier");
    if subject.get("id").is_none()
        && !identifiers
            .is_some_and(|i| i.as_array().is_some_and(|a| !a.is_empty()) || i.is_object())
    {
        out.push(
            "credentialSubject.identifier",
            "credentialSubject needs an id or an identifier",
        );
    }
    let identifier_list: Vec<&Value> = match identifiers {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(one) => vec![one],
        None => Vec::new(),
    };
    for (i, ident) in identifier_list.iter().enumerate() {
        let path = format!("credentialSubject.identifier[{i}]");
        if !types_of(ident).contains(&"IdentityObject") {
            out.push(
                format!("{path}.type"),
                format!("identifier[{i}].type must be IdentityObject"),
            );
        }
        if text(ident, "identityHash").is_none() || text(ident, "identityType").is_none() {
            out.push(
                &path,
                format!("identifier[{i}] needs identityHash and identityType"),
            );
        }
        if !ident.get("hashed").is_some_and(Value::is_boolean) {
            out.push(
                format!("{path}.hashed"),
                format!("identifier[{i}].hashed must be a boolean"),
            );
        }
    }
    let Some(achievement) = subject.get("achievement").filter(|a| a.is_object()) else {
        out.push(
            "credentialSubject.achievement",
            "credentialSubject.achievement is required",
        );
        return;
    };
    let path = "credentialSubject.achievement";
    if !achievement
        .get("id")
        .and_then(Value::as_str)
        .is_some_and(is_uri)
    {
        out.push(format!("{path}.id"), "achievement.id must be a URI");
    }
    if !types_of(achievement).contains(&"Achievement") {
        out.push(
            format!("{path}.type"),
            "achievement.type must include Achievement",
        );
    }
    for field in ["name", "description"] {
        if text(achievement, field).is_none() {
            out.push(
                format!("{path}.{field}"),
                format!("achievement.{field} is required"),
            );
        }
    }
    match achievement.get("criteria") {
        Some(c) if text(c, "narrative").is_some() || text(c, "id").is_some() => {}
        _ => out.push(
            format!("{path}.criteria"),
            "achievement.criteria needs a narrative or an id",
        ),
    }
}

/// The structural check of a credential (VC 2.0 / 1.1, plus OB 3.0 for Open Badges).
pub fn check(vc: &Value) -> Structure {
    let mut out = Structure::default();
    if !vc.is_object() {
        out.push("", "a credential is a JSON object");
        return out;
    }
    let v2 = vc_rules(vc, &mut out);
    out.open_badge = is_open_badge(vc);
    if out.open_badge {
        ob_rules(vc, v2, &mut out);
        if let Some(path) = find_null(vc, &mut String::new()) {
            let path = path.trim_start_matches('.').to_owned();
            out.push(&path, format!("null value at {path}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ob() -> Value {
        json!({
            "@context": ["https://www.w3.org/ns/credentials/v2", "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"],
            "id": "urn:uuid:1",
            "type": ["VerifiableCredential", "OpenBadgeCredential"],
            "issuer": {"id": "https://example.edu/issuers/1", "type": ["Profile"], "name": "X"},
            "validFrom": "2026-01-01T00:00:00Z",
            "credentialSubject": {
                "type": ["AchievementSubject"], "id": "did:example:1",
                "achievement": {"id": "https://example.edu/a/1", "type": ["Achievement"], "name": "A",
                                "description": "D", "criteria": {"narrative": "N"}}
            }
        })
    }

    fn vc() -> Value {
        json!({
            "@context": ["https://www.w3.org/ns/credentials/v2"],
            "type": ["VerifiableCredential"],
            "issuer": "did:example:issuer",
            "credentialSubject": {"id": "did:example:subject"}
        })
    }

    fn members(v: &Value) -> Vec<String> {
        check(v).problems.into_iter().map(|p| p.member).collect()
    }

    #[test]
    fn a_complete_badge_passes_and_gaps_are_named() {
        assert!(check(&ob()).conforms());
        let mut bad = ob();
        bad["credentialSubject"]["achievement"]
            .as_object_mut()
            .unwrap()
            .remove("criteria");
        bad["validFrom"] = json!("yesterday");
        bad["name"] = Value::Null;
        let s = check(&bad);
        let detail = s.summary();
        assert!(detail.contains("criteria"), "{detail}");
        assert!(detail.contains("validFrom"), "{detail}");
        assert!(detail.contains("null value at name"), "{detail}");
    }

    #[test]
    fn date_time_stamps() {
        for good in [
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00.123Z",
            "2026-01-01T00:00:00+14:00",
            "2026-02-28T23:59:59-05:30",
        ] {
            assert!(is_date_time_stamp(&json!(good)), "{good}");
        }
        for bad in [
            "2026-01-01",
            "2026-01-01T00:00:00",
            "2026-01-01 00:00:00Z",
            "2026-01-01t00:00:00z",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00+0100",
            "2026-01-01T00:00:00+14:30",
            "2026-01-01T00:00:00-15:00",
            "26-01-01T00:00:00Z",
            "2026-01-01T00:00:00Z ",
        ] {
            assert!(!is_date_time_stamp(&json!(bad)), "{bad}");
        }
        assert!(!is_date_time_stamp(&json!(1_767_225_600)));
    }

    #[test]
    fn the_vc_data_model_rules_name_the_member() {
        assert!(check(&vc()).conforms(), "{}", check(&vc()).summary());
        let mut v = vc();
        v["type"] = json!(["ExampleCredential"]);
        assert_eq!(members(&v), ["type"]);
        for subject in [
            json!({}),
            json!(null),
            json!(true),
            json!(3),
            json!([]),
            json!("s"),
            json!([{}]),
        ] {
            let mut v = vc();
            v["credentialSubject"] = subject.clone();
            assert_eq!(members(&v), ["credentialSubject"], "{subject}");
        }
        let mut v = vc();
        v.as_object_mut().unwrap().remove("credentialSubject");
        assert_eq!(members(&v), ["credentialSubject"]);
        let mut v = vc();
        v["validUntil"] = json!("2026-01-01");
        assert_eq!(members(&v), ["validUntil"]);
        for member in [
            "credentialStatus",
            "termsOfUse",
            "evidence",
            "refreshService",
        ] {
            let mut v = vc();
            v[member] = json!({"id": "https://example.org/x"});
            assert_eq!(members(&v), [format!("{member}.type")]);
            v[member] = json!([{"type": "X"}, {"id": "https://example.org/x"}]);
            assert_eq!(members(&v), [format!("{member}[1].type")]);
        }
        let mut v = vc();
        v["credentialSchema"] = json!({"type": "JsonSchema"});
        assert_eq!(members(&v), ["credentialSchema.id"]);
    }

    #[test]
    fn bitstring_entries_need_an_integer_index() {
        let entry = json!({
            "type": "BitstringStatusListEntry", "statusPurpose": "revocation",
            "statusListIndex": "94567", "statusListCredential": "https://example.org/status/3"
        });
        let mut v = vc();
        v["credentialStatus"] = entry.clone();
        assert!(check(&v).conforms());
        for index in [
            json!("abc"),
            json!(94567),
            json!("-1"),
            json!("1.5"),
            json!(""),
        ] {
            let mut e = entry.clone();
            e["statusListIndex"] = index.clone();
            v["credentialStatus"] = json!([e]);
            assert_eq!(
                members(&v),
                ["credentialStatus[0].statusListIndex"],
                "{index}"
            );
        }
    }

    #[test]
    fn related_resources_need_ids_digests_and_no_repeats() {
        let good = json!({"id": "https://example.org/a", "digestSRI": "sha384-abc"});
        let mut v = vc();
        v["relatedResource"] =
            json!([good, {"id": "https://example.org/b", "digestMultibase": "uEiB"}]);
        assert!(check(&v).conforms());
        v["relatedResource"] = json!(["https://example.org/a"]);
        assert_eq!(members(&v), ["relatedResource[0]"]);
        v["relatedResource"] = json!([{"digestSRI": "sha384-abc"}]);
        assert_eq!(members(&v), ["relatedResource[0].id"]);
        v["relatedResource"] = json!([good, good]);
        assert_eq!(members(&v), ["relatedResource[1].id"]);
        v["relatedResource"] = json!([{"id": "https://example.org/a"}]);
        assert_eq!(members(&v), ["relatedResource[0].digestSRI"]);
    }
}
