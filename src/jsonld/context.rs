//! JSON-LD 1.1 context processing (W3C JSON-LD 1.1 API §4.1-4.2) for the features our pinned
//! contexts use, with processed contexts memoized so each is processed once per process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::{Map, Value};

use super::JsonLdError;
use super::loader::ContextLoader;

/// Upper bound on memoized derivations per active context: pinned contexts need a few dozen; the
/// bound only keeps hostile type combinations from growing memory without limit.
const MAX_DERIVED: usize = 256;

static NEXT_CONTEXT_ID: AtomicU64 = AtomicU64::new(1);

/// An unprocessed context (the value of an `@context` entry) with an identity for memoization.
#[derive(Debug)]
pub(crate) struct LocalContext {
    id: u64,
    /// Only contexts that come from bundled documents are memoized: inline contexts of documents
    /// are processed per call, so hostile input cannot grow the caches.
    pinned: bool,
    pub(crate) value: Value,
}

impl LocalContext {
    pub(crate) fn new(value: Value, pinned: bool) -> Self {
        Self {
            id: NEXT_CONTEXT_ID.fetch_add(1, Ordering::Relaxed),
            pinned,
            value,
        }
    }
}

/// How a term coerces its values (`@type` in a term definition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TypeMapping {
    Id,
    Vocab,
    Json,
    None,
    Iri(Arc<str>),
}

/// The containers our contexts use; others are refused as unsupported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Container {
    #[default]
    None,
    Set,
    List,
    Graph,
}

/// A processed term definition.
#[derive(Debug, Clone)]
pub(crate) struct TermDefinition {
    /// Expanded IRI, blank node identifier or keyword.
    pub(crate) iri: Arc<str>,
    pub(crate) prefix: bool,
    pub(crate) protected: bool,
    pub(crate) type_mapping: Option<TypeMapping>,
    pub(crate) container: Container,
    pub(crate) context: Option<Arc<LocalContext>>,
}

impl TermDefinition {
    /// Equality "other than the value of protected" (used for protected-term redefinition).
    fn same_as(&self, other: &Self) -> bool {
        self.iri == other.iri
            && self.prefix == other.prefix
            && self.type_mapping == other.type_mapping
            && self.container == other.container
            && match (&self.context, &other.context) {
                (None, None) => true,
                (Some(a), Some(b)) => a.id == b.id || a.value == b.value,
                _ => false,
            }
    }
}

/// A processed (active) context. Immutable once built; derivations are memoized inside it.
#[derive(Debug, Default)]
pub(crate) struct ActiveContext {
    pub(crate) terms: HashMap<Arc<str>, Arc<TermDefinition>>,
    pub(crate) vocab: Option<Arc<str>>,
    /// The context to revert to when a type-scoped (non-propagated) context stops applying.
    pub(crate) previous: Option<Arc<ActiveContext>>,
    /// Memo: (local context id, is type-scoped) -> result of processing it on top of `self`.
    derived: RwLock<HashMap<(u64, bool), Arc<ActiveContext>>>,
    /// Whether this context is itself held by a memo (the loader's, or a memoized parent's), and
    /// so lives as long as the loader. Only such contexts memoize derivations: a derived context of
    /// a type-scoped context points back at its parent (`previous`), so a per-document context
    /// that memoized its derivations would form a reference cycle and never be freed.
    memoized: AtomicBool,
}

impl ActiveContext {
    fn clone_for_processing(&self) -> Self {
        Self {
            terms: self.terms.clone(),
            vocab: self.vocab.clone(),
            previous: self.previous.clone(),
            derived: RwLock::default(),
            memoized: AtomicBool::new(false),
        }
    }

