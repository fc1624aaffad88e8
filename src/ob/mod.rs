//! The Open Badges 3.0 data model: typed values validated once at the edge, serialized the OB way
//! (multi-valued properties as arrays, no nulls, no empty arrays).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub mod structure;

/// The VC 2.0 base context.
pub const CREDENTIALS_V2: &str = "https://www.w3.org/ns/credentials/v2";
/// The VC 1.1 base context (legacy / compatibility profile).
pub const CREDENTIALS_V1: &str = "https://www.w3.org/2018/credentials/v1";
/// The current OB 3.0 context.
pub const OB_CONTEXT: &str = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json";
/// The OB extensions context (1EdTech status, schema and refresh types).
pub const OB_EXTENSIONS: &str = "https://purl.imsglobal.org/spec/ob/v3p0/extensions.json";
/// Data Integrity v2 (needed for Data Integrity proofs on VC 1.1 documents).
pub const DATA_INTEGRITY_V2: &str = "https://w3id.org/security/data-integrity/v2";
/// The 1EdTech AchievementCredential JSON Schema.
pub const OB_SCHEMA_ID: &str =
    "https://purl.imsglobal.org/spec/ob/v3p0/schema/json/ob_v3p0_achievementcredential_schema.json";

/// A field that failed validation (422 at the edge).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    pub field: String,
    pub reason: String,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Checks a non-empty string of at most `max` characters.
pub fn text(field: &str, value: &str, max: usize) -> Result<String, Invalid> {
    let v = value.trim();
    if v.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if v.chars().count() > max {
        return Err(invalid(field, format!("must be at most {max} characters")));
    }
    Ok(v.to_owned())
}

/// Checks an absolute URI (any scheme with a `:`; URLs must parse).
pub fn uri(field: &str, value: &str) -> Result<String, Invalid> {
    let v = value.trim();
    let scheme_ok = v.split_once(':').is_some_and(|(s, rest)| {
        !s.is_empty()
            && !rest.is_empty()
            && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    if !scheme_ok || v.len() > 2048 || v.chars().any(char::is_whitespace) {
        return Err(invalid(field, "must be an absolute URI"));
    }
    if (v.starts_with("http:") || v.starts_with("https:")) && url::Url::parse(v).is_err() {
        return Err(invalid(field, "must be a valid URL"));
    }
    Ok(v.to_owned())
}

/// `Image`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
}

impl Image {
    /// An image by URL or data URI.
    pub fn new(field: &str, id: &str) -> Result<Self, Invalid> {
        if !id.starts_with("data:image/") {
            uri(field, id)?;
        } else if id.len() > 1_000_000 {
            return Err(invalid(field, "data URI is too large"));
        }
        Ok(Self {
            id: id.to_owned(),
            kind: "Image".into(),
            caption: None,
        })
    }
}

/// `Criteria`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Criteria {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub narrative: Option<String>,
}

/// `Alignment`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alignment {
    #[serde(rename = "type")]
    pub kind: Vec<String>,
    pub target_name: String,
    pub target_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_framework: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_type: Option<String>,
}

/// The achievement definition (everything but `id`, which depends on where it is published).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AchievementDefinition {
    pub name: String,
    pub description: String,
    pub criteria: Criteria,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<Image>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub achievement_type: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tag: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alignment: Vec<Alignment>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub human_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field_of_study: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits_available: Option<f64>,
}

/// The extensible achievement-type vocabulary: known values, or `ext:` extensions.
pub const ACHIEVEMENT_TYPES: &[&str] = &[
    "Achievement",
    "ApprenticeshipCertificate",
    "Assessment",
    "Assignment",
    "AssociateDegree",
    "Award",
    "Badge",
    "BachelorDegree",
    "Certificate",
    "CertificateOfCompletion",
    "Certification",
    "CommunityService",
    "Competency",
    "Course",
    "CoCurricular",
    "Degree",
    "Diploma",
    "DoctoralDegree",
    "Fieldwork",
    "GeneralEducationDevelopment",
    "JourneymanCertificate",
    "LearningProgram",
    "License",
    "Membership",
    "ProfessionalDoctorate",
    "QualityAssuranceCredential",
    "MasterCertificate",
    "MasterDegree",
    "MicroCredential",
    "ResearchDoctorate",
    "SecondarySchoolDiploma",
];

