//! JSON-LD 1.1 Expansion (§5.1) fused with Deserialize JSON-LD to RDF (§8.1): nodes are turned
//! into quads as they are expanded, without building the expanded document or a node map. Blank
//! node labels need not follow the spec's order because RDFC-1.0 relabels them anyway.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Number, Value};

use super::JsonLdError;
use super::context::{
    ActiveContext, Container, TermDefinition, TypeMapping, expand_iri, is_absolute_iri,
};
use super::loader::ContextLoader;
use super::rdf::{
    Iri, Literal, LiteralTag, Node, Object, Quad, RDF_FIRST, RDF_JSON, RDF_NIL, RDF_REST, RDF_TYPE,
    XSD_BOOLEAN, XSD_DOUBLE, XSD_INTEGER, XSD_NAMESPACE, XSD_STRING,
};

/// A non-keyword entry of a node object, with its expanded IRI and term definition.
struct Property<'a> {
    key: &'a str,
    iri: Arc<str>,
    definition: Option<Arc<TermDefinition>>,
    value: &'a Value,
}

/// What expanding one JSON value yields to its parent.
enum Expanded {
    /// A node object or reference; its own quads are already emitted.
    Node(Node),
    Literal(Literal),
    List(Vec<Expanded>),
}

/// Which literal forms to produce where stock `ssi` departs from JSON-LD 1.1 §8.1.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// The specification: what jsonld.js, pyld and Titanium produce.
    #[default]
    Rdfc10,
    /// Stock `ssi` 0.16: booleans always `xsd:boolean`; numbers typed with a non-XSD IRI keep
    /// their JSON text. Only for verifying credentials that `ssi`-based issuers signed.
    SsiCompatible,
}

/// Top-level instructions that let callers canonicalize a variant of a document without
/// copying it (the document without `proof`, a proof with the document's `@context`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TopLevel<'a> {
    /// Use this instead of the document's own `@context`.
    pub(crate) context: Option<&'a Value>,
    /// Ignore these top-level entries.
    pub(crate) skip: &'a [&'a str],
}

/// Converts a JSON-LD document into RDF quads.
pub(crate) struct Expander<'l> {
    loader: &'l ContextLoader,
    pub(crate) quads: Vec<Quad>,
    pub(crate) blank_count: u32,
    document_blanks: HashMap<String, u32>,
    profile: Profile,
    /// Set when a literal was met whose `ssi` form differs from the spec form.
    pub(crate) diverged: bool,
}

impl<'l> Expander<'l> {
    pub(crate) fn new(loader: &'l ContextLoader, profile: Profile) -> Self {
        Self {
            loader,
            quads: Vec::with_capacity(64),
            blank_count: 0,
            document_blanks: HashMap::new(),
            profile,
            diverged: false,
        }
    }

    /// RDF literal for a JSON scalar, in the spec's form or, for [`Profile::SsiCompatible`],
    /// in the form stock `ssi` 0.16 writes for typed booleans and numbers.
    fn literal(&mut self, value: &Value, datatype: Option<Iri>) -> Result<Literal, JsonLdError> {
        let spec = scalar_literal(value, datatype.clone())?;
        let ssi_form = match (value, &datatype) {
            // ssi always writes xsd:boolean, whatever the term's datatype.
            (Value::Bool(_), Some(dt)) if dt.as_str() != XSD_BOOLEAN => Some(Literal {
                lexical: spec.lexical.clone(),
                tag: LiteralTag::Datatype(Iri::Static(XSD_BOOLEAN)),
            }),
            // ssi keeps the JSON text of a number typed outside the XSD namespace (the OB
            // contexts' `https://www.w3.org/2001/XMLSchema#float`), where the spec converts it.
            (Value::Number(n), Some(dt)) if !dt.as_str().starts_with(XSD_NAMESPACE) => {
                let text = n.to_string();
                (text.as_str() != &*spec.lexical).then(|| Literal {
                    lexical: text.into_boxed_str(),
                    tag: spec.tag.clone(),
                })
            }
            _ => None,
        };
        match ssi_form {
            None => Ok(spec),
            Some(ssi_form) => {
                self.diverged = true;
                Ok(match self.profile {
                    Profile::Rdfc10 => spec,
                    Profile::SsiCompatible => ssi_form,
                })
            }
        }
    }

