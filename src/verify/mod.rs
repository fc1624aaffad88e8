//! Verification: any badge in (JSON credential or presentation, VC-JWT, baked PNG or SVG), a
//! per-check [`Report`] out. The steps follow OB 3.0 §9: structure, proof, status, validity,
//! recipient, endorsements.

pub mod fetch;
pub mod fuzzing;
pub mod input;
pub mod jwt;
mod related_resource;
pub mod report;
pub mod resolve;
mod status;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::{
    app::AppState,
    di::{DiError, Suite, proofs_of},
    jsonld::JsonLdError,
    ob,
};
use fetch::Fetcher;
use input::{Source, Submitted};
use report::{Check, CheckStatus, Findings, Outcome, Report, SchemaBasis, problem};
use resolve::{Method, PublicKey, ResolveError};

/// How deep endorsements of endorsements are followed.
const MAX_DEPTH: u8 = 2;
/// How many endorsements of one credential are verified.
const MAX_ENDORSEMENTS: usize = 16;
/// How many credentials of one presentation are verified.
const MAX_PRESENTED: usize = 32;

/// What the caller wants checked beyond the credential itself.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Match the recipient against this email (hashed with the credential's salt).
    pub recipient_email: Option<String>,
    /// Match the recipient against this DID or URL.
    pub recipient_id: Option<String>,
    /// A presentation's proof must carry this challenge.
    pub challenge: Option<String>,
    /// A presentation's proof must carry this domain.
    pub domain: Option<String>,
}

/// How long the keys of this service's own issuers are reused before the database is asked again:
/// a key revoked on another instance stops verifying within this time (at once on this one, and on
/// PostgreSQL as soon as the instance's NOTIFY arrives).
pub const OWN_KEYS_TTL: Duration = Duration::from_secs(1);

/// A small map whose entries expire (bounded: it is emptied when full).
#[derive(Debug)]
pub struct TtlCache<V> {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, V)>>,
}

const CACHE_ENTRIES: usize = 10_000;

impl<V: Clone> TtlCache<V> {
    /// Entries live `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// A fresh entry.
    pub fn get(&self, key: &str) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    /// Stores an entry.
    pub fn insert(&self, key: String, value: V) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CACHE_ENTRIES {
                entries.clear();
            }
            entries.insert(key, (Instant::now(), value));
        }
    }

    /// Drops every entry (after a local key change).
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}

/// The verifier's long-lived parts: the hardened outbound client and its caches.
#[derive(Debug)]
pub struct Verifier {
    fetcher: Fetcher,
    own_issuers: TtlCache<Option<Arc<resolve::OwnIssuer>>>,
    own_lists: TtlCache<Arc<status::OwnList>>,
}

impl Verifier {
    /// A verifier fetching under `policy`.
    pub fn new(policy: fetch::FetchPolicy) -> Result<Self, reqwest::Error> {
        Ok(Self {
            fetcher: Fetcher::new(policy)?,
            own_issuers: TtlCache::new(OWN_KEYS_TTL),
            // A list's purpose, owner and size never change.
            own_lists: TtlCache::new(Duration::from_secs(24 * 3600)),
        })
    }

    /// The outbound client.
    pub fn fetcher(&self) -> &Fetcher {
        &self.fetcher
    }

    /// This service's issuers and their keys, by issuer id (`None`: not ours).
    pub fn own_issuers(&self) -> &TtlCache<Option<Arc<resolve::OwnIssuer>>> {
        &self.own_issuers
    }

    /// The fixed facts of this service's status lists, by list id.
    pub(crate) fn own_lists(&self) -> &TtlCache<Arc<status::OwnList>> {
        &self.own_lists
    }

    /// Forgets cached keys (a key of this service was rotated or revoked).
    pub fn keys_changed(&self) {
        self.own_issuers.clear();
    }
}

/// Verifies a parsed submission.
pub async fn verify(state: &AppState, submitted: Submitted, options: &VerifyOptions) -> Report {
    match submitted {
        Submitted::Json(value, source) => {
            verify_json(state, Arc::new(value), source, options, 0).await
        }
        Submitted::Jwt(jws, source) => verify_jwt(state, jws, source, options, 0).await,
    }
}

