//! Errors raised while processing JSON-LD: every one names what it refused.

/// Why a document could not be turned into canonical N-Quads.
///
/// Every variant is a property of the input document (HTTP 400/422 when it reaches the API layer),
/// except `Unsupported`, which marks valid JSON-LD this focused processor deliberately refuses rather
/// than risk signing something other than what the spec would produce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonLdError {
    /// The document names a remote context that is not bundled; it is never fetched.
    #[error("unknown JSON-LD context `{url}`: only pinned contexts are accepted")]
    UnknownContext {
        /// The URL as written in the document.
        url: String,
    },
    /// A property the active context does not define (JSON-LD safe mode).
    #[error("undefined JSON-LD term `{term}`")]
    UndefinedTerm {
        /// The property name as written in the document.
        term: String,
    },
    /// A `type` value the active context does not define (JSON-LD safe mode).
    #[error("undefined JSON-LD type `{value}`")]
    UndefinedType {
        /// The type value as written in the document.
        value: String,
    },
    /// An identifier that is neither an absolute IRI nor a blank node identifier.
    #[error("`{value}` is not an absolute IRI")]
    InvalidIri {
        /// The offending value.
        value: String,
    },
    /// A context tries to change a protected term.
    #[error("protected JSON-LD term `{term}` redefined")]
    ProtectedTermRedefinition {
        /// The term.
        term: String,
    },
    /// A context definition is malformed.
    #[error("invalid JSON-LD context: {0}")]
    InvalidContext(String),
    /// The document is not well-formed JSON-LD.
    #[error("invalid JSON-LD document: {0}")]
    InvalidDocument(String),
    /// Valid JSON-LD using a feature this processor refuses.
    #[error("unsupported JSON-LD feature: {0}")]
    Unsupported(&'static str),
}