    /// A `@language` value as JSON-LD 1.1 expansion leaves it: lower-cased (jsonld.js and pyld
    /// do; stock `ssi` keeps the case, so [`Profile::SsiCompatible`] does too) and, as jsonld.js
    /// safe mode requires, well-formed BCP 47.
    fn language_tag(&mut self, tag: &str) -> Result<String, JsonLdError> {
        if !is_bcp47(tag) {
            return Err(JsonLdError::InvalidDocument(format!(
                "invalid @language value `{tag}`: not a BCP 47 language tag"
            )));
        }
        let lower = tag.to_ascii_lowercase();
        if lower == tag {
            return Ok(lower);
        }
        self.diverged = true;
        Ok(match self.profile {
            Profile::Rdfc10 => lower,
            Profile::SsiCompatible => tag.to_owned(),
        })
    }

    fn fresh_blank(&mut self) -> Node {
        Node::Blank(self.fresh_blank_number())
    }

    fn fresh_blank_number(&mut self) -> u32 {
        let b = self.blank_count;
        self.blank_count += 1;
        b
    }

    /// Blank node identifiers written in the document keep their identity across the document.
    fn document_blank(&mut self, label: &str) -> Node {
        if let Some(&b) = self.document_blanks.get(label) {
            return Node::Blank(b);
        }
        let b = self.fresh_blank_number();
        self.document_blanks.insert(label.to_owned(), b);
        Node::Blank(b)
    }

    /// Expands a whole document into `self.quads`.
    pub(crate) fn expand_document(
        &mut self,
        document: &Value,
        top: TopLevel<'_>,
    ) -> Result<(), JsonLdError> {
        let empty = self.loader.empty_context();
        let mut out = Vec::new();
        match document {
            Value::Object(map) => self.expand_object(&empty, None, map, &None, top, &mut out)?,
            Value::Array(items) => {
                for item in items {
                    self.expand(&empty, None, item, &None, &mut out)?;
                }
            }
            _ => {
                return Err(JsonLdError::InvalidDocument(
                    "a JSON-LD document must be an object or an array".into(),
                ));
            }
        }
        Self::reject_free_floating_lists(&out)
    }

    fn reject_free_floating_lists(out: &[Expanded]) -> Result<(), JsonLdError> {
        if out.iter().any(|e| matches!(e, Expanded::List(_))) {
            return Err(JsonLdError::Unsupported("free-floating lists"));
        }
        Ok(())
    }

    fn emit(&mut self, subject: Node, predicate: Iri, object: Object, graph: &Option<Node>) {
        self.quads.push(Quad {
            subject,
            predicate,
            object,
            graph: graph.clone(),
        });
    }

    /// Turns an expanded value into an RDF object, emitting list structure as needed.
    fn object_of(&mut self, value: Expanded, graph: &Option<Node>) -> Object {
        match value {
            Expanded::Node(n) => Object::Node(n),
            Expanded::Literal(l) => Object::Literal(l),
            Expanded::List(items) => Object::Node(self.emit_list(items, graph)),
        }
    }

    /// RDF collection for a list object (JSON-LD 1.1 API §8.1.3 List to RDF).
    fn emit_list(&mut self, items: Vec<Expanded>, graph: &Option<Node>) -> Node {
        if items.is_empty() {
            return Node::Iri(Iri::Static(RDF_NIL));
        }
        let blanks: Vec<Node> = (0..items.len()).map(|_| self.fresh_blank()).collect();
        for (i, item) in items.into_iter().enumerate() {
            let object = self.object_of(item, graph);
            self.emit(blanks[i].clone(), Iri::Static(RDF_FIRST), object, graph);
            let rest = match blanks.get(i + 1) {
                Some(next) => next.clone(),
                None => Node::Iri(Iri::Static(RDF_NIL)),
            };
            self.emit(
                blanks[i].clone(),
                Iri::Static(RDF_REST),
                Object::Node(rest),
                graph,
            );
        }
        blanks[0].clone()
    }