fn types_of(value: &Value) -> Vec<&str> {
    match value.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn empty_report(kind: &str, format: &str, source: Source) -> Report {
    Report {
        outcome: Outcome::Indeterminate,
        verified: false,
        kind: kind.to_owned(),
        format: format.to_owned(),
        source: source.as_str().to_owned(),
        credential_id: None,
        issuer: None,
        schema: None,
        checks: Vec::new(),
        endorsements: Vec::new(),
        credentials: Vec::new(),
        credential: None,
    }
}

/// Verifies a JSON credential or presentation.
pub fn verify_json<'a>(
    state: &'a AppState,
    value: Arc<Value>,
    source: Source,
    options: &'a VerifyOptions,
    depth: u8,
) -> BoxFuture<'a, Report> {
    Box::pin(async move {
        if types_of(&value).contains(&"VerifiablePresentation") {
            return verify_presentation(state, value, options, depth).await;
        }
        let format = if value.get("proof").is_some() {
            "data-integrity"
        } else {
            "none"
        };
        let mut report = empty_report("credential", format, source);
        report.credential_id = value.get("id").and_then(Value::as_str).map(str::to_owned);
        report.issuer = jwt::issuer_id(&value).map(str::to_owned);
        if let Some(check) = parse_check(&value) {
            report.checks.push(check);
            report.credential = source.decoded().then(|| (*value).clone());
            report.conclude(Findings::default());
            return report;
        }
        report
            .checks
            .push(Check::passed("parse", "a JSON verifiable credential"));
        report.schema = Some(schema_basis(&value));
        report.checks.push(structure_check(&value));
        let (contexts, proof, controller, authentic) =
            data_integrity(state, &value, "assertionMethod").await;
        let contexts = match contexts {
            Some(c) => c,
            None => contexts_check(state, &value).await,
        };
        report.checks.push(contexts);
        report.checks.extend(related_resources(&value));
        report.checks.push(proof);
        report
            .checks
            .push(controller_check(&value, controller.as_deref(), authentic));
        finish(state, &value, &mut report, authentic, options, depth).await;
        report.credential = source.decoded().then(|| (*value).clone());
        report
    })
}

/// Verifies a VC-JWT.
pub fn verify_jwt<'a>(
    state: &'a AppState,
    jws: String,
    source: Source,
    options: &'a VerifyOptions,
    depth: u8,
) -> BoxFuture<'a, Report> {
    Box::pin(async move {
        let mut report = empty_report("credential", "vc-jwt", source);
        let decoded = match jwt::decode(&jws) {
            Ok(d) => d,
            Err(e) => {
                report
                    .checks
                    .push(Check::failed("parse", problem::PARSING, "Parsing error", e));
                report.conclude(Findings::default());
                return report;
            }
        };
        let credential = match decoded.credential() {
            Ok(c) => Arc::new(c),
            Err(e) => {
                report
                    .checks
                    .push(Check::failed("parse", problem::PARSING, "Parsing error", e));
                report.conclude(Findings::default());
                return report;
            }
        };
        report.credential_id = credential
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        report.issuer = jwt::issuer_id(&credential).map(str::to_owned);
        report.credential = Some((*credential).clone());
        let header_errors = decoded.header_errors();
        if let Some(check) = parse_check(&credential) {
            report.checks.push(check);
            report.conclude(Findings::default());
            return report;
        }
        if !header_errors.is_empty() {
            report.checks.push(Check::failed(
                "parse",
                problem::MALFORMED_PROOF,
                "Malformed JWT header",
                header_errors.join("; "),
            ));
            report.conclude(Findings::default());
            return report;
        }
        report
            .checks
            .push(Check::passed("parse", "a VC-JWT credential"));
        report.schema = Some(schema_basis(&credential));
        report.checks.push(structure_check(&credential));
        report.checks.push(contexts_check(state, &credential).await);
        report.checks.extend(related_resources(&credential));

        let (proof, controller) = jwt_proof(state, &decoded, &credential).await;
        let authentic = proof.status == CheckStatus::Passed;
        report.checks.push(proof);
        let mismatches = decoded.claim_mismatches(&credential);
        let warnings = decoded.header_warnings();
        report.checks.push(if !mismatches.is_empty() {
            Check::failed(
                "jwt_claims",
                problem::MALFORMED,
                "JWT claims disagree with the credential",
                mismatches.join("; "),
            )
        } else if !warnings.is_empty() {
            Check::problem(
                "jwt_claims",
                CheckStatus::Warning,
                problem::ours("jwt_header"),
                "Unexpected JWT header fields",
                warnings.join("; "),
            )
        } else {
            Check::passed(
                "jwt_claims",
                "iss, jti, sub, nbf and exp agree with the credential (OB 3.0 §8.2.6)",
            )
        });
        report.checks.push(controller_check(
            &credential,
            controller.as_deref(),
            authentic,
        ));
        let authentic = authentic && mismatches.is_empty();
        finish(state, &credential, &mut report, authentic, options, depth).await;
        report
    })
}

/// The structural ("schema") check: the rules issuance enforces too ([`ob::structure`]).
pub fn structure_check(value: &Value) -> Check {
    const NAME: &str = "schema";
    let structure = ob::structure::check(value);
    if !structure.conforms() {
        return Check::failed(
            NAME,
            problem::MALFORMED,
            "Invalid structure",
            structure.summary(),
        );
    }
    Check::passed(
        NAME,
        if structure.open_badge {
            "conforms to the Open Badges 3.0 credential structure"
        } else {
            "conforms to the VC data model (not an Open Badge)"
        },
    )
}