    /// Marks this context as held by a memo for the loader's lifetime.
    pub(crate) fn mark_memoized(&self) {
        self.memoized.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_memoized(&self) -> bool {
        self.memoized.load(Ordering::Relaxed)
    }

    pub(crate) fn term(&self, name: &str) -> Option<&Arc<TermDefinition>> {
        self.terms.get(name)
    }

    /// Applies a scoped context from a term definition: type-scoped ones do not propagate and
    /// may not override protected terms; property-scoped ones do both (JSON-LD 1.1 §4.1.2).
    pub(crate) fn apply_scoped(
        self: &Arc<Self>,
        local: &Arc<LocalContext>,
        type_scoped: bool,
        loader: &ContextLoader,
    ) -> Result<Arc<Self>, JsonLdError> {
        let key = (local.id, type_scoped);
        let memoize = local.pinned && self.is_memoized();
        if memoize
            && let Ok(memo) = self.derived.read()
            && let Some(found) = memo.get(&key)
        {
            return Ok(found.clone());
        }
        let processed = Arc::new(process_context(
            self,
            &local.value,
            ProcessOptions {
                override_protected: !type_scoped,
                propagate: !type_scoped,
                pinned: local.pinned,
            },
            loader,
            &mut Vec::new(),
        )?);
        if memoize
            && let Ok(mut memo) = self.derived.write()
            && memo.len() < MAX_DERIVED
        {
            processed.mark_memoized();
            memo.insert(key, processed.clone());
        }
        Ok(processed)
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcessOptions {
    pub(crate) override_protected: bool,
    pub(crate) propagate: bool,
    /// Whether the local context comes from a bundled document (its scoped contexts are memoized).
    pub(crate) pinned: bool,
}

/// JSON-LD 1.1 Context Processing Algorithm.
pub(crate) fn process_context(
    active: &Arc<ActiveContext>,
    local: &Value,
    options: ProcessOptions,
    loader: &ContextLoader,
    remote_stack: &mut Vec<String>,
) -> Result<ActiveContext, JsonLdError> {
    let mut result = active.clone_for_processing();
    let mut propagate = options.propagate;
    if let Some(p) = local.as_object().and_then(|o| o.get("@propagate")) {
        propagate = p
            .as_bool()
            .ok_or_else(|| JsonLdError::InvalidContext("@propagate must be a boolean".into()))?;
    }
    if !propagate && result.previous.is_none() {
        result.previous = Some(active.clone());
    }
    let items: &[Value] = match local {
        Value::Array(items) => items,
        single => std::slice::from_ref(single),
    };
    for item in items {
        match item {
            Value::Null => {
                if !options.override_protected && result.terms.values().any(|t| t.protected) {
                    return Err(JsonLdError::InvalidContext(
                        "a context nullification would drop protected terms".into(),
                    ));
                }
                let previous = if propagate {
                    None
                } else {
                    Some(Arc::new(result.clone_for_processing()))
                };
                result = ActiveContext {
                    previous,
                    ..ActiveContext::default()
                };
            }
            Value::String(url) => {
                if remote_stack.iter().any(|u| u == url) {
                    return Err(JsonLdError::InvalidContext(format!(
                        "recursive context inclusion of {url}"
                    )));
                }
                let document = loader.pinned_document(url)?;
                remote_stack.push(url.clone());
                let current = Arc::new(result);
                result = process_context(
                    &current,
                    &document.value,
                    ProcessOptions {
                        override_protected: false,
                        propagate: true,
                        pinned: true,
                    },
                    loader,
                    remote_stack,
                )?;
                remote_stack.pop();
            }
            Value::Object(definition) => {
                // A map holding `@context` stands for that context (JSON-LD 1.1 API §4.1.2
                // step 5.5.1, as jsonld.js and pyld "dereference @context key if present"); what
                // it holds must then be a context definition.
                let definition = match definition.get("@context") {
                    None => definition,
                    Some(Value::Object(inner)) => inner,
                    Some(_) => {
                        return Err(JsonLdError::InvalidContext(
                            "invalid local context: a nested @context must be an object".into(),
                        ));
                    }
                };
                process_context_object(&mut result, definition, options)?;
            }
            _ => {
                return Err(JsonLdError::InvalidContext(
                    "a context must be null, a string or an object".into(),
                ));
            }
        }
    }
    Ok(result)
}

fn process_context_object(
    result: &mut ActiveContext,
    definition: &Map<String, Value>,
    options: ProcessOptions,
) -> Result<(), JsonLdError> {
    if let Some(version) = definition.get("@version")
        && version.as_f64() != Some(1.1)
    {
        return Err(JsonLdError::InvalidContext("@version must be 1.1".into()));
    }
    for unsupported in ["@import", "@base", "@language", "@direction"] {
        if definition.contains_key(unsupported) {
            return Err(JsonLdError::Unsupported(match unsupported {
                "@import" => "@import in a context",
                "@base" => "@base in a context",
                "@language" => "@language in a context",
                _ => "@direction in a context",
            }));
        }
    }
    if let Some(vocab) = definition.get("@vocab") {
        match vocab {
            Value::Null => result.vocab = None,
            Value::String(v) => {
                let expanded = expand_iri(result, v, true, true)
                    .filter(|iri| is_absolute_iri(iri) || iri.starts_with("_:"))
                    .ok_or_else(|| {
                        JsonLdError::InvalidContext(format!("invalid @vocab mapping `{v}`"))
                    })?;
                result.vocab = Some(Arc::from(expanded));
            }
            _ => {
                return Err(JsonLdError::InvalidContext(
                    "@vocab must be a string or null".into(),
                ));
            }
        }
    }
    let protected_default = match definition.get("@protected") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(JsonLdError::InvalidContext(
                "@protected must be a boolean".into(),
            ));
        }
    };
    let mut creator = TermCreator {
        local: definition,
        defined: HashMap::new(),
        protected_default,
        override_protected: options.override_protected,
        pinned: options.pinned,
    };
    for term in definition.keys() {
        if matches!(
            term.as_str(),
            "@base"
                | "@direction"
                | "@import"
                | "@language"
                | "@propagate"
                | "@protected"
                | "@version"
                | "@vocab"
        ) {
            continue;
        }
        creator.create(result, term)?;
    }
    Ok(())
}

struct TermCreator<'a> {
    local: &'a Map<String, Value>,
    /// false = being defined (cycle detection), true = done.
    defined: HashMap<&'a str, bool>,
    protected_default: bool,
    override_protected: bool,
    pinned: bool,
}