    /// Expansion algorithm entry point for any JSON value.
    fn expand(
        &mut self,
        ctx: &Arc<ActiveContext>,
        active_property: Option<&str>,
        element: &Value,
        graph: &Option<Node>,
        out: &mut Vec<Expanded>,
    ) -> Result<(), JsonLdError> {
        match element {
            Value::Null => Ok(()),
            Value::Array(items) => {
                let is_list = active_property
                    .and_then(|p| ctx.term(p))
                    .is_some_and(|t| t.container == Container::List);
                for item in items {
                    if is_list && item.is_array() {
                        let mut inner = Vec::new();
                        self.expand(ctx, active_property, item, graph, &mut inner)?;
                        out.push(Expanded::List(inner));
                    } else {
                        self.expand(ctx, active_property, item, graph, out)?;
                    }
                }
                Ok(())
            }
            Value::Object(map) => {
                self.expand_object(ctx, active_property, map, graph, TopLevel::default(), out)
            }
            scalar => {
                let Some(property) = active_property.filter(|p| *p != "@graph") else {
                    // Free-floating scalars are dropped by the spec.
                    return Ok(());
                };
                let mut scoped = ctx.clone();
                if let Some(local) = ctx.term(property).and_then(|t| t.context.clone()) {
                    scoped = ctx.apply_scoped(&local, false, self.loader)?;
                }
                let definition = scoped.term(property).cloned();
                out.push(self.expand_value(&scoped, definition.as_deref(), scalar)?);
                Ok(())
            }
        }
    }

    /// Value Expansion (§5.3.2) followed by RDF literal conversion.
    fn expand_value(
        &mut self,
        ctx: &ActiveContext,
        definition: Option<&TermDefinition>,
        value: &Value,
    ) -> Result<Expanded, JsonLdError> {
        let mapping = definition.and_then(|d| d.type_mapping.as_ref());
        match (mapping, value) {
            (Some(TypeMapping::Id), Value::String(s)) => {
                Ok(Expanded::Node(self.node_id(ctx, s, false)?))
            }
            (Some(TypeMapping::Vocab), Value::String(s)) => {
                Ok(Expanded::Node(self.node_id(ctx, s, true)?))
            }
            (Some(TypeMapping::Iri(t)), v) => Ok(Expanded::Literal(
                self.literal(v, Some(Iri::Shared(t.clone())))?,
            )),
            (_, v) => Ok(Expanded::Literal(self.literal(v, None)?)),
        }
    }

    /// Expands an identifier (`@id` value or `@type: @id`/`@vocab` value) into a node; relative
    /// references cannot be signed meaningfully without a base, so they are refused.
    fn node_id(
        &mut self,
        ctx: &ActiveContext,
        value: &str,
        vocab: bool,
    ) -> Result<Node, JsonLdError> {
        if vocab && let Some(def) = ctx.term(value) {
            return self.node_from_expanded(&def.iri.clone(), value);
        }
        let expanded =
            expand_iri(ctx, value, true, vocab).ok_or_else(|| JsonLdError::InvalidIri {
                value: value.to_owned(),
            })?;
        self.node_from_expanded(&expanded, value)
    }

    fn node_from_expanded(&mut self, expanded: &str, original: &str) -> Result<Node, JsonLdError> {
        if let Some(label) = expanded.strip_prefix("_:") {
            Ok(self.document_blank(label))
        } else if is_absolute_iri(expanded) {
            Ok(Node::Iri(Iri::Shared(Arc::from(expanded))))
        } else {
            Err(JsonLdError::InvalidIri {
                value: original.to_owned(),
            })
        }
    }