/// `None` when the document is a verifiable credential; otherwise the failed parse check.
fn parse_check(value: &Value) -> Option<Check> {
    let fail = |detail: &str| {
        Some(Check::failed(
            "parse",
            problem::PARSING,
            "Not a verifiable credential",
            detail,
        ))
    };
    if !value.is_object() {
        return fail("a credential is a JSON object");
    }
    if value.get("@context").is_none() {
        return fail("the credential has no @context");
    }
    if !types_of(value).contains(&"VerifiableCredential") {
        return fail("type does not include VerifiableCredential");
    }
    None
}

/// The `related_resource` check (VC Data Model 2.0 §5.3) against the pinned contexts.
fn related_resources(credential: &Value) -> Option<Check> {
    related_resource::check(credential, &crate::jsonld::ContextLoader::shared())
}

/// Which schema the `schema` check holds `credential` to.
fn schema_basis(credential: &Value) -> SchemaBasis {
    let first = match credential.get("@context") {
        Some(Value::Array(items)) => items.first().and_then(Value::as_str),
        Some(Value::String(s)) => Some(s.as_str()),
        _ => None,
    };
    let (data_model, model_name) = if first == Some(crate::jsonld::CREDENTIALS_V1) {
        ("vc1.1", "VC Data Model 1.1")
    } else {
        ("vc2", "VC Data Model 2.0")
    };
    let checked_against = if is_open_badge(credential) {
        format!(
            "oxbadge structural checks: {model_name} required members and the Open Badges 3.0 \
             credential structure (what the 1EdTech AchievementCredential JSON Schema requires, \
             less the members {model_name} cannot carry); the 1EdTech JSON Schema itself is not \
             run (it is published only in a VC 1.1 form)"
        )
    } else {
        format!("oxbadge structural checks: {model_name} required members")
    };
    let declared = match credential.get("credentialSchema") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(one) => vec![one],
        None => Vec::new(),
    }
    .into_iter()
    .filter_map(|s| s.get("id").and_then(Value::as_str))
    .map(str::to_owned)
    .collect();
    SchemaBasis {
        data_model: data_model.to_owned(),
        checked_against,
        declared,
    }
}

/// The contexts check by itself (when no Data Integrity proof ran it as a side effect).
async fn contexts_check(state: &AppState, value: &Arc<Value>) -> Check {
    let signer = state.signer().clone();
    let doc = value.clone();
    let result = state
        .verify_pool()
        .run(move |cancel| signer.with_cancel(cancel).check_contexts(&doc))
        .await;
    match result {
        Ok(Ok(())) => contexts_passed(),
        Ok(Err(e)) => contexts_failure(&e).unwrap_or_else(contexts_passed),
        Err(_) => Check::indeterminate(
            "contexts",
            problem::ours("internal"),
            "Check interrupted",
            "the context check did not complete",
        ),
    }
}

fn contexts_passed() -> Check {
    Check::passed(
        "contexts",
        "every context is pinned and every term and type is defined",
    )
}

/// The contexts check a JSON-LD error amounts to (`None` when the error is not about contexts).
fn contexts_failure(err: &DiError) -> Option<Check> {
    match err {
        // A bound on the work, not a property of the document: no verdict.
        DiError::JsonLd(e) if e.is_resource_limit() => Some(Check::indeterminate(
            "contexts",
            problem::ours("canonicalization_limit"),
            "Canonicalization limit reached",
            e.to_string(),
        )),
        DiError::JsonLd(JsonLdError::UnknownContext { url }) => Some(Check::indeterminate(
            "contexts",
            problem::ours("unknown_context"),
            "Unknown context",
            format!(
                "the context {url} is not pinned by this verifier, and remote contexts are never fetched"
            ),
        )),
        DiError::JsonLd(e) => Some(Check::failed(
            "contexts",
            problem::MALFORMED,
            "Invalid JSON-LD",
            e.to_string(),
        )),
        DiError::MissingContext => Some(Check::failed(
            "contexts",
            problem::MALFORMED,
            "Invalid JSON-LD",
            "the document has no @context",
        )),
        _ => None,
    }
}