impl AchievementDefinition {
    /// Validates every field.
    pub fn validate(mut self) -> Result<Self, Invalid> {
        self.name = text("name", &self.name, 500)?;
        self.description = text("description", &self.description, 20_000)?;
        self.criteria.narrative = self
            .criteria
            .narrative
            .filter(|n| !n.trim().is_empty())
            .map(|n| text("criteria.narrative", &n, 20_000))
            .transpose()?;
        self.criteria.id = self
            .criteria
            .id
            .map(|i| uri("criteria.id", &i))
            .transpose()?;
        if self.criteria.narrative.is_none() && self.criteria.id.is_none() {
            return Err(invalid("criteria", "needs a narrative or an id"));
        }
        if let Some(t) = &self.achievement_type
            && !ACHIEVEMENT_TYPES.contains(&t.as_str())
            && !t.starts_with("ext:")
        {
            return Err(invalid(
                "achievementType",
                format!("`{t}` is not in the OB 3.0 vocabulary (use ext:Name for extensions)"),
            ));
        }
        for (i, tag) in self.tag.iter_mut().enumerate() {
            *tag = text(&format!("tag[{i}]"), tag, 200)?;
        }
        for (i, a) in self.alignment.iter_mut().enumerate() {
            a.target_name = text(&format!("alignment[{i}].targetName"), &a.target_name, 500)?;
            a.target_url = uri(&format!("alignment[{i}].targetUrl"), &a.target_url)?;
            a.kind = vec!["Alignment".into()];
        }
        if let Some(c) = self.credits_available
            && (!c.is_finite() || c < 0.0)
        {
            return Err(invalid("creditsAvailable", "must be a non-negative number"));
        }
        Ok(self)
    }

    /// The OB 3.0 `Achievement` object with its `id`.
    pub fn to_achievement(&self, id: &str) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.insert("id".into(), id.into());
            map.insert("type".into(), serde_json::json!(["Achievement"]));
        }
        value
    }
}

/// `IdentityObject` for a hashed email recipient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityObject {
    #[serde(rename = "type")]
    pub kind: String,
    pub identity_hash: String,
    pub identity_type: String,
    pub hashed: bool,
    pub salt: String,
}

/// Whether `value` has the shape of an email address (one `@`, a dotted domain, no spaces).
pub fn is_email(value: &str) -> bool {
    value.len() <= 254
        && !value.chars().any(char::is_whitespace)
        && value
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.contains('@'))
}

/// Normalizes an email address for hashing (trimmed, lower-case) after checking its shape.
pub fn normalize_email(email: &str) -> Result<String, Invalid> {
    let e = email.trim().to_lowercase();
    if !is_email(&e) {
        return Err(invalid("recipient.email", "is not an email address"));
    }
    Ok(e)
}

/// `"sha256$" + hex(sha256(email ‖ salt))`, the OB 3.0 identity hash.
pub fn identity_hash(email: &str, salt: &str) -> String {
    let mut h = Sha256::new();
    h.update(email.as_bytes());
    h.update(salt.as_bytes());
    format!("sha256${}", hex::encode(h.finalize()))
}

impl IdentityObject {
    /// A salted, hashed email identity with a fresh random salt.
    pub fn hashed_email(normalized_email: &str) -> Self {
        let salt = hex::encode(rand::random::<[u8; 16]>());
        Self {
            kind: "IdentityObject".into(),
            identity_hash: identity_hash(normalized_email, &salt),
            identity_type: "emailAddress".into(),
            hashed: true,
            salt,
        }
    }
}

/// Who receives a credential.
#[derive(Debug, Clone, PartialEq)]
pub enum Recipient {
    /// By email, published only as a salted hash.
    Email(String),
    /// By DID or URL (`credentialSubject.id`).
    Id(String),
}

/// `Result` (the learner's outcome).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResultEntry {
    #[serde(rename = "type", default)]
    pub kind: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub achieved_level: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_description: Option<String>,
}

/// Result statuses of the OB 3.0 vocabulary.
pub const RESULT_STATUSES: &[&str] = &[
    "Completed",
    "Enrolled",
    "Failed",
    "InProgress",
    "OnHold",
    "Provisional",
    "Withdrew",
];

impl ResultEntry {
    /// Validates a result.
    pub fn validate(mut self, i: usize) -> Result<Self, Invalid> {
        self.kind = vec!["Result".into()];
        if let Some(s) = &self.status
            && !RESULT_STATUSES.contains(&s.as_str())
        {
            return Err(invalid(
                format!("result[{i}].status"),
                format!("`{s}` is not a result status"),
            ));
        }
        for (field, v) in [
            ("achievedLevel", &self.achieved_level),
            ("resultDescription", &self.result_description),
        ] {
            if let Some(v) = v {
                uri(&format!("result[{i}].{field}"), v)?;
            }
        }
        if let Some(v) = &self.value {
            text(&format!("result[{i}].value"), v, 1000)?;
        }
        Ok(self)
    }
}