    /// Expansion of a map (§5.1.2 steps 7-20) and the quads of the node it describes.
    fn expand_object(
        &mut self,
        ctx: &Arc<ActiveContext>,
        active_property: Option<&str>,
        map: &Map<String, Value>,
        graph: &Option<Node>,
        top: TopLevel<'_>,
        out: &mut Vec<Expanded>,
    ) -> Result<(), JsonLdError> {
        let property_definition = active_property.and_then(|p| ctx.term(p)).cloned();
        let mut active = ctx.clone();
        // Step 7: type-scoped contexts do not reach into nested node objects.
        if let Some(previous) = &active.previous {
            let is_value = map.keys().any(|k| keyword_of(&active, k) == Some("@value"));
            let is_reference =
                map.len() == 1 && map.keys().all(|k| keyword_of(&active, k) == Some("@id"));
            if !is_value && !is_reference {
                active = previous.clone();
            }
        }
        // Step 8: property-scoped context.
        if let Some(local) = property_definition
            .as_ref()
            .and_then(|d| d.context.as_ref())
        {
            active = active.apply_scoped(local, false, self.loader)?;
        }
        // Step 9: embedded context.
        let embedded = match top.context {
            Some(c) => Some(c),
            None => map.get("@context"),
        };
        if let Some(local) = embedded {
            active = self.loader.process_embedded(&active, local)?;
        }
        // Steps 10-11: type-scoped contexts, looked up in the context before any of them apply.
        let type_scoped = active.clone();
        let mut type_keys: Vec<&String> = map
            .keys()
            .filter(|k| keyword_of(&type_scoped, k) == Some("@type"))
            .collect();
        type_keys.sort();
        let mut type_values: Vec<&str> = Vec::new();
        for key in &type_keys {
            match &map[key.as_str()] {
                Value::String(s) => type_values.push(s),
                Value::Array(items) => {
                    for item in items {
                        type_values.push(item.as_str().ok_or_else(|| {
                            JsonLdError::InvalidDocument("@type values must be strings".into())
                        })?);
                    }
                }
                _ => {
                    return Err(JsonLdError::InvalidDocument(
                        "@type values must be strings".into(),
                    ));
                }
            }
        }
        {
            let mut sorted = type_values.clone();
            sorted.sort_unstable();
            for value in sorted {
                if let Some(local) = type_scoped.term(value).and_then(|t| t.context.as_ref()) {
                    active = active.apply_scoped(local, true, self.loader)?;
                }
            }
        }

        // Classify the map by the keywords its keys expand to.
        let mut id_value: Option<&Value> = None;
        let mut value_entry: Option<&Value> = None;
        let mut list_entry: Option<&Value> = None;
        let mut set_entry: Option<&Value> = None;
        let mut graph_entry: Option<&Value> = None;
        let mut language: Option<&Value> = None;
        let mut direction: Option<&Value> = None;
        let mut properties: Vec<Property<'_>> = Vec::with_capacity(map.len());
        let mut undefined_term: Option<&String> = None;
        for (key, value) in map {
            if key == "@context" || top.skip.contains(&key.as_str()) {
                continue;
            }
            let (expanded, definition) = match active.term(key) {
                Some(def) => (def.iri.clone(), Some(def.clone())),
                None => match expand_iri(&active, key, false, true) {
                    Some(iri) => (Arc::from(iri), None),
                    None => continue, // keyword-like keys are ignored by the spec
                },
            };
            match &*expanded {
                "@id" => id_value = Some(value),
                "@type" => {}
                "@value" => value_entry = Some(value),
                "@list" => list_entry = Some(value),
                "@set" => set_entry = Some(value),
                "@graph" => graph_entry = Some(value),
                "@language" => language = Some(value),
                "@index" => {}
                "@context" => {}
                "@direction" => direction = Some(value),
                "@reverse" => return Err(JsonLdError::Unsupported("@reverse")),
                "@included" => return Err(JsonLdError::Unsupported("@included")),
                "@nest" => return Err(JsonLdError::Unsupported("@nest")),
                iri if iri.starts_with('@') => {
                    return Err(JsonLdError::InvalidDocument(format!(
                        "keyword `{iri}` is not allowed here"
                    )));
                }
                iri if iri.starts_with("_:") => {
                    return Err(JsonLdError::Unsupported("blank node properties"));
                }
                iri if is_absolute_iri(iri) => properties.push(Property {
                    key,
                    iri: expanded.clone(),
                    definition,
                    value,
                }),
                _ => {
                    undefined_term.get_or_insert(key);
                }
            }
        }
        // Report an undefined type before an undefined term: it names the vocabulary that is
        // missing (e.g. `DataIntegrityProof` without the Data Integrity context).
        let mut type_nodes = Vec::with_capacity(type_values.len());
        if value_entry.is_none() {
            for value in &type_values {
                type_nodes.push(self.type_node(&type_scoped, value)?);
            }
        }
        if let Some(term) = undefined_term {
            return Err(JsonLdError::UndefinedTerm { term: term.clone() });
        }

        if let Some(value) = value_entry {
            if !properties.is_empty() || list_entry.is_some() || set_entry.is_some() {
                return Err(JsonLdError::InvalidDocument(
                    "a value object has other entries".into(),
                ));
            }
            return self.value_object(
                &type_scoped,
                value,
                &type_values,
                ValueTags {
                    language,
                    direction,
                },
                active_property,
                out,
            );
        }
        if let Some(items) = list_entry.or(set_entry) {
            if !properties.is_empty() || id_value.is_some() || !type_values.is_empty() {
                return Err(JsonLdError::InvalidDocument(
                    "a list or set object has other entries".into(),
                ));
            }
            let mut inner = Vec::new();
            self.expand(&active, active_property, items, graph, &mut inner)?;
            if list_entry.is_some() {
                if active_property.is_none_or(|p| p == "@graph") {
                    return Err(JsonLdError::Unsupported("free-floating lists"));
                }
                out.push(Expanded::List(inner));
            } else {
                out.extend(inner);
            }
            return Ok(());
        }
        if language.is_some() {
            return Err(JsonLdError::InvalidDocument(
                "@language outside a value object".into(),
            ));
        }
        if direction.is_some() {
            return Err(JsonLdError::InvalidDocument(
                "@direction outside a value object".into(),
            ));
        }

        // A top-level map holding only @graph describes the default graph (§5.1 step 8.1).
        if active_property.is_none()
            && id_value.is_none()
            && type_values.is_empty()
            && properties.is_empty()
            && let Some(contents) = graph_entry
        {
            let mut inner = Vec::new();
            self.expand(&active, Some("@graph"), contents, graph, &mut inner)?;
            return Self::reject_free_floating_lists(&inner);
        }

        let subject = match id_value {
            Some(Value::String(id)) => self.node_id(&active, id, false)?,
            Some(_) => {
                return Err(JsonLdError::InvalidDocument("@id must be a string".into()));
            }
            None => self.fresh_blank(),
        };
        for object in type_nodes {
            self.emit(
                subject.clone(),
                Iri::Static(RDF_TYPE),
                Object::Node(object),
                graph,
            );
        }
        if let Some(contents) = graph_entry {
            let mut inner = Vec::new();
            self.expand(
                &active,
                Some("@graph"),
                contents,
                &Some(subject.clone()),
                &mut inner,
            )?;
            Self::reject_free_floating_lists(&inner)?;
        }
        for Property {
            key,
            iri,
            definition,
            value,
        } in properties
        {
            let predicate = Iri::Shared(iri);
            let mut values = Vec::new();
            let container = definition.as_ref().map(|d| d.container).unwrap_or_default();
            if definition
                .as_ref()
                .is_some_and(|d| d.type_mapping == Some(TypeMapping::Json))
            {
                values.push(Expanded::Literal(Literal {
                    lexical: canonical_json(value).into_boxed_str(),
                    tag: LiteralTag::Datatype(Iri::Static(RDF_JSON)),
                }));
            } else if container == Container::Graph {
                self.expand_graph_container(&active, key, value, &mut values)?;
            } else {
                self.expand(&active, Some(key), value, graph, &mut values)?;
                if container == Container::List {
                    let already_list = !value.is_array()
                        && values.len() == 1
                        && matches!(values[0], Expanded::List(_));
                    if !already_list {
                        values = vec![Expanded::List(values)];
                    }
                }
            }
            for v in values {
                let object = self.object_of(v, graph);
                self.emit(subject.clone(), predicate.clone(), object, graph);
            }
        }
        out.push(Expanded::Node(subject));
        Ok(())
    }