/// The outcome of verifying one Data Integrity proof.
enum ProofResult {
    Verified(Method),
    Failed(String, &'static str),
    Unreachable(String),
    Unsupported(String),
    Contexts(Check),
}

/// Verifies the Data Integrity proofs of `doc` for `purpose`. Returns the contexts check when
/// canonicalization decided it, the proof check, the controller of a verified proof, and whether
/// the document is authentic.
async fn data_integrity(
    state: &AppState,
    doc: &Arc<Value>,
    purpose: &str,
) -> (Option<Check>, Check, Option<String>, bool) {
    let proofs = match proofs_of(doc) {
        Ok(p) => p.to_vec(),
        Err(_) => {
            return (
                None,
                Check::failed(
                    "proof",
                    problem::MALFORMED_PROOF,
                    "No proof",
                    "the credential carries no proof (an unsigned credential cannot be verified)",
                ),
                None,
                false,
            );
        }
    };
    let mut results = Vec::with_capacity(proofs.len());
    for (index, proof) in proofs.iter().enumerate() {
        results.push(verify_one_proof(state, doc, index, proof, purpose).await);
    }
    let mut contexts = None;
    let mut verified: Vec<&Method> = Vec::new();
    let mut failures = Vec::new();
    let mut unreachable = Vec::new();
    let mut unsupported = Vec::new();
    let mut failure_type = problem::PROOF_VERIFICATION;
    for result in &results {
        match result {
            ProofResult::Verified(m) => verified.push(m),
            ProofResult::Failed(why, kind) => {
                failures.push(why.clone());
                failure_type = kind;
            }
            ProofResult::Unreachable(why) => unreachable.push(why.clone()),
            ProofResult::Unsupported(why) => unsupported.push(why.clone()),
            ProofResult::Contexts(check) => contexts = Some(check.clone()),
        }
    }
    let controller = verified.first().map(|m| m.controller.clone());
    let check = if let Some(c) = &contexts {
        if c.status == CheckStatus::Failed {
            Check::failed(
                "proof",
                problem::PROOF_VERIFICATION,
                "Proof not checked",
                "the document is not valid JSON-LD, so its proof cannot hold",
            )
        } else {
            Check::indeterminate(
                "proof",
                problem::PROOF_VERIFICATION,
                "Proof not checked",
                match &c.detail {
                    Some(why) => format!("the document could not be canonicalized: {why}"),
                    None => "the document could not be canonicalized".to_owned(),
                },
            )
        }
    } else if !failures.is_empty() {
        Check::failed("proof", failure_type, "Invalid proof", failures.join("; "))
    } else if !unreachable.is_empty() {
        Check::indeterminate(
            "proof",
            problem::ours("key_unreachable"),
            "Key could not be resolved",
            unreachable.join("; "),
        )
    } else if verified.is_empty() && unsupported.is_empty() {
        Check::failed(
            "proof",
            problem::MALFORMED_PROOF,
            "No supported proof",
            "no proof",
        )
    } else if verified.is_empty() {
        // Nothing this verifier can check: not shown authentic, not shown forged.
        Check::indeterminate(
            "proof",
            problem::ours("unsupported_cryptosuite"),
            "Unsupported cryptosuite",
            unsupported.join("; "),
        )
    } else if !unsupported.is_empty() {
        // Every proof of a set must hold (VC Data Integrity); one we cannot check leaves the
        // set unproven, though not disproven.
        Check::indeterminate(
            "proof",
            problem::ours("unsupported_proof"),
            "Proof set only partly checked",
            format!(
                "{} proof(s) verified, but: {}",
                verified.len(),
                unsupported.join("; ")
            ),
        )
    } else {
        let names: Vec<String> = proofs
            .iter()
            .filter_map(Suite::of)
            .map(|s| s.name().to_owned())
            .collect();
        let detail = format!(
            "{} proof(s) verified ({}) by {}",
            verified.len(),
            names.join(", "),
            verified
                .iter()
                .map(|m| m.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Check::passed("proof", detail)
    };
    let authentic = check.status == CheckStatus::Passed;
    let contexts = contexts.or_else(|| {
        // Canonicalization ran without a JSON-LD error when any proof got as far as the
        // signature, so the contexts are fine.
        results
            .iter()
            .any(|r| matches!(r, ProofResult::Verified(_) | ProofResult::Failed(..)))
            .then(contexts_passed)
    });
    (contexts, check, controller, authentic)
}

/// A proof whose suite this verifier does not implement: it is neither shown valid nor shown
/// forged, so the proof check is `indeterminate`, naming the suite. A proof that names no type
/// (or a `DataIntegrityProof` without a cryptosuite) is malformed.
fn unsupported_suite(proof: &Value) -> ProofResult {
    let kind = proof.get("type").and_then(Value::as_str);
    let suite = proof.get("cryptosuite").and_then(Value::as_str);
    match (kind, suite) {
        (None, _) => ProofResult::Failed("a proof has no type".into(), problem::MALFORMED_PROOF),
        (Some("DataIntegrityProof"), None) => ProofResult::Failed(
            "a DataIntegrityProof has no cryptosuite".into(),
            problem::MALFORMED_PROOF,
        ),
        (Some(kind), Some(suite)) => ProofResult::Unsupported(format!(
            "the cryptosuite {suite} ({kind}) is not supported by this verifier"
        )),
        (Some(kind), None) => ProofResult::Unsupported(format!(
            "the proof type {kind} is not supported by this verifier"
        )),
    }
}

/// The party a proof for `purpose` must come from, where the checks that follow demand it:
/// an Open Badge's or a status list's issuer, a presentation's holder. `None` where another
/// controller is tolerated (the key-controller check only warns).
fn required_controller<'v>(doc: &'v Value, purpose: &str) -> Option<&'v str> {
    if purpose == "authentication" {
        return doc
            .get("holder")
            .and_then(|h| h.as_str().or_else(|| h.get("id").and_then(Value::as_str)));
    }
    let list = types_of(doc).iter().any(|t| {
        matches!(
            *t,
            "BitstringStatusListCredential" | "StatusList2021Credential"
        )
    });
    if is_open_badge(doc) || list {
        jwt::issuer_id(doc)
    } else {
        None
    }
}

async fn verify_one_proof(
    state: &AppState,
    doc: &Arc<Value>,
    index: usize,
    proof: &Value,
    purpose: &str,
) -> ProofResult {
    let Some(suite) = Suite::of(proof) else {
        return unsupported_suite(proof);
    };
    let proof_purpose = proof.get("proofPurpose").and_then(Value::as_str);
    if proof_purpose != Some(purpose) {
        return ProofResult::Failed(
            format!(
                "proofPurpose is {}, expected {purpose}",
                proof_purpose.unwrap_or("missing")
            ),
            problem::MISMATCHED_PURPOSE,
        );
    }
    let Some(method_url) = proof.get("verificationMethod").and_then(Value::as_str) else {
        return ProofResult::Failed(
            "the proof has no verificationMethod".into(),
            problem::MALFORMED_PROOF,
        );
    };
    let claimed = required_controller(doc, purpose);
    let method = match resolve::resolve_claimed(
        state,
        state.verifier().fetcher(),
        method_url,
        claimed,
    )
    .await
    {
        Ok(m) => m,
        Err(ResolveError::Invalid(why)) => {
            return ProofResult::Failed(why, problem::INVALID_METHOD);
        }
        Err(ResolveError::Unreachable(e)) => return ProofResult::Unreachable(e.to_string()),
    };
    if !method.authorized_for(purpose) {
        return ProofResult::Failed(
            format!("{} is not authorized for {purpose}", method.id),
            problem::INVALID_METHOD,
        );
    }
    let PublicKey::Ed25519(key) = method.key else {
        return ProofResult::Failed(
            format!(
                "{} requires an Ed25519 key, not {}",
                suite.name(),
                method.key.kind()
            ),
            problem::INVALID_METHOD,
        );
    };
    let signer = state.signer().clone();
    let doc = doc.clone();
    let result = state
        .verify_pool()
        .run(move |cancel| signer.with_cancel(cancel).verify_proof(&doc, index, &key))
        .await;
    match result {
        Ok(Ok(())) => ProofResult::Verified(method),
        Ok(Err(e)) => match contexts_failure(&e) {
            Some(check) => ProofResult::Contexts(check),
            None => ProofResult::Failed(
                format!("{} proof by {}: {e}", suite.name(), method.id),
                match e {
                    DiError::InvalidSignature => problem::PROOF_VERIFICATION,
                    _ => problem::MALFORMED_PROOF,
                },
            ),
        },
        Err(_) => ProofResult::Unreachable("the proof check did not complete".into()),
    }
}

/// The VC-JWT signature check; returns it and the controller of the key.
async fn jwt_proof(
    state: &AppState,
    decoded: &jwt::DecodedJwt,
    credential: &Value,
) -> (Check, Option<String>) {
    let fail = |title: &str, detail: String| {
        (
            Check::failed("proof", problem::CRYPTOGRAPHIC, title, detail),
            None,
        )
    };
    let alg = match decoded.algorithm() {
        Ok(a) => a,
        Err(e) => return fail("Unsupported JWT algorithm", e),
    };
    let unreachable = |e: String| {
        (
            Check::indeterminate(
                "proof",
                problem::ours("key_unreachable"),
                "Key could not be resolved",
                e,
            ),
            None,
        )
    };
    let kid = decoded.header.get("kid").and_then(Value::as_str);
    let jwk = decoded.header.get("jwk");
    let issuer = jwt::issuer_id(credential);
    let (key, controller, method_id) = if let Some(kid) = kid.filter(|k| is_key_reference(k)) {
        let absolute = match (kid.starts_with('#'), issuer) {
            (true, Some(issuer)) => format!("{issuer}{kid}"),
            _ => kid.to_owned(),
        };
        let claimed = required_controller(credential, "assertionMethod");
        match resolve::resolve_claimed(state, state.verifier().fetcher(), &absolute, claimed).await
        {
            Ok(m) if !m.authorized_for("assertionMethod") => {
                return fail(
                    "Key not authorized",
                    format!("{} is not authorized for assertionMethod", m.id),
                );
            }
            Ok(m) => (m.key, Some(m.controller), m.id),
            Err(ResolveError::Invalid(e)) => return fail("Invalid key", e),
            Err(ResolveError::Unreachable(e)) => return unreachable(e.to_string()),
        }
    } else if let (None, Some(jwk)) = (kid, jwk) {
        match resolve::parse_jwk(jwk) {
            // An embedded key proves nothing about the issuer unless the issuer id is that key.
            Ok(key) => {
                let controller = issuer
                    .filter(|iss| iss.starts_with("did:key:"))
                    .and_then(|iss| {
                        let mb = iss.trim_start_matches("did:key:");
                        let did_key = resolve::parse_multikey(mb).ok()?;
                        same_key(&did_key, &key).then(|| iss.to_owned())
                    });
                (key, controller, "the embedded jwk".to_owned())
            }
            Err(e) => return fail("Invalid key", e.to_string()),
        }
    } else {
        // No `kid`, or one that is neither a DID nor a URL: the OB implementation guide's rule,
        // the issuer host's JWK Set.
        let Some(issuer) = issuer else {
            return fail("Invalid key", "the credential names no issuer".into());
        };
        let found = if kid.is_some() {
            resolve::host_jwks_key(state.verifier().fetcher(), issuer, kid, |k| alg.accepts(k))
                .await
        } else {
            resolve::host_jwks_key(state.verifier().fetcher(), issuer, None, |k| {
                alg.accepts(k) && decoded.verify_signature(alg, k).is_ok()
            })
            .await
        };
        match found {
            Ok(m) => (m.key, Some(m.controller), m.id),
            Err(ResolveError::Invalid(e)) => return fail("Invalid key", e),
            Err(ResolveError::Unreachable(e)) => return unreachable(e.to_string()),
        }
    };
    match decoded.verify_signature(alg, &key) {
        Ok(()) => (
            Check::passed(
                "proof",
                format!("VC-JWT {alg:?} signature verified by {method_id}"),
            ),
            controller,
        ),
        Err(e) => fail("Invalid signature", e),
    }
}

/// Whether a JWT `kid` names its key by a DID URL, a URL, or a fragment of the issuer's id (the
/// forms that are resolved); any other `kid` is looked up in the issuer host's JWK Set.
fn is_key_reference(kid: &str) -> bool {
    kid.starts_with("did:")
        || kid.starts_with('#')
        || kid.starts_with("https://")
        || kid.starts_with("http://")
}

fn same_key(a: &PublicKey, b: &PublicKey) -> bool {
    match (a, b) {
        (PublicKey::Ed25519(x), PublicKey::Ed25519(y)) => x == y,
        (PublicKey::P256(x), PublicKey::P256(y)) => x == y,
        (PublicKey::Rsa(x), PublicKey::Rsa(y)) => x == y,
        _ => false,
    }
}

fn is_open_badge(value: &Value) -> bool {
    types_of(value).iter().any(|t| {
        matches!(
            *t,
            "OpenBadgeCredential" | "AchievementCredential" | "EndorsementCredential"
        )
    })
}

/// OB 3.0: the verification method's controller must be the issuer.
fn controller_check(credential: &Value, controller: Option<&str>, authentic: bool) -> Check {
    const NAME: &str = "key_controller";
    let issuer = jwt::issuer_id(credential);
    match (controller, issuer) {
        (_, None) => Check::failed(
            NAME,
            problem::MALFORMED,
            "No issuer",
            "the credential names no issuer",
        ),
        (None, Some(_)) if !authentic => {
            Check::skipped(NAME, "no verified proof to take a controller from")
        }
        (None, Some(issuer)) => Check::failed(
            NAME,
            problem::INVALID_METHOD,
            "Key not bound to the issuer",
            format!("the key embedded in the JWT header is not a key of {issuer}"),
        ),
        (Some(c), Some(issuer)) if c == issuer => Check::passed(
            NAME,
            format!("the key is controlled by the issuer {issuer}"),
        ),
        (Some(c), Some(issuer)) if !is_open_badge(credential) => Check::problem(
            NAME,
            CheckStatus::Warning,
            problem::INVALID_METHOD,
            "Key controller differs from the issuer",
            format!("the key is controlled by {c}, the issuer is {issuer}"),
        ),
        (Some(c), Some(issuer)) => Check::failed(
            NAME,
            problem::INVALID_METHOD,
            "Key controller differs from the issuer",
            format!(
                "the key is controlled by {c}, but the issuer is {issuer} (OB 3.0 requires them to match)"
            ),
        ),
    }
}

/// Validity dates, status, recipient and endorsements; then the outcome.
async fn finish(
    state: &AppState,
    credential: &Value,
    report: &mut Report,
    authentic: bool,
    options: &VerifyOptions,
    depth: u8,
) {
    let mut findings = Findings::default();
    report
        .checks
        .push(validity_check(credential, Utc::now(), &mut findings));
    if authentic {
        report
            .checks
            .extend(status::check(state, credential, &mut findings).await);
    } else {
        report.checks.push(Check::skipped(
            "status",
            "not checked: the credential is not shown to be authentic",
        ));
    }
    if let Some(check) = recipient_check(credential, options) {
        report.checks.push(check);
    }
    if depth < MAX_DEPTH {
        let (check, endorsements) = endorsements(state, credential, depth).await;
        report.checks.push(check);
        report.endorsements = endorsements;
    }
    report.conclude(findings);
}

fn date_of(credential: &Value, field: &str, legacy: &str) -> Result<Option<DateTime<Utc>>, String> {
    let Some((name, value)) = credential
        .get(field)
        .map(|v| (field, v))
        .or_else(|| credential.get(legacy).map(|v| (legacy, v)))
    else {
        return Ok(None);
    };
    value
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| Some(t.with_timezone(&Utc)))
        .ok_or_else(|| format!("{name} is not an RFC 3339 date-time"))
}