impl<'a> TermCreator<'a> {
    /// Create Term Definition (JSON-LD 1.1 §4.2.2).
    fn create(&mut self, active: &mut ActiveContext, term: &'a str) -> Result<(), JsonLdError> {
        match self.defined.get(term) {
            Some(true) => return Ok(()),
            Some(false) => {
                return Err(JsonLdError::InvalidContext(format!(
                    "cyclic IRI mapping for `{term}`"
                )));
            }
            None => {}
        }
        if term.is_empty() {
            return Err(JsonLdError::InvalidContext("empty term".into()));
        }
        self.defined.insert(term, false);
        let value = self.local.get(term).unwrap_or(&Value::Null);
        if term == "@type" {
            return Err(JsonLdError::Unsupported("redefining @type"));
        }
        if is_keyword(term) {
            return Err(JsonLdError::InvalidContext(format!(
                "keyword `{term}` redefined"
            )));
        }
        if looks_like_keyword(term) {
            // The spec ignores such terms (with a warning).
            self.defined.insert(term, true);
            return Ok(());
        }
        let previous = active.terms.remove(term);
        let (definition_map, simple) = match value {
            Value::String(_) => (None, true),
            Value::Object(map) => (Some(map), false),
            Value::Null => return Err(JsonLdError::Unsupported("terms mapped to null")),
            _ => {
                return Err(JsonLdError::InvalidContext(format!(
                    "invalid definition of `{term}`"
                )));
            }
        };
        let id_value: Option<&Value> = match (value, definition_map) {
            (Value::String(_), _) => Some(value),
            (_, Some(map)) => map.get("@id"),
            _ => None,
        };
        let mut protected = self.protected_default;
        let mut type_mapping = None;
        let mut container = Container::None;
        let mut context = None;
        let mut prefix_flag: Option<bool> = None;
        if let Some(map) = definition_map {
            for key in map.keys() {
                match key.as_str() {
                    "@id" | "@type" | "@container" | "@context" | "@protected" | "@prefix" => {}
                    "@reverse" => return Err(JsonLdError::Unsupported("@reverse terms")),
                    "@language" => return Err(JsonLdError::Unsupported("@language terms")),
                    "@direction" => return Err(JsonLdError::Unsupported("@direction terms")),
                    "@index" => return Err(JsonLdError::Unsupported("@index terms")),
                    "@nest" => return Err(JsonLdError::Unsupported("@nest terms")),
                    other => {
                        return Err(JsonLdError::InvalidContext(format!(
                            "invalid key `{other}` in the definition of `{term}`"
                        )));
                    }
                }
            }
            if let Some(p) = map.get("@protected") {
                protected = p.as_bool().ok_or_else(|| {
                    JsonLdError::InvalidContext("@protected must be a boolean".into())
                })?;
            }
            if let Some(t) = map.get("@type") {
                let t = t.as_str().ok_or_else(|| {
                    JsonLdError::InvalidContext(format!("invalid @type for `{term}`"))
                })?;
                let expanded = self.expand_iri(active, t, false, true)?;
                type_mapping = Some(match expanded.as_deref() {
                    Some("@id") => TypeMapping::Id,
                    Some("@vocab") => TypeMapping::Vocab,
                    Some("@json") => TypeMapping::Json,
                    Some("@none") => TypeMapping::None,
                    Some(iri) if is_absolute_iri(iri) => TypeMapping::Iri(Arc::from(iri)),
                    _ => {
                        return Err(JsonLdError::InvalidContext(format!(
                            "invalid type mapping `{t}` for `{term}`"
                        )));
                    }
                });
            }
            if let Some(c) = map.get("@container") {
                container = parse_container(c)?;
            }
            if let Some(c) = map.get("@context") {
                context = Some(Arc::new(LocalContext::new(c.clone(), self.pinned)));
            }
            if let Some(p) = map.get("@prefix") {
                if term.contains(':') || term.contains('/') {
                    return Err(JsonLdError::InvalidContext(format!(
                        "@prefix on compact IRI or IRI term `{term}`"
                    )));
                }
                prefix_flag = Some(p.as_bool().ok_or_else(|| {
                    JsonLdError::InvalidContext("@prefix must be a boolean".into())
                })?);
            }
        }
        let iri: String;
        let mut prefix = false;
        match id_value {
            Some(Value::String(id)) if id != term => {
                if !is_keyword(id) && looks_like_keyword(id) {
                    self.defined.insert(term, true);
                    return Ok(());
                }
                iri = self.expand_iri(active, id, false, true)?.ok_or_else(|| {
                    JsonLdError::InvalidContext(format!("invalid IRI mapping for `{term}`"))
                })?;
                if !(is_keyword(&iri) || is_absolute_iri(&iri) || iri.starts_with("_:")) {
                    return Err(JsonLdError::InvalidContext(format!(
                        "invalid IRI mapping for `{term}`"
                    )));
                }
                if iri == "@context" {
                    return Err(JsonLdError::InvalidContext("term aliasing @context".into()));
                }
                let inner_colon = term.find(':').is_some_and(|i| i > 0 && i + 1 < term.len());
                if inner_colon || term.contains('/') {
                    self.defined.insert(term, true);
                    let as_iri = self.expand_iri(active, term, false, true)?;
                    if as_iri.as_deref() != Some(iri.as_str()) {
                        return Err(JsonLdError::InvalidContext(format!(
                            "term `{term}` looks like an IRI but maps elsewhere"
                        )));
                    }
                }
                if !term.contains(':') && !term.contains('/') && simple {
                    prefix =
                        iri.ends_with([':', '/', '?', '#', '[', ']', '@']) || iri.starts_with("_:");
                }
            }
            Some(Value::String(_)) | None => {
                if let Some(colon) = colon_after_first(term) {
                    let (prefix_part, suffix) = (&term[..colon], &term[colon + 1..]);
                    if self.local.contains_key(prefix_part) {
                        let key = self
                            .local
                            .get_key_value(prefix_part)
                            .map(|(k, _)| k.as_str())
                            .unwrap_or(prefix_part);
                        self.create(active, key)?;
                    }
                    iri = match active.terms.get(prefix_part) {
                        Some(def) => format!("{}{suffix}", def.iri),
                        None => term.to_owned(),
                    };
                } else if term.contains('/') {
                    iri = expand_iri(active, term, false, true)
                        .filter(|i| is_absolute_iri(i))
                        .ok_or_else(|| {
                            JsonLdError::InvalidContext(format!("invalid IRI term `{term}`"))
                        })?;
                } else if let Some(vocab) = &active.vocab {
                    iri = format!("{vocab}{term}");
                } else {
                    return Err(JsonLdError::InvalidContext(format!(
                        "no IRI mapping for `{term}`"
                    )));
                }
            }
            Some(Value::Null) => return Err(JsonLdError::Unsupported("terms mapped to null")),
            Some(_) => {
                return Err(JsonLdError::InvalidContext(format!(
                    "@id of `{term}` must be a string"
                )));
            }
        }
        if let Some(p) = prefix_flag {
            prefix = p;
        }
        let mut definition = TermDefinition {
            iri: Arc::from(iri),
            prefix,
            protected,
            type_mapping,
            container,
            context,
        };
        if let Some(previous) = previous
            && previous.protected
            && !self.override_protected
        {
            if !definition.same_as(&previous) {
                return Err(JsonLdError::ProtectedTermRedefinition {
                    term: term.to_owned(),
                });
            }
            definition = (*previous).clone();
        }
        active.terms.insert(Arc::from(term), Arc::new(definition));
        self.defined.insert(term, true);
        Ok(())
    }