    /// `@container: @graph`: every value becomes a graph object named by a fresh blank node
    /// unless it already is one (§5.1.2 step 13.8.3).
    fn expand_graph_container(
        &mut self,
        ctx: &Arc<ActiveContext>,
        key: &str,
        value: &Value,
        out: &mut Vec<Expanded>,
    ) -> Result<(), JsonLdError> {
        let items: &[Value] = match value {
            Value::Array(items) => items,
            single => std::slice::from_ref(single),
        };
        for item in items {
            if item.is_array() {
                return Err(JsonLdError::Unsupported(
                    "nested arrays in a graph container",
                ));
            }
            let is_graph_object = item.as_object().is_some_and(|m| {
                m.contains_key("@graph")
                    && m.keys()
                        .all(|k| matches!(k.as_str(), "@graph" | "@id" | "@index" | "@context"))
            });
            if is_graph_object {
                self.expand(ctx, Some(key), item, &None, out)?;
                continue;
            }
            let name = self.fresh_blank();
            let mut inner = Vec::new();
            self.expand(ctx, Some(key), item, &Some(name.clone()), &mut inner)?;
            Self::reject_free_floating_lists(&inner)?;
            out.push(Expanded::Node(name));
        }
        Ok(())
    }

    /// A `@type` value: a term, compact IRI, absolute IRI or blank node identifier; anything
    /// else is an undefined type (safe mode).
    fn type_node(&mut self, type_scoped: &ActiveContext, value: &str) -> Result<Node, JsonLdError> {
        let undefined = || JsonLdError::UndefinedType {
            value: value.to_owned(),
        };
        let expanded = match type_scoped.term(value) {
            Some(def) => def.iri.to_string(),
            None => expand_iri(type_scoped, value, true, true).ok_or_else(undefined)?,
        };
        if let Some(label) = expanded.strip_prefix("_:") {
            Ok(self.document_blank(label))
        } else if is_absolute_iri(&expanded) {
            Ok(Node::Iri(Iri::Shared(Arc::from(expanded))))
        } else {
            Err(undefined())
        }
    }