fn validity_check(credential: &Value, now: DateTime<Utc>, findings: &mut Findings) -> Check {
    const NAME: &str = "validity";
    let from = date_of(credential, "validFrom", "issuanceDate");
    let until = date_of(credential, "validUntil", "expirationDate");
    let (from, until) = match (from, until) {
        (Ok(f), Ok(u)) => (f, u),
        (Err(e), _) | (_, Err(e)) => {
            return Check::failed(NAME, problem::MALFORMED, "Malformed date", e);
        }
    };
    if let Some(from) = from
        && from > now
    {
        findings.not_yet_valid = true;
        return Check::failed(
            NAME,
            problem::ours("not_yet_valid"),
            "Not yet valid",
            format!("valid from {from}"),
        );
    }
    if let Some(until) = until
        && until < now
    {
        findings.expired = true;
        return Check::failed(
            NAME,
            problem::ours("expired"),
            "Expired",
            format!("expired at {until}"),
        );
    }
    Check::passed(
        NAME,
        match until {
            Some(u) => format!("valid now; until {u}"),
            None => "valid now; no expiry".to_owned(),
        },
    )
}

fn recipient_check(credential: &Value, options: &VerifyOptions) -> Option<Check> {
    const NAME: &str = "recipient";
    if options.recipient_email.is_none() && options.recipient_id.is_none() {
        return None;
    }
    let subject = credential.get("credentialSubject")?;
    let identifiers: Vec<&Value> = match subject.get("identifier") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(single @ Value::Object(_)) => vec![single],
        _ => Vec::new(),
    };
    let mut matched = false;
    if let Some(id) = &options.recipient_id {
        matched |= subject.get("id").and_then(Value::as_str) == Some(id.as_str());
        matched |= identifiers.iter().any(|i| identity_matches(i, id));
    }
    if let Some(email) = &options.recipient_email {
        let email = ob::normalize_email(email).unwrap_or_else(|_| email.trim().to_lowercase());
        matched |= identifiers.iter().any(|i| {
            i.get("identityType").and_then(Value::as_str) == Some("emailAddress")
                && identity_matches(i, &email)
        });
    }
    Some(if matched {
        Check::passed(NAME, "the credential was awarded to the given recipient")
    } else {
        Check::failed(
            NAME,
            problem::ours("recipient_mismatch"),
            "Recipient does not match",
            "the credential was not awarded to the given recipient",
        )
    })
}

