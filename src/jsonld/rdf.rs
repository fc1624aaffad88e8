//! The RDF dataset produced by expansion and its canonical N-Quads serialization.

use std::fmt::Write as _;
use std::sync::Arc;

pub(crate) const RDF_TYPE: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type";
pub(crate) const RDF_FIRST: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#first";
pub(crate) const RDF_REST: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#rest";
pub(crate) const RDF_NIL: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#nil";
pub(crate) const RDF_JSON: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#JSON";
pub(crate) const XSD_NAMESPACE: &str = "http://www.w3.org/2001/XMLSchema#";
pub(crate) const XSD_STRING: &str = "http://www.w3.org/2001/XMLSchema#string";
pub(crate) const XSD_BOOLEAN: &str = "http://www.w3.org/2001/XMLSchema#boolean";
pub(crate) const XSD_INTEGER: &str = "http://www.w3.org/2001/XMLSchema#integer";
pub(crate) const XSD_DOUBLE: &str = "http://www.w3.org/2001/XMLSchema#double";

/// An IRI that is either one of the constants above or shared with a term definition, so the
/// common case never allocates.
#[derive(Debug, Clone)]
pub(crate) enum Iri {
    Static(&'static str),
    Shared(Arc<str>),
}

// Equality is by text: the same IRI may be held either way.
impl PartialEq for Iri {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Iri {}

impl std::hash::Hash for Iri {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl Iri {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Self::Static(s) => s,
            Self::Shared(s) => s,
        }
    }
}

/// A subject, object or graph name that is not a literal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Node {
    Iri(Iri),
    Blank(u32),
}

/// The datatype or language of a literal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum LiteralTag {
    Datatype(Iri),
    Language(Box<str>),
}

/// An RDF literal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Literal {
    pub(crate) lexical: Box<str>,
    pub(crate) tag: LiteralTag,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Object {
    Node(Node),
    Literal(Literal),
}

/// A quad; `graph: None` is the default graph.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Quad {
    pub(crate) subject: Node,
    pub(crate) predicate: Iri,
    pub(crate) object: Object,
    pub(crate) graph: Option<Node>,
}

impl Quad {
    /// Blank nodes of the quad in subject, object, graph order.
    pub(crate) fn blank_nodes(&self) -> impl Iterator<Item = u32> + '_ {
        let s = match self.subject {
            Node::Blank(b) => Some(b),
            Node::Iri(_) => None,
        };
        let o = match self.object {
            Object::Node(Node::Blank(b)) => Some(b),
            _ => None,
        };
        let g = match self.graph {
            Some(Node::Blank(b)) => Some(b),
            _ => None,
        };
        s.into_iter().chain(o).chain(g)
    }

    /// Appends the N-Quads line (with trailing newline), naming blank nodes through `label`.
    pub(crate) fn write_nquad(&self, out: &mut String, label: &impl Fn(u32) -> BlankLabel) {
        write_node(out, &self.subject, label);
        out.push_str(" <");
        out.push_str(self.predicate.as_str());
        out.push_str("> ");
        match &self.object {
            Object::Node(n) => write_node(out, n, label),
            Object::Literal(l) => write_literal(out, l),
        }
        if let Some(g) = &self.graph {
            out.push(' ');
            write_node(out, g, label);
        }
        out.push_str(" .\n");
    }
}

/// How a blank node is written.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BlankLabel {
    /// `_:c14n<n>`
    Canonical(u32),
    /// `_:a`, `_:z` and the like (first-degree hashing).
    Fixed(&'static str),
}

fn write_node(out: &mut String, node: &Node, label: &impl Fn(u32) -> BlankLabel) {
    match node {
        Node::Iri(iri) => {
            out.push('<');
            out.push_str(iri.as_str());
            out.push('>');
        }
        Node::Blank(b) => match label(*b) {
            BlankLabel::Canonical(n) => {
                let _ = write!(out, "_:c14n{n}");
            }
            BlankLabel::Fixed(s) => {
                out.push_str("_:");
                out.push_str(s);
            }
        },
    }
}

/// Literal serialization as `ssi`/`rdf-types` write it (the RDF 1.1 canonical N-Quads escapes:
/// only `"`, `\`, LF and CR are escaped).
fn write_literal(out: &mut String, literal: &Literal) {
    out.push('"');
    let s = &*literal.lexical;
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        out.push_str(escaped);
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
    match &literal.tag {
        LiteralTag::Datatype(dt) if dt.as_str() == XSD_STRING => {}
        LiteralTag::Datatype(dt) => {
            out.push_str("^^<");
            out.push_str(dt.as_str());
            out.push('>');
        }
        LiteralTag::Language(lang) => {
            out.push('@');
            out.push_str(lang);
        }
    }
}