    /// An explicit value object (`{"@value": …}`).
    fn value_object(
        &mut self,
        type_scoped: &ActiveContext,
        value: &Value,
        types: &[&str],
        tags: ValueTags<'_>,
        active_property: Option<&str>,
        out: &mut Vec<Expanded>,
    ) -> Result<(), JsonLdError> {
        let ValueTags {
            language,
            direction,
        } = tags;
        if types.len() > 1 || (types.len() == 1 && (language.is_some() || direction.is_some())) {
            return Err(JsonLdError::InvalidDocument(
                "a value object has one @type, or @language and/or @direction".into(),
            ));
        }
        let direction = match direction {
            None => None,
            Some(Value::String(d)) if d == "ltr" || d == "rtl" => Some(d.as_str()),
            Some(Value::String(_)) => {
                return Err(JsonLdError::InvalidDocument(
                    "invalid base direction: @direction must be \"ltr\" or \"rtl\"".into(),
                ));
            }
            Some(_) => {
                return Err(JsonLdError::InvalidDocument(
                    "invalid base direction: @direction must be a string".into(),
                ));
            }
        };
        let language = match language {
            None => None,
            Some(Value::String(tag)) => Some(self.language_tag(tag)?),
            Some(_) => {
                return Err(JsonLdError::InvalidDocument(
                    "invalid language-tagged string: @language must be a string".into(),
                ));
            }
        };
        if active_property.is_none_or(|p| p == "@graph") {
            return Ok(()); // free-floating values are dropped
        }
        if let Some(&t) = types.first() {
            let expanded = if t == "@json" {
                "@json".to_owned()
            } else {
                match type_scoped.term(t) {
                    Some(def) => def.iri.to_string(),
                    None => expand_iri(type_scoped, t, true, true).unwrap_or_default(),
                }
            };
            if expanded == "@json" {
                out.push(Expanded::Literal(Literal {
                    lexical: canonical_json(value).into_boxed_str(),
                    tag: LiteralTag::Datatype(Iri::Static(RDF_JSON)),
                }));
                return Ok(());
            }
            if !is_absolute_iri(&expanded) {
                return Err(JsonLdError::UndefinedType {
                    value: t.to_owned(),
                });
            }
            if value.is_null() {
                return Ok(());
            }
            let literal = self.literal(value, Some(Iri::Shared(Arc::from(expanded))))?;
            out.push(Expanded::Literal(literal));
            return Ok(());
        }
        if value.is_null() {
            return Ok(());
        }
        if language.is_some() && !value.is_string() {
            return Err(JsonLdError::InvalidDocument(
                "@language needs string values".into(),
            ));
        }
        // Base direction as the Data Integrity suites canonicalize it: jsonld.js runs with
        // `rdfDirection: "i18n-datatype"` for eddsa-rdfc-2022 (JSON-LD 1.1 API §8.1.2 step 13):
        // the literal is typed `https://www.w3.org/ns/i18n#{language}_{direction}`, no language
        // tag. (Non-string values with a direction stay typed literals, as in jsonld.js.)
        if let (Some(dir), Value::String(s)) = (direction, value) {
            out.push(Expanded::Literal(Literal {
                lexical: s.as_str().into(),
                tag: LiteralTag::Datatype(Iri::Shared(Arc::from(format!(
                    "{I18N_NAMESPACE}{}_{dir}",
                    language.as_deref().unwrap_or_default()
                )))),
            }));
            return Ok(());
        }
        if let (Some(tag), Value::String(s)) = (language, value) {
            out.push(Expanded::Literal(Literal {
                lexical: s.as_str().into(),
                tag: LiteralTag::Language(tag.into_boxed_str()),
            }));
            return Ok(());
        }
        out.push(Expanded::Literal(self.literal(value, None)?));
        Ok(())
    }
}