fn identity_matches(identifier: &Value, value: &str) -> bool {
    let Some(hash) = identifier.get("identityHash").and_then(Value::as_str) else {
        return false;
    };
    if identifier.get("hashed").and_then(Value::as_bool) == Some(true) {
        let salt = identifier
            .get("salt")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let expected = ob::identity_hash(value, salt);
        subtle::ConstantTimeEq::ct_eq(hash.to_ascii_lowercase().as_bytes(), expected.as_bytes())
            .into()
    } else {
        hash.eq_ignore_ascii_case(value)
    }
}

/// Endorsements the credential carries (on itself, its achievement and its issuer profile).
fn endorsements_of(credential: &Value) -> Vec<Submitted> {
    let holders = [
        Some(credential),
        credential.pointer("/credentialSubject/achievement"),
        credential.get("issuer").filter(|i| i.is_object()),
    ];
    let mut found = Vec::new();
    for holder in holders.into_iter().flatten() {
        match holder.get("endorsement") {
            Some(Value::Array(items)) => found.extend(
                items
                    .iter()
                    .filter(|e| e.is_object())
                    .map(|e| Submitted::Json(e.clone(), Source::Endorsement)),
            ),
            Some(one @ Value::Object(_)) => {
                found.push(Submitted::Json(one.clone(), Source::Endorsement))
            }
            _ => {}
        }
        match holder.get("endorsementJwt") {
            Some(Value::Array(items)) => found.extend(
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|j| Submitted::Jwt(j.to_owned(), Source::Endorsement)),
            ),
            Some(Value::String(j)) => found.push(Submitted::Jwt(j.clone(), Source::Endorsement)),
            _ => {}
        }
    }
    found
}

