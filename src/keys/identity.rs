//! Issuer identifiers and verification-method ids: how an issuer is named in credentials and how
//! each of its keys is referenced from a proof.

use std::{fmt, str::FromStr};

use crate::db::{issuer, signing_key};

/// How an issuer is identified in credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdType {
    /// `did:web:<host>:issuers:<id>`, resolved through `/issuers/<id>/did.json` (the default).
    DidWeb,
    /// `https://<host>/issuers/<id>`; keys are referenced as `<url>#<multibase public key>`.
    Url,
    /// `did:key:z6Mk…` derived from the issuer's single key (cannot rotate).
    DidKey,
}

impl IdType {
    /// The stored and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            IdType::DidWeb => "did:web",
            IdType::Url => "url",
            IdType::DidKey => "did:key",
        }
    }

    /// Whether keys can rotate without changing the issuer's identity.
    pub fn supports_rotation(self) -> bool {
        !matches!(self, IdType::DidKey)
    }
}

impl fmt::Display for IdType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An id type we do not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown idType `{0}`: use did:web, url or did:key")]
pub struct UnknownIdType(pub String);

impl FromStr for IdType {
    type Err = UnknownIdType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "did:web" => Ok(IdType::DidWeb),
            "url" => Ok(IdType::Url),
            "did:key" => Ok(IdType::DidKey),
            other => Err(UnknownIdType(other.to_owned())),
        }
    }
}

/// Whether `issuer_id` is a host's bare did:web (`did:web:<host>`, no path), whose DID document is
/// served at `/.well-known/did.json`. The port, if any, is percent-encoded, so a path is the only
/// source of further colons.
pub fn is_host_did(issuer_id: &str) -> bool {
    issuer_id
        .strip_prefix("did:web:")
        .is_some_and(|rest| !rest.is_empty() && !rest.contains(':'))
}

/// The verification-method id of `key` for `issuer`: what a proof's `verificationMethod` and a
/// JWT's `kid` name. Its controller is always the issuer id.
pub fn verification_method_id(issuer: &issuer::Model, key: &signing_key::Model) -> String {
    match issuer.id_type.parse::<IdType>() {
        Ok(IdType::DidWeb) => format!("{}#{}", issuer.issuer_id, key.id),
        Ok(IdType::Url) | Ok(IdType::DidKey) | Err(_) => {
            format!("{}#{}", issuer.issuer_id, key.public_key)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_dids() {
        assert!(is_host_did("did:web:example.com"));
        assert!(is_host_did("did:web:localhost%3A8443"));
        assert!(!is_host_did("did:web:example.com:issuers:abc"));
        assert!(!is_host_did("did:key:z6Mk"));
        assert!(!is_host_did("https://example.com/issuers/1"));
    }
}
