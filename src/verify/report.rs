//! The verification report: an overall outcome that separates "forged or malformed" from
//! "authentic but revoked/suspended/expired" from "could not check", and one entry per check with
//! RFC 9457-style problem details. It is the verifier's product and also its wire form.

use poem_openapi::{Enum, Object};
use serde::Serialize;
use serde_json::Value;

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum Outcome {
    /// Authentic, current, neither revoked nor suspended.
    Verified,
    /// Forged, altered or malformed.
    Invalid,
    /// Authentic, and revoked by its issuer.
    Revoked,
    /// Authentic, and suspended by its issuer.
    Suspended,
    /// Authentic, past its `validUntil`.
    Expired,
    /// Authentic, before its `validFrom`.
    NotYetValid,
    /// Authenticity or status is unknown: a key, context or status list could not be fetched or
    /// re-fetched, a proof uses a cryptosuite this verifier does not implement, or a
    /// `relatedResource` digest does not match the context this verifier holds.
    Indeterminate,
}

impl Outcome {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::Invalid => "invalid",
            Self::Revoked => "revoked",
            Self::Suspended => "suspended",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::Indeterminate => "indeterminate",
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum CheckStatus {
    /// The check succeeded.
    Passed,
    /// The check found a problem.
    Failed,
    /// The check could not be completed (a document could not be fetched).
    Indeterminate,
    /// The check does not apply, or an earlier failure made it moot.
    Skipped,
    /// Something is off, but it does not change the outcome.
    Warning,
}

/// An RFC 9457 problem detail attached to a check.
#[derive(Debug, Clone, PartialEq, Serialize, Object)]
pub struct ProblemDetail {
    /// Problem type URI (W3C VC / Data Integrity / Bitstring Status List types where they exist,
    /// `urn:oxbadge:verify:<code>` otherwise).
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short summary of the problem type.
    pub title: String,
    /// What was found in this credential.
    pub detail: String,
}

/// One check of the verification.
#[derive(Debug, Clone, PartialEq, Serialize, Object)]
pub struct Check {
    /// Which check: `parse`, `contexts`, `schema`, `related_resource`, `proof`, `key_controller`,
    /// `jwt_claims`, `validity`, `status`, `recipient`, `endorsements`, `presentation_proof`.
    pub check: String,
    /// Its result.
    pub status: CheckStatus,
    /// A human-readable account of what was checked or found.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub detail: Option<String>,
    /// The problem found, when the check did not pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub problem: Option<ProblemDetail>,
}

/// The verification report of one credential or presentation.
#[derive(Debug, Clone, PartialEq, Serialize, Object)]
#[serde(rename_all = "camelCase")]
#[oai(rename_all = "camelCase")]
pub struct Report {
    /// The overall verdict.
    pub outcome: Outcome,
    /// `true` exactly when the outcome is `verified`.
    pub verified: bool,
    /// What was verified: `credential` or `presentation`.
    pub kind: String,
    /// How it was secured: `data-integrity`, `vc-jwt` or `none`.
    pub format: String,
    /// Where it came from: `json`, `jwt`, `png`, `svg`, or `presentation` for embedded credentials.
    pub source: String,
    /// The credential's `id`, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub credential_id: Option<String>,
    /// The issuer id (or the presentation's holder).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub issuer: Option<String>,
    /// What the `schema` check compared the credential with (absent for presentations and for
    /// input that is not a credential).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub schema: Option<SchemaBasis>,
    /// One entry per check, in the order they ran.
    pub checks: Vec<Check>,
    /// Reports of the endorsements the credential carries, verified by the same steps.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub endorsements: Vec<Report>,
    /// Reports of the credentials a presentation carries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<Report>,
    /// The credential as verified, when it had to be decoded (it came as a JWT or a baked image).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub credential: Option<Value>,
}

/// Which schema a credential was checked against, said plainly.
#[derive(Debug, Clone, PartialEq, Serialize, Object)]
#[serde(rename_all = "camelCase")]
#[oai(rename_all = "camelCase")]
pub struct SchemaBasis {
    /// The data model the credential declares by its first context: `vc2` or `vc1.1`.
    pub data_model: String,
    /// What the `schema` check ran. Always oxbadge's structural checks (typed code, not a JSON
    /// Schema engine): the VC data model's required members, plus, for Open Badges, what the 1EdTech
    /// AchievementCredential / EndorsementCredential JSON Schema requires that the declared data
    /// model can carry. 1EdTech publishes that schema only in a VC 1.1 form (it requires
    /// `issuanceDate` and forbids extra `credentialStatus` members), so it is not run as such.
    pub checked_against: String,
    /// The schemas the credential names in `credentialSchema`. The verifier fetches no schemas;
    /// these are listed, not run.
    pub declared: Vec<String>,
}

/// Problem type URIs used in reports.
pub mod problem {
    /// VC Data Model 2.0: the document cannot be parsed.
    pub const PARSING: &str = "https://www.w3.org/TR/vc-data-model#PARSING_ERROR";
    /// VC Data Model 2.0: a value is malformed.
    pub const MALFORMED: &str = "https://www.w3.org/TR/vc-data-model#MALFORMED_VALUE_ERROR";
    /// VC Data Model 2.0: a proof or signature is invalid.
    pub const CRYPTOGRAPHIC: &str =
        "https://www.w3.org/TR/vc-data-model#CRYPTOGRAPHIC_SECURITY_ERROR";
    /// Data Integrity: the proof does not verify.
    pub const PROOF_VERIFICATION: &str = "https://w3id.org/security#PROOF_VERIFICATION_ERROR";
    /// Data Integrity: the proof is malformed.
    pub const MALFORMED_PROOF: &str = "https://w3id.org/security#MALFORMED_PROOF_ERROR";
    /// Data Integrity: the proof purpose does not match.
    pub const MISMATCHED_PURPOSE: &str = "https://w3id.org/security#MISMATCHED_PROOF_PURPOSE_ERROR";
    /// Data Integrity: the challenge does not match.
    pub const INVALID_CHALLENGE: &str = "https://w3id.org/security#INVALID_CHALLENGE_ERROR";
    /// Data Integrity: the domain does not match.
    pub const INVALID_DOMAIN: &str = "https://w3id.org/security#INVALID_DOMAIN_ERROR";
    /// Controlled identifiers: the verification method cannot be used.
    pub const INVALID_METHOD: &str = "https://w3id.org/security#INVALID_VERIFICATION_METHOD";
    /// Bitstring Status List: the list could not be retrieved.
    pub const STATUS_RETRIEVAL: &str =
        "https://www.w3.org/ns/credentials/status-list#STATUS_RETRIEVAL_ERROR";
    /// Bitstring Status List: the list credential does not verify.
    pub const STATUS_VERIFICATION: &str =
        "https://www.w3.org/ns/credentials/status-list#STATUS_VERIFICATION_ERROR";
    /// Bitstring Status List: the list is shorter than the minimum.
    pub const STATUS_LIST_LENGTH: &str =
        "https://www.w3.org/ns/credentials/status-list#STATUS_LIST_LENGTH_ERROR";
    /// Bitstring Status List: the index is outside the list.
    pub const STATUS_RANGE: &str = "https://www.w3.org/ns/credentials/status-list#RANGE_ERROR";
    /// Bitstring Status List: a status value is malformed.
    pub const STATUS_MALFORMED: &str =
        "https://www.w3.org/ns/credentials/status-list#MALFORMED_VALUE_ERROR";