/// Endorsements are checked without the caller's recipient or presentation options: those are
/// about the endorsed credential, not its endorsers.
async fn endorsements(state: &AppState, credential: &Value, depth: u8) -> (Check, Vec<Report>) {
    const NAME: &str = "endorsements";
    let found = endorsements_of(credential);
    if found.is_empty() {
        return (Check::skipped(NAME, "no endorsements"), Vec::new());
    }
    let total = found.len();
    let plain = VerifyOptions::default();
    let mut reports = Vec::new();
    for item in found.into_iter().take(MAX_ENDORSEMENTS) {
        reports.push(match item {
            Submitted::Json(v, s) => verify_json(state, Arc::new(v), s, &plain, depth + 1).await,
            Submitted::Jwt(j, s) => verify_jwt(state, j, s, &plain, depth + 1).await,
        });
    }
    let good = reports.iter().filter(|r| r.verified).count();
    let mut detail = format!("{good} of {} endorsement(s) verified", reports.len());
    if total > MAX_ENDORSEMENTS {
        detail.push_str(&format!("; {} more not checked", total - MAX_ENDORSEMENTS));
    }
    let check = if good == reports.len() {
        Check::passed(NAME, detail)
    } else {
        Check::problem(
            NAME,
            CheckStatus::Warning,
            problem::ours("endorsement"),
            "Endorsement not verified",
            detail,
        )
    };
    (check, reports)
}

