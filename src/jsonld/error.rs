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
    /// Canonicalization needs more work than the configured bound allows (a "poison graph" of
    /// blank nodes RDFC-1.0 cannot tell apart cheaply). Not a verdict on the document:
    /// `indeterminate` when verifying, 422 when issuing.
    #[error(
        "RDFC-1.0 canonicalization stopped: the document needs more than {max} {what} \
         (limit `{limit}`)"
    )]
    LimitExceeded {
        /// What was counted.
        what: &'static str,
        /// The configuration key of the limit.
        limit: &'static str,
        /// The limit in force.
        max: u64,
    },
    /// Canonicalization was stopped because the request it served is gone.
    #[error("canonicalization cancelled: the request is gone")]
    Cancelled,
}

impl JsonLdError {
    /// Whether processing stopped on a resource bound or a cancellation rather than on a property
    /// of the document: such a document may be fine, so it gets no verdict.
    pub fn is_resource_limit(&self) -> bool {
        matches!(self, Self::LimitExceeded { .. } | Self::Cancelled)
    }
}