    /// An oxbadge-specific problem type.
    pub fn ours(code: &str) -> String {
        format!("urn:oxbadge:verify:{code}")
    }
}

impl Check {
    /// A passed check.
    pub fn passed(check: &str, detail: impl Into<String>) -> Self {
        Self {
            check: check.to_owned(),
            status: CheckStatus::Passed,
            detail: Some(detail.into()),
            problem: None,
        }
    }

    /// A skipped check.
    pub fn skipped(check: &str, detail: impl Into<String>) -> Self {
        Self {
            check: check.to_owned(),
            status: CheckStatus::Skipped,
            detail: Some(detail.into()),
            problem: None,
        }
    }

    /// A check that did not pass, with its problem.
    pub fn problem(
        check: &str,
        status: CheckStatus,
        problem_type: impl Into<String>,
        title: &str,
        detail: impl Into<String>,
    ) -> Self {
        let detail = detail.into();
        Self {
            check: check.to_owned(),
            status,
            detail: Some(detail.clone()),
            problem: Some(ProblemDetail {
                problem_type: problem_type.into(),
                title: title.to_owned(),
                detail,
            }),
        }
    }

    /// A failed check.
    pub fn failed(
        check: &str,
        problem_type: impl Into<String>,
        title: &str,
        detail: impl Into<String>,
    ) -> Self {
        Self::problem(check, CheckStatus::Failed, problem_type, title, detail)
    }