    /// IRI expansion while a local context is being processed: terms of the local context are
    /// defined on demand first (JSON-LD 1.1 §5.2.2 steps 4 and 6.3).
    fn expand_iri(
        &mut self,
        active: &mut ActiveContext,
        value: &'a str,
        document_relative: bool,
        vocab: bool,
    ) -> Result<Option<String>, JsonLdError> {
        if is_keyword(value) {
            return Ok(Some(value.to_owned()));
        }
        if looks_like_keyword(value) {
            return Ok(None);
        }
        if let Some((key, _)) = self.local.get_key_value(value)
            && self.defined.get(value) != Some(&true)
        {
            self.create(active, key.as_str())?;
        }
        if let Some(colon) = colon_after_first(value) {
            let prefix = &value[..colon];
            if let Some((key, _)) = self.local.get_key_value(prefix)
                && self.defined.get(prefix) != Some(&true)
            {
                self.create(active, key.as_str())?;
            }
        }
        Ok(expand_iri(active, value, document_relative, vocab))
    }
}

fn parse_container(value: &Value) -> Result<Container, JsonLdError> {
    let one = |s: &str| match s {
        "@set" => Ok(Container::Set),
        "@list" => Ok(Container::List),
        "@graph" => Ok(Container::Graph),
        "@index" | "@language" | "@id" | "@type" => Err(JsonLdError::Unsupported(
            "map containers (@index, @language, @id, @type)",
        )),
        other => Err(JsonLdError::InvalidContext(format!(
            "invalid container `{other}`"
        ))),
    };
    match value {
        Value::String(s) => one(s),
        Value::Array(items) => {
            let mut result = Container::None;
            for item in items {
                let c = one(item.as_str().ok_or_else(|| {
                    JsonLdError::InvalidContext("container entries must be strings".into())
                })?)?;
                result = match (result, c) {
                    (Container::None, c) | (c, Container::Set) | (Container::Set, c) => c,
                    _ => {
                        return Err(JsonLdError::Unsupported("combined containers"));
                    }
                };
            }
            Ok(result)
        }
        _ => Err(JsonLdError::InvalidContext(
            "@container must be a string or an array".into(),
        )),
    }
}