/// `Evidence`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub narrative: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub genre: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

impl Evidence {
    /// Validates evidence.
    pub fn validate(mut self, i: usize) -> Result<Self, Invalid> {
        self.kind = vec!["Evidence".into()];
        if let Some(id) = &self.id {
            uri(&format!("evidence[{i}].id"), id)?;
        }
        if self.id.is_none() && self.narrative.is_none() && self.name.is_none() {
            return Err(invalid(
                format!("evidence[{i}]"),
                "needs an id, a narrative or a name",
            ));
        }
        Ok(self)
    }
}

/// The shape of issued credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum CredentialProfile {
    /// VC Data Model 2.0 with OB context 3.0.3 and `validFrom`/`validUntil` (the default).
    #[default]
    #[serde(rename = "vc2")]
    Vc2,
    /// VC 1.1 (`issuanceDate`/`expirationDate`, credentials/v1 + OB 3.0.3 + data-integrity/v2),
    /// for validators whose JSON Schema requires `issuanceDate`.
    #[serde(rename = "vc1.1")]
    Vc11,
}

/// How `credentialStatus` is expressed in issued credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum StatusShape {
    /// `{id, type: "1EdTechRevocationList"}`: the only shape the OB 3.0 JSON Schema accepts.
    #[default]
    #[serde(rename = "1edtech")]
    OneEdTech,
    /// One `BitstringStatusListEntry` for revocation.
    #[serde(rename = "bitstring")]
    Bitstring,
    /// Two `BitstringStatusListEntry`s (revocation and suspension) in an array.
    #[serde(rename = "bitstring-both")]
    BitstringBoth,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SubjectOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type")]
    kind: [&'static str; 1],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    identifier: Vec<&'a IdentityObject>,
    achievement: &'a serde_json::Value,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    result: &'a [ResultEntry],
}

/// Builds `credentialSubject`.
pub fn credential_subject(
    recipient: &Recipient,
    identity: Option<&IdentityObject>,
    achievement: &serde_json::Value,
    results: &[ResultEntry],
) -> serde_json::Value {
    let id = match recipient {
        Recipient::Id(id) => Some(id.as_str()),
        Recipient::Email(_) => None,
    };
    serde_json::to_value(SubjectOut {
        id,
        kind: ["AchievementSubject"],
        identifier: identity.into_iter().collect(),
        achievement,
        result: results,
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_hash_matches_the_spec_check_value() {
        assert_eq!(
            identity_hash("a@example.com", "Kosher"),
            "sha256$b5809d8a92f8858436d7e6b87c12ebc0ae1eac4baecc2c0b913aee2c922ef399"
        );
        let io = IdentityObject::hashed_email("a@example.com");
        assert_eq!(io.identity_hash, identity_hash("a@example.com", &io.salt));
        assert_ne!(io.salt, IdentityObject::hashed_email("a@example.com").salt);
    }

    #[test]
    fn achievement_validation() {
        let base = AchievementDefinition {
            name: "Teamwork".into(),
            description: "Works well in teams".into(),
            criteria: Criteria {
                id: None,
                narrative: Some("Do the thing".into()),
            },
            image: None,
            achievement_type: Some("Badge".into()),
            tag: vec![],
            alignment: vec![],
            human_code: None,
            field_of_study: None,
            version: None,
            credits_available: None,
        };
        let ok = base.clone().validate().unwrap();
        let json = ok.to_achievement("https://x.example/a/1");
        assert_eq!(json["type"], serde_json::json!(["Achievement"]));
        assert!(json.get("tag").is_none(), "no empty arrays");
        assert!(json.get("image").is_none(), "no nulls");
        let mut bad = base.clone();
        bad.achievement_type = Some("Trophy".into());
        assert!(bad.validate().is_err());
        let mut bad = base.clone();
        bad.criteria = Criteria::default();
        assert!(bad.validate().is_err());
        let mut ext = base;
        ext.achievement_type = Some("ext:Trophy".into());
        assert!(ext.validate().is_ok());
    }

    #[test]
    fn uris_and_emails() {
        assert!(uri("x", "did:example:123").is_ok());
        assert!(uri("x", "https://a.example/x").is_ok());
        assert!(uri("x", "not a uri").is_err());
        assert!(uri("x", "https://").is_err());
        assert_eq!(normalize_email(" A@Example.COM ").unwrap(), "a@example.com");
        assert!(normalize_email("nope").is_err());
    }
}