    /// A check that could not be completed.
    pub fn indeterminate(
        check: &str,
        problem_type: impl Into<String>,
        title: &str,
        detail: impl Into<String>,
    ) -> Self {
        Self::problem(
            check,
            CheckStatus::Indeterminate,
            problem_type,
            title,
            detail,
        )
    }
}

/// Status findings that shape the outcome of an authentic credential.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Findings {
    /// A status list says revoked.
    pub revoked: bool,
    /// A status list says suspended.
    pub suspended: bool,
    /// `validUntil` has passed.
    pub expired: bool,
    /// `validFrom` is in the future.
    pub not_yet_valid: bool,
}

impl Report {
    /// Derives the outcome from the checks and findings: a failed check makes it `invalid`
    /// (except `validity` and `status`, whose failures are the findings: expired, revoked, ...);
    /// an unfinished check makes it `indeterminate` unless the status already settles it
    /// (an authentic credential on a revocation list is revoked whatever else is unknown).
    pub fn conclude(&mut self, findings: Findings) {
        let failed = self.checks.iter().any(|c| {
            c.status == CheckStatus::Failed && !matches!(c.check.as_str(), "validity" | "status")
        }) || self
            .credentials
            .iter()
            .any(|r| r.outcome == Outcome::Invalid);
        let unknown = self
            .checks
            .iter()
            .any(|c| c.status == CheckStatus::Indeterminate);
        let authentic_unknown = self.checks.iter().any(|c| {
            c.status == CheckStatus::Indeterminate
                && matches!(
                    c.check.as_str(),
                    "proof"
                        | "key_controller"
                        | "contexts"
                        | "related_resource"
                        | "presentation_proof"
                )
        });
        let worst_nested = self
            .credentials
            .iter()
            .map(|r| r.outcome)
            .max_by_key(|o| severity(*o));
        let own = if failed {
            Outcome::Invalid
        } else if authentic_unknown {
            Outcome::Indeterminate
        } else if findings.revoked {
            Outcome::Revoked
        } else if findings.suspended {
            Outcome::Suspended
        } else if unknown {
            Outcome::Indeterminate
        } else if findings.expired {
            Outcome::Expired
        } else if findings.not_yet_valid {
            Outcome::NotYetValid
        } else {
            Outcome::Verified
        };
        self.outcome = match worst_nested {
            Some(nested) if severity(nested) > severity(own) => nested,
            _ => own,
        };
        self.verified = self.outcome == Outcome::Verified;
    }
}

fn severity(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Verified => 0,
        Outcome::NotYetValid => 1,
        Outcome::Expired => 2,
        Outcome::Suspended => 3,
        Outcome::Revoked => 4,
        Outcome::Indeterminate => 5,
        Outcome::Invalid => 6,
    }
}