/// IRI Expansion (JSON-LD 1.1 §5.2.2) against a fully processed context. Without a base IRI a
/// relative reference stays relative; callers decide whether that is acceptable.
pub(crate) fn expand_iri(
    active: &ActiveContext,
    value: &str,
    _document_relative: bool,
    vocab: bool,
) -> Option<String> {
    if is_keyword(value) {
        return Some(value.to_owned());
    }
    if looks_like_keyword(value) {
        return None;
    }
    if vocab && let Some(def) = active.terms.get(value) {
        return Some(def.iri.to_string());
    }
    if let Some(colon) = colon_after_first(value) {
        let (prefix, suffix) = (&value[..colon], &value[colon + 1..]);
        if prefix == "_" || suffix.starts_with("//") {
            return Some(value.to_owned());
        }
        if let Some(def) = active.terms.get(prefix)
            && def.prefix
        {
            return Some(format!("{}{suffix}", def.iri));
        }
        if is_absolute_iri(value) {
            return Some(value.to_owned());
        }
    }
    if vocab && let Some(v) = &active.vocab {
        return Some(format!("{v}{value}"));
    }
    Some(value.to_owned())
}

pub(crate) fn is_keyword(s: &str) -> bool {
    matches!(
        s,
        "@base"
            | "@container"
            | "@context"
            | "@direction"
            | "@graph"
            | "@id"
            | "@import"
            | "@included"
            | "@index"
            | "@json"
            | "@language"
            | "@list"
            | "@nest"
            | "@none"
            | "@prefix"
            | "@propagate"
            | "@protected"
            | "@reverse"
            | "@set"
            | "@type"
            | "@value"
            | "@version"
            | "@vocab"
    )
}

/// `@` followed by one or more ALPHA: reserved for future keywords and ignored.
pub(crate) fn looks_like_keyword(s: &str) -> bool {
    s.len() > 1 && s.starts_with('@') && s[1..].bytes().all(|b| b.is_ascii_alphabetic())
}

/// An absolute IRI: a scheme (ALPHA *(ALPHA / DIGIT / "+" / "-" / ".")) and ':', and none of the
/// characters RFC 3987 forbids anywhere in an IRI (spaces, controls, `<>"{}|\^` and backtick).
pub(crate) fn is_absolute_iri(s: &str) -> bool {
    let Some(colon) = s.find(':') else {
        return false;
    };
    let scheme = &s[..colon];
    let mut bytes = scheme.bytes();
    if !bytes.next().is_some_and(|b| b.is_ascii_alphabetic()) {
        return false;
    }
    if !bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')) {
        return false;
    }
    !s.chars().any(|c| {
        c.is_control()
            || c.is_whitespace()
            || matches!(c, '<' | '>' | '"' | '{' | '}' | '|' | '\\' | '^' | '`')
    })
}

/// Byte index of the first `:` that is not the first character.
fn colon_after_first(s: &str) -> Option<usize> {
    s.char_indices()
        .skip(1)
        .find(|&(_, c)| c == ':')
        .map(|(i, _)| i)
}