/// The `@language` and `@direction` entries of a value object.
#[derive(Clone, Copy)]
struct ValueTags<'a> {
    language: Option<&'a Value>,
    direction: Option<&'a Value>,
}

/// Namespace of the `rdfDirection: "i18n-datatype"` datatypes.
const I18N_NAMESPACE: &str = "https://www.w3.org/ns/i18n#";

/// BCP 47 as JSON-LD processors check it (`[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*`).
fn is_bcp47(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let first_ok = parts
        .next()
        .is_some_and(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphabetic()));
    first_ok
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The keyword a key expands to, if any (a keyword itself or an alias such as `id`/`type`).
fn keyword_of<'a>(ctx: &'a ActiveContext, key: &'a str) -> Option<&'a str> {
    if key.starts_with('@') {
        return Some(key);
    }
    ctx.term(key)
        .map(|d| &*d.iri)
        .filter(|iri| iri.starts_with('@'))
}

/// RDF literal for a JSON scalar (§8.1.2 Object to RDF Conversion, steps 10-13).
fn scalar_literal(value: &Value, datatype: Option<Iri>) -> Result<Literal, JsonLdError> {
    let (lexical, default_type) = match value {
        Value::String(s) => (s.as_str().into(), XSD_STRING),
        Value::Bool(b) => (if *b { "true" } else { "false" }.into(), XSD_BOOLEAN),
        Value::Number(n) => number_lexical(
            n,
            datatype.as_ref().is_some_and(|d| d.as_str() == XSD_DOUBLE),
        ),
        _ => {
            return Err(JsonLdError::InvalidDocument(
                "a value must be a string, number or boolean".into(),
            ));
        }
    };
    Ok(Literal {
        lexical,
        tag: LiteralTag::Datatype(datatype.unwrap_or(Iri::Static(default_type))),
    })
}

/// Integers (no fractional part, below 10^21) become xsd:integer, everything else the canonical
/// xsd:double form (`1.5E0`), as JSON-LD 1.1 §8.1.2 steps 11-12 require.
fn number_lexical(n: &Number, as_double: bool) -> (Box<str>, &'static str) {
    if !as_double {
        if let Some(i) = n.as_i64() {
            return (i.to_string().into(), XSD_INTEGER);
        }
        if let Some(u) = n.as_u64() {
            return (u.to_string().into(), XSD_INTEGER);
        }
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    if !as_double && f.fract() == 0.0 && f.abs() < 1e21 {
        return (format!("{f:.0}").into(), XSD_INTEGER);
    }
    (canonical_double(f).into(), XSD_DOUBLE)
}

/// The canonical xsd:double form produced by JSON-LD processors
/// (`toExponential(15)` with trailing mantissa zeros trimmed, one kept after the point).
fn canonical_double(f: f64) -> String {
    let formatted = format!("{f:.15e}");
    let Some((mantissa, exponent)) = formatted.split_once('e') else {
        return formatted;
    };
    let mantissa = match mantissa.split_once('.') {
        Some((int, frac)) => {
            let frac = frac.trim_end_matches('0');
            format!("{int}.{}", if frac.is_empty() { "0" } else { frac })
        }
        None => format!("{mantissa}.0"),
    };
    format!("{mantissa}E{exponent}")
}

/// JSON Canonicalization Scheme (RFC 8785) for `@json` literals.
fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical_json(value, &mut out);
    out
}

fn write_canonical_json(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical_json(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical_json(v, out);
            }
            out.push(']');
        }
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e21 => {
                out.push_str(&format!("{f:.0}"));
            }
            _ => out.push_str(&n.to_string()),
        },
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_use_the_canonical_lexical_form() {
        assert_eq!(canonical_double(1.5), "1.5E0");
        assert_eq!(canonical_double(10.0), "1.0E1");
        assert_eq!(canonical_double(0.001), "1.0E-3");
        assert_eq!(canonical_double(-2.25e30), "-2.25E30");
    }

    #[test]
    fn json_literals_are_jcs() {
        let v = serde_json::json!({"b": [1, 2.5, "x\n"], "a": true, "é": null});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":true,"b":[1,2.5,"x\n"],"é":null}"#
        );
    }
}
