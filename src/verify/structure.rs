//! The structural ("schema") check, in typed Rust rather than a JSON Schema engine: what the
//! 1EdTech AchievementCredential / EndorsementCredential schemas and OB 3.0 §1 require of a
//! credential, and the VC data model basics for other credentials.

use chrono::DateTime;
use serde_json::Value;

use super::report::{Check, problem};
use crate::jsonld::{CREDENTIALS_V1, CREDENTIALS_V2};

const NAME: &str = "schema";
const OB_CONTEXT_PREFIX: &str = "https://purl.imsglobal.org/spec/ob/v3p0/context";

fn types(value: &Value) -> Vec<&str> {
    super::types_of(value)
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

fn is_datetime(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|t| DateTime::parse_from_rfc3339(t).is_ok())
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

/// Problems common to every verifiable credential.
fn vc_problems(vc: &Value, problems: &mut Vec<String>) -> bool {
    let contexts: Vec<&str> = match vc.get("@context") {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(s)) => vec![s.as_str()],
        _ => Vec::new(),
    };
    let v2 = contexts.first() == Some(&CREDENTIALS_V2);
    let v1 = contexts.first() == Some(&CREDENTIALS_V1);
    if !v1 && !v2 {
        problems.push(format!(
            "@context must start with {CREDENTIALS_V2} (or {CREDENTIALS_V1})"
        ));
    }
    if let Some(id) = vc.get("id")
        && !id.as_str().is_some_and(is_uri)
    {
        problems.push("id must be a URI".into());
    }
    match vc.get("issuer") {
        Some(Value::String(s)) if is_uri(s) => {}
        Some(Value::Object(o)) if o.get("id").and_then(Value::as_str).is_some_and(is_uri) => {}
        Some(_) => problems.push("issuer must be a URI or an object with a URI id".into()),
        None => problems.push("issuer is required".into()),
    }
    let (from, until) = if v2 {
        ("validFrom", "validUntil")
    } else {
        ("issuanceDate", "expirationDate")
    };
    match vc.get(from) {
        Some(d) if is_datetime(d) => {}
        Some(_) => problems.push(format!("{from} must be an RFC 3339 date-time")),
        None if v1 => problems.push(format!("{from} is required")),
        None => {}
    }
    if vc.get(until).is_some_and(|d| !is_datetime(d)) {
        problems.push(format!("{until} must be an RFC 3339 date-time"));
    }
    if !vc
        .get("credentialSubject")
        .is_some_and(|s| s.is_object() || s.is_array())
    {
        problems.push("credentialSubject is required".into());
    }
    v2
}

fn ob_problems(vc: &Value, v2: bool, problems: &mut Vec<String>) {
    let contexts: Vec<&str> = match vc.get("@context") {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !contexts.iter().any(|c| c.starts_with(OB_CONTEXT_PREFIX)) {
        problems.push("an Open Badges 3.0 context is required".into());
    }
    if vc.get("id").is_none() {
        problems.push("id is required".into());
    }
    if v2 && vc.get("validFrom").is_none() {
        problems.push("validFrom is required".into());
    }
    if let Some(Value::Object(issuer)) = vc.get("issuer")
        && !types(&Value::Object(issuer.clone())).contains(&"Profile")
    {
        problems.push("issuer.type must include Profile".into());
    }
    let Some(subject) = vc.get("credentialSubject").filter(|s| s.is_object()) else {
        problems.push("credentialSubject must be one object".into());
        return;
    };
    if types(vc).contains(&"EndorsementCredential") {
        if !types(subject).contains(&"EndorsementSubject") {
            problems.push("credentialSubject.type must include EndorsementSubject".into());
        }
        if subject.get("id").is_none() {
            problems.push("credentialSubject.id is required".into());
        }
        return;
    }
    if !types(subject).contains(&"AchievementSubject") {
        problems.push("credentialSubject.type must include AchievementSubject".into());
    }
    let identifiers = subject.get("identifier");
    if subject.get("id").is_none()
        && !identifiers
            .is_some_and(|i| i.as_array().is_some_and(|a| !a.is_empty()) || i.is_object())
    {
        problems.push("credentialSubject needs an id or an identifier".into());
    }
    let identifier_list: Vec<&Value> = match identifiers {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(one) => vec![one],
        None => Vec::new(),
    };
    for (i, ident) in identifier_list.iter().enumerate() {
        if !types(ident).contains(&"IdentityObject") {
            problems.push(format!("identifier[{i}].type must be IdentityObject"));
        }
        if text(ident, "identityHash").is_none() || text(ident, "identityType").is_none() {
            problems.push(format!(
                "identifier[{i}] needs identityHash and identityType"
            ));
        }
        if !ident.get("hashed").is_some_and(Value::is_boolean) {
            problems.push(format!("identifier[{i}].hashed must be a boolean"));
        }
    }
    let Some(achievement) = subject.get("achievement").filter(|a| a.is_object()) else {
        problems.push("credentialSubject.achievement is required".into());
        return;
    };
    if !achievement
        .get("id")
        .and_then(Value::as_str)
        .is_some_and(is_uri)
    {
        problems.push("achievement.id must be a URI".into());
    }
    if !types(achievement).contains(&"Achievement") {
        problems.push("achievement.type must include Achievement".into());
    }
    for field in ["name", "description"] {
        if text(achievement, field).is_none() {
            problems.push(format!("achievement.{field} is required"));
        }
    }
    match achievement.get("criteria") {
        Some(c) if text(c, "narrative").is_some() || text(c, "id").is_some() => {}
        _ => problems.push("achievement.criteria needs a narrative or an id".into()),
    }
}

/// The structural check of a credential.
pub fn check(vc: &Value) -> Check {
    let mut problems = Vec::new();
    let v2 = vc_problems(vc, &mut problems);
    let open_badge = types(vc).iter().any(|t| {
        matches!(
            *t,
            "OpenBadgeCredential" | "AchievementCredential" | "EndorsementCredential"
        )
    });
    if open_badge {
        ob_problems(vc, v2, &mut problems);
        if let Some(path) = find_null(vc, &mut String::new()) {
            problems.push(format!("null value at {}", path.trim_start_matches('.')));
        }
    }
    if !problems.is_empty() {
        return Check::failed(
            NAME,
            problem::MALFORMED,
            "Invalid structure",
            problems.join("; "),
        );
    }
    Check::passed(
        NAME,
        if open_badge {
            "conforms to the Open Badges 3.0 credential structure"
        } else {
            "conforms to the VC data model (not an Open Badge)"
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::report::CheckStatus;
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

    #[test]
    fn a_complete_badge_passes_and_gaps_are_named() {
        assert_eq!(check(&ob()).status, CheckStatus::Passed);
        let mut bad = ob();
        bad["credentialSubject"]["achievement"]
            .as_object_mut()
            .unwrap()
            .remove("criteria");
        bad["validFrom"] = json!("yesterday");
        bad["name"] = Value::Null;
        let c = check(&bad);
        assert_eq!(c.status, CheckStatus::Failed);
        let detail = c.detail.unwrap();
        assert!(detail.contains("criteria"), "{detail}");
        assert!(detail.contains("validFrom"), "{detail}");
        assert!(detail.contains("null value at name"), "{detail}");
    }
}