/// Verifies a presentation: its proof (`authentication`, challenge and domain when asked), then
/// every credential it carries.
fn verify_presentation<'a>(
    state: &'a AppState,
    vp: Arc<Value>,
    options: &'a VerifyOptions,
    depth: u8,
) -> BoxFuture<'a, Report> {
    Box::pin(async move {
        let mut report = empty_report(
            "presentation",
            if vp.get("proof").is_some() {
                "data-integrity"
            } else {
                "none"
            },
            Source::Json,
        );
        report.issuer = vp.get("holder").and_then(|h| {
            h.as_str()
                .or_else(|| h.get("id").and_then(Value::as_str))
                .map(str::to_owned)
        });
        report
            .checks
            .push(Check::passed("parse", "a verifiable presentation"));
        if vp.get("proof").is_some() {
            let (contexts, proof, controller, authentic) =
                data_integrity(state, &vp, "authentication").await;
            if let Some(c) = contexts {
                report.checks.push(c);
            }
            let mut proof = proof;
            proof.check = "presentation_proof".into();
            report.checks.push(proof);
            if authentic {
                report
                    .checks
                    .push(presentation_binding(&vp, controller.as_deref(), options));
            }
        } else if options.challenge.is_some() || options.domain.is_some() {
            report.checks.push(Check::failed(
                "presentation_proof",
                problem::INVALID_CHALLENGE,
                "Unsigned presentation",
                "a challenge or domain was required, but the presentation has no proof",
            ));
        } else {
            report.checks.push(Check::skipped(
                "presentation_proof",
                "the presentation is not signed",
            ));
        }
        let presented: Vec<Value> = match vp.get("verifiableCredential") {
            Some(Value::Array(items)) => items.clone(),
            Some(one) => vec![one.clone()],
            None => Vec::new(),
        };
        let plain = VerifyOptions {
            recipient_email: options.recipient_email.clone(),
            recipient_id: options.recipient_id.clone(),
            ..VerifyOptions::default()
        };
        for item in presented.into_iter().take(MAX_PRESENTED) {
            let nested = match &item {
                Value::String(jws) => {
                    verify_jwt(state, jws.clone(), Source::Presentation, &plain, depth + 1).await
                }
                Value::Object(o) if types_of(&item).contains(&"EnvelopedVerifiableCredential") => {
                    let jws = o
                        .get("id")
                        .and_then(Value::as_str)
                        .and_then(|id| id.split_once(','))
                        .map(|(_, data)| data.to_owned())
                        .unwrap_or_default();
                    verify_jwt(state, jws, Source::Presentation, &plain, depth + 1).await
                }
                _ => {
                    verify_json(
                        state,
                        Arc::new(item),
                        Source::Presentation,
                        &plain,
                        depth + 1,
                    )
                    .await
                }
            };
            report.credentials.push(nested);
        }
        report.conclude(Findings::default());
        report
    })
}

/// A presentation proof must be by the holder and carry the requested challenge and domain.
fn presentation_binding(vp: &Value, controller: Option<&str>, options: &VerifyOptions) -> Check {
    const NAME: &str = "presentation_binding";
    let proofs = proofs_of(vp).map(|p| p.to_vec()).unwrap_or_default();
    if let Some(challenge) = &options.challenge
        && !proofs
            .iter()
            .any(|p| p.get("challenge").and_then(Value::as_str) == Some(challenge.as_str()))
    {
        return Check::failed(
            NAME,
            problem::INVALID_CHALLENGE,
            "Challenge mismatch",
            "the presentation proof does not carry the expected challenge",
        );
    }
    if let Some(domain) = &options.domain {
        let carries = |p: &Value| match p.get("domain") {
            Some(Value::String(d)) => d == domain,
            Some(Value::Array(ds)) => ds.iter().any(|d| d.as_str() == Some(domain.as_str())),
            _ => false,
        };
        if !proofs.iter().any(carries) {
            return Check::failed(
                NAME,
                problem::INVALID_DOMAIN,
                "Domain mismatch",
                "the presentation proof does not carry the expected domain",
            );
        }
    }
    let holder = vp
        .get("holder")
        .and_then(|h| h.as_str().or_else(|| h.get("id").and_then(Value::as_str)));
    match (holder, controller) {
        (Some(h), Some(c)) if h != c => Check::failed(
            NAME,
            problem::INVALID_METHOD,
            "Holder mismatch",
            format!("the presentation is signed by {c}, but its holder is {h}"),
        ),
        _ => Check::passed(NAME, "the proof binds the holder, challenge and domain"),
    }
}
